package release

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newDest makes a destination path holding a release directory for each
// tag, each with a file "version" that says its tag.
func newDest(t *testing.T, tags ...string) string {
	t.Helper()
	dest := t.TempDir()
	for _, tag := range tags {
		addRelease(t, dest, tag)
	}
	return dest
}

func addRelease(t *testing.T, dest, tag string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dest, tag), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest, tag, "version"), []byte(tag), 0o644); err != nil {
		t.Fatal(err)
	}
}

// current checks that dest/current is a relative link to a release and
// returns what dest/current/version says.
func current(t *testing.T, dest string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dest, CurrentLink))
	if err != nil {
		t.Fatalf("current link: %v", err)
	}
	if filepath.IsAbs(target) || strings.Contains(target, "/") {
		t.Fatalf("current -> %q, want a relative link to a sibling", target)
	}
	b, err := os.ReadFile(filepath.Join(dest, CurrentLink, "version"))
	if err != nil {
		t.Fatalf("current/version: %v", err)
	}
	if string(b) != target {
		t.Fatalf("current -> %s holds version %s", target, b)
	}
	return target
}

func historyTags(t *testing.T, dest string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dest, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHistory(data)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range h {
		out = append(out, e.Tag)
	}
	return out
}

func activate(t *testing.T, opt Options) *Result {
	t.Helper()
	res, err := Activate(context.Background(), opt)
	if err != nil {
		t.Fatalf("Activate(%s): %v", opt.Tag, err)
	}
	return res
}

func TestActivateAndRollback(t *testing.T) {
	ctx := context.Background()
	dest := newDest(t, "v1", "v2", "v3")
	if _, err := Rollback(ctx, dest); !errors.Is(err, ErrNoRelease) {
		t.Fatalf("Rollback with nothing active = %v, want ErrNoRelease", err)
	}
	res := activate(t, Options{Destination: dest, Tag: "v1"})
	if res.Tag != "v1" || res.Previous != "" || current(t, dest) != "v1" {
		t.Fatalf("first activation: %+v, current %s", res, current(t, dest))
	}
	if _, err := Rollback(ctx, dest); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("Rollback with no history = %v, want ErrNoPrevious", err)
	}
	if current(t, dest) != "v1" {
		t.Fatal("a failed rollback moved current")
	}
	activate(t, Options{Destination: dest, Tag: "v2"})
	res = activate(t, Options{Destination: dest, Tag: "v3"})
	if res.Previous != "v2" || current(t, dest) != "v3" {
		t.Fatalf("third activation: %+v", res)
	}
	if again := activate(t, Options{Destination: dest, Tag: "v3"}); !again.Unchanged {
		t.Fatalf("activating the active release again: %+v, want unchanged", again)
	}
	if got, want := historyTags(t, dest), []string{"v1", "v2", "v3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	cur, prev, err := Current(dest)
	if err != nil || cur != "v3" || prev != "v2" {
		t.Fatalf("Current = %s, %s, %v; want v3, v2", cur, prev, err)
	}

	rb, err := Rollback(ctx, dest)
	if err != nil || rb.Tag != "v2" || rb.Previous != "v3" || current(t, dest) != "v2" {
		t.Fatalf("Rollback = %+v, %v; current %s", rb, err, current(t, dest))
	}
	rb, err = Rollback(ctx, dest)
	if err != nil || rb.Tag != "v1" || current(t, dest) != "v1" {
		t.Fatalf("second Rollback = %+v, %v", rb, err)
	}
	if _, err := Rollback(ctx, dest); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("third Rollback = %v, want ErrNoPrevious", err)
	}
	// The releases rolled back from stay on disk.
	for _, tag := range []string{"v2", "v3"} {
		if _, err := os.Stat(filepath.Join(dest, tag, "version")); err != nil {
			t.Errorf("rollback removed %s: %v", tag, err)
		}
	}
}

// TestRollbackSkipsRemovedReleases: an earlier release whose directory is
// gone is not a rollback target.
func TestRollbackSkipsRemovedReleases(t *testing.T) {
	dest := newDest(t, "v1", "v2", "v3")
	for _, tag := range []string{"v1", "v2", "v3"} {
		activate(t, Options{Destination: dest, Tag: tag})
	}
	if err := os.RemoveAll(filepath.Join(dest, "v2")); err != nil {
		t.Fatal(err)
	}
	rb, err := Rollback(context.Background(), dest)
	if err != nil || rb.Tag != "v1" {
		t.Fatalf("Rollback = %+v, %v; want v1", rb, err)
	}
}

func TestKeepReleases(t *testing.T) {
	dest := newDest(t, "v1", "v2", "v3", "v4", "v5")
	// A directory murder never activated is not a release it prunes.
	addRelease(t, dest, "manual")
	for _, tag := range []string{"v1", "v2", "v3", "v4"} {
		activate(t, Options{Destination: dest, Tag: tag, KeepReleases: 2})
	}
	res := activate(t, Options{Destination: dest, Tag: "v5", KeepReleases: 2})
	if res.PruneError != "" {
		t.Fatal(res.PruneError)
	}
	for tag, want := range map[string]bool{"v1": false, "v2": false, "v3": false, "v4": true, "v5": true, "manual": true} {
		_, err := os.Stat(filepath.Join(dest, tag))
		if (err == nil) != want {
			t.Errorf("%s present = %v, want %v", tag, err == nil, want)
		}
	}
	if got, want := historyTags(t, dest), []string{"v4", "v5"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}

	// keep 1 still keeps the one before the active release: rollback must
	// have somewhere to go.
	dest = newDest(t, "a", "b", "c")
	for _, tag := range []string{"a", "b", "c"} {
		activate(t, Options{Destination: dest, Tag: tag, KeepReleases: 1})
	}
	for tag, want := range map[string]bool{"a": false, "b": true, "c": true} {
		if _, err := os.Stat(filepath.Join(dest, tag)); (err == nil) != want {
			t.Errorf("keep 1: %s present = %v, want %v", tag, err == nil, want)
		}
	}
	if rb, err := Rollback(context.Background(), dest); err != nil || rb.Tag != "b" {
		t.Fatalf("Rollback after keep 1 = %+v, %v", rb, err)
	}
}

func TestShared(t *testing.T) {
	dest := newDest(t, "v1", "v2")
	if err := os.MkdirAll(filepath.Join(dest, SharedDir, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest, SharedDir, "config", "db.yml"), []byte("shared"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dest, SharedDir, "log"), 0o755); err != nil {
		t.Fatal(err)
	}
	// v2 ships its own config/db.yml and log/: the shared ones win.
	if err := os.MkdirAll(filepath.Join(dest, "v2", "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest, "v2", "config", "db.yml"), []byte("release"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dest, "v2", "log", "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	shared := []string{"config/db.yml", "log"}
	activate(t, Options{Destination: dest, Tag: "v1", Shared: shared})
	activate(t, Options{Destination: dest, Tag: "v2", Shared: shared})
	for _, tag := range []string{"v1", "v2"} {
		b, err := os.ReadFile(filepath.Join(dest, tag, "config", "db.yml"))
		if err != nil || string(b) != "shared" {
			t.Errorf("%s/config/db.yml = %q, %v; want the shared file", tag, b, err)
		}
		target, err := os.Readlink(filepath.Join(dest, tag, "log"))
		if err != nil || target != "../shared/log" {
			t.Errorf("%s/log -> %q, %v; want ../shared/log", tag, target, err)
		}
		if target, _ := os.Readlink(filepath.Join(dest, tag, "config", "db.yml")); target != "../../shared/config/db.yml" {
			t.Errorf("%s/config/db.yml -> %q, want ../../shared/config/db.yml", tag, target)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dest, "v2", "*", "*"+replacedExt)); len(left) != 0 {
		t.Errorf("replaced entries left behind: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(dest, "v2", "*"+replacedExt)); len(left) != 0 {
		t.Errorf("replaced entries left behind: %v", left)
	}
}

// TestActivateFailureLeavesAsItWas: every way an activation fails leaves
// the current link, the history and the release's own files as they were.
func TestActivateFailureLeavesAsItWas(t *testing.T) {
	tests := []struct {
		name string
		opt  Options
		want string
	}{
		{"missing release", Options{Tag: "v9"}, "no release v9"},
		{"missing shared path", Options{Tag: "v2", Shared: []string{"config/db.yml", "nope"}}, "shared paths missing"},
		{"shared path outside", Options{Tag: "v2", Shared: []string{"../etc"}}, "inside the release"},
		{"before hook fails", Options{Tag: "v2", Shared: []string{"config/db.yml"}, BeforeActivate: "echo no migrations today; exit 3"}, "no migrations today"},
		{"after hook fails", Options{Tag: "v2", Shared: []string{"config/db.yml"}, AfterActivate: "echo restart failed >&2; false"}, "switched back to v1"},
		{"bad tag", Options{Tag: "../v2"}, "bad tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := newDest(t, "v1", "v2")
			os.MkdirAll(filepath.Join(dest, SharedDir, "config"), 0o755)
			os.WriteFile(filepath.Join(dest, SharedDir, "config", "db.yml"), []byte("shared"), 0o644)
			os.MkdirAll(filepath.Join(dest, "v2", "config"), 0o755)
			os.WriteFile(filepath.Join(dest, "v2", "config", "db.yml"), []byte("release"), 0o644)
			activate(t, Options{Destination: dest, Tag: "v1"})
			before := snapshot(t, dest)

			opt := tt.opt
			opt.Destination = dest
			var out bytes.Buffer
			opt.HookOutput = &out
			_, err := Activate(context.Background(), opt)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Activate = %v, want an error containing %q", err, tt.want)
			}
			if after := snapshot(t, dest); !reflect.DeepEqual(before, after) {
				t.Fatalf("the destination changed:\nbefore %v\nafter  %v", before, after)
			}
			if current(t, dest) != "v1" {
				t.Fatal("current moved")
			}
		})
	}
}

// snapshot lists every entry under dest with its link target or content,
// leaving out the lock file.
func snapshot(t *testing.T, dest string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		switch {
		case rel == lockName:
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "-> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			out[rel] = string(b)
		default:
			out[rel] = "dir"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHooks(t *testing.T) {
	dest := newDest(t, "v1", "v2")
	activate(t, Options{Destination: dest, Tag: "v1"})
	var out bytes.Buffer
	hook := `echo "$1 $(pwd) $MURDER_TAG $MURDER_RELEASE $MURDER_PREVIOUS $(readlink ../current)"`
	activate(t, Options{Destination: dest, Tag: "v2", HookOutput: &out,
		BeforeActivate: strings.Replace(hook, "$1", "before", 1),
		AfterActivate:  strings.Replace(hook, "$1", "after", 1)})
	rel := filepath.Join(dest, "v2")
	// pwd may print the path through a symlinked temp dir: compare resolved.
	real, _ := filepath.EvalSymlinks(rel)
	want := "before " + real + " v2 " + rel + " v1 v1\nafter " + real + " v2 " + rel + " v1 v2\n"
	if out.String() != want {
		t.Fatalf("hook output:\n%q\nwant\n%q", out.String(), want)
	}
}

// TestCrashBetweenSteps leaves the destination as a crash after each step
// of an activation would (the real steps, stopped midway), and checks
// that current always points at a complete release and that the next
// activation and rollback work from there.
func TestCrashBetweenSteps(t *testing.T) {
	ctx := context.Background()
	t.Run("after the temporary link, before the rename", func(t *testing.T) {
		dest := newDest(t, "v1", "v2")
		activate(t, Options{Destination: dest, Tag: "v1"})
		if err := os.Symlink("v2", filepath.Join(dest, tmpLink)); err != nil {
			t.Fatal(err)
		}
		if current(t, dest) != "v1" {
			t.Fatal("current moved")
		}
		activate(t, Options{Destination: dest, Tag: "v2"})
		if current(t, dest) != "v2" {
			t.Fatal("activation after the crash failed")
		}
		if _, err := os.Lstat(filepath.Join(dest, tmpLink)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temporary link left: %v", err)
		}
	})
	t.Run("after the switch, before the history", func(t *testing.T) {
		dest := newDest(t, "v1", "v2", "v3")
		activate(t, Options{Destination: dest, Tag: "v1"})
		if err := switchLink(dest, "v2"); err != nil {
			t.Fatal(err)
		}
		if current(t, dest) != "v2" {
			t.Fatal("current is not v2")
		}
		if cur, prev, err := Current(dest); err != nil || cur != "v2" || prev != "v1" {
			t.Fatalf("Current = %s, %s, %v; want v2, v1", cur, prev, err)
		}
		rb, err := Rollback(ctx, dest)
		if err != nil || rb.Tag != "v1" || current(t, dest) != "v1" {
			t.Fatalf("Rollback = %+v, %v", rb, err)
		}
		activate(t, Options{Destination: dest, Tag: "v3"})
		if got, want := historyTags(t, dest), []string{"v1", "v3"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("history %v, want %v", got, want)
		}
	})
	t.Run("a temporary history file left", func(t *testing.T) {
		dest := newDest(t, "v1", "v2")
		activate(t, Options{Destination: dest, Tag: "v1"})
		if err := os.WriteFile(filepath.Join(dest, HistoryFile+".tmp123"), []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
		activate(t, Options{Destination: dest, Tag: "v2"})
		if rb, err := Rollback(ctx, dest); err != nil || rb.Tag != "v1" {
			t.Fatalf("Rollback = %+v, %v", rb, err)
		}
	})
}

// TestCurrentNeverMissing reads the current link without pause while
// activations and rollbacks switch it: it must always resolve.
func TestCurrentNeverMissing(t *testing.T) {
	dest := newDest(t, "v1", "v2")
	activate(t, Options{Destination: dest, Tag: "v1"})
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			b, err := os.ReadFile(filepath.Join(dest, CurrentLink, "version"))
			if err != nil || (string(b) != "v1" && string(b) != "v2") {
				bad.Store(err)
				return
			}
		}
	}()
	for i := 0; i < 200; i++ {
		activate(t, Options{Destination: dest, Tag: "v2"})
		if _, err := Rollback(context.Background(), dest); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatalf("current did not resolve during a switch: %v", v)
	}
}

func TestCurrentNotALink(t *testing.T) {
	dest := newDest(t, "v1")
	if err := os.Mkdir(filepath.Join(dest, CurrentLink), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Activate(context.Background(), Options{Destination: dest, Tag: "v1"}); err == nil || !strings.Contains(err.Error(), "not a symbolic link") {
		t.Fatalf("Activate over a current directory = %v, want a refusal", err)
	}
}

func TestNowRecorded(t *testing.T) {
	dest := newDest(t, "v1")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	activate(t, Options{Destination: dest, Tag: "v1", Now: func() time.Time { return at }})
	data, _ := os.ReadFile(filepath.Join(dest, HistoryFile))
	if !strings.Contains(string(data), "2026-01-02T03:04:05Z v1\n") {
		t.Fatalf("history:\n%s", data)
	}
}
