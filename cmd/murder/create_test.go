package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/murder-deploy/murder/internal/testenv"
)

func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

var infoHashLine = regexp.MustCompile(`(?m)^info hash: ([0-9a-f]{40})$`)

func TestCreateAndShow(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "app"), []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	temp := filepath.Join(t.TempDir(), "missing", "temp")
	out, err := execute(t, "create", "--tag", "v1", "--files-path", src, "--tracker", "127.0.0.1:8998",
		"--tracker", "http://127.0.0.2:8998/announce", "--temp-path", temp, "--format", "tar.zst", "--piece-size", "64KiB")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	m := infoHashLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no info hash line in:\n%s", out)
	}
	artifact := filepath.Join(temp, "v1.tar.zst")
	for _, want := range []string{"artifact: " + artifact, "pieces: 1 of 64.0 KiB", "size: "} {
		if !strings.Contains(out, want) {
			t.Errorf("create output lacks %q:\n%s", want, out)
		}
	}

	show, err := execute(t, "show", artifact+".torrent")
	if err != nil {
		t.Fatalf("show: %v", err)
	}
	if s := infoHashLine.FindStringSubmatch(show); s == nil || s[1] != m[1] {
		t.Errorf("show reports %v, create %s:\n%s", s, m[1], show)
	}
	for _, want := range []string{"name: v1.tar.zst", "piece length: 65536", "pieces: 1", "sha256: ",
		"tracker tier 1: http://127.0.0.1:8998/announce", "tracker tier 2: http://127.0.0.2:8998/announce"} {
		if !strings.Contains(show, want) {
			t.Errorf("show output lacks %q:\n%s", want, show)
		}
	}

	js, err := execute(t, "show", "--json", artifact+".torrent")
	if err != nil {
		t.Fatalf("show --json: %v", err)
	}
	var o struct {
		InfoHash    string     `json:"info_hash"`
		Name        string     `json:"name"`
		PieceLength int64      `json:"piece_length"`
		SHA256      string     `json:"sha256"`
		Trackers    [][]string `json:"trackers"`
	}
	if err := json.Unmarshal([]byte(js), &o); err != nil {
		t.Fatalf("show --json: %v\n%s", err, js)
	}
	if o.InfoHash != m[1] || o.Name != "v1.tar.zst" || o.PieceLength != 65536 || len(o.SHA256) != 64 || len(o.Trackers) != 2 {
		t.Errorf("show --json gave %+v", o)
	}
}

func TestCreateBadInput(t *testing.T) {
	src := t.TempDir()
	temp := t.TempDir()
	if _, err := execute(t, "create", "--tag", "dup", "--files-path", src, "--tracker", "h:1", "--temp-path", temp); err != nil {
		t.Fatal(err)
	}
	base := func(extra ...string) []string {
		return append([]string{"create", "--files-path", src, "--tracker", "h:1", "--temp-path", t.TempDir()}, extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no tag", base(), 2, "--tag is required"},
		{"empty tag", base("--tag", ""), 2, "tag is empty"},
		{"slash tag", base("--tag", "a/b"), 2, "'/'"},
		{"dotdot tag", base("--tag", "a..b"), 2, "'..'"},
		{"nul tag", base("--tag", "a\x00b"), 2, "NUL"},
		{"no files path", []string{"create", "--tag", "v1", "--tracker", "h:1"}, 2, "--files-path is required"},
		{"no tracker", []string{"create", "--tag", "v1", "--files-path", src}, 2, "--tracker"},
		{"bad tracker", base("--tag", "v1", "--tracker", "nope"), 2, "bad tracker"},
		{"bad format", base("--tag", "v1", "--format", "zip"), 2, "unknown format"},
		{"bad piece size", base("--tag", "v1", "--piece-size", "lots"), 2, "bad value"},
		{"odd piece size", base("--tag", "v1", "--piece-size", "1000"), 2, "power of two"},
		{"missing path", []string{"create", "--tag", "v1", "--files-path", filepath.Join(src, "nope"), "--tracker", "h:1", "--temp-path", t.TempDir()}, 1, "no such file"},
		{"exists", []string{"create", "--tag", "dup", "--files-path", src, "--tracker", "h:1", "--temp-path", temp}, 1, "--force"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := execute(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			code := 1
			var ee *exitError
			if errors.As(err, &ee) {
				code = ee.code
			}
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

// TestShowOtherTools checks that show reports the info hash that
// transmission-show reports for torrents made by other tools.
func TestShowOtherTools(t *testing.T) {
	testenv.Require(t, "transmission-show")
	files, _ := filepath.Glob("../../internal/metainfo/testdata/*.torrent")
	if len(files) == 0 {
		t.Fatal("no torrents in internal/metainfo/testdata")
	}
	hashLine := regexp.MustCompile(`Hash: ([0-9a-f]{40})`)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			ref, err := exec.Command("transmission-show", f).CombinedOutput()
			if err != nil {
				t.Fatalf("transmission-show: %v\n%s", err, ref)
			}
			want := hashLine.FindSubmatch(ref)
			if want == nil {
				t.Fatalf("no hash in transmission-show output:\n%s", ref)
			}
			out, err := execute(t, "show", f)
			if err != nil {
				t.Fatal(err)
			}
			if got := infoHashLine.FindStringSubmatch(out); got == nil || got[1] != string(want[1]) {
				t.Errorf("show reports %v, transmission-show %s", got, want[1])
			}
		})
	}
}

func TestShowBadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.torrent")
	if err := os.WriteFile(p, []byte("d4:infoi1ee"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p, filepath.Join(t.TempDir(), "missing.torrent")} {
		if _, err := execute(t, "show", f); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("show %s: got %v, want a one-line error", f, err)
		}
	}
}

// TestPieceSizeUnits pins that --piece-size reads units by their meaning:
// 1MB is 10^6 bytes (refused: not a power of two), 1MiB and 1M are 2^20.
func TestPieceSizeUnits(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "app"), []byte("binary"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want string // "" = a usage error
	}{
		{"1MiB", "1.0 MiB"},
		{"1M", "1.0 MiB"},
		{"512KiB", "512.0 KiB"},
		{"1MB", ""},
		{"16kB", ""},
		{"1.5M", ""},
		{"12x", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			out, err := execute(t, "create", "--tag", "v1", "--files-path", src, "--tracker", "127.0.0.1:8998",
				"--temp-path", t.TempDir(), "--piece-size", tc.in)
			if tc.want == "" {
				var ee *exitError
				if !errors.As(err, &ee) || ee.code != exitUsage {
					t.Fatalf("--piece-size %s: got %v, want a usage error", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("--piece-size %s: %v", tc.in, err)
			}
			if !strings.Contains(out, "pieces: 1 of "+tc.want) {
				t.Errorf("--piece-size %s: output lacks %q:\n%s", tc.in, tc.want, out)
			}
		})
	}
}
