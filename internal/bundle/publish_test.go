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

func TestStage(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "v1")

	// Abort removes the stage and leaves no trace beside the destination.
	st, err := NewStage(dest, false)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(st.Dir(), "f"), []byte("x"), 0o644))
	st.Abort()
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Fatalf("after Abort the parent holds %v, want nothing", left)
	}
	if err := st.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}

	// A destination that appears while the stage fills is not replaced.
	st, err = NewStage(dest, false)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(st.Dir(), "f"), []byte("new"), 0o644))
	must(t, os.MkdirAll(dest, 0o755))
	must(t, os.WriteFile(filepath.Join(dest, "g"), []byte("other"), 0o644))
	if err := st.Commit(); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("Commit over a destination that appeared: %v, want ErrNotEmpty", err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 1 {
		t.Fatalf("after a refused Commit the parent holds %v, want only v1", left)
	}
	must(t, os.RemoveAll(dest))

	// Commit renames the stage into place; a second Commit fails.
	st, err = NewStage(dest, false)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(st.Dir(), "f"), []byte("new"), 0o644))
	must(t, st.Commit())
	if b, err := os.ReadFile(filepath.Join(dest, "f")); err != nil || string(b) != "new" {
		t.Fatalf("placed f = %q, %v", b, err)
	}
	if err := st.Commit(); err == nil {
		t.Fatal("second Commit succeeded")
	}
	st.Abort() // after Commit: nothing to do
	if _, err := os.Stat(dest); err != nil {
		t.Fatalf("Abort after Commit removed the destination: %v", err)
	}
}

// TestStageRemovesAbandoned: a stage whose process died (its directory is
// not locked) is removed by the next NewStage for the same destination; a
// stage in use is left alone.
func TestStageRemovesAbandoned(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "v1")
	abandoned := filepath.Join(parent, ".v1.murder-new-123")
	must(t, os.MkdirAll(abandoned, 0o700))
	must(t, os.WriteFile(filepath.Join(abandoned, "part"), []byte("x"), 0o644))
	live, err := NewStage(dest, false)
	must(t, err)
	defer live.Abort()
	if _, err := os.Stat(abandoned); !os.IsNotExist(err) {
		t.Fatalf("abandoned stage still there (%v)", err)
	}
	other, err := NewStage(dest, false)
	must(t, err)
	defer other.Abort()
	if _, err := os.Stat(live.Dir()); err != nil {
		t.Fatalf("a stage in use was removed: %v", err)
	}
	if other.Dir() == live.Dir() {
		t.Fatal("two stages share a directory")
	}
}

// TestResumableStage: Abort keeps a resumable stage, the next one with the
// same key fills it on and Commit places it; one with another key removes
// it; a stage in use is refused.
func TestResumableStage(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "v1")

	st, err := ResumableStage(dest, false, "aaaa")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(st.Dir(), "f"), []byte("part"), 0o644))
	if _, err := ResumableStage(dest, false, "aaaa"); err == nil || !strings.Contains(err.Error(), dest) {
		t.Fatalf("second ResumableStage while the first is held: %v, want an error naming %s", err, dest)
	}
	st.Abort()
	if b, err := os.ReadFile(filepath.Join(parent, ".v1.murder-partial-aaaa", "f")); err != nil || string(b) != "part" {
		t.Fatalf("after Abort the partial stage holds %q (%v), want what was written", b, err)
	}

	// The same key finds what was left; a refused Commit keeps it.
	st, err = ResumableStage(dest, false, "aaaa")
	must(t, err)
	if b, err := os.ReadFile(filepath.Join(st.Dir(), "f")); err != nil || string(b) != "part" {
		t.Fatalf("resumed stage holds %q (%v), want the earlier run's", b, err)
	}
	must(t, os.MkdirAll(dest, 0o755))
	must(t, os.WriteFile(filepath.Join(dest, "g"), []byte("other"), 0o644))
	if err := st.Commit(); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("Commit over a destination that appeared: %v, want ErrNotEmpty", err)
	}
	if _, err := os.Stat(filepath.Join(st.Dir(), "f")); err != nil {
		t.Fatalf("a refused Commit removed the resumable stage: %v", err)
	}
	must(t, os.RemoveAll(dest))

	// Another key supersedes the abandoned stage.
	other, err := ResumableStage(dest, false, "bbbb")
	must(t, err)
	if _, err := os.Stat(st.Dir()); !os.IsNotExist(err) {
		t.Fatalf("partial stage of another key still there (%v)", err)
	}
	must(t, os.WriteFile(filepath.Join(other.Dir(), "f"), []byte("whole"), 0o644))
	must(t, other.Commit())
	if b, err := os.ReadFile(filepath.Join(dest, "f")); err != nil || string(b) != "whole" {
		t.Fatalf("placed f = %q, %v", b, err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 1 {
		t.Fatalf("after Commit the parent holds %v, want only v1", left)
	}
	for _, key := range []string{"", "a/b", "*"} {
		if _, err := ResumableStage(filepath.Join(parent, "v2"), false, key); err == nil {
			t.Errorf("ResumableStage with key %q succeeded", key)
		}
	}
}
