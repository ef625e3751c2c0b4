//go:build unix

package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenOwned(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		plant func(path string) error // nil: nothing there
		says  string                  // "" = opened
	}{
		{"new", nil, ""},
		{"own file", func(p string) error { return os.WriteFile(p, nil, 0o644) }, ""},
		{"symlink", func(p string) error { return os.Symlink(victim, p) }, "symbolic link"},
		{"dangling symlink", func(p string) error { return os.Symlink(filepath.Join(dir, "nowhere"), p) }, "symbolic link"},
		{"hard link", func(p string) error { return os.Link(victim, p) }, "hard links"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }, "is a directory"},
		{"someone else's", func(p string) error {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a file away")
			}
			if err := os.WriteFile(p, nil, 0o666); err != nil {
				return err
			}
			return os.Chown(p, 65534, 65534)
		}, "belongs to uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "fixed-name")
			if tc.plant != nil {
				if err := tc.plant(p); err != nil {
					t.Fatal(err)
				}
			}
			f, _, err := OpenOwned(p, os.O_RDWR|os.O_CREATE, 0o644)
			if tc.says == "" {
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
				return
			}
			if err == nil {
				f.Close()
				t.Fatalf("opened, want an error saying %q", tc.says)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want it to say %q", err, tc.says)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Fatalf("victim changed: %q", b)
			}
		})
	}
}
