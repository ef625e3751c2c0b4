//go:build linux

package bundle

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStamp(t *testing.T) {
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "a.txt"), []byte("murder\n"), 0o644))
	temp := t.TempDir()
	res := create(t, CreateOptions{FilesPath: src, TempPath: temp})
	if !Stamped(res.ArtifactPath, res.InfoHash) {
		t.Fatal("Create's artifact is not stamped")
	}
	other := res.InfoHash
	other[0] ^= 1
	if Stamped(res.ArtifactPath, other) {
		t.Error("the stamp vouches for another info hash")
	}

	// One byte changed in place, with the size and mtime put back: only
	// the change time tells.
	fi, err := os.Stat(res.ArtifactPath)
	must(t, err)
	b, err := os.ReadFile(res.ArtifactPath)
	must(t, err)
	b[len(b)/2] ^= 0xff
	time.Sleep(10 * time.Millisecond) // a tick of the file system's clock
	must(t, os.WriteFile(res.ArtifactPath, b, 0o644))
	must(t, os.Chtimes(res.ArtifactPath, fi.ModTime(), fi.ModTime()))
	if Stamped(res.ArtifactPath, res.InfoHash) {
		t.Error("the stamp vouches for bytes changed in place")
	}

	// Created again over it: stamped again.
	res = create(t, CreateOptions{FilesPath: src, TempPath: temp, Force: true})
	if !Stamped(res.ArtifactPath, res.InfoHash) {
		t.Error("the artifact created again is not stamped")
	}

	// A file hashed where it lies is not Create's to vouch for.
	in := filepath.Join(temp, "dump.sql")
	must(t, os.WriteFile(in, []byte("insert\n"), 0o644))
	res = create(t, CreateOptions{FilesPath: in, PathIsFile: true, TempPath: temp})
	if Stamped(in, res.InfoHash) {
		t.Error("a file hashed in place is stamped")
	}
	if _, err := os.Stat(in + StampSuffix); err == nil {
		t.Error("a stamp was left beside a file hashed in place")
	}
	if Stamped(filepath.Join(temp, "missing"), res.InfoHash) {
		t.Error("a missing file is stamped")
	}
}
