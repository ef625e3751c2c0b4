package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/fleet/fleettest"
	"github.com/murder-deploy/murder/internal/testenv"
)

// TestTrackerTasksWithoutForwarding runs the tracker tasks against one
// sshd on loopback that forbids TCP forwarding, so the health check must
// reach the tracker directly. Paths are per test, as the "host" shares
// this machine's disk.
func TestTrackerTasksWithoutForwarding(t *testing.T) {
	fleettest.NeedSSHD(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	dir := t.TempDir()
	client := fleettest.NewKey(t)
	srv := fleettest.StartSSHD(t, "127.0.0.1", 0, fleettest.Options{Config: []string{"AllowTcpForwarding no"}}, client)
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte(srv.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := fleet.ParseInventory([]byte(fmt.Sprintf(`
remote_murder_path = %q
temp_path = %q
tracker_port = %d
[ssh]
user = "root"
identity_files = [%q]
known_hosts = %q
[roles]
peers = [%q]
`, filepath.Join(dir, "remote"), filepath.Join(dir, "tmp"), testenv.FreePort(t, "127.0.0.1"),
		client.WriteKey(t, dir, "id"), known, srv.Addr)))
	if err != nil {
		t.Fatal(err)
	}
	runner, err := fleet.NewRunner(inv.SSH, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer runner.Close()
	var out bytes.Buffer
	f, err := New(Config{Inventory: inv, Runner: runner, Binary: murderBin, LocalTempPath: filepath.Join(dir, "local"), Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	defer f.StopTracker(context.Background())

	if err := f.DistributeFiles(ctx); err != nil {
		t.Fatalf("distribute-files: %v\n%s", err, out.String())
	}
	for i, want := range []bool{true, false} {
		started, err := f.StartTracker(ctx)
		if err != nil {
			t.Fatalf("start-tracker %d: %v\n%s", i+1, err, out.String())
		}
		if started != want {
			t.Errorf("start-tracker %d: started = %v, want %v", i+1, started, want)
		}
	}
	pidFile := filepath.Join(dir, "tmp", "murder-tracker.pid")
	if _, err := os.Stat(pidFile); err != nil {
		t.Errorf("no pid file: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := f.StopTracker(ctx); err != nil {
			t.Fatalf("stop-tracker %d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(pidFile); err == nil {
		t.Error("pid file left after stop-tracker")
	}
	s := out.String()
	for _, want := range []string{"copied to 1", "tracker started", "tracker already running", "stopped tracker (pid", "tracker not running"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
