package bundle

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockSupported says whether lockDir takes locks here.
const lockSupported = true

// lockDir opens dir and takes an exclusive flock on it without waiting.
// It returns the open directory, which holds the lock until closed, or nil
// when the lock is held elsewhere or cannot be taken.
func lockDir(dir string) *os.File {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil
	}
	return f
}
