package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/fleet/fleettest"
	"github.com/murder-deploy/murder/internal/testbed"
	"github.com/murder-deploy/murder/internal/testenv"
	"github.com/murder-deploy/murder/internal/tracker"
)

// fleetBed is a test bed whose host 0 is the operator's machine and whose
// other hosts run sshd; the test's work directory (binary, keys,
// inventory, source tree) is visible in every host at the same path.
type fleetBed struct {
	bed   *testbed.Bed
	work  string
	src   string
	key   string
	known string
	ops   *testbed.Host
	good  []*testbed.Host
	down  *testbed.Host // no sshd
	wrong *testbed.Host // sshd whose key does not match known_hosts
}

const (
	bedDest   = "/srv/murder/out"
	bedRemote = "/usr/local/murder"
)

func needBed(t *testing.T) {
	t.Helper()
	if err := testbed.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	fleettest.NeedSSHD(t)
}

// newFleetBed builds a bed of an operator host, good hosts with sshd, a
// host that is down and one with a wrong host key; with dcs, in those
// datacenters (their hosts adding up to good+3).
func newFleetBed(t *testing.T, good int, dcs ...testbed.Datacenter) *fleetBed {
	t.Helper()
	needBed(t)
	work, err := os.MkdirTemp("", "murder-fleet-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	os.Chmod(work, 0o755)
	// The servers live as long as ctx: until the test ends.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	bed, err := testbed.New(ctx, testbed.Config{Hosts: good + 3, Share: []string{work, filepath.Dir(murderBin)}, Datacenters: dcs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bed.Close(); err != nil {
			t.Errorf("close bed: %v", err)
		}
	})
	fb := &fleetBed{bed: bed, work: work, ops: bed.Host(0)}
	client := fleettest.NewKey(t)
	fb.key = client.WriteKey(t, work, "id_ed25519")
	impostor := fleettest.NewKey(t)
	var known strings.Builder
	for i := 1; i < bed.Len(); i++ {
		h := bed.Host(i)
		switch i {
		case good + 1:
			fb.down = h
			continue
		case good + 2:
			fb.wrong = h
		default:
			fb.good = append(fb.good, h)
		}
		s, err := h.StartSSHD(ctx, string(client.AuthKey))
		if err != nil {
			t.Fatal(err)
		}
		if h == fb.wrong {
			fmt.Fprintf(&known, "%s %s", h.Addr(), impostor.AuthKey)
		} else {
			known.WriteString(s.KnownHostsLine() + "\n")
		}
	}
	fb.known = filepath.Join(work, "known_hosts")
	if err := os.WriteFile(fb.known, []byte(known.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	fb.src = filepath.Join(work, "build")
	makeTree(t, fb.src)
	return fb
}

// inventory writes a murder.toml over the given hosts (the first is
// tracker and seeder) and returns its path.
func (fb *fleetBed) inventory(t *testing.T, name, seedTime string, hosts ...*testbed.Host) string {
	t.Helper()
	var peers []string
	for _, h := range hosts {
		peers = append(peers, fmt.Sprintf("%q", "root@"+h.Addr().String()))
	}
	body := fmt.Sprintf(`# written by %s
remote_murder_path = %q
temp_path = "/tmp/murder"
tracker_port = 8998
seed_time = %q
peer_timeout = "2m"

[ssh]
identity_files = [%q]
known_hosts = %q
concurrency = 8
connect_timeout = "5s"
command_timeout = "2m"

[roles]
peers = [%s]

[hosts.%q]
address = %q
`, t.Name(), bedRemote, seedTime, fb.key, fb.known, strings.Join(peers, ", "), hosts[0].Addr().String(), hosts[0].Addr().String())
	p := filepath.Join(fb.work, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// murder runs the murder binary on the operator's host.
func (fb *fleetBed) murder(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := fb.ops.Command(ctx, murderBin, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + fb.work}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// murderJSON runs the murder binary on the operator's host and returns
// its standard output, with standard error after it for the log.
func (fb *fleetBed) murderJSON(t *testing.T, args ...string) (stdout, all string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := fb.ops.Command(ctx, murderBin, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + fb.work}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), out.String() + errb.String(), err
}

// remote runs a shell command on a host directly (not through murder).
func remote(t *testing.T, h *testbed.Host, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.Run(ctx, "sh", "-c", script)
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", h.Addr(), script, err, out)
	}
	return string(out)
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestFleetDeploy(t *testing.T) {
	fb := newFleetBed(t, 8)
	all := append(append([]*testbed.Host{}, fb.good...), fb.down, fb.wrong)
	inv := fb.inventory(t, "murder.toml", "1s", all...)

	out, err := fb.murder(t, "deploy", "-c", inv, "-v", "--tag", "v1", "--files-path", fb.src, "--destination-path", bedDest)
	t.Logf("murder deploy:\n%s", out)
	if exitCode(err) != 1 {
		t.Fatalf("deploy with a down host and a wrong host key: exit %v, want 1", err)
	}
	checkSummary(t, out, []string{"distribute-files", "start-tracker", "create-torrent", "start-seeding", "peer", "stop-and-clean"})
	for _, h := range fb.good {
		testenv.SameTree(t, fb.src, h.Path(bedDest+"/v1"), testenv.Mode)
	}
	for _, h := range []*testbed.Host{fb.down, fb.wrong} {
		if _, err := os.Stat(h.Path(bedDest + "/v1")); err == nil {
			t.Errorf("failed host %s has the files", h.Addr())
		}
	}
	table := out[strings.Index(out, "FAILED HOSTS"):]
	if !strings.Contains(table, "FAILED HOSTS (2 of 10)") {
		t.Errorf("want a table of 2 failed hosts out of 10:\n%s", table)
	}
	for _, want := range []string{
		fb.down.Addr().String() + " ", "connect",
		fb.wrong.Addr().String() + " ", "does not match",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("failure table lacks %q:\n%s", want, table)
		}
	}
	if !strings.Contains(out, "deployed to 8/10 hosts") {
		t.Errorf("summary lacks 8/10 hosts:\n%s", out)
	}
	// The seeder is stopped before the tracker, which still answers its
	// last announce; with a seed_time of 1s on a loaded machine it may
	// have stopped by itself already.
	s := strings.Index(out, "stopped seed (pid")
	if s < 0 {
		s = strings.Index(out, "seed not running")
	}
	if tr := strings.Index(out, "stopped tracker (pid"); s < 0 || tr < s {
		t.Errorf("want the seeder stopped (or gone), then the tracker:\n%s", out)
	}
	// The deploy stopped what it started and cleaned up.
	for _, h := range fb.good {
		if left := remote(t, h, "ls /tmp/murder | grep -e '^v1\\.' -e '^murder-seed' -e '^murder-tracker.pid' -e '^murder-peer-v1\\.status' || true"); left != "" {
			t.Errorf("%s: temp files left: %s", h.Addr(), left)
		}
	}
}

func TestFleetDeploySeederDown(t *testing.T) {
	fb := newFleetBed(t, 2)
	// The first peer is tracker and seeder by default, and it is down.
	inv := fb.inventory(t, "down.toml", "1s", fb.down, fb.good[0], fb.good[1])
	out, err := fb.murder(t, "deploy", "-c", inv, "--tag", "v3", "--files-path", fb.src, "--destination-path", bedDest)
	t.Logf("murder deploy:\n%s", out)
	if exitCode(err) != 1 {
		t.Fatalf("deploy with the seeder down: exit %v, want 1", err)
	}
	want := "murder deploy: the tracker host root@" + fb.down.Addr().String() + " failed; stopping"
	if !strings.Contains(out, want) || !strings.Contains(out, "FAILED HOSTS (1 of 3)") {
		t.Errorf("output lacks %q or the failure table", want)
	}
	if strings.Contains(out, "==> peer") {
		t.Error("deploy went on to the peers without a seeder")
	}
}

// TestFleetDeployPeerFails: a peer that fails once it runs (its
// destination path is a file) reports its error through its status
// stream; the deploy names the host and why, the other peer finishes, and
// no status FIFO is left behind.
func TestFleetDeployPeerFails(t *testing.T) {
	fb := newFleetBed(t, 2)
	bad := fb.good[1]
	remote(t, bad, "mkdir -p "+filepath.Dir(bedDest)+" && rm -rf "+bedDest+" && echo file > "+bedDest)
	inv := fb.inventory(t, "peerfails.toml", "1s", fb.good...)
	out, err := fb.murder(t, "deploy", "-c", inv, "--tag", "v6", "--files-path", fb.src, "--destination-path", bedDest)
	t.Logf("murder deploy:\n%s", out)
	if exitCode(err) != 1 {
		t.Fatalf("deploy with a peer that fails: exit %v, want 1", err)
	}
	testenv.SameTree(t, fb.src, fb.good[0].Path(bedDest+"/v6"), testenv.Mode)
	i := strings.Index(out, "FAILED HOSTS (1 of 2)")
	if i < 0 {
		t.Fatalf("no table of 1 failed host out of 2:\n%s", out)
	}
	if table := out[i:]; !strings.Contains(table, bad.Addr().String()+" ") || !strings.Contains(table, "not a directory") {
		t.Errorf("failure table lacks %s and the peer's reason:\n%s", bad.Addr(), table)
	}
	if left := remote(t, bad, "ls /tmp/murder | grep -e '^murder-peer-v6\\.status' || true"); left != "" {
		t.Errorf("%s: status FIFO left: %s", bad.Addr(), left)
	}
}

func TestFleetTasksTwice(t *testing.T) {
	fb := newFleetBed(t, 8)
	// Peers seed on for long enough that stop-peering has work to do.
	inv := fb.inventory(t, "good.toml", "10m", fb.good...)
	seeder := fb.good[0]
	// run runs a task twice; each round must succeed, and print want1
	// and want2.
	run := func(want1, want2 string, args ...string) {
		t.Helper()
		for round, want := range []string{want1, want2} {
			out, err := fb.murder(t, append([]string{"fleet", "-c", inv}, args...)...)
			if err != nil {
				t.Fatalf("murder fleet %s (round %d): %v\n%s", strings.Join(args, " "), round+1, err, out)
			}
			if !strings.Contains(out, want) {
				t.Errorf("murder fleet %s (round %d): output lacks %q:\n%s", strings.Join(args, " "), round+1, want, out)
			}
		}
	}
	pidOf := func(h *testbed.Host, file string) string {
		return strings.TrimSpace(remote(t, h, "cat /tmp/murder/"+file+" 2>/dev/null || true"))
	}

	run("copied to 8", "already current on 8", "distribute-files")
	run("tracker started", "already running", "start-tracker")
	trackerPid := pidOf(seeder, "murder-tracker.pid")
	if trackerPid == "" {
		t.Fatal("no tracker pid file")
	}
	run("info hash:", "info hash:", "create-torrent", "--tag", "v2", "--files-path", fb.src)
	run("fetched", "fetched", "download-torrent", "--tag", "v2")
	run("started", "already running", "start-seeding", "--tag", "v2")
	if got := pidOf(seeder, "murder-tracker.pid"); got != trackerPid {
		t.Errorf("second start-tracker replaced the tracker: pid %s, want %s", got, trackerPid)
	}
	run("8/8 peers have v2", "8/8 peers have v2", "peer", "--tag", "v2", "--destination-path", bedDest, "--unsafe-please-delete")
	for _, h := range fb.good {
		testenv.SameTree(t, fb.src, h.Path(bedDest+"/v2"), testenv.Mode)
	}
	// A peer without --unsafe-please-delete refuses the existing tree.
	out, err := fb.murder(t, "fleet", "-c", inv, "peer", "--tag", "v2", "--destination-path", bedDest)
	t.Logf("peer onto an existing tree:\n%s", out)
	if !strings.Contains(out, "--unsafe-please-delete") {
		t.Errorf("the refusal does not say how to override it:\n%s", out)
	}
	if exitCode(err) != 1 || !strings.Contains(out, "FAILED HOSTS (8 of 8)") {
		t.Errorf("peer onto an existing tree: exit %v, want 1 with 8 failed hosts:\n%s", err, out)
	}
	for _, h := range fb.good {
		testenv.SameTree(t, fb.src, h.Path(bedDest+"/v2"), testenv.Mode)
	}
	// Once more, so that the peers are seeding when stop-peering runs.
	if out, err := fb.murder(t, "fleet", "-c", inv, "peer", "--tag", "v2", "--destination-path", bedDest, "--unsafe-please-delete"); err != nil {
		t.Fatalf("peer: %v\n%s", err, out)
	}
	// A pid file naming a process that is not murder: stops must leave
	// that process alone.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sleeper := fb.good[1].Command(ctx, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); sleeper.Wait() }()
	remote(t, fb.good[1], fmt.Sprintf("echo %d > /tmp/murder/murder-peer-stale.pid", sleeper.Process.Pid))

	run("stopped 8 peer", "stopped 0 peer", "stop-peering", "--tag", "v2")
	run("stopped 0 peer", "stopped 0 peer", "stop-all-peering")
	if err := sleeper.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("stop-all-peering killed a process that is not murder: %v", err)
	}
	run("stopped seed", "seed not running", "stop-seeding", "--tag", "v2")
	run("stopped 0 seed", "stopped 0 seed", "stop-all-seeding")
	run("stopped tracker", "tracker not running", "stop-tracker")
	run("removed", "removed", "clean-temp-files", "--tag", "v2")
	for _, h := range fb.good {
		if left := remote(t, h, "ls /tmp/murder | grep -e '^v2\\.' -e '^murder-seed' -e '^murder-peer' -e '^murder-tracker' || true"); left != "" {
			t.Errorf("%s: temp files left after clean-temp-files: %s", h.Addr(), left)
		}
		// A peer of an earlier run whose seed time is ending may still be
		// exiting (its stopped announce waits up to 5 s for the tracker,
		// which is gone): give such processes a bounded while.
		var ps string
		for range 40 {
			if ps = remote(t, h, "for p in /proc/[0-9]*; do { tr '\\0' ' ' < $p/cmdline; } 2>/dev/null | grep '^"+bedRemote+"/murder ' || true; done"); ps == "" {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if ps != "" {
			t.Errorf("%s: murder processes left: %s", h.Addr(), ps)
		}
	}
	if _, err := os.Stat(filepath.Join(fb.work, "v2.tgz.torrent")); err == nil {
		t.Error("local torrent left after clean-temp-files")
	}
}

// TestFleetReleases: a deploy activates v1 everywhere; a deploy of v2 in
// waves whose hook fails on the second host stops there and leaves the
// later hosts on v1; fleet activate finishes the job, fleet rollback
// brings every host back, --limit touches only the hosts named, and
// --dry-run changes nothing.
func TestFleetReleases(t *testing.T) {
	fb := newFleetBed(t, 4)
	inv := fb.inventory(t, "releases.toml", "1s", fb.good...)
	spec := func(h *testbed.Host) string { return "root@" + h.Addr().String() }
	current := func(h *testbed.Host) string {
		target, _ := os.Readlink(h.Path(bedDest + "/current"))
		return target
	}
	want := func(what string, tags ...string) {
		t.Helper()
		for i, h := range fb.good {
			if got := current(h); got != tags[i] {
				t.Errorf("%s: %s/current -> %q, want %s", what, spec(h), got, tags[i])
			}
		}
	}
	result := func(out string) Result {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var res Result
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
			t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
		}
		return res
	}

	out, log, err := fb.murderJSON(t, "deploy", "-c", inv, "--tag", "v1", "--files-path", fb.src, "--destination-path", bedDest, "--activate", "--json")
	t.Logf("deploy v1:\n%s", log)
	if err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	want("deploy v1", "v1", "v1", "v1", "v1")
	if res := result(out); res.Totals.OK != 4 || res.Totals.Bytes <= 0 {
		t.Errorf("deploy v1 result %+v", res.Totals)
	}

	// The second host refuses the hook; the waves are 1, 1, 2.
	remote(t, fb.good[1], "touch "+bedDest+"/fail-hook")
	hook := `if [ -e ../fail-hook ]; then echo "restart refused on $MURDER_TAG"; exit 1; fi; echo "restarted $MURDER_TAG after $MURDER_PREVIOUS"`
	out, log, err = fb.murderJSON(t, "deploy", "-c", inv, "--tag", "v2", "--files-path", fb.src, "--destination-path", bedDest,
		"--activate", "--canary", "1", "--batch", "1", "--after-activate", hook, "--json")
	t.Logf("deploy v2:\n%s", log)
	if exitCode(err) != 1 {
		t.Fatalf("deploy v2 with a failing hook: exit %v, want 1", err)
	}
	want("deploy v2 stopped at wave 2", "v2", "v1", "v1", "v1")
	res := result(out)
	status := map[string]HostResult{}
	for _, h := range res.Hosts {
		status[h.Host] = h
	}
	if h := status[spec(fb.good[1])]; h.Status != StatusFailed || !strings.Contains(h.Error, "restart refused on v2") {
		t.Errorf("host with the failing hook: %+v", h)
	}
	for _, h := range fb.good[2:] {
		if r := status[spec(h)]; r.Status != StatusFailed || !strings.Contains(r.Error, "not activated") || r.Bytes <= 0 {
			t.Errorf("host of a later wave: %+v, want failed, not activated, with its bytes", r)
		}
	}
	if r := status[spec(fb.good[0])]; r.Status != StatusOK {
		t.Errorf("canary: %+v", r)
	}
	// The hook's output is kept per host on the operator's machine.
	if b, err := os.ReadFile(fb.ops.Path("/tmp/murder/murder-v2-hooks/" + spec(fb.good[0]) + ".log")); err != nil || !strings.Contains(string(b), "restarted v2 after v1") {
		t.Errorf("canary's hook log: %q, %v", b, err)
	}

	// A dry run prints the command and changes nothing.
	out, err = fb.murder(t, "fleet", "-c", inv, "activate", "--tag", "v2", "--destination-path", bedDest, "--dry-run")
	if err != nil || !strings.Contains(out, spec(fb.good[3])+": ") || !strings.Contains(out, "'activate' '--destination-path'") {
		t.Errorf("activate --dry-run: %v\n%s", err, out)
	}
	want("after a dry run", "v2", "v1", "v1", "v1")

	// The rest of the fleet, the failing host left out by --limit.
	out, err = fb.murder(t, "fleet", "-c", inv, "activate", "--tag", "v2", "--destination-path", bedDest,
		"--limit", spec(fb.good[2])+","+fb.good[3].Addr().String())
	t.Logf("activate --limit:\n%s", out)
	if err != nil {
		t.Fatalf("activate --limit: %v", err)
	}
	want("activate --limit", "v2", "v1", "v2", "v2")

	// Roll back the hosts on v2; the one on v1 has nothing to go back to.
	out, log, err = fb.murderJSON(t, "fleet", "-c", inv, "rollback", "--destination-path", bedDest, "--json")
	t.Logf("rollback:\n%s", log)
	if exitCode(err) != 1 {
		t.Fatalf("rollback with one host lacking history: exit %v, want 1", err)
	}
	want("rollback", "v1", "v1", "v1", "v1")
	res = result(out)
	if res.Task != "rollback" || res.Totals.OK != 3 || res.Totals.Failed != 1 {
		t.Errorf("rollback result %+v", res.Totals)
	}
	for _, h := range res.Hosts {
		if h.Host == spec(fb.good[1]) && !strings.Contains(h.Error, "no earlier release") {
			t.Errorf("rollback error on the host without history: %q", h.Error)
		}
	}
	if !strings.Contains(out, "rolled back from v2 to v1") {
		t.Errorf("rollback does not say which release:\n%s", out)
	}
}

// TestFleetProxyJump deploys to a host that the operator's machine cannot
// reach, through a jump host named in ~/.ssh/config.
func TestFleetProxyJump(t *testing.T) {
	fb := newFleetBed(t, 2)
	jump, behind := fb.good[0], fb.good[1]
	// behind answers nobody at the operator's address.
	remote(t, behind, "ip route add prohibit "+fb.ops.Addr().String()+"/32")
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if c, err := fb.ops.DialContext(dctx, "tcp", behind.Addr().String()+":22"); err == nil {
		c.Close()
		t.Fatal("the operator reaches the host behind the jump host directly")
	}
	cancel()
	if err := os.MkdirAll(filepath.Join(fb.work, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	config := "Host behind\n  HostName " + behind.Addr().String() + "\n  User root\n  ProxyJump root@" + jump.Addr().String() + "\n"
	if err := os.WriteFile(filepath.Join(fb.work, ".ssh", "config"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := fb.inventory(t, "jump.toml", "1s", jump)
	body, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	body = []byte(strings.Replace(string(body), `peers = ["root@`+jump.Addr().String()+`"]`, `peers = ["root@`+jump.Addr().String()+`", "behind"]`, 1))
	if err := os.WriteFile(inv, body, 0o644); err != nil {
		t.Fatal(err)
	}
	out, log, err := fb.murderJSON(t, "deploy", "-c", inv, "--tag", "v1", "--files-path", fb.src, "--destination-path", bedDest, "--activate", "--json")
	t.Logf("deploy:\n%s", log)
	if err != nil {
		t.Fatalf("deploy through a jump host: %v", err)
	}
	testenv.SameTree(t, fb.src, behind.Path(bedDest+"/v1"), testenv.Mode)
	if target, _ := os.Readlink(behind.Path(bedDest + "/current")); target != "v1" {
		t.Errorf("behind: current -> %q, want v1", target)
	}
	if !strings.Contains(out, `"host":"behind","status":"ok"`) {
		t.Errorf("result lacks behind as ok:\n%s", out)
	}
}

// TestFleetDeployDatacenters deploys to hosts in two datacenters behind
// capped WAN links, placed by murder.toml groups: every host gets the
// files, and the summary splits them by datacenter.
func TestFleetDeployDatacenters(t *testing.T) {
	fb := newFleetBed(t, 5, testbed.Datacenter{Name: "east", Hosts: 4, WAN: 4 << 20}, testbed.Datacenter{Name: "west", Hosts: 4, WAN: 4 << 20})
	inv := fb.inventory(t, "dc.toml", "1s", fb.good...)
	var east, west []string
	for _, h := range fb.good {
		if h.Datacenter() == "east" {
			east = append(east, fmt.Sprintf("%q", h.Addr().String()))
		} else {
			west = append(west, fmt.Sprintf("%q", h.Addr().String()))
		}
	}
	groups := fmt.Sprintf("\n[datacenters.east]\nhosts = [%s]\n\n[datacenters.west]\nhosts = [%s]\n", strings.Join(east, ", "), strings.Join(west, ", "))
	f, err := os.OpenFile(inv, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(groups)
	f.Close()

	out, err := fb.murder(t, "deploy", "-c", inv, "--tag", "v1", "--files-path", fb.src, "--destination-path", bedDest)
	t.Logf("murder deploy:\n%s", out)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	for _, h := range fb.good {
		testenv.SameTree(t, fb.src, h.Path(bedDest+"/v1"), testenv.Mode)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(out[max(strings.Index(out, "DATACENTER"), 0):], "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			rows[f[0]] = f[1]
		}
	}
	for name, n := range map[string]int{"east": len(east), "west": len(west)} {
		if want := fmt.Sprintf("%d/%d", n, n); rows[name] != want {
			t.Errorf("summary row of %s: hosts %q, want %s", name, rows[name], want)
		}
	}
}

// twoTrackers starts a redis-server in the operator's host and writes an
// inventory over hosts whose first two hosts are trackers on it.
func (fb *fleetBed) twoTrackers(t *testing.T, name string, hosts ...*testbed.Host) string {
	t.Helper()
	testenv.Require(t, "redis-server")
	// Redis's directory must be one the hosts share: each has its own /tmp.
	dir := filepath.Join(fb.work, "redis-"+name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rs := testenv.NewRedis(dir, netip.AddrPortFrom(fb.ops.Addr(), 6379).String())
	rs.Command = fb.ops.Command
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	inv := fb.inventory(t, name, "1s", hosts...)
	body, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	roles := fmt.Sprintf("[roles]\ntracker = [%q, %q]\n", "root@"+hosts[0].Addr().String(), "root@"+hosts[1].Addr().String())
	body = []byte(strings.Replace(string(body), "[roles]\n", roles, 1) + "\n[tracker]\nstore = " + strconv.Quote(rs.URL()) + "\n")
	if err := os.WriteFile(inv, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestFleetDeployTwoTrackers deploys with two trackers on one Redis: both
// start, the torrent lists both, every peer gets an exact copy, and both
// trackers are stopped at the end.
func TestFleetDeployTwoTrackers(t *testing.T) {
	fb := newFleetBed(t, 4)
	inv := fb.twoTrackers(t, "deploy-two.toml", fb.good...)
	out, err := fb.murder(t, "deploy", "-c", inv, "--tag", "v6", "--files-path", fb.src, "--destination-path", bedDest)
	t.Logf("murder deploy:\n%s", out)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if n := strings.Count(out, "tracker started on"); n != 2 {
		t.Errorf("deploy started %d trackers, want 2", n)
	}
	for _, h := range fb.good {
		testenv.SameTree(t, fb.src, h.Path(bedDest+"/v6"), testenv.Mode)
	}
	for _, h := range fb.good[:2] {
		if left := remote(t, h, "ls /tmp/murder | grep '^murder-tracker' || true"); left != "" {
			t.Errorf("%s: tracker files left: %s", h.Addr(), left)
		}
	}
}

// TestFleetTrackerFailover runs two trackers on one redis-server: the
// tracker the torrent lists first is killed once the seeder announced to
// it, and peers that start after it is gone find the seeder through the
// second tracker and finish with exact copies.
func TestFleetTrackerFailover(t *testing.T) {
	fb := newFleetBed(t, 5)
	first, second := fb.good[0], fb.good[1]
	inv := fb.twoTrackers(t, "two-trackers.toml", fb.good...)
	run := func(want string, args ...string) string {
		t.Helper()
		out, err := fb.murder(t, append([]string{"fleet", "-c", inv}, args...)...)
		t.Logf("murder fleet %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("murder fleet %s: %v", strings.Join(args, " "), err)
		}
		if strings.Count(out, want) == 0 {
			t.Fatalf("murder fleet %s: output lacks %q", strings.Join(args, " "), want)
		}
		return out
	}
	run("copied to 5", "distribute-files")
	if out := run("tracker started", "start-tracker"); strings.Count(out, "tracker started on") != 2 {
		t.Fatalf("start-tracker started %d trackers, want 2", strings.Count(out, "tracker started on"))
	}
	created := run("info hash:", "create-torrent", "--tag", "v5", "--files-path", fb.src)
	_, hexHash, _ := strings.Cut(created, "info hash: ")
	ih, err := tracker.ParseInfoHash(strings.TrimSpace(strings.SplitN(hexHash, "\n", 2)[0]))
	if err != nil {
		t.Fatalf("create-torrent printed no info hash: %v", err)
	}
	run("started", "start-seeding", "--tag", "v5")

	// The seeder announced to the first tracker, which now dies. The
	// second lists the seeder at once: it reads the same Redis.
	remote(t, first, "kill -9 $(cat /tmp/murder/murder-tracker.pid)")
	scrape := func(h *testbed.Host) (map[[20]byte]tracker.ScrapeStats, error) {
		hc := &http.Client{Transport: &http.Transport{DialContext: fb.ops.DialContext}}
		c := tracker.NewClient([][]string{{"http://" + netip.AddrPortFrom(h.Addr(), 8998).String() + "/announce"}}, tracker.ClientConfig{HTTPClient: hc})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.Scrape(ctx, ih)
	}
	if _, err := scrape(first); err == nil {
		t.Fatal("the killed tracker still answers")
	}
	st, err := scrape(second)
	if err != nil {
		t.Fatal(err)
	}
	if st[ih].Complete != 1 {
		t.Fatalf("second tracker lists %d seeders of v5, want the one that announced to the first: %+v", st[ih].Complete, st)
	}
	run("5/5 peers have v5", "peer", "--tag", "v5", "--destination-path", bedDest)
	for _, h := range fb.good {
		testenv.SameTree(t, fb.src, h.Path(bedDest+"/v5"), testenv.Mode)
	}
	run("stopped seed", "stop-seeding", "--tag", "v5")
	run("stopped tracker", "stop-tracker")
}
