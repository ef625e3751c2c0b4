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
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/murder-deploy/murder/internal/bytesize"
)

// ExtractOptions tunes Extract. The zero value refuses to touch a
// destination that is not empty.
type ExtractOptions struct {
	// Replace lets Extract replace a destination that exists and is not
	// empty (Murder's --unsafe-please-delete).
	Replace bool
	// Limits bounds what the extraction may write; the zero value derives
	// the byte bound from the free space beside dest.
	Limits Limits
}

// ErrUnsafeEntry is returned (wrapped) for an archive entry that would
// land outside the destination or is of a refused kind (device, FIFO).
var ErrUnsafeEntry = errors.New("bundle: unsafe archive entry")

// ErrUnknownFormat is returned (wrapped) when an archive's name has none
// of the suffixes .tgz, .tar.zst or .tar.
var ErrUnknownFormat = errors.New("bundle: unknown archive format")

// Extract unpacks the archive at archivePath into dest, atomically and
// safely (see Publish and Unpack). The format comes from the file name
// (TAG.tgz, TAG.tar.zst or TAG.tar).
func Extract(ctx context.Context, archivePath, dest string, opts ExtractOptions) error {
	format, _, ok := ParseArtifactName(filepath.Base(archivePath))
	if !ok {
		return fmt.Errorf("%w: %s (want TAG.tgz, TAG.tar.zst or TAG.tar)", ErrUnknownFormat, archivePath)
	}
	f, err := os.Open(archivePath)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	return Publish(dest, opts.Replace, func(dir string) error {
		if err := UnpackLimited(ctx, f, format, dir, opts.Limits); err != nil {
			return fmt.Errorf("extract %s: %w", archivePath, err)
		}
		return nil
	})
}

// Unpack reads an archive in format f from r and unpacks it into dir, an
// existing directory that should be empty. It is not atomic (Extract is);
// on error dir holds part of the tree.
//
// Nothing is written outside dir: entries with absolute names or ".."
// are refused, as are symlinks that point outside dir, writes through
// symlinks, hard links to names outside dir or to symlinks, device nodes
// and FIFOs; sparse files too; names and link targets longer than 4096
// bytes too. Setuid, setgid and sticky bits are dropped; owners are not
// restored.
//
// What it writes is bounded by the default Limits: file contents by the
// free space of dir's file system less a reserve, entries by
// DefaultMaxEntries. Beyond them it fails with ErrTooLarge.
func Unpack(ctx context.Context, r io.Reader, f Format, dir string) error {
	return UnpackLimited(ctx, r, f, dir, Limits{})
}

// UnpackLimited is Unpack with the given limits in place of the defaults.
func UnpackLimited(ctx context.Context, r io.Reader, f Format, dir string, lim Limits) error {
	b, maxEntries, err := lim.resolve(dir)
	if err != nil {
		return err
	}
	// Reading through ctx also makes skipping and draining cancellable.
	r = &ctxReader{ctx: ctx, r: r}
	switch f {
	case Tar:
		return unpackTar(ctx, r, dir, b, maxEntries, lim.ExternalSymlinks)
	case TGZ:
		zr, err := pgzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("bundle: gzip: %w", err)
		}
		defer zr.Close()
		if err := unpackTar(ctx, zr, dir, b, maxEntries, lim.ExternalSymlinks); err != nil {
			return err
		}
		return drain(zr, "gzip")
	case TarZst:
		zr, err := zstd.NewReader(r)
		if err != nil {
			return fmt.Errorf("bundle: zstd: %w", err)
		}
		defer zr.Close()
		if err := unpackTar(ctx, zr, dir, b, maxEntries, lim.ExternalSymlinks); err != nil {
			return err
		}
		return drain(zr, "zstd")
	}
	return fmt.Errorf("%w: %d", ErrUnknownFormat, int(f))
}

// drain reads the compressed stream to its end so its checksum is checked,
// but no more than maxTrailing bytes past the end of the tar stream.
func drain(r io.Reader, what string) error {
	n, err := io.Copy(io.Discard, io.LimitReader(r, maxTrailing+1))
	if err != nil {
		return fmt.Errorf("bundle: %s: %w", what, err)
	}
	if n > maxTrailing {
		return fmt.Errorf("%w: more than %s of data after the end of the tar stream", ErrTooLarge, bytesize.Format(maxTrailing))
	}
	return nil
}

type dirMeta struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

// extractor holds the state of one Unpack. Since dir starts empty and only
// the extractor writes to it, links knows every symlink in the tree.
type extractor struct {
	root  *os.Root
	links map[string]string // symlink name -> target
	dirs  map[string]int    // directory name -> index in dirList
	// dirList keeps directories in archive order, so that the work done
	// (and the code coverage seen by the fuzzer) does not depend on map order.
	dirList []dirMeta
	buf     []byte

	budget   budget // bound on bytes of file contents; max < 0: none
	written  int64  // bytes of file contents written so far
	external bool   // keep symlinks that point outside the tree
}

func unpackTar(ctx context.Context, r io.Reader, dir string, b budget, maxEntries int, external bool) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer root.Close()
	x := &extractor{root: root, links: map[string]string{}, dirs: map[string]int{}, buf: make([]byte, 256<<10), budget: b, external: external}
	tr := tar.NewReader(r)
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("bundle: tar: %w", err)
		}
		if n > maxEntries {
			return fmt.Errorf("%w: it has more than %d entries (entry %q)", ErrTooLarge, maxEntries, shortName(h.Name))
		}
		if err := x.entry(ctx, h, tr); err != nil {
			return err
		}
	}
	if !x.external {
		if err := x.checkLinks(); err != nil {
			return err
		}
	}
	return x.finishDirs()
}

// shortName cuts a name that is too long to print whole in an error.
func shortName(name string) string {
	if len(name) <= 256 {
		return name
	}
	return name[:64] + "..."
}

func unsafeEntry(name, why string) error {
	return fmt.Errorf("%w %q: %s", ErrUnsafeEntry, name, why)
}

// cleanName checks an entry name and returns it cleaned, slash-separated
// and relative; "." stands for the root itself.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", unsafeEntry(name, "empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", unsafeEntry(name, "absolute path")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", unsafeEntry(name, "'..' in path")
		}
	}
	clean := path.Clean(name)
	if clean != "." && !filepath.IsLocal(filepath.FromSlash(clean)) {
		return "", unsafeEntry(name, "not a local path")
	}
	return clean, nil
}

// throughLink returns the first proper prefix of name that is a symlink.
func (x *extractor) throughLink(name string) (string, bool) {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			if _, ok := x.links[name[:i]]; ok {
				return name[:i], true
			}
		}
	}
	return "", false
}

func (x *extractor) entry(ctx context.Context, h *tar.Header, r io.Reader) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil // metadata only, as `git archive` writes (the commit id)
	}
	if len(h.Name) > maxNameLen {
		return unsafeEntry(shortName(h.Name), fmt.Sprintf("name of %d bytes, longer than %d", len(h.Name), maxNameLen))
	}
	if len(h.Linkname) > maxNameLen {
		return unsafeEntry(h.Name, fmt.Sprintf("link target of %d bytes, longer than %d", len(h.Linkname), maxNameLen))
	}
	name, err := cleanName(h.Name)
	if err != nil {
		return err
	}
	if l, ok := x.throughLink(name); ok {
		return unsafeEntry(h.Name, "written through symlink "+l)
	}
	perm := fs.FileMode(h.Mode) & fs.ModePerm // drops setuid, setgid, sticky
	switch h.Typeflag {
	case tar.TypeDir:
		if name == "." {
			return nil
		}
		if _, ok := x.links[name]; ok {
			return unsafeEntry(h.Name, "directory over a symlink")
		}
		if err := x.root.MkdirAll(name, 0o755); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		d := dirMeta{name: name, mode: perm, mtime: h.ModTime}
		if i, ok := x.dirs[name]; ok {
			x.dirList[i] = d
		} else {
			x.dirs[name] = len(x.dirList)
			x.dirList = append(x.dirList, d)
		}
		return nil
	case tar.TypeReg:
		if isSparse(h) {
			return unsafeEntry(h.Name, "sparse files are refused")
		}
		if err := x.prepare(h.Name, name); err != nil {
			return err
		}
		if x.budget.max >= 0 && h.Size > x.budget.max-x.written {
			return x.budget.tooLarge(shortName(h.Name), h.Size, x.written)
		}
		f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		// The tar reader yields exactly h.Size bytes; the limit keeps the
		// copy within the budget checked above whatever the reader does.
		n, err := io.CopyBuffer(f, io.LimitReader(r, h.Size), x.buf)
		x.written += n
		if err == nil {
			err = f.Chmod(perm)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("bundle: %s: %w", name, err)
		}
		return x.chtimes(name, h.ModTime)
	case tar.TypeSymlink:
		if h.Linkname == "" {
			return unsafeEntry(h.Name, "empty symlink target")
		}
		if err := checkLinkTarget(name, h.Linkname); err != nil && !x.external {
			return unsafeEntry(h.Name, err.Error())
		}
		if err := x.prepare(h.Name, name); err != nil {
			return err
		}
		if err := x.root.Symlink(h.Linkname, name); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		x.links[name] = h.Linkname
		return nil
	case tar.TypeLink:
		target, err := cleanName(h.Linkname)
		if err != nil || target == "." {
			return unsafeEntry(h.Name, "hard link to "+h.Linkname+" outside the tree")
		}
		if l, ok := x.throughLink(target); ok {
			return unsafeEntry(h.Name, "hard link through symlink "+l)
		}
		if _, ok := x.links[target]; ok {
			return unsafeEntry(h.Name, "hard link to a symlink")
		}
		if target == name {
			return nil
		}
		if err := x.prepare(h.Name, name); err != nil {
			return err
		}
		if err := x.root.Link(target, name); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		return nil
	case tar.TypeGNUSparse:
		return unsafeEntry(h.Name, "sparse files are refused")
	case tar.TypeChar, tar.TypeBlock:
		return unsafeEntry(h.Name, "device nodes are refused")
	case tar.TypeFifo:
		return unsafeEntry(h.Name, "FIFOs are refused")
	}
	return unsafeEntry(h.Name, fmt.Sprintf("unsupported entry type %q", h.Typeflag))
}

// isSparse reports a PAX sparse file. Sparse entries are refused: murder
// never writes them, and a few bytes of sparse map can expand to terabytes.
func isSparse(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// prepare makes the parent directories of name and removes whatever an
// earlier entry put at name, as tar does, so the new entry is created
// fresh (O_EXCL) and never written through a symlink.
func (x *extractor) prepare(orig, name string) error {
	if name == "." {
		return unsafeEntry(orig, "names the root")
	}
	if dir := path.Dir(name); dir != "." {
		if err := x.root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	fi, err := x.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if fi.IsDir() {
		return unsafeEntry(orig, "replaces a directory")
	}
	if err := x.root.Remove(name); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	delete(x.links, name)
	return nil
}

func (x *extractor) chtimes(name string, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	if err := x.root.Chtimes(name, mtime, mtime); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// checkLinkTarget refuses absolute targets and targets that leave the tree
// by their text alone.
func checkLinkTarget(name, target string) error {
	if target == "" {
		return errors.New("empty symlink target")
	}
	if strings.HasPrefix(target, "/") {
		return fmt.Errorf("symlink to absolute path %s", target)
	}
	if j := path.Join(path.Dir(name), target); !filepath.IsLocal(filepath.FromSlash(j)) && j != "." {
		return fmt.Errorf("symlink to %s points outside the tree", target)
	}
	return nil
}

// maxLinkHops bounds symlink resolution, like the kernel's ELOOP limit.
const maxLinkHops = 40

// checkLinks resolves every symlink through the others, now that all
// exist, so that chains that only leave the tree together (a link whose
// target runs through another link and then "..") are refused too.
func (x *extractor) checkLinks() error {
	names := make([]string, 0, len(x.links))
	for name := range x.links {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := resolveLink(x.links, name, x.links[name]); err != nil {
			return unsafeEntry(name, err.Error())
		}
	}
	return nil
}

// resolveLink follows the symlink name -> target through the other links
// of the tree and fails if the path leaves the tree.
func resolveLink(links map[string]string, name, target string) error {
	var stack []string
	if d := path.Dir(name); d != "." {
		stack = strings.Split(d, "/")
	}
	todo := strings.Split(target, "/")
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return fmt.Errorf("symlink to %s leads outside the tree", target)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		p := strings.Join(append(stack, c), "/")
		t, ok := links[p]
		if !ok {
			stack = append(stack, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return fmt.Errorf("symlink to %s: too many levels of symlinks", target)
		}
		if strings.HasPrefix(t, "/") {
			return fmt.Errorf("symlink to %s leads outside the tree", target)
		}
		todo = append(strings.Split(t, "/"), todo...)
	}
	return nil
}

// finishDirs sets directory modes and mtimes once nothing more is written
// into them, deepest first.
func (x *extractor) finishDirs() error {
	dirs := x.dirList
	sort.SliceStable(dirs, func(i, j int) bool {
		di, dj := strings.Count(dirs[i].name, "/"), strings.Count(dirs[j].name, "/")
		if di != dj {
			return di > dj
		}
		return dirs[i].name < dirs[j].name
	})
	for _, d := range dirs {
		if fi, err := x.root.Lstat(d.name); err != nil || !fi.IsDir() {
			continue // replaced by a later entry
		}
		if err := x.root.Chmod(d.name, d.mode); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		if err := x.chtimes(d.name, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

// ErrExternalSymlinks is returned (wrapped) by Create for a tree with
// symlinks that point outside it, which peers would refuse.
var ErrExternalSymlinks = errors.New("bundle: symlinks point outside the tree")

// externalLinks lists the symlinks among entries whose targets leave the
// tree, as "NAME -> TARGET", by the rules the extraction applies.
func externalLinks(entries []entry) []string {
	links := map[string]string{}
	for _, e := range entries {
		if e.info.Mode()&fs.ModeSymlink != 0 {
			links[e.rel] = e.link
		}
	}
	var out []string
	for _, e := range entries {
		if e.info.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if checkLinkTarget(e.rel, e.link) != nil || resolveLink(links, e.rel, e.link) != nil {
			out = append(out, e.rel+" -> "+e.link)
		}
	}
	return out
}
