//go:build !linux

package bundle

// fileID is only read on Linux; elsewhere there is no stamp, and a seeder
// hashes its artifact.
func fileID(string) (string, bool) { return "", false }
