//go:build !linux

package bundle

import "os"

// lockSupported says whether lockDir takes locks here.
const lockSupported = false

// lockDir takes no lock where flock is not used: abandoned stages are then
// left for the operator to remove.
func lockDir(dir string) *os.File { return nil }
