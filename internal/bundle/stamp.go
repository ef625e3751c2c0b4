package bundle

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/murder-deploy/murder/internal/metainfo"
)

// StampSuffix is the suffix of the stamp Create leaves beside a
// single-file artifact it wrote and hashed: PATH.murder-verified.
const StampSuffix = ".murder-verified"

// writeStamp records that path holds the artifact of the torrent with
// info hash h, as it is now: the stamp names h and path's inode, size,
// modification and change times. Any write to path changes its change
// time, which only the kernel sets; where those cannot be read, no stamp
// is written.
func writeStamp(path string, h metainfo.Hash) error {
	id, ok := fileID(path)
	if !ok {
		return nil
	}
	// A fresh file renamed into place: a fixed name is never written
	// through a link.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+StampSuffix+".*.tmp")
	if err != nil {
		return fmt.Errorf("bundle: stamp: %w", err)
	}
	_, err = f.WriteString(h.String() + " " + id + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path+StampSuffix)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("bundle: stamp: %w", err)
	}
	return nil
}

// Stamped reports whether path is still the artifact that Create wrote and
// hashed for the torrent with info hash h, so that a seeder need not hash
// it again: the stamp beside it names h, and path's inode, size,
// modification and change times are those it had then.
func Stamped(path string, h metainfo.Hash) bool {
	id, ok := fileID(path)
	if !ok {
		return false
	}
	b, err := os.ReadFile(path + StampSuffix)
	return err == nil && bytes.Equal(b, []byte(h.String()+" "+id+"\n"))
}
