package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/storage"
)

// ErrDestinationNotEmpty is returned (wrapped) when the effective
// destination exists, is not empty, and replacing it was not asked for.
var ErrDestinationNotEmpty = bundle.ErrNotEmpty

// ErrSHA256Mismatch is returned (wrapped) when the downloaded artifact's
// SHA-256 differs from the torrent's "sha256" key.
var ErrSHA256Mismatch = errors.New("agent: sha256 mismatch")

// Artifact describes what a torrent delivers and where a peer places it.
type Artifact struct {
	// Tag is the artifact's name without .tgz, .tar.zst or .tar; for
	// anything else the torrent's name as is.
	Tag string
	// Archive is true when the peer extracts the artifact (one of murder's
	// archive formats, and not --path-is-file).
	Archive bool
	// Destination is DIR/TAG, or DIR with --no-tag-directory.
	Destination string
}

// ResolveArtifact works out the tag, whether to extract, and the effective
// destination for info under dir.
func ResolveArtifact(info *metainfo.Info, dir string, noTagDirectory, pathIsFile bool) Artifact {
	a := Artifact{Tag: info.Name}
	if _, tag, ok := bundle.ParseArtifactName(info.Name); ok {
		a.Tag = tag
		a.Archive = !pathIsFile && !info.MultiFile()
	}
	a.Destination = dir
	if !noTagDirectory {
		a.Destination = filepath.Join(dir, a.Tag)
	}
	return a
}

// checkedFile reads a downloaded file once for placing it and, when the
// torrent carries a whole-file SHA-256, hashes what it reads on the way, so
// the artifact is not read a second time only to be checked.
type checkedFile struct {
	f    *os.File
	r    io.Reader
	h    hash.Hash
	want []byte
}

func openChecked(ctx context.Context, path string, want []byte) (*checkedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	c := &checkedFile{f: f, r: ctxReader{ctx, f}, want: want}
	if len(want) > 0 {
		c.h = sha256.New()
		c.r = io.TeeReader(c.r, c.h)
	}
	return c, nil
}

func (c *checkedFile) Read(p []byte) (int, error) { return c.r.Read(p) }

// check reads what the consumer left unread and compares the digest.
func (c *checkedFile) check() error {
	if c.h == nil {
		return nil
	}
	if _, err := io.Copy(io.Discard, c.r); err != nil {
		return fmt.Errorf("agent: sha256 of %s: %w", c.f.Name(), err)
	}
	return checkSHA256(c.f.Name(), c.h.Sum(nil), c.want)
}

// checkSHA256 returns an ErrSHA256Mismatch error naming file unless got
// is want.
func checkSHA256(file string, got, want []byte) error {
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: %s has %s, the torrent says %s", ErrSHA256Mismatch,
			file, hex.EncodeToString(got), hex.EncodeToString(want))
	}
	return nil
}

func (c *checkedFile) Close() error { return c.f.Close() }

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}

// openDownload opens the storage of info under temp. A file there that
// has other hard links is a file an earlier run placed (linkTree): it is
// given an inode of its own first, by a copy, so that writing the download
// never changes a placed file.
func openDownload(info *metainfo.Info, temp string) (*storage.Storage, error) {
	paths, err := storage.FilePaths(info, temp)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for _, p := range paths {
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			if sys, ok := fi.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 {
				if err := unshare(p); err != nil {
					return nil, err
				}
			}
		}
	}
	st, err := storage.Open(info, temp)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return st, nil
}

// unshare replaces path by a copy of itself.
func unshare(path string) error {
	in, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer in.Close()
	tmp := path + ".murder-copy"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("agent: copy %s away from a placed file: %w", path, err)
	}
	return nil
}

// link is os.Link; tests replace it to take linkTree's fallback.
var link = os.Link

// linkTree hard-links the data files of st, kept under temp, into dir in
// the layout a peer places them in (dir/NAME for one file, dir/PATH... for
// a multi-file torrent). It reports false, leaving dir empty, when a link
// cannot be made (another file system or mount).
func linkTree(info *metainfo.Info, st *storage.Storage, temp, dir string) bool {
	base := temp
	if info.MultiFile() {
		base = filepath.Join(temp, info.Name)
	}
	for _, src := range st.Paths() {
		rel, err := filepath.Rel(base, src)
		if err == nil && filepath.IsLocal(rel) {
			dst := filepath.Join(dir, rel)
			if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
				err = link(src, dst)
			}
		} else if err == nil {
			err = fmt.Errorf("%s is outside %s", src, base)
		}
		if err != nil {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
			return false
		}
	}
	return true
}

// copyPieces writes the given pieces of from into to.
func copyPieces(ctx context.Context, from, to *storage.Storage, pieces []int) error {
	var buf []byte
	for _, k := range pieces {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		var err error
		if buf, err = from.ReadPiece(k, buf); err != nil {
			return fmt.Errorf("agent: place: %w", err)
		}
		if err := to.WritePiece(k, buf); err != nil {
			return fmt.Errorf("agent: place: %w", err)
		}
	}
	return nil
}

// fileDigest computes the SHA-256 of a single-file torrent's file while
// its pieces arrive in any order: it hashes the file front to back as far
// as the pieces are there, reading them back from storage (the page
// cache), so that once the last piece arrives only what lies after it is
// left to hash. Hashing 64 MiB took about 0.25 s at the end on a test bed
// of 16 hosts sharing two cores, a quarter of the time after the swarm's
// last unique piece.
type fileDigest struct {
	st     *storage.Storage
	mu     sync.Mutex
	have   *storage.Bitfield
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	sum    []byte
	err    error
}

func startFileDigest(ctx context.Context, st *storage.Storage) *fileDigest {
	ctx, cancel := context.WithCancel(ctx)
	d := &fileDigest{
		st:     st,
		have:   storage.NewBitfield(st.Info().NumPieces()),
		wake:   make(chan struct{}, 1),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go d.run(ctx)
	return d
}

// add records that piece k is in st. A nil d ignores it.
func (d *fileDigest) add(k int) {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.have.Set(k)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *fileDigest) run(ctx context.Context) {
	defer close(d.done)
	h := sha256.New()
	var buf []byte
	n := d.st.Info().NumPieces()
	for next := 0; next < n; {
		d.mu.Lock()
		ok := d.have.Has(next)
		d.mu.Unlock()
		if !ok {
			select {
			case <-d.wake:
				continue
			case <-ctx.Done():
				d.err = context.Cause(ctx)
				return
			}
		}
		var err error
		if buf, err = d.st.ReadPiece(next, buf); err != nil {
			d.err = fmt.Errorf("agent: sha256: %w", err)
			return
		}
		h.Write(buf)
		next++
	}
	d.sum = h.Sum(nil)
}

// wait returns the digest once every piece was added.
func (d *fileDigest) wait(ctx context.Context) ([]byte, error) {
	select {
	case <-d.done:
		return d.sum, d.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// stop ends the hashing early and waits for it.
func (d *fileDigest) stop() {
	d.cancel()
	<-d.done
}
