package deploy

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
		{strings.Repeat("x", 300), strings.Repeat("x", 112) + "-20260102-030405"},
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

// TestDeployLocalActivate: deploy --local 3 --activate with hooks and
// --json switches every peer's current link, prints the hook output under
// each peer and ends with the JSON result; a second deploy in waves whose
// hook fails on peer-2 stops there and leaves peer-3 on the first release.
func TestDeployLocalActivate(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "build")
	makeTree(t, src)
	dest := filepath.Join(dir, "out")
	for k := 1; k <= 3; k++ {
		if err := os.MkdirAll(filepath.Join(dest, "peer-"+strconv.Itoa(k), "shared", "log"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(tag string, extra ...string) (Result, string, int) {
		t.Helper()
		args := append([]string{"deploy", "--local", "3", "--files-path", src, "--destination-path", dest, "--tag", tag,
			"--activate", "--shared", "log", "--json"}, extra...)
		cmd := exec.CommandContext(ctx, murderBin, args...)
		var stdout strings.Builder
		cmd.Stdout = &stdout
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		var res Result
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
			t.Fatalf("last line of stdout %q: %v\n%s", lines[len(lines)-1], err, stdout.String())
		}
		return res, stdout.String(), code
	}

	res, out, code := run("v1", "--after-activate", `echo "hook $MURDER_TAG after [$MURDER_PREVIOUS] in $(basename $(dirname "$PWD"))"`)
	if code != 0 {
		t.Fatalf("deploy v1 exited %d:\n%s", code, out)
	}
	if res.Task != "deploy" || res.Tag != "v1" || res.Totals.Hosts != 3 || res.Totals.OK != 3 || len(res.Hosts) != 3 {
		t.Fatalf("result %+v", res)
	}
	for k, h := range res.Hosts {
		name := "peer-" + strconv.Itoa(k+1)
		if h.Host != name || h.Status != StatusOK || h.Error != "" || h.Bytes <= 0 || h.Seconds <= 0 {
			t.Errorf("host %d: %+v, want %s ok with bytes and seconds", k, h, name)
		}
		if target, err := os.Readlink(filepath.Join(dest, name, "current")); err != nil || target != "v1" {
			t.Errorf("%s/current -> %q, %v; want v1", name, target, err)
		}
		if target, err := os.Readlink(filepath.Join(dest, name, "v1", "log")); err != nil || target != "../shared/log" {
			t.Errorf("%s/v1/log -> %q, %v; want ../shared/log", name, target, err)
		}
		if want := regexp.MustCompile(`(?m)^  ` + name + ` +\| hook v1 after \[\] in ` + name + `$`); !want.MatchString(out) {
			t.Errorf("output lacks %s's hook line:\n%s", name, out)
		}
	}
	if res.Totals.Bytes != 3*res.Hosts[0].Bytes {
		t.Errorf("totals %+v do not sum the hosts", res.Totals)
	}

	res, out, code = run("v2", "--canary", "1", "--batch", "1",
		"--after-activate", `case "$MURDER_RELEASE" in */peer-2/*) echo restart failed; exit 1;; esac`)
	if code != 1 {
		t.Fatalf("deploy v2 exited %d, want 1 (some hosts failed):\n%s", code, out)
	}
	want := map[string]string{"peer-1": "v2", "peer-2": "v1", "peer-3": "v1"}
	for name, tag := range want {
		if target, _ := os.Readlink(filepath.Join(dest, name, "current")); target != tag {
			t.Errorf("%s/current -> %q, want %s", name, target, tag)
		}
	}
	st := map[string]string{}
	for _, h := range res.Hosts {
		st[h.Host] = h.Status
	}
	if st["peer-1"] != StatusOK || st["peer-2"] != StatusFailed || st["peer-3"] != StatusFailed {
		t.Errorf("statuses %v, want peer-1 ok, peer-2 and peer-3 failed", st)
	}
	if !strings.Contains(res.Hosts[1].Error, "restart failed") || !strings.Contains(res.Hosts[2].Error, "not activated") {
		t.Errorf("errors %q and %q, want the hook's output and why peer-3 was left", res.Hosts[1].Error, res.Hosts[2].Error)
	}
}
