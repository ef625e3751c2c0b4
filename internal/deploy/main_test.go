package deploy

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/murder-deploy/murder/internal/testenv"
)

// murderBin is the murder binary built once for the package's tests.
var murderBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "murder-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	murderBin, err = testenv.BuildMurder(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
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
