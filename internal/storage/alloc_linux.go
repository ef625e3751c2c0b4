package storage

import (
	"errors"
	"os"
	"syscall"
)

// allocate reserves the blocks of f up to size, so pieces written in random
// order later do not make the file system allocate on every write. It
// falls back to a sparse Truncate where fallocate is not supported.
func allocate(f *os.File, size int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return f.Truncate(size)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Fallocate(int(fd), 0, 0, size)
			if !errors.Is(ferr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return f.Truncate(size)
	}
	if errors.Is(ferr, syscall.ENOSPC) || errors.Is(ferr, syscall.EFBIG) {
		return ferr
	}
	if ferr != nil {
		return f.Truncate(size)
	}
	return nil
}
