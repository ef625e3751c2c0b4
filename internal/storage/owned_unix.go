//go:build unix

package storage

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// OpenOwned opens the file at path with flag (which may hold O_CREATE)
// for a directory other users may write to. The last component is not
// followed if it is a symlink, and the file is used only when it is a
// regular file of this user's with one link; otherwise it is closed and
// an error says why. created reports whether this call made the file.
func OpenOwned(path string, flag int, perm os.FileMode) (f *os.File, created bool, err error) {
	if flag&os.O_CREATE != 0 {
		// Made here, with O_EXCL, it is certainly ours; if it exists, it
		// is opened below and checked.
		f, err = os.OpenFile(path, flag|os.O_EXCL|syscall.O_NOFOLLOW, perm)
		if err == nil {
			return f, true, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, false, ownedError(path, err)
		}
	}
	f, err = os.OpenFile(path, flag&^(os.O_CREATE|os.O_EXCL)|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return nil, false, ownedError(path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("storage: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("storage: %s is not a regular file; refusing to use it (remove it)", path)
	case ok && int(st.Uid) != os.Geteuid():
		err = fmt.Errorf("storage: %s belongs to uid %d, not to this user (uid %d); refusing to use it (remove it, or use a private --temp-path)", path, st.Uid, os.Geteuid())
	case ok && st.Nlink != 1:
		err = fmt.Errorf("storage: %s has %d hard links; refusing to write through it (remove it)", path, st.Nlink)
	}
	if err != nil {
		f.Close()
		return nil, false, err
	}
	return f, false, nil
}

func ownedError(path string, err error) error {
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("storage: %s is a symbolic link; refusing to follow it (remove it, or use a private --temp-path)", path)
	}
	return fmt.Errorf("storage: %w", err)
}
