package testenv

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Compare says what TreeDigest and SameTree record of each entry.
type Compare int

const (
	// Content records each entry's kind, a file's content and a link's
	// target.
	Content Compare = iota
	// Mode records the permission bits as well.
	Mode
)

// TreeDigest describes the tree under root for comparing a placed tree
// with its source: it maps the slash-separated path of every entry below
// root to its kind ("dir", "file", "link"), a file's SHA-256, a link's
// target and, with Mode, the permission bits. Entries named .git* are left
// out, as murder create leaves them out of an artifact.
func TreeDigest(t testing.TB, root string, c Compare) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		if strings.HasPrefix(d.Name(), ".git") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var desc string
		switch {
		case d.IsDir():
			desc = "dir"
		case fi.Mode().IsRegular():
			sum, err := fileSum(p)
			if err != nil {
				return err
			}
			desc = "file " + sum
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc = "link " + target
		default:
			desc = fi.Mode().Type().String()
		}
		if c == Mode {
			desc += " " + fi.Mode().Perm().String()
		}
		out[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// SameTree reports through t.Errorf each entry in which the tree at got
// differs from the tree at want, as TreeDigest describes them.
func SameTree(t testing.TB, want, got string, c Compare) {
	t.Helper()
	w, g := TreeDigest(t, want, c), TreeDigest(t, got, c)
	for k, wv := range w {
		gv, ok := g[k]
		switch {
		case !ok:
			t.Errorf("%s: %s missing", got, k)
		case gv != wv:
			t.Errorf("%s: %s is %.80q, want %.80q", got, k, gv, wv)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("%s: unexpected %s", got, k)
		}
	}
}

// FileDigest returns the hex SHA-256 of the file at path.
func FileDigest(t testing.TB, path string) string {
	t.Helper()
	sum, err := fileSum(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// SameFile fails t unless the files at want and got have the same content.
func SameFile(t testing.TB, want, got string) {
	t.Helper()
	if w, g := FileDigest(t, want), FileDigest(t, got); w != g {
		t.Fatalf("%s differs from %s (sha256 %s, want %s)", got, want, g, w)
	}
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// ListDir returns the names in dir, sorted.
func ListDir(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}
