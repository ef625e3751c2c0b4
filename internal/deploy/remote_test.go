package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/murder-deploy/murder/internal/fleet"
)

// TestShellLib runs the remote scripts' helpers in each shell at hand,
// with sleep standing in for murder (its first argument for the
// subcommand): a pid file is believed only for the binary and the kind it
// names, and stops are idempotent.
func TestShellLib(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	for _, shell := range []string{"sh", "bash", "dash"} {
		path, err := exec.LookPath(shell)
		if err != nil {
			continue
		}
		t.Run(shell, func(t *testing.T) {
			temp := t.TempDir()
			// The binary is always REMOTE_MURDER_PATH/murder: a copy of
			// sleep there.
			b, err := os.ReadFile(sleep)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(temp, "murder"), b, 0o755); err != nil {
				t.Fatal(err)
			}
			f := &Fleet{inv: &fleet.Inventory{RemoteMurderPath: temp, TempPath: temp}}
			run := func(lines ...string) string {
				t.Helper()
				out, err := exec.Command(path, "-c", f.script(lines...)).CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", lines, err, out)
				}
				return strings.TrimSpace(string(out))
			}
			pf := `"$T/x.pid"`
			run("murder_start " + pf + ` "$T/x.log" "$T/x.log" 30`)
			// Until the child has exec'd, its command line is the shell's.
			pid := run("i=0; until murder_alive " + pf + " 30; do [ $i -lt 250 ] || exit 1; sleep 0.02; i=$((i+1)); done")
			if pid == "" {
				t.Fatal("murder_alive does not find the process it started")
			}
			if got := run("murder_alive " + pf + " 31 || echo no"); got != "no" {
				t.Errorf("murder_alive of another kind: %q, want no", got)
			}
			// A pid file that names a process of another binary.
			other := exec.Command(sleep, "30")
			other.Args[0] = "not-murder"
			if err := other.Start(); err != nil {
				t.Fatal(err)
			}
			defer other.Process.Kill()
			os.WriteFile(filepath.Join(temp, "y.pid"), []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o644)
			if got := run(`murder_stop "$T/y.pid" 30`); got != "30 not running" {
				t.Errorf("murder_stop of another binary's pid: %q", got)
			}
			if err := other.Process.Signal(syscall.Signal(0)); err != nil {
				t.Errorf("murder_stop signalled a process that is not murder: %v", err)
			}
			if got := run("murder_stop " + pf + " 30"); got != "stopped 30 (pid "+pid+")" {
				t.Errorf("murder_stop: %q", got)
			}
			if _, err := os.Stat(filepath.Join(temp, "x.pid")); !os.IsNotExist(err) {
				t.Errorf("pid file left after the stop: %v", err)
			}
			if got := run("murder_stop " + pf + " 30"); got != "30 not running" {
				t.Errorf("second murder_stop: %q, want 30 not running", got)
			}
			if got := run("murder_gone " + pid + " && echo gone"); got != "gone" {
				t.Errorf("murder_gone of a stopped process: %q", got)
			}
			if got := run("murder_gone " + strconv.Itoa(os.Getpid()) + " || echo here"); got != "here" {
				t.Errorf("murder_gone of a running process: %q", got)
			}
		})
	}
}
