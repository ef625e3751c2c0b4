package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/murder-deploy/murder/internal/fleet/fleettest"
)

// TestFleetDryRun runs every fleet task with --dry-run against an
// inventory whose hosts all point at one local TCP listener: each task must
// print its hosts' command lines, and nothing may connect to the listener
// or appear in the temp path.
func TestFleetDryRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dials atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	host := func(user string) string { return user + "@" + addr }

	dir := t.TempDir()
	key := fleettest.NewKey(t).WriteKey(t, dir, "id_ed25519")
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "murder.toml")
	body := fmt.Sprintf("temp_path = %q\n[ssh]\nidentity_files = [%q]\nknown_hosts = %q\nconfig = \"none\"\n"+
		"[roles]\ntracker = %q\nseeder = %q\npeers = [%q, %q, %q]\n",
		tmp, key, known, host("t"), host("s"), host("p1"), host("p2"), host("p3"))
	if err := os.WriteFile(inv, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}

	dest := []string{"--destination-path", "/srv/app"}
	tag := []string{"--tag", "v42"}
	peers := []string{host("p1"), host("p2"), host("p3")}
	all := append([]string{host("t"), host("s")}, peers...)
	for _, tc := range []struct {
		args  []string
		hosts []string // each gets a line "  HOST: ...WANT..."
		want  string
		not   []string // hosts that must not be named
	}{
		{[]string{"distribute-files"}, all, "to /opt/murder/murder unless the same binary is there", nil},
		{[]string{"start-tracker"}, []string{host("t")}, "'/opt/murder/murder' tracker --listen :", nil},
		{[]string{"stop-tracker"}, []string{host("t")}, "stop the murder tracker whose pid is in '" + tmp + "'/murder-tracker.pid", nil},
		{append([]string{"create-torrent", "--files-path", "/srv/build"}, tag...), []string{host("s")}, "'/opt/murder/murder' create --tag 'v42' --files-path '/srv/build' --tracker '127.0.0.1:", nil},
		{append([]string{"download-torrent"}, tag...), []string{host("s")}, "fetch " + tmp + "/v42.tgz.torrent to " + filepath.Join(tmp, "v42.tgz.torrent"), nil},
		{append([]string{"start-seeding"}, tag...), []string{host("s")}, "'/opt/murder/murder' 'seed' '--torrent' '" + tmp + "/v42.tgz.torrent'", nil},
		{append([]string{"stop-seeding"}, tag...), []string{host("s")}, "stop the murder seed whose pid is in", nil},
		{[]string{"stop-all-seeding"}, []string{host("s")}, "stop the murder seed whose pid is in '" + tmp + "'/murder-seed-*.pid (each)", nil},
		{append(append([]string{"peer"}, tag...), dest...), peers, "'/opt/murder/murder' 'peer' '--torrent' '" + tmp + "/v42.tgz.torrent' '--destination-path' '/srv/app'", nil},
		{append(append([]string{"peer", "--limit", host("p3")}, tag...), dest...), []string{host("p3")}, "'peer'", []string{host("p1"), host("p2")}},
		{append([]string{"stop-peering"}, tag...), peers, "stop the murder peer whose pid is in", nil},
		{[]string{"stop-all-peering", "--role", "peers"}, peers, "murder-peer-*.pid (each)", nil},
		{append([]string{"clean-temp-files"}, tag...), all, "rm -rf \"$T\"/'v42'.tgz", nil},
		{append(append([]string{"activate", "--canary", "1"}, tag...), dest...), peers, "'/opt/murder/murder' 'activate' '--destination-path' '/srv/app' '--tag' 'v42'", nil},
		{append([]string{"rollback"}, dest...), peers, "'/opt/murder/murder' 'rollback' '--destination-path' '/srv/app'", nil},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append(append([]string{"fleet", "-c", inv}, tc.args...), "--dry-run", "--json")
			out, err := execute(t, args...)
			if err != nil {
				t.Fatalf("%v: %v\n%s", tc.args, err, out)
			}
			if !strings.Contains(out, "==> "+tc.args[0]+" (") || !strings.Contains(out, ", dry run: nothing is run)") {
				t.Errorf("no dry-run header:\n%s", out)
			}
			for _, h := range tc.hosts {
				if !containsLine(out, "  "+h+": ", tc.want) {
					t.Errorf("no line for %s with %q:\n%s", h, tc.want, out)
				}
			}
			for _, h := range tc.not {
				if strings.Contains(out, h) {
					t.Errorf("names %s, which --limit leaves out:\n%s", h, out)
				}
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			var res struct {
				DryRun bool              `json:"dry_run"`
				Hosts  []json.RawMessage `json:"hosts"`
			}
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || !res.DryRun || len(res.Hosts) != 0 {
				t.Errorf("JSON result %q: %+v, %v", lines[len(lines)-1], res, err)
			}
		})
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d connection(s) to the hosts during dry runs", n)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("dry runs wrote %d file(s) to the temp path, first %s", len(left), left[0].Name())
	}
}

// containsLine reports whether a line of out starts with prefix and
// contains want.
func containsLine(out, prefix, want string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, want) {
			return true
		}
	}
	return false
}
