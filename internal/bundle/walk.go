package bundle

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"
)

// defaultExclude is the pattern every archive skips, as Murder's
// `tar --exclude .git*` did: .git, .gitignore, .github, ...
const defaultExclude = ".git*"

// entry is one file system object to archive.
type entry struct {
	rel  string // slash-separated path relative to the tree's root
	info fs.FileInfo
	link string // symlink target
}

// matcher decides which paths are left out of an archive.
type matcher struct {
	patterns []string
}

func newMatcher(extra []string) (*matcher, error) {
	m := &matcher{patterns: append([]string{defaultExclude}, extra...)}
	for _, p := range m.patterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("bundle: bad exclude pattern %q: %w", p, err)
		}
	}
	return m, nil
}

// excluded reports whether rel (slash-separated) matches a pattern, either by
// its base name or by its whole relative path, like tar's --exclude.
func (m *matcher) excluded(rel string) bool {
	base := path.Base(rel)
	for _, p := range m.patterns {
		if ok, _ := path.Match(p, base); ok {
			return true
		}
		if ok, _ := path.Match(p, rel); ok {
			return true
		}
	}
	return false
}

// collect walks root in sorted order and lists what goes into the archive.
// It also returns the size of the tar stream those entries give (without
// long-name extension headers), which the piece length is chosen from.
func collect(ctx context.Context, root string, m *matcher) ([]entry, int64, error) {
	var entries []entry
	var size int64 = 1024 // two zero blocks end the archive
	var walk func(dir, rel string) error
	walk = func(dir, rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		des, err := os.ReadDir(dir) // sorted by name
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		for _, de := range des {
			r := de.Name()
			if rel != "" {
				r = rel + "/" + r
			}
			if m.excluded(r) {
				continue
			}
			full := filepath.Join(dir, de.Name())
			info, err := os.Lstat(full)
			if err != nil {
				return fmt.Errorf("bundle: %w", err)
			}
			e := entry{rel: r, info: info}
			switch mode := info.Mode(); {
			case mode.IsRegular():
				size += 512 + (info.Size()+511)&^511
			case mode.IsDir():
				size += 512
			case mode&fs.ModeSymlink != 0:
				if e.link, err = os.Readlink(full); err != nil {
					return fmt.Errorf("bundle: %w", err)
				}
				size += 512
			default:
				return fmt.Errorf("bundle: %s: unsupported file type %v (only files, directories and symlinks can be archived; use --exclude)", full, mode.Type())
			}
			entries = append(entries, e)
			if info.IsDir() {
				if err := walk(full, r); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, ""); err != nil {
		return nil, 0, err
	}
	return entries, size, nil
}

// header builds the deterministic tar header of e: numeric owner 0, no user
// or group names, permission bits and whole-second mtime kept.
func header(e entry) *tar.Header {
	h := &tar.Header{
		Name:    e.rel,
		Mode:    int64(e.info.Mode().Perm()),
		ModTime: e.info.ModTime().Truncate(time.Second),
	}
	switch {
	case e.info.IsDir():
		h.Typeflag = tar.TypeDir
		h.Name += "/"
	case e.info.Mode()&fs.ModeSymlink != 0:
		h.Typeflag = tar.TypeSymlink
		h.Linkname = e.link
	default:
		h.Typeflag = tar.TypeReg
		h.Size = e.info.Size()
	}
	return h
}

// ErrFileChanged is returned (wrapped) when a file shrinks while it is
// being archived.
var ErrFileChanged = errors.New("bundle: file changed while it was archived")

// writeTar writes the entries of the tree at root as a tar stream to w.
func writeTar(ctx context.Context, w io.Writer, root string, entries []entry) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 1<<20)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := header(e)
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("bundle: %s: %w", e.rel, err)
		}
		if h.Typeflag != tar.TypeReg || h.Size == 0 {
			continue
		}
		if err := copyFile(ctx, tw, filepath.Join(root, filepath.FromSlash(e.rel)), h.Size, buf); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// copyFile copies exactly size bytes of the file at name to w.
func copyFile(ctx context.Context, w io.Writer, name string, size int64, buf []byte) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	n, err := io.CopyBuffer(w, &ctxReader{ctx: ctx, r: io.LimitReader(f, size)}, buf)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("bundle: %s: %w", name, err)
	}
	if n < size {
		return fmt.Errorf("%w: %s shrank from %d to %d bytes", ErrFileChanged, name, size, n)
	}
	return nil
}

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
