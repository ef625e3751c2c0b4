package bundle

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

var treeTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// makeTree writes a small tree covering what archives must keep: nested
// dirs with modes, an empty dir, a symlink, an executable, a long name,
// and .git* entries that must be skipped.
func makeTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "src")
	long := strings.Repeat("n", 120)
	files := map[string]string{
		"README":                   "murder\n",
		"bin/run":                  "#!/bin/sh\necho run\n",
		"lib/a/b/c/data.bin":       strings.Repeat("0123456789abcdef", 70000),
		"lib/" + long + "/x.txt":   "long name\n",
		"empty-file":               "",
		".gitignore":               "*.o\n",
		".git/config":              "[core]\n",
		".github/workflows/ci.yml": "on: push\n",
		"logs/app.log":             "excluded by pattern\n",
	}
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.Chmod(filepath.Join(root, "bin/run"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "empty/dir"), 0o755))
	must(t, os.Symlink("../README", filepath.Join(root, "bin/readme-link")))
	must(t, os.Symlink("a/b", filepath.Join(root, "lib/dirlink")))
	must(t, os.Chmod(filepath.Join(root, "lib/a"), 0o750))
	// mtimes last, deepest first, so writing children does not reset them.
	var paths []string
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	for i, p := range paths {
		mt := treeTime.Add(time.Duration(i) * time.Minute)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			continue
		}
		must(t, os.Chtimes(p, mt, mt))
	}
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot describes a tree: for each path, its type, mode, mtime (regular
// files and dirs), content or link target.
func snapshot(t *testing.T, root string, skip func(rel string) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link " + l
		case fi.IsDir():
			out[rel] = "dir " + fi.Mode().Perm().String() + " " + fi.ModTime().UTC().Format(time.RFC3339)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = "file " + fi.Mode().Perm().String() + " " + fi.ModTime().UTC().Format(time.RFC3339) + " " + string(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diffSnapshots reports differences between want and got, short.
func diffSnapshots(t *testing.T, want, got map[string]string) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s missing", k)
		case g != w:
			t.Errorf("%s: got %.80q, want %.80q", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected entry", k)
		}
	}
}

// isGitOrLog is what the archive of makeTree leaves out with
// Exclude: []string{"*.log"}.
func isGitOrLog(rel string) bool {
	base := filepath.Base(rel)
	return strings.HasPrefix(base, ".git") || strings.HasSuffix(base, ".log")
}
