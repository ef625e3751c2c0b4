//go:build unix

package release

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lock takes an exclusive flock on dest's lock file, waiting for another
// activation or rollback of the same destination to finish.
func lock(dest string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dest, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("release: lock %s: %w", dest, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("release: lock %s: %w", dest, err)
	}
	return func() { f.Close() }, nil
}
