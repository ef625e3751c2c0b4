package bundle

import (
	"math"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// freeBudget is the default byte bound for extracting into dir: the space
// its file system has free for unprivileged users, less the reserve.
func freeBudget(dir string) (budget, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return budget{}, err
	}
	avail, size := statfsBytes(&st)
	return budget{max: usable(avail, size), free: avail, reserve: reserve(size), at: mountPoint(dir)}, nil
}

// statfsBytes returns the bytes free for unprivileged users and the size
// of a file system. Block counts are in units of the fragment size, as
// statvfs(3) has it; Bsize stands in when a file system leaves Frsize zero.
func statfsBytes(st *unix.Statfs_t) (avail, size int64) {
	unit := st.Frsize
	if unit <= 0 {
		unit = st.Bsize
	}
	return bytesOf(st.Bavail, unit), bytesOf(st.Blocks, unit)
}

// bytesOf multiplies a block count by the block size, saturating instead
// of overflowing.
func bytesOf(blocks uint64, unit int64) int64 {
	if unit <= 0 {
		return 0
	}
	if blocks > uint64(math.MaxInt64/unit) {
		return math.MaxInt64
	}
	return int64(blocks) * unit
}

// mountPoint returns the topmost directory above dir on the same device,
// to name the file system in errors; dir itself when that fails.
func mountPoint(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	var st unix.Stat_t
	if unix.Stat(abs, &st) != nil {
		return dir
	}
	for {
		up := filepath.Dir(abs)
		var pst unix.Stat_t
		if up == abs || unix.Stat(up, &pst) != nil || pst.Dev != st.Dev {
			return abs
		}
		abs = up
	}
}
