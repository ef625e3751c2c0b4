package bundle

import (
	"io"
	"sync"
)

// asyncWriter buffers writes and hands full buffers to a goroutine that
// writes them to w, so the compressor never waits for the file write and
// the hashing that follow it. Its memory is bounded by its buffer count.
type asyncWriter struct {
	w    io.Writer
	cur  []byte
	full chan []byte
	free chan []byte
	done chan struct{}

	mu  sync.Mutex
	err error
}

func newAsyncWriter(w io.Writer, size, buffers int) *asyncWriter {
	a := &asyncWriter{
		w:    w,
		full: make(chan []byte, buffers),
		free: make(chan []byte, buffers),
		done: make(chan struct{}),
	}
	for range buffers {
		a.free <- make([]byte, 0, size)
	}
	a.cur = <-a.free
	go a.run()
	return a
}

func (a *asyncWriter) run() {
	defer close(a.done)
	for b := range a.full {
		if a.failed() == nil {
			if _, err := a.w.Write(b); err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
			}
		}
		a.free <- b[:0]
	}
}

func (a *asyncWriter) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	if err := a.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		k := copy(a.cur[len(a.cur):cap(a.cur)], p)
		a.cur = a.cur[:len(a.cur)+k]
		p = p[k:]
		if len(a.cur) == cap(a.cur) {
			a.full <- a.cur
			a.cur = <-a.free
		}
	}
	return n, nil
}

// Close writes what is buffered, waits for the writer goroutine and
// returns the first write error.
func (a *asyncWriter) Close() error {
	if len(a.cur) > 0 {
		a.full <- a.cur
		a.cur = nil
	}
	close(a.full)
	<-a.done
	return a.failed()
}
