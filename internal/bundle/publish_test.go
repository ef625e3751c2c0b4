package bundle

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDestination(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "empty"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "full"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "full", "x"), nil, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "file"), nil, 0o644))
	must(t, os.Symlink("empty", filepath.Join(dir, "link")))
	tests := []struct {
		dest    string
		replace bool
		refused bool
	}{
		{dest: "missing"},
		{dest: "empty"},
		{dest: "full", refused: true},
		{dest: "full", replace: true},
		{dest: "file", refused: true},
		{dest: "link", refused: true}, // a link is not an empty directory, wherever it points
		{dest: "link", replace: true},
	}
	for _, tt := range tests {
		err := CheckDestination(filepath.Join(dir, tt.dest), tt.replace)
		if !tt.refused {
			if err != nil {
				t.Errorf("%s (replace %v): got %v, want nil", tt.dest, tt.replace, err)
			}
			continue
		}
		if !errors.Is(err, ErrNotEmpty) {
			t.Errorf("%s (replace %v): got %v, want ErrNotEmpty", tt.dest, tt.replace, err)
		} else if msg := err.Error(); !strings.Contains(msg, tt.dest) || !strings.Contains(msg, "--unsafe-please-delete") {
			t.Errorf("%s: error %q does not name the destination and --unsafe-please-delete", tt.dest, msg)
		}
	}
}
