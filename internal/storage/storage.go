// Package storage keeps a torrent's pieces on disk: it maps the torrent's
// byte space onto its files (skipping BEP 47 pad files, which are never
// written), reads and writes pieces, and verifies what is on disk on all
// cores so an interrupted download can resume.
package storage

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/murder-deploy/murder/internal/metainfo"
)

// maxWrite bounds one write call.
const maxWrite = 256 << 10

// ErrReadOnly is returned by writes when the files could only be opened
// for reading.
var ErrReadOnly = errors.New("storage: files are read-only")

var errClosed = errors.New("storage: closed")

type file struct {
	path    string
	f       *os.File // nil for pad files
	off     int64    // offset in the torrent's byte space
	length  int64
	created atomic.Bool // did not exist before Open and not written since
	// writeMu serializes writes to the file. The kernel takes the inode
	// lock for each buffered write anyway, and writers waiting for it
	// spin: with the swarm's verifiers writing pieces side by side, a
	// peer spent 10% more CPU per GiB without this mutex.
	writeMu sync.Mutex
}

// Storage is a torrent's data on disk. Its methods are safe for concurrent
// use.
type Storage struct {
	info     *metainfo.Info
	files    []*file
	total    int64
	pieceLen int64
	readOnly bool
	owned    bool // files must be this user's own (OpenTemp)
}

// Open opens (creating and preallocating where missing) the files of info under dir:
// dir/Name for a single-file torrent, dir/Name/path... for a multi-file
// one. Files that cannot be opened for writing are opened read-only, which
// is enough to seed them.
func Open(info *metainfo.Info, dir string) (*Storage, error) {
	return open(info, dir, true, false)
}

// OpenTree is Open with dir standing for the torrent's own directory: a
// multi-file torrent's files go to dir/path... (a single file still to
// dir/Name). This is the layout in which a peer places downloaded files.
func OpenTree(info *metainfo.Info, dir string) (*Storage, error) {
	return open(info, dir, false, false)
}

// OpenTemp is Open for a download in a directory that other users may
// write to, such as a temp path under /tmp: a file that is there already
// is used only when it is this user's own regular file with no other
// link, so that a symlink or hard link planted at the name never makes
// murder write elsewhere, and a file someone else owns never feeds it
// data. A single-file torrent's file is the only one there; a multi-file
// torrent's directories are not checked (peers download those into a
// private stage instead).
func OpenTemp(info *metainfo.Info, dir string) (*Storage, error) {
	return open(info, dir, true, true)
}

func open(info *metainfo.Info, dir string, withName, owned bool) (*Storage, error) {
	if info.PieceLength <= 0 || len(info.Pieces)%20 != 0 {
		return nil, fmt.Errorf("storage: invalid piece layout")
	}
	s := &Storage{info: info, total: info.TotalLength(), pieceLen: info.PieceLength, owned: owned}
	if !filepath.IsLocal(info.Name) || info.Name != filepath.Base(info.Name) {
		return nil, fmt.Errorf("storage: unsafe torrent name %q", info.Name)
	}
	var off int64
	for _, fl := range info.FileList() {
		f := &file{off: off, length: fl.Length}
		off += fl.Length
		if fl.IsPad() {
			s.files = append(s.files, f)
			continue
		}
		p, err := localPath(info, fl, withName)
		if err != nil {
			s.Close()
			return nil, err
		}
		f.path = filepath.Join(dir, p)
		if err := s.openFile(f); err != nil {
			s.Close()
			return nil, err
		}
		s.files = append(s.files, f)
	}
	if want := int64(info.NumPieces()); (s.total+s.pieceLen-1)/s.pieceLen != want {
		s.Close()
		return nil, fmt.Errorf("storage: %d bytes need %d pieces of %d, torrent has %d", s.total, (s.total+s.pieceLen-1)/s.pieceLen, s.pieceLen, want)
	}
	return s, nil
}

func localPath(info *metainfo.Info, fl metainfo.File, withName bool) (string, error) {
	if !info.MultiFile() {
		return info.Name, nil
	}
	if len(fl.Path) == 0 {
		return "", fmt.Errorf("storage: file with empty path")
	}
	var parts []string
	if withName {
		parts = append(parts, info.Name)
	}
	for _, c := range fl.Path {
		if c == "" || c == "." || c == ".." || c != filepath.Base(c) || !filepath.IsLocal(c) {
			return "", fmt.Errorf("storage: unsafe file path %q", fl.Path)
		}
		parts = append(parts, c)
	}
	return filepath.Join(parts...), nil
}

func (s *Storage) openFile(f *file) error {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if s.owned {
		h, created, err := OpenOwned(f.path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		f.f = h
		f.created.Store(created)
		if fi, err := h.Stat(); err != nil {
			return fmt.Errorf("storage: %w", err)
		} else if fi.Size() < f.length {
			if err := allocate(h, f.length); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
		}
		return nil
	}
	_, statErr := os.Stat(f.path)
	h, err := os.OpenFile(f.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil && (errors.Is(err, fs.ErrPermission) || errors.Is(err, errReadOnlyFS)) && statErr == nil {
		h, err = os.Open(f.path)
		s.readOnly = true
	}
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	f.f = h
	f.created.Store(errors.Is(statErr, fs.ErrNotExist))
	fi, err := h.Stat()
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("storage: %s is not a regular file", f.path)
	}
	if fi.Size() < f.length && !s.readOnly {
		if err := allocate(h, f.length); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
	}
	return nil
}

// Info returns the torrent's info dictionary.
func (s *Storage) Info() *metainfo.Info { return s.info }

// Close closes the files.
func (s *Storage) Close() error {
	var errs []error
	for i := range s.files {
		if s.files[i].f != nil {
			errs = append(errs, s.files[i].f.Close())
			s.files[i].f = nil
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// Sync flushes written data to disk.
func (s *Storage) Sync() error {
	for _, f := range s.files {
		if f.f != nil && !s.readOnly {
			if err := f.f.Sync(); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
		}
	}
	return nil
}

// fileAt returns the index of the file holding byte off.
func (s *Storage) fileAt(off int64) int {
	return sort.Search(len(s.files), func(i int) bool { return s.files[i].off+s.files[i].length > off })
}

// span calls fn for each file segment of [off, off+len(p)).
func (s *Storage) span(p []byte, off int64, fn func(f *file, p []byte, fileOff int64) error) (int, error) {
	if off < 0 || off+int64(len(p)) > s.total {
		return 0, fmt.Errorf("storage: range %d+%d outside %d bytes", off, len(p), s.total)
	}
	n := 0
	for i := s.fileAt(off); n < len(p) && i < len(s.files); i++ {
		f := s.files[i]
		fo := off + int64(n) - f.off
		m := min(int64(len(p)-n), f.length-fo)
		if m <= 0 {
			continue
		}
		if err := fn(f, p[n:n+int(m)], fo); err != nil {
			return n, err
		}
		n += int(m)
	}
	return n, nil
}

// ReadAt reads len(p) bytes at offset off of the torrent's byte space. Pad
// files read as zeros.
func (s *Storage) ReadAt(p []byte, off int64) (int, error) {
	return s.span(p, off, func(f *file, p []byte, fo int64) error {
		if f.f == nil {
			if f.path != "" {
				return errClosed
			}
			clear(p)
			return nil
		}
		n, err := f.f.ReadAt(p, fo)
		if err == io.EOF {
			clear(p[n:]) // a file shorter than the torrent says (seeding read-only)
			err = nil
		}
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		return nil
	})
}

// WriteAt writes p at offset off of the torrent's byte space. Bytes that
// fall into pad files are dropped.
func (s *Storage) WriteAt(p []byte, off int64) (int, error) {
	if s.readOnly {
		return 0, ErrReadOnly
	}
	return s.span(p, off, func(f *file, p []byte, fo int64) error {
		if f.f == nil {
			if f.path != "" {
				return errClosed
			}
			return nil
		}
		// Bounded pwrite calls: a 2 MiB or larger aligned write costs
		// several times more CPU on Linux once memory is fragmented (it
		// asks for a huge page-cache folio); 256 KiB ones do not.
		f.writeMu.Lock()
		defer f.writeMu.Unlock()
		for len(p) > 0 {
			n := min(len(p), maxWrite)
			if _, err := f.f.WriteAt(p[:n], fo); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			p, fo = p[n:], fo+int64(n)
		}
		if f.created.Load() {
			f.created.Store(false)
		}
		return nil
	})
}

// PieceOffset returns the offset of piece k in the torrent's byte space.
func (s *Storage) PieceOffset(k int) int64 { return int64(k) * s.pieceLen }

// ReadPiece reads piece k into buf (grown if needed) and returns it.
func (s *Storage) ReadPiece(k int, buf []byte) ([]byte, error) {
	size := int(s.info.PieceSize(k))
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	_, err := s.ReadAt(buf, s.PieceOffset(k))
	return buf, err
}

// WritePiece writes a whole piece, normally after CheckPiece accepted it.
func (s *Storage) WritePiece(k int, data []byte) error {
	if int64(len(data)) != s.info.PieceSize(k) {
		return fmt.Errorf("storage: piece %d has %d bytes, want %d", k, len(data), s.info.PieceSize(k))
	}
	_, err := s.WriteAt(data, s.PieceOffset(k))
	return err
}

// CheckPiece reports whether data is piece k according to its SHA-1.
func (s *Storage) CheckPiece(k int, data []byte) bool {
	if k < 0 || k >= s.info.NumPieces() || int64(len(data)) != s.info.PieceSize(k) {
		return false
	}
	sum := sha1.Sum(data)
	want := s.info.PieceHash(k)
	return bytes.Equal(sum[:], want[:])
}

// Verify hashes the pieces on disk on all cores and returns those that are
// correct. Pieces that touch a file Open had to create are missing without
// being read. progress, when not nil, is called from one goroutine after
// each piece.
func (s *Storage) Verify(ctx context.Context, progress func(done, total int)) (*Bitfield, error) {
	n := s.info.NumPieces()
	have := NewBitfield(n)
	workers := min(runtime.GOMAXPROCS(0), max(n, 1))
	jobs := make(chan int)
	type result struct {
		k   int
		ok  bool
		err error
	}
	results := make(chan result, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for k := range jobs {
				if s.touchesCreated(k) {
					results <- result{k: k}
					continue
				}
				var err error
				buf, err = s.ReadPiece(k, buf)
				results <- result{k: k, ok: err == nil && s.CheckPiece(k, buf), err: err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for k := range n {
			select {
			case jobs <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	done := 0
	var firstErr error
	for r := range results {
		done++
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
		if r.ok {
			have.Set(r.k)
		}
		if progress != nil {
			progress(done, n)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: verify: %w", err)
	}
	if firstErr != nil {
		return nil, fmt.Errorf("storage: verify: %w", firstErr)
	}
	return have, nil
}

func (s *Storage) touchesCreated(k int) bool {
	start := s.PieceOffset(k)
	end := start + s.info.PieceSize(k)
	for i := s.fileAt(start); i < len(s.files) && s.files[i].off < end; i++ {
		if s.files[i].created.Load() && s.files[i].length > 0 {
			return true
		}
	}
	return false
}
