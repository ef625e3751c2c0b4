package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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

// checkSHA256 compares the SHA-256 of the single file at path with want.
func checkSHA256(ctx context.Context, path string, want []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("agent: sha256: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return fmt.Errorf("agent: sha256 of %s: %w", path, err)
	}
	if got := h.Sum(nil); string(got) != string(want) {
		return fmt.Errorf("%w: %s has %s, the torrent says %s", ErrSHA256Mismatch,
			path, hex.EncodeToString(got), hex.EncodeToString(want))
	}
	return nil
}

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
			if err := copyInto(ctx, root, src, rel); err != nil {
				return err
			}
		}
		return nil
	})
}

func copyInto(ctx context.Context, root *os.Root, src, rel string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("agent: place: %w", err)
	}
	defer in.Close()
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
	// io.Copy between two *os.File uses copy_file_range.
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("agent: place %s: %w", rel, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("agent: place %s: %w", rel, err)
	}
	return nil
}
