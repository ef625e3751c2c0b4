package bundle

import (
	"errors"
	"fmt"

	"github.com/murder-deploy/murder/internal/bytesize"
)

// ErrTooLarge is returned (wrapped) when an archive would write more than
// its Limits allow: more bytes than the file system can spare (a
// decompression bomb, or simply too little room), or too many entries.
var ErrTooLarge = errors.New("bundle: archive too large")

// DefaultMaxEntries is the number of entries one extraction may hold when
// Limits.MaxEntries is zero: far beyond any real build, but it stops an
// archive of endless empty files or directories.
const DefaultMaxEntries = 10_000_000

// maxNameLen bounds entry names and link targets, in bytes: Linux's
// PATH_MAX. The kernel refuses longer paths anyway; refusing them first
// keeps the names held in memory small.
const maxNameLen = 4096

// Space kept free by the default byte budget: the larger of reserveMin and
// 1/reserveDiv of the file system, so that a deploy that only just fits
// does not leave the host without room for its logs.
const (
	reserveMin = 64 << 20
	reserveDiv = 100
)

// maxTrailing bounds what is read after the end of the tar stream to check
// the compressed stream's checksum. Tar writers pad to a record (10 KiB
// for GNU tar); megabytes more mean a runaway or crafted stream.
const maxTrailing = 16 << 20

// Limits bounds what one extraction may write, so that a decompression
// bomb or a runaway archive fails with ErrTooLarge before it fills the
// disk. The zero value gives safe defaults that need no configuration.
type Limits struct {
	// MaxBytes bounds the total size of regular files' contents. Each
	// entry is checked against it before it is written, by the size its
	// header declares. Zero means the space free on the file system that
	// holds the target directory (as statfs reports it to unprivileged
	// users) less a reserve: the larger of 64 MiB and 1% of the file
	// system. Outside Linux zero means no bound on bytes.
	MaxBytes int64
	// MaxEntries bounds the number of archive entries of any kind. Zero
	// means DefaultMaxEntries.
	MaxEntries int
	// ExternalSymlinks keeps symlinks whose targets leave the tree
	// (absolute, or through ".."), which are refused otherwise; a torrent
	// made with murder create --allow-external-symlinks says so. Nothing
	// is ever written through a symlink either way.
	ExternalSymlinks bool
}

// budget is the byte bound of one extraction, with what to say about it.
type budget struct {
	max int64
	// When max comes from the free space of a file system: its mount
	// point (or the directory), the bytes free there and the reserve kept.
	at            string
	free, reserve int64
}

// resolve fills in the defaults of l for extracting into dir.
func (l Limits) resolve(dir string) (budget, int, error) {
	entries := l.MaxEntries
	if entries <= 0 {
		entries = DefaultMaxEntries
	}
	if l.MaxBytes > 0 {
		return budget{max: l.MaxBytes}, entries, nil
	}
	b, err := freeBudget(dir)
	if errors.Is(err, errors.ErrUnsupported) {
		return budget{max: -1}, entries, nil
	}
	if err != nil {
		return budget{}, 0, fmt.Errorf("bundle: free space of %s: %w", dir, err)
	}
	return b, entries, nil
}

// usable is what may be written to a file system with avail bytes free
// for unprivileged users out of size in all.
func usable(avail, size int64) int64 {
	return max(avail-reserve(size), 0)
}

// reserve is the space kept free on a file system of size bytes.
func reserve(size int64) int64 {
	return max(int64(reserveMin), size/reserveDiv)
}

// tooLarge describes an entry of n bytes that does not fit in b after
// written bytes.
func (b budget) tooLarge(name string, n, written int64) error {
	where := "the " + bytesize.Format(b.max) + " limit"
	if b.at != "" {
		where = "the " + bytesize.Format(b.free) + " free on " + b.at + " less a " + bytesize.Format(b.reserve) + " reserve"
	}
	after := ""
	if written > 0 {
		after = ", after " + bytesize.Format(written)
	}
	return fmt.Errorf("%w: it expands beyond %s (entry %q, %s%s)", ErrTooLarge, where, name, bytesize.Format(n), after)
}
