//go:build !unix

package storage

import "os"

// OpenOwned opens the file at path with flag. Where there is no
// O_NOFOLLOW nor file owners, it is os.OpenFile.
func OpenOwned(path string, flag int, perm os.FileMode) (f *os.File, created bool, err error) {
	_, statErr := os.Lstat(path)
	f, err = os.OpenFile(path, flag, perm)
	return f, err == nil && os.IsNotExist(statErr), err
}
