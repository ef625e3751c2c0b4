package bundle

import (
	"crypto/sha1"
	"runtime"
	"sync"
)

// pieceHasher is an io.Writer that cuts the stream written to it into
// pieces and hashes them with SHA-1 on all cores, in the background, while
// the stream is still being written.
type pieceHasher struct {
	pieceLen int
	buf      []byte      // the piece being filled
	free     chan []byte // recycled piece buffers; bounds memory
	jobs     chan pieceJob
	wg       sync.WaitGroup

	mu   sync.Mutex
	sums [][20]byte
}

type pieceJob struct {
	index int
	data  []byte
}

func newPieceHasher(pieceLen int64) *pieceHasher {
	workers := runtime.GOMAXPROCS(0)
	h := &pieceHasher{
		pieceLen: int(pieceLen),
		free:     make(chan []byte, workers+2),
		jobs:     make(chan pieceJob, workers),
	}
	for range workers + 2 {
		h.free <- make([]byte, 0, pieceLen)
	}
	h.buf = <-h.free
	for range workers {
		h.wg.Add(1)
		go h.work()
	}
	return h
}

func (h *pieceHasher) work() {
	defer h.wg.Done()
	for j := range h.jobs {
		sum := sha1.Sum(j.data)
		h.mu.Lock()
		h.sums[j.index] = sum
		h.mu.Unlock()
		h.free <- j.data[:0]
	}
}

// Write never fails.
func (h *pieceHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(h.buf[len(h.buf):h.pieceLen], p)
		h.buf = h.buf[:len(h.buf)+k]
		p = p[k:]
		if len(h.buf) == h.pieceLen {
			h.dispatch()
			h.buf = <-h.free
		}
	}
	return n, nil
}

func (h *pieceHasher) dispatch() {
	h.mu.Lock()
	i := len(h.sums)
	h.sums = append(h.sums, [20]byte{})
	h.mu.Unlock()
	h.jobs <- pieceJob{index: i, data: h.buf}
	h.buf = nil
}

// Sum hashes the last, possibly short, piece, waits for the workers and
// returns the concatenated piece hashes. The hasher cannot be used after.
func (h *pieceHasher) Sum() []byte {
	if len(h.buf) > 0 {
		h.dispatch()
	}
	close(h.jobs)
	h.wg.Wait()
	out := make([]byte, 0, 20*len(h.sums))
	for _, s := range h.sums {
		out = append(out, s[:]...)
	}
	return out
}

// Abort stops the workers without waiting for a result.
func (h *pieceHasher) Abort() {
	close(h.jobs)
	h.wg.Wait()
}

// hashSet hashes the stream at one or more candidate piece lengths at
// once, because the piece length is chosen from the artifact's size, which
// is only known once compression is done. Candidates below the length the
// bytes written so far already call for are dropped as the stream grows.
type hashSet struct {
	choose  func(int64) int64 // nil: a single fixed length
	lengths []int64
	hashers []*pieceHasher
	written int64
}

func newHashSet(lengths []int64, choose func(int64) int64) *hashSet {
	s := &hashSet{choose: choose, lengths: lengths}
	for _, l := range lengths {
		s.hashers = append(s.hashers, newPieceHasher(l))
	}
	return s
}

func (s *hashSet) Write(p []byte) (int, error) {
	for _, h := range s.hashers {
		if h != nil {
			h.Write(p)
		}
	}
	s.written += int64(len(p))
	if s.choose != nil {
		floor := s.choose(s.written)
		for i, h := range s.hashers {
			if h != nil && s.lengths[i] < floor {
				h.Abort()
				s.hashers[i] = nil
			}
		}
	}
	return len(p), nil
}

// Sum returns the piece length for the stream and its piece hashes. ok is
// false when that length was not among the candidates.
func (s *hashSet) Sum() (length int64, pieces []byte, ok bool) {
	length = s.lengths[0]
	if s.choose != nil {
		length = s.choose(s.written)
	}
	for i, h := range s.hashers {
		if h == nil {
			continue
		}
		if s.lengths[i] == length {
			pieces, ok = h.Sum(), true
		} else {
			h.Abort()
		}
		s.hashers[i] = nil
	}
	return length, pieces, ok
}

// Abort stops all hashing.
func (s *hashSet) Abort() {
	for i, h := range s.hashers {
		if h != nil {
			h.Abort()
			s.hashers[i] = nil
		}
	}
}
