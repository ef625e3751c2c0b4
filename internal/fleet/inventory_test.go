package fleet

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseInventoryFiles(t *testing.T) {
	inv, err := LoadInventory(filepath.Join("testdata", "full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Inventory{
		RemoteMurderPath: "/opt/murder",
		TempPath:         "/var/tmp",
		TrackerPort:      9000,
		SeedTime:         45 * time.Second,
		PeerTimeout:      20 * time.Minute,
		MaxUploadRate:    "50MB",
		MaxDownloadRate:  "60MB",
		MetricsPort:      9100,
		SSH: SSHConfig{
			User: "deploy", Port: 2200, IdentityFiles: []string{"~/.ssh/id_ed25519"},
			KnownHosts: "~/.ssh/known_hosts", Concurrency: 10,
			ConnectTimeout: 3 * time.Second, CommandTimeout: 5 * time.Minute,
		},
		Trust:    Trust{AllowFrom: []string{"198.18.0.0/15", "10.1.2.3/32"}},
		Tracker:  Host{Spec: "tracker01", Name: "tracker01"},
		Trackers: []Host{{Spec: "tracker01", Name: "tracker01"}},
		Seeder:   Host{Spec: "seeder01", Name: "seeder01", Announce: "198.18.0.2"},
		Peers: []Host{
			{Spec: "w01", Name: "w01"},
			{Spec: "ops@w02:2222", User: "ops", Name: "w02", Port: 2222},
			{Spec: "w03", Name: "w03", Announce: "198.18.0.13"},
			{Spec: "[::1]:2022", Name: "::1", Port: 2022},
		},
	}
	if !reflect.DeepEqual(inv, want) {
		t.Errorf("got  %+v\nwant %+v", inv, want)
	}
	if got := len(inv.All()); got != 6 {
		t.Errorf("All: got %d hosts, want 6", got)
	}
	if got := inv.Binary(); got != "/opt/murder/murder" {
		t.Errorf("Binary: got %q", got)
	}

	inv, err = LoadInventory(filepath.Join("testdata", "minimal.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Tracker.Name != "198.18.0.10" || inv.Seeder.Name != "198.18.0.10" {
		t.Errorf("tracker and seeder default to the first peer: got %v, %v", inv.Tracker, inv.Seeder)
	}
	if inv.TempPath != DefaultTempPath || inv.RemoteMurderPath != DefaultRemoteMurderPath || inv.TrackerPort != 8998 ||
		inv.SeedTime != 30*time.Second || inv.SSH.Port != 22 || inv.SSH.Concurrency != 100 || inv.SSH.ConnectTimeout != 10*time.Second {
		t.Errorf("defaults not applied: %+v", inv)
	}
	if got := len(inv.All()); got != 2 {
		t.Errorf("All: got %d hosts, want 2", got)
	}

	_, err = LoadInventory(filepath.Join("testdata", "unknown-key.toml"))
	if err == nil || !strings.Contains(err.Error(), `line 5: unknown key ssh.conect_timeout`) {
		t.Errorf("unknown key: got %v", err)
	}
	if _, err := LoadInventory(filepath.Join("testdata", "missing.toml")); err == nil {
		t.Error("missing file: got no error")
	}
}

func TestParseInventoryErrors(t *testing.T) {
	tests := []struct {
		name, toml, want string
	}{
		{"unknown top key", "peer = 1\n[roles]\npeers = [\"a\"]\n", `line 1: unknown key peer`},
		{"unknown table", "[roles]\npeers = [\"a\"]\n\n[sssh]\nuser = \"x\"\n", `line 4: unknown key sssh`},
		{"unknown host key", "[roles]\npeers = [\"a\"]\n[hosts.a]\naddress = \"198.18.0.1\"\nadress = \"1\"\n", `line 5: unknown key hosts.a.adress`},
		{"no peers", "temp_path = \"/tmp\"\n", "roles.peers is empty"},
		{"empty peer", "[roles]\npeers = [\"\"]\n", "line 2: roles.peers: empty host"},
		{"bad port", "[roles]\npeers = [\"a:99999\"]\n", `bad port "99999"`},
		{"port not a number", "[roles]\npeers = [\"a:ssh\"]\n", `bad port "ssh"`},
		{"empty user", "[roles]\npeers = [\"@a\"]\n", "empty or bad user"},
		{"shell chars", "[roles]\npeers = [\"a;rm\"]\n", "unexpected character"},
		{"ipv6 unbracketed port", "[roles]\npeers = [\"fe80::1::2\"]\n", "[addr]:port"},
		{"bracket not ip", "[roles]\npeers = [\"[host]:22\"]\n", "not an IP address"},
		{"duplicate peer", "[roles]\npeers = [\"a\", \"a\"]\n", "listed twice"},
		{"bad tracker", "[roles]\ntracker = \"x:0\"\npeers = [\"a\"]\n", "line 2: roles.tracker"},
		{"bad tracker in list", "[roles]\ntracker = [\"t1\", \"x:0\"]\npeers = [\"a\"]\n", "line 2: roles.tracker"},
		{"tracker twice", "[tracker]\nstore = \"redis://r1\"\n[roles]\ntracker = [\"t1\", \"t1\"]\npeers = [\"a\"]\n", "listed twice"},
		{"tracker wrong type", "[roles]\ntracker = 3\npeers = [\"a\"]\n", "want a host or a list of hosts"},
		{"trackers in memory", "[roles]\ntracker = [\"t1\", \"t2\"]\npeers = [\"a\"]\n", `line 2: roles.tracker: 2 trackers keep separate swarms in memory; set [tracker] store`},
		{"bad store", "[tracker]\nstore = \"mysql://db\"\n[roles]\npeers = [\"a\"]\n", `line 2: tracker.store: tracker: redis URL "mysql://db": scheme "mysql"`},
		{"unknown tracker key", "[tracker]\nstores = \"redis://r\"\n[roles]\npeers = [\"a\"]\n", "line 2: unknown key tracker.stores"},
		{"bad seed time", "seed_time = \"30\"\n[roles]\npeers = [\"a\"]\n", `line 1: seed_time: bad duration "30"`},
		{"negative duration", "seed_time = \"-3s\"\n[roles]\npeers = [\"a\"]\n", "bad duration"},
		{"bad connect timeout", "[ssh]\nconnect_timeout = \"soon\"\n[roles]\npeers = [\"a\"]\n", `line 2: ssh.connect_timeout: bad duration "soon"`},
		{"zero connect timeout", "[ssh]\nconnect_timeout = \"0s\"\n[roles]\npeers = [\"a\"]\n", "greater than zero"},
		{"duration wrong type", "seed_time = 30\n[roles]\npeers = [\"a\"]\n", "line 1"},
		{"relative temp path", "temp_path = \"tmp\"\n[roles]\npeers = [\"a\"]\n", "line 1: temp_path must be an absolute path"},
		{"tracker port range", "tracker_port = 0\n[roles]\npeers = [\"a\"]\n", "tracker_port 0 out of range"},
		{"metrics port range", "metrics_port = 65535\n[roles]\npeers = [\"a\"]\n", "metrics_port 65535 out of range 1-65534"},
		{"ssh port range", "[ssh]\nport = 70000\n[roles]\npeers = [\"a\"]\n", "line 2: ssh.port 70000"},
		{"concurrency", "[ssh]\nconcurrency = 0\n[roles]\npeers = [\"a\"]\n", "concurrency must be at least 1"},
		{"host not in roles", "[roles]\npeers = [\"a\"]\n[hosts.b]\naddress = \"198.18.0.1\"\n", "line 3: hosts.b: not a host of any role"},
		{"bad address", "[roles]\npeers = [\"a\"]\n[hosts.a]\naddress = \"a.example\"\n", "line 4: hosts.a.address"},
		{"bad allow_from", "[trust]\nallow_from = [\"10.0.0.0/33\"]\n[roles]\npeers = [\"a\"]\n", "line 2: trust.allow_from: cidr: want an address or a prefix"},
		{"allow_from not a list", "[trust]\nallow_from = \"10.0.0.0/8\"\n[roles]\npeers = [\"a\"]\n", "line 2"},
		{"bad rate", "max_upload_rate = \"1;reboot\"\n[roles]\npeers = [\"a\"]\n", "bad rate"},
		{"rate with no unit murder knows", "max_upload_rate = \"10 furlongs\"\n[roles]\npeers = [\"a\"]\n", "bad rate"},
		{"syntax", "[roles\npeers = [\"a\"]\n", "fleet: line 2: expected"},
		{"peers wrong type", "[roles]\npeers = \"a\"\n", "line 2"},
		{"bad datacenter", "[roles]\npeers = [\"a\"]\n[hosts.a]\ndatacenter = \"east coast\"\n", "line 4: hosts.a.datacenter: tracker: datacenter name"},
		{"rack without datacenter", "[roles]\npeers = [\"a\"]\n[hosts.a]\nrack = \"r1\"\n", "line 4: hosts.a.rack: a rack needs a datacenter"},
		{"group of unknown host", "[roles]\npeers = [\"a\"]\n[datacenters.east]\nhosts = [\"b\"]\n", `line 3: datacenters.east.hosts: "b" is not a host of any role`},
		{"host in two groups", "[roles]\npeers = [\"a\"]\n[datacenters.east]\nhosts = [\"a\"]\n[datacenters.west]\nhosts = [\"a\"]\n", `host "a" is already in`},
		{"bad group name", "[roles]\npeers = [\"a\"]\n[datacenters.\"e/1\"]\nhosts = [\"a\"]\n", "datacenter name"},
		{"bad rack name", "[roles]\npeers = [\"a\"]\n[datacenters.east]\nracks.\"r 1\" = [\"a\"]\n", "rack name"},
		{"unknown group key", "[roles]\npeers = [\"a\"]\n[datacenters.east]\nhost = [\"a\"]\n", "line 4: unknown key datacenters.east.host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInventory([]byte(tt.toml))
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestParseInventoryTrackers(t *testing.T) {
	inv, err := ParseInventory([]byte(`[tracker]
store = "redis://:secret@10.0.0.9:6379/2"

[roles]
tracker = ["t1", "deploy@t2:2222"]
peers = ["a", "b"]

[hosts.t2]
address = "198.18.0.22"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{{Spec: "t1", Name: "t1"}, {Spec: "deploy@t2:2222", User: "deploy", Name: "t2", Port: 2222, Announce: "198.18.0.22"}}
	if !reflect.DeepEqual(inv.Trackers, want) || !reflect.DeepEqual(inv.Tracker, want[0]) {
		t.Errorf("got trackers %+v (first %+v), want %+v", inv.Trackers, inv.Tracker, want)
	}
	if inv.TrackerStore != "redis://:secret@10.0.0.9:6379/2" {
		t.Errorf("got store %q", inv.TrackerStore)
	}
	if got := len(inv.All()); got != 4 {
		t.Errorf("All: got %d hosts, want 4 (two trackers, two peers; the seeder is the first peer)", got)
	}
	inv, err = ParseInventory([]byte("[tracker]\nstore = \"memory\"\n[roles]\ntracker = \"t1\"\npeers = [\"a\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if inv.TrackerStore != "" || len(inv.Trackers) != 1 || inv.Tracker.Name != "t1" {
		t.Errorf("memory store, one tracker: got store %q, trackers %+v", inv.TrackerStore, inv.Trackers)
	}
}

func TestParseHost(t *testing.T) {
	tests := []struct {
		spec string
		want Host
	}{
		{"w01", Host{Name: "w01"}},
		{"deploy@w02:2222", Host{User: "deploy", Name: "w02", Port: 2222}},
		{"198.18.0.1:22", Host{Name: "198.18.0.1", Port: 22}},
		{"[::1]:2022", Host{Name: "::1", Port: 2022}},
		{"[::1]", Host{Name: "::1"}},
		{"root@::1", Host{User: "root", Name: "::1"}},
		{"a.b-c.example", Host{Name: "a.b-c.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseHost(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Spec = tt.spec
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseInventory(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.toml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := ParseInventory(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		if len(inv.Peers) == 0 || inv.TrackerPort < 1 || !strings.HasPrefix(inv.TempPath, "/") {
			t.Errorf("accepted an invalid inventory: %+v", inv)
		}
		for _, h := range inv.All() {
			if h.Name == "" || strings.ContainsAny(h.Name, " '\";") {
				t.Errorf("accepted bad host %+v", h)
			}
		}
	})
}

func TestParseInventoryDatacenters(t *testing.T) {
	inv, err := LoadInventory(filepath.Join("testdata", "datacenters.toml"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, h := range append([]Host{inv.Tracker, inv.Seeder}, inv.Peers...) {
		got[h.Name] = h.Datacenter + "/" + h.Rack
	}
	want := map[string]string{"tracker01": "east/", "seeder01": "east/", "e1": "east/r1", "e2": "east/",
		"w1": "west/", "w2": "west/r9", "x1": "north/"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("places: got %v, want %v", got, want)
	}
}

func TestExampleInventory(t *testing.T) {
	inv, err := LoadInventory(filepath.Join("..", "..", "murder.toml.example"))
	if err != nil {
		t.Fatalf("murder.toml.example: %v", err)
	}
	if inv.Tracker.Name != "tracker01" || len(inv.Peers) != 4 || inv.Peers[2].Announce != "198.18.0.13" {
		t.Errorf("murder.toml.example parsed as %+v", inv)
	}
}

// TestBadInventoryFiles checks each testdata/bad-*.toml against the error
// named on its first line ("# want: ...").
func TestBadInventoryFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "bad-*.toml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("first line %q does not say what error is wanted", first)
			}
			_, err = LoadInventory(name)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want an error containing %q", err, want)
			}
		})
	}
}
