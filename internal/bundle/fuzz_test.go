package bundle

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/murder-deploy/murder/internal/testenv"
)

// FuzzUnpack feeds arbitrary tar streams to the extractor. Whatever the
// input, nothing may appear outside the destination and no symlink in it
// may lead out, and no more than the limits may be written. When an
// archive extracts, archiving the result with our writer and extracting
// that again must give the same tree.
//
// Every run does file system work, so bound minimization when fuzzing:
//
//	go test -run XXX -fuzz FuzzUnpack -fuzzminimizetime 200x ./internal/bundle
func FuzzUnpack(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.tar")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(trimZeroBlocks(data))
	}
	// One fixed parent, emptied before each run: paths that stay the same
	// keep the coverage the fuzzer sees stable.
	parent := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		makeWritable(parent)
		for _, n := range []string{"dest", "again"} {
			must(t, os.RemoveAll(filepath.Join(parent, n)))
		}
		dest := filepath.Join(parent, "dest")
		must(t, os.Mkdir(dest, 0o755))
		// Small limits keep every run cheap and exercise the bounds.
		err := UnpackLimited(context.Background(), bytes.NewReader(data), Tar, dest, Limits{MaxBytes: 1 << 20, MaxEntries: 1000})
		defer makeWritable(dest)
		if names := testenv.ListDir(t, parent); len(names) != 1 || names[0] != "dest" {
			t.Fatalf("parent holds %v", names)
		}
		checkLinksInside(t, dest)
		if n := treeBytes(t, dest); n > 1<<20 {
			t.Fatalf("wrote %d bytes, beyond the 1 MiB limit", n)
		}
		if err != nil {
			return
		}
		makeWritable(dest)
		entries, _, err := collect(context.Background(), dest, &matcher{})
		if err != nil {
			t.Fatalf("re-archive: %v", err)
		}
		var buf bytes.Buffer
		if err := writeTar(context.Background(), &buf, dest, entries); err != nil {
			t.Fatalf("re-archive: %v", err)
		}
		again := filepath.Join(parent, "again")
		must(t, os.Mkdir(again, 0o755))
		defer makeWritable(again)
		if err := Unpack(context.Background(), &buf, Tar, again); err != nil {
			t.Fatalf("extract re-archived tree: %v", err)
		}
		makeWritable(again)
		diffSnapshots(t, snapshot(t, dest, nil), snapshot(t, again, nil))
	})
}

// checkLinksInside fails when a symlink under root resolves outside it.
func checkLinksInside(t *testing.T, root string) {
	t.Helper()
	real, err := filepath.EvalSymlinks(root)
	must(t, err)
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			l, _ := os.Readlink(p)
			rel, _ := filepath.Rel(root, filepath.Join(filepath.Dir(p), l))
			if !filepath.IsLocal(rel) {
				t.Errorf("dangling symlink %s -> %s leads outside", p, l)
			}
			return nil
		}
		if target != real && !strings.HasPrefix(target, real+string(filepath.Separator)) {
			t.Errorf("symlink %s resolves outside to %s", p, target)
		}
		return nil
	}))
}

// makeWritable gives the owner full access to every directory, so the
// tree can be walked and removed whatever modes the archive set.
func makeWritable(root string) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if fi, err := d.Info(); err == nil {
				_ = os.Chmod(p, fi.Mode().Perm()|0o700)
			}
		}
		return nil
	})
}

// trimZeroBlocks drops the zero blocks that end a tar stream and pad it to
// a record; the reader accepts a stream that simply stops after an entry,
// and small seeds keep the fuzzer's minimization quick.
func trimZeroBlocks(data []byte) []byte {
	for len(data) >= 512 && bytes.Equal(data[len(data)-512:], make([]byte, 512)) {
		data = data[:len(data)-512]
	}
	return data
}
