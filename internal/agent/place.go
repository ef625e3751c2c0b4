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

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/metainfo"
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
	if got := c.h.Sum(nil); !bytes.Equal(got, c.want) {
		return fmt.Errorf("%w: %s has %s, the torrent says %s", ErrSHA256Mismatch,
			c.f.Name(), hex.EncodeToString(got), hex.EncodeToString(c.want))
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

// placeRaw copies the torrent's files from dataDir (where storage keeps
// them) into a new tree at dest, atomically: a single file lands as
// dest/NAME, a multi-file torrent's tree lands under dest. Pad files are
// skipped.
func placeRaw(ctx context.Context, info *metainfo.Info, dataDir, dest string, replace bool) error {
	var want []byte
	if !info.MultiFile() {
		want = info.SHA256
	}
	return bundle.Publish(dest, replace, func(dir string) error {
		root, err := os.OpenRoot(dir)
		if err != nil {
			return fmt.Errorf("agent: place: %w", err)
		}
		defer root.Close()
		for _, f := range info.FileList() {
			if f.IsPad() {
				continue
			}
			src := filepath.Join(append([]string{dataDir, info.Name}, f.Path...)...)
			rel := filepath.Join(f.Path...)
			if !info.MultiFile() {
				src = filepath.Join(dataDir, info.Name)
				rel = info.Name
			}
			if err := copyInto(ctx, root, src, rel, want); err != nil {
				return err
			}
		}
		return nil
	})
}

// copyInto copies src to rel under root, checking src's SHA-256 against
// want (when set) in the same pass.
func copyInto(ctx context.Context, root *os.Root, src, rel string, want []byte) error {
	in, err := openChecked(ctx, src, want)
	if err != nil {
		return err
	}
	defer in.Close()
	// Without a digest to check, copy between the two *os.File so that
	// io.Copy uses copy_file_range.
	var from io.Reader = in
	if in.h == nil {
		from = in.f
	}
	if d := filepath.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("agent: place %s: %w", rel, err)
		}
	}
	out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("agent: place %s: %w", rel, err)
	}
	if err := ctx.Err(); err != nil {
		out.Close()
		return context.Cause(ctx)
	}
	if _, err := io.Copy(out, from); err != nil {
		out.Close()
		return fmt.Errorf("agent: place %s: %w", rel, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("agent: place %s: %w", rel, err)
	}
	return in.check()
}
