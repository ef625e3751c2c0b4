package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/murder-deploy/murder/internal/fleet/fleettest"
	"github.com/murder-deploy/murder/internal/release"
)

func TestActivateRollbackCommands(t *testing.T) {
	dest := t.TempDir()
	for _, tag := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(dest, tag), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := execute(t, "activate", "--destination-path", dest, "--tag", "v1"); err != nil || !strings.Contains(out, "activated v1") {
		t.Fatalf("activate v1: %v\n%s", err, out)
	}
	out, err := execute(t, "activate", "--destination-path", dest, "--tag", "v2", "--json")
	if err != nil {
		t.Fatalf("activate v2: %v\n%s", err, out)
	}
	var res release.Result
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res.Tag != "v2" || res.Previous != "v1" {
		t.Fatalf("activate --json: %+v, %v\n%s", res, err, out)
	}
	if out, err := execute(t, "rollback", "--destination-path", dest); err != nil || !strings.Contains(out, "rolled back from v2 to v1") {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	if target, _ := os.Readlink(filepath.Join(dest, "current")); target != "v1" {
		t.Fatalf("current -> %q, want v1", target)
	}
	// No earlier release: a runtime failure (exit 1), not a usage error.
	_, err = execute(t, "rollback", "--destination-path", dest)
	var ee *exitError
	if !errors.Is(err, release.ErrNoPrevious) || errors.As(err, &ee) {
		t.Fatalf("rollback with no history: %v, want ErrNoPrevious with exit code 1", err)
	}
	for _, args := range [][]string{
		{"activate", "--destination-path", dest},
		{"activate", "--destination-path", dest, "--tag", "../x"},
		{"activate", "--destination-path", dest, "--tag", "v1", "--keep-releases", "-1"},
		{"rollback"},
	} {
		_, err := execute(t, args...)
		if !errors.As(err, &ee) || ee.code != exitUsage {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// TestFleetTaskNothingSelected: a task none of whose hosts --limit or
// --role selects connects to nothing and succeeds with an empty result.
func TestFleetTaskNothingSelected(t *testing.T) {
	inv := offlineInventory(t, func(string) string {
		return "[roles]\ntracker = \"192.0.2.1\"\npeers = [\"192.0.2.2\", \"192.0.2.3\"]\n"
	})
	for _, args := range [][]string{
		{"fleet", "-c", inv, "--limit", "192.0.2.2", "--json", "stop-tracker"},
		{"fleet", "-c", inv, "--role", "tracker", "--json", "stop-peering", "--tag", "v1"},
	} {
		out, err := execute(t, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var res struct {
			Hosts  []json.RawMessage   `json:"hosts"`
			Totals struct{ Hosts int } `json:"totals"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || len(res.Hosts) != 0 || !strings.Contains(out, "nothing to do") {
			t.Errorf("%v: %+v, %v\n%s", args, res, err, out)
		}
	}
}

// TestDeployDryRun prints each host's commands without connecting to any.
func TestDeployDryRun(t *testing.T) {
	inv := offlineInventory(t, func(string) string {
		return "[roles]\npeers = [\"192.0.2.1\", \"192.0.2.2\", \"192.0.2.3\"]\n"
	})
	out, err := execute(t, "deploy", "-c", inv, "--tag", "v42", "--files-path", "/srv/build", "--destination-path", "/srv/app",
		"--activate", "--canary", "1", "--batch", "1", "--limit", "192.0.2.3", "--dry-run", "--json")
	if err != nil {
		t.Fatalf("deploy --dry-run: %v\n%s", err, out)
	}
	for _, want := range []string{
		"distribute-files: /opt/murder/murder to 192.0.2.1, 192.0.2.3\n",
		"peer on 192.0.2.3: '/opt/murder/murder' 'peer' '--torrent' '/tmp/murder/v42.tgz.torrent' '--destination-path' '/srv/app'",
		"activate once 1 of 1 peers have v42, in waves of 1: '/opt/murder/murder' 'activate'",
		`"dry_run":true}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "peer on 192.0.2.2") {
		t.Errorf("dry run includes a peer --limit leaves out:\n%s", out)
	}
}

// TestDeployDryRunSigned checks that a dry run of a signed deploy shows
// the signing and the check.
func TestDeployDryRunSigned(t *testing.T) {
	inv := offlineInventory(t, func(dir string) string {
		return "[trust]\nsign_key = \"/etc/murder/release_key\"\nallowed_signers = \"" + filepath.Join(dir, "allowed_signers") + "\"\n" +
			"[roles]\npeers = [\"192.0.2.1\", \"192.0.2.2\"]\n"
	})
	out, err := execute(t, "deploy", "-c", inv, "--tag", "v42", "--files-path", "/srv/build", "--destination-path", "/srv/app", "--dry-run")
	if err != nil {
		t.Fatalf("deploy --dry-run: %v\n%s", err, out)
	}
	for _, want := range []string{
		"distribute-files: /opt/murder/murder and /opt/murder/allowed_signers to 192.0.2.1, 192.0.2.2\n",
		"--temp-path '/tmp/murder' --sign-key '/etc/murder/release_key'\n",
		"'--allowed-signers' '/opt/murder/allowed_signers'",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
}

// offlineInventory writes a murder.toml in a temporary directory for tasks
// that connect to nothing (dry runs, empty selections): an SSH key, an
// empty known_hosts and the [ssh] table, then what more gives for the
// directory. It returns the file.
func offlineInventory(t *testing.T, more func(dir string) string) string {
	t.Helper()
	dir := t.TempDir()
	key := fleettest.NewKey(t).WriteKey(t, dir, "id_ed25519")
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "murder.toml")
	body := "[ssh]\nidentity_files = [\"" + key + "\"]\nknown_hosts = \"" + known + "\"\nconfig = \"none\"\n" + more(dir)
	if err := os.WriteFile(inv, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return inv
}
