package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// murderBin is the murder binary built once for the package's tests.
var murderBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "murder-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	murderBin = filepath.Join(dir, "murder")
	out, err := exec.Command("go", "build", "-o", murderBin, "../../cmd/murder").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build murder: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// makeTree writes a small tree with the kinds of entries a deploy must
// keep: nested files, an empty file, an executable, a symlink, an empty
// directory, a file larger than a few pieces, and a .git directory that
// murder create leaves out.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"README":              "murder deploys files\n",
		"bin/run.sh":          "#!/bin/sh\necho run\n",
		"conf/app.conf":       "port = 8080\n",
		"conf/empty":          "",
		"deep/a/b/c/leaf.txt": "leaf\n",
		".git/HEAD":           "ref: refs/heads/main\n",
		".gitignore":          "*.o\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "bin/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Incompressible, so that the artifact spans several pieces.
	big := make([]byte, 3<<20+12345)
	rand.NewChaCha8([32]byte{1, 2, 3}).Read(big)
	if err := os.WriteFile(filepath.Join(dir, "data.bin"), big, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("conf/app.conf", filepath.Join(dir, "current.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// treeOf lists a tree as lines "path mode content-or-target", leaving out
// .git* entries like murder create does.
func treeOf(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".git") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %d %x", len(b), b[:min(len(b), 16)])
			if len(b) > 16 {
				line += fmt.Sprintf("..%x", bytes.TrimSpace(b[len(b)-16:]))
			}
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	w, g := treeOf(t, want), treeOf(t, got)
	if w != g {
		t.Errorf("tree %s differs from %s:\ngot:\n%s\nwant:\n%s", got, want, g, w)
	}
}
