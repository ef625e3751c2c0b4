package deploy

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/testenv"
)

func TestDeployLocal(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "build")
	makeTree(t, src)
	dest := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, murderBin, "deploy", "--local", "8", "-v", "--files-path", src, "--destination-path", dest, "--tag", "v1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("murder deploy --local 8: %v\n%s", err, out)
	}
	for k := 1; k <= 8; k++ {
		testenv.SameTree(t, src, filepath.Join(dest, "peer-"+strconv.Itoa(k), "v1"), testenv.Mode)
	}
	for _, want := range []string{"8/8 peers have v1 in place", "deployed to 8/8 peers", "aggregate"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	checkSummary(t, string(out), []string{"start-tracker", "create-torrent", "start-seeding", "peer", "stop"})

	// Same tag again: refused before anything starts, destination untouched.
	before := testenv.TreeDigest(t, filepath.Join(dest, "peer-3", "v1"), testenv.Mode)
	out, err = exec.CommandContext(ctx, murderBin, "deploy", "--local", "8", "--files-path", src, "--destination-path", dest, "--tag", "v1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--unsafe-please-delete") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Errorf("second deploy of v1: got %v with\n%s\nwant a one-line refusal naming --unsafe-please-delete", err, out)
	}
	if after := testenv.TreeDigest(t, filepath.Join(dest, "peer-3", "v1"), testenv.Mode); !maps.Equal(after, before) {
		t.Error("refused deploy changed the destination")
	}
}

func TestDeployLocalErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing files path", []string{"--local", "2", "--files-path", filepath.Join(dir, "nope"), "--destination-path", dir}, "files path"},
		{"zero peers", []string{"--local", "0", "--files-path", dir, "--destination-path", dir}, "at least 1 peer"},
		{"bad tag", []string{"--local", "2", "--files-path", dir, "--destination-path", dir, "--tag", "../x"}, "bad tag"},
		{"no destination", []string{"--local", "2", "--files-path", dir}, "destination-path"},
		{"fleet without tag", []string{"-c", filepath.Join(dir, "murder.toml"), "--files-path", dir, "--destination-path", "/srv"}, "--tag is required"},
		{"local with config", []string{"--local", "2", "-c", "x.toml", "--files-path", dir, "--destination-path", dir}, "drop -c"},
		{"missing inventory", []string{"-c", filepath.Join(dir, "none.toml"), "--tag", "v1", "--files-path", dir, "--destination-path", "/srv"}, "none.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(murderBin, append([]string{"deploy"}, tt.args...)...).CombinedOutput()
			if err == nil {
				t.Fatalf("got success, want an error containing %q:\n%s", tt.want, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("got %q, want it to contain %q", out, tt.want)
			}
		})
	}
}

func TestDefaultTag(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct{ path, want string }{
		{"/srv/build", "build-20260102-030405"},
		{"./build/", "build-20260102-030405"},
		{"/", "files-20260102-030405"},
		{"my app (v2)", "my-app-v2-20260102-030405"},
		{"..", "files-20260102-030405"},
	}
	for _, tt := range tests {
		if got := DefaultTag(tt.path, at); got != tt.want {
			t.Errorf("DefaultTag(%q): got %q, want %q", tt.path, got, tt.want)
		}
		if err := ValidTag(DefaultTag(tt.path, at)); err != nil {
			t.Errorf("DefaultTag(%q) is not a valid tag: %v", tt.path, err)
		}
	}
}

func TestDeployLocalFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "db.dump")
	data := []byte(strings.Repeat("row\n", 300000))
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "out")
	out, err := exec.Command(murderBin, "deploy", "--local", "2", "--files-path", src, "--destination-path", dest).CombinedOutput()
	if err != nil {
		t.Fatalf("murder deploy --local 2 of a file: %v\n%s", err, out)
	}
	for _, k := range []string{"1", "2"} {
		got, err := os.ReadFile(filepath.Join(dest, "peer-"+k, "db.dump", "db.dump"))
		if err != nil || string(got) != string(data) {
			t.Errorf("peer-%s: file differs (%v)", k, err)
		}
	}
	if !strings.Contains(string(out), "in place at "+filepath.Join(dest, "peer-K", "db.dump")) {
		t.Errorf("output does not say where the file is:\n%s", out)
	}
}
