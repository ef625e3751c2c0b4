// Package fleet runs commands on many hosts over SSH: the murder.toml
// inventory, an SSH runner that verifies host keys against known_hosts, file
// copies that need nothing but a POSIX shell on the remote side, and a
// bounded fan-out that reports per host.
package fleet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/cidr"
	"github.com/murder-deploy/murder/internal/tracker"
)

// Defaults for an inventory that leaves a value out.
const (
	DefaultRemoteMurderPath = "/opt/murder"
	// DefaultTempPath is a directory of murder's own, made 0700, and not
	// /tmp itself: files of fixed names are written there, which other
	// users must not be able to plant links at.
	DefaultTempPath       = "/tmp/murder"
	DefaultTrackerPort    = 8998
	DefaultSeedTime       = 30 * time.Second
	DefaultSSHPort        = 22
	DefaultConcurrency    = 100
	DefaultConnectTimeout = 10 * time.Second
	DefaultCommandTimeout = 10 * time.Minute
	DefaultPeerTimeout    = time.Hour
)

// Inventory is a parsed murder.toml: where murder lives on the hosts, how to
// reach them, and which host plays which role.
type Inventory struct {
	RemoteMurderPath string        // folder on each host; the binary is RemoteMurderPath/murder
	TempPath         string        // temp path on each host (artifacts, pid and log files)
	TrackerPort      int           // port the tracker listens on
	SeedTime         time.Duration // how long peers seed on after they finish
	PeerTimeout      time.Duration // bound on one host's whole download
	MaxUploadRate    string        // passed to seed and peer as --max-upload-rate ("" = no limit)
	MaxDownloadRate  string        // passed to peer as --max-download-rate ("" = no limit)
	// MetricsPort, when not 0, has every peer serve Prometheus metrics at
	// :MetricsPort/metrics and the seeder at :MetricsPort+1/metrics, so
	// that a host that seeds and downloads serves both.
	MetricsPort int

	SSH SSHConfig

	// Trust says how releases are signed and checked (murder.toml [trust]).
	Trust Trust

	// TrackerStore is where the trackers keep their swarms, passed to
	// murder tracker as --store: "" (memory) or a Redis URL, which
	// several trackers need so that they share the swarms.
	TrackerStore string

	Tracker  Host   // runs the tracker: the first of Trackers
	Trackers []Host // every tracker host; the torrents list them all
	Seeder   Host   // holds the files and seeds them
	Peers    []Host // receive the files
}

// Trust is murder.toml's [trust] table. SignKey and AllowedSigners are
// both needed for a signed deploy; neither means none.
type Trust struct {
	// SignKey is the path, on the seeder host, of the OpenSSH private key
	// (without a passphrase) that murder create signs the .torrent with.
	SignKey string
	// AllowedSigners is the path, on this machine, of the OpenSSH
	// allowed_signers file that every peer checks the signature against;
	// distribute-files copies it beside the binary (AllowedSignersPath).
	AllowedSigners string
	// AllowFrom lists the only addresses the tracker, the seeder and the
	// peers accept connections from (and the peers dial), as CIDRs; empty
	// allows any. Passed to each as --allow-from.
	AllowFrom []string
}

// Signed reports whether deploys are signed and checked.
func (t Trust) Signed() bool { return t.SignKey != "" }

// AllowedSignersPath is where the allowed_signers file is on the hosts.
func (inv *Inventory) AllowedSignersPath() string {
	return strings.TrimSuffix(inv.RemoteMurderPath, "/") + "/allowed_signers"
}

// Host is one entry of the inventory, written [user@]host[:port].
type Host struct {
	Spec     string // as written in the inventory
	User     string // "" = the ssh section's user
	Name     string // host name or address to connect to
	Port     int    // 0 = the ssh section's port
	Announce string // address announced to the tracker; "" = the address SSH connected to
	// Datacenter and Rack say where the host runs ("" = unknown, left to
	// the tracker's topology); passed to seed and peer as --datacenter
	// and --rack.
	Datacenter, Rack string
}

// String returns the host as written in the inventory.
func (h Host) String() string { return h.Spec }

// All returns every distinct host of the inventory: trackers, seeder, then
// the peers, each once.
func (inv *Inventory) All() []Host {
	var out []Host
	seen := make(map[string]bool)
	for _, h := range append(append(append([]Host{inv.Tracker}, inv.Trackers...), inv.Seeder), inv.Peers...) {
		k := h.key()
		if !seen[k] {
			seen[k] = true
			out = append(out, h)
		}
	}
	return out
}

func (h Host) key() string { return h.User + "@" + h.Name + ":" + strconv.Itoa(h.Port) }

// Binary returns the path of the murder binary on the hosts.
func (inv *Inventory) Binary() string {
	return strings.TrimSuffix(inv.RemoteMurderPath, "/") + "/murder"
}

// file mirrors murder.toml; every field has a toml tag so that unknown keys
// are reported.
type file struct {
	RemoteMurderPath string              `toml:"remote_murder_path"`
	TempPath         string              `toml:"temp_path"`
	TrackerPort      *int                `toml:"tracker_port"`
	SeedTime         string              `toml:"seed_time"`
	PeerTimeout      string              `toml:"peer_timeout"`
	MaxUploadRate    string              `toml:"max_upload_rate"`
	MaxDownloadRate  string              `toml:"max_download_rate"`
	MetricsPort      *int                `toml:"metrics_port"`
	SSH              sshFile             `toml:"ssh"`
	Tracker          trackerFile         `toml:"tracker"`
	Trust            trustFile           `toml:"trust"`
	Roles            rolesFile           `toml:"roles"`
	Hosts            map[string]hostFile `toml:"hosts"`
	Datacenters      map[string]dcFile   `toml:"datacenters"`
}

// dcFile is a group of hosts in one datacenter, and racks of its hosts.
type dcFile struct {
	Hosts []string            `toml:"hosts"`
	Racks map[string][]string `toml:"racks"`
}

type sshFile struct {
	User           string   `toml:"user"`
	Port           *int     `toml:"port"`
	IdentityFiles  []string `toml:"identity_files"`
	KnownHosts     string   `toml:"known_hosts"`
	Concurrency    *int     `toml:"concurrency"`
	ConnectTimeout string   `toml:"connect_timeout"`
	CommandTimeout string   `toml:"command_timeout"`
	Config         string   `toml:"config"`
	Sudo           bool     `toml:"sudo"`
}

type trustFile struct {
	SignKey        string   `toml:"sign_key"`
	AllowedSigners string   `toml:"allowed_signers"`
	AllowFrom      []string `toml:"allow_from"`
}

type trackerFile struct {
	Store string `toml:"store"`
}

type rolesFile struct {
	Tracker hostSpecs `toml:"tracker"`
	Seeder  string    `toml:"seeder"`
	Peers   []string  `toml:"peers"`
}

// hostSpecs is one host spec or a list of them.
type hostSpecs []string

// UnmarshalTOML implements toml.Unmarshaler.
func (h *hostSpecs) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*h = hostSpecs{v}
		return nil
	case []any:
		*h = nil
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("want a host or a list of hosts, got an element of type %T", e)
			}
			*h = append(*h, s)
		}
		return nil
	}
	return fmt.Errorf("want a host or a list of hosts, got %T", v)
}

type hostFile struct {
	Address    string `toml:"address"`
	Datacenter string `toml:"datacenter"`
	Rack       string `toml:"rack"`
}

// LoadInventory reads and checks a murder.toml file.
func LoadInventory(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	inv, err := ParseInventory(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return inv, nil
}

// ParseInventory parses murder.toml content. Unknown keys, bad host specs,
// bad durations and missing roles are errors that say where they are.
func ParseInventory(data []byte) (*Inventory, error) {
	var f file
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			// The message may quote the bad token, newline and all.
			msg := strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(pe.Message)
			return nil, fmt.Errorf("fleet: line %d: %s", pe.Position.Line, msg)
		}
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0].String()
		if line := keyLine(data, und[0]); line > 0 {
			return nil, fmt.Errorf("fleet: line %d: unknown key %s", line, k)
		}
		return nil, fmt.Errorf("fleet: unknown key %s", k)
	}
	lineOf := func(key string) string {
		if l := keyLine(data, splitKey(key)); l > 0 {
			return fmt.Sprintf("line %d: ", l)
		}
		return ""
	}

	inv := &Inventory{
		RemoteMurderPath: f.RemoteMurderPath,
		TempPath:         f.TempPath,
		TrackerPort:      DefaultTrackerPort,
		SeedTime:         DefaultSeedTime,
		PeerTimeout:      DefaultPeerTimeout,
		MaxUploadRate:    f.MaxUploadRate,
		MaxDownloadRate:  f.MaxDownloadRate,
		SSH: SSHConfig{
			User:           f.SSH.User,
			Port:           DefaultSSHPort,
			IdentityFiles:  f.SSH.IdentityFiles,
			KnownHosts:     f.SSH.KnownHosts,
			Concurrency:    DefaultConcurrency,
			ConnectTimeout: DefaultConnectTimeout,
			CommandTimeout: DefaultCommandTimeout,
			Config:         f.SSH.Config,
			Sudo:           f.SSH.Sudo,
		},
	}
	if inv.RemoteMurderPath == "" {
		inv.RemoteMurderPath = DefaultRemoteMurderPath
	}
	if inv.TempPath == "" {
		inv.TempPath = DefaultTempPath
	}
	for key, p := range map[string]string{"remote_murder_path": inv.RemoteMurderPath, "temp_path": inv.TempPath} {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("fleet: %s%s must be an absolute path, got %q", lineOf(key), key, p)
		}
	}
	inv.Trust = Trust{SignKey: f.Trust.SignKey, AllowedSigners: f.Trust.AllowedSigners}
	if (inv.Trust.SignKey == "") != (inv.Trust.AllowedSigners == "") {
		return nil, fmt.Errorf("fleet: %s[trust] needs both sign_key (the key on the seeder) and allowed_signers (the file the peers check against)", lineOf("trust"))
	}
	if k := inv.Trust.SignKey; k != "" && !strings.HasPrefix(k, "/") {
		return nil, fmt.Errorf("fleet: %strust.sign_key must be an absolute path on the seeder, got %q", lineOf("trust.sign_key"), k)
	}
	if f.TrackerPort != nil {
		if *f.TrackerPort < 1 || *f.TrackerPort > 65535 {
			return nil, fmt.Errorf("fleet: %stracker_port %d out of range 1-65535", lineOf("tracker_port"), *f.TrackerPort)
		}
		inv.TrackerPort = *f.TrackerPort
	}
	if f.MetricsPort != nil {
		if *f.MetricsPort < 1 || *f.MetricsPort > 65534 {
			return nil, fmt.Errorf("fleet: %smetrics_port %d out of range 1-65534 (the seeder uses metrics_port + 1)", lineOf("metrics_port"), *f.MetricsPort)
		}
		inv.MetricsPort = *f.MetricsPort
	}
	durations := []struct {
		key string
		val string
		dst *time.Duration
	}{
		{"seed_time", f.SeedTime, &inv.SeedTime},
		{"peer_timeout", f.PeerTimeout, &inv.PeerTimeout},
		{"ssh.connect_timeout", f.SSH.ConnectTimeout, &inv.SSH.ConnectTimeout},
		{"ssh.command_timeout", f.SSH.CommandTimeout, &inv.SSH.CommandTimeout},
	}
	for _, d := range durations {
		if d.val == "" {
			continue
		}
		v, err := time.ParseDuration(d.val)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("fleet: %s%s: bad duration %q (want e.g. \"30s\", \"5m\")", lineOf(d.key), d.key, d.val)
		}
		*d.dst = v
	}
	if inv.SSH.ConnectTimeout == 0 || inv.PeerTimeout == 0 || inv.SSH.CommandTimeout == 0 {
		return nil, errors.New("fleet: timeouts must be greater than zero")
	}
	if f.SSH.Port != nil {
		if *f.SSH.Port < 1 || *f.SSH.Port > 65535 {
			return nil, fmt.Errorf("fleet: %sssh.port %d out of range 1-65535", lineOf("ssh.port"), *f.SSH.Port)
		}
		inv.SSH.Port = *f.SSH.Port
	}
	if f.SSH.Concurrency != nil {
		if *f.SSH.Concurrency < 1 {
			return nil, fmt.Errorf("fleet: %sssh.concurrency must be at least 1, got %d", lineOf("ssh.concurrency"), *f.SSH.Concurrency)
		}
		inv.SSH.Concurrency = *f.SSH.Concurrency
	}
	for _, r := range []struct{ key, val string }{{"max_upload_rate", f.MaxUploadRate}, {"max_download_rate", f.MaxDownloadRate}} {
		if r.val == "" {
			continue
		}
		if _, err := bytesize.ParseRate(r.val); err != nil || strings.ContainsAny(r.val, " \t\n'\"\\$`;&|<>") {
			return nil, fmt.Errorf("fleet: %s%s: bad rate %q: want bytes per second like 10MB, 50MiB or 64Mbit", lineOf(r.key), r.key, r.val)
		}
	}
	if len(f.Trust.AllowFrom) > 0 {
		l, err := cidr.Parse(f.Trust.AllowFrom...)
		if err != nil {
			return nil, fmt.Errorf("fleet: %strust.allow_from: %w", lineOf("trust.allow_from"), err)
		}
		inv.Trust.AllowFrom = l.Strings()
	}

	if len(f.Roles.Peers) == 0 {
		return nil, errors.New("fleet: roles.peers is empty: list the hosts that receive the files")
	}
	seen := make(map[string]bool)
	for _, spec := range f.Roles.Peers {
		h, err := ParseHost(spec)
		if err != nil {
			return nil, fmt.Errorf("fleet: %sroles.peers: %w", lineOf("roles.peers"), err)
		}
		if seen[h.key()] {
			return nil, fmt.Errorf("fleet: %sroles.peers: %q listed twice", lineOf("roles.peers"), spec)
		}
		seen[h.key()] = true
		inv.Peers = append(inv.Peers, h)
	}
	inv.Tracker, inv.Seeder = inv.Peers[0], inv.Peers[0]
	inv.Trackers = nil
	tseen := make(map[string]bool)
	for _, spec := range f.Roles.Tracker {
		h, err := ParseHost(spec)
		if err != nil {
			return nil, fmt.Errorf("fleet: %sroles.tracker: %w", lineOf("roles.tracker"), err)
		}
		if tseen[h.key()] {
			return nil, fmt.Errorf("fleet: %sroles.tracker: %q listed twice", lineOf("roles.tracker"), spec)
		}
		tseen[h.key()] = true
		inv.Trackers = append(inv.Trackers, h)
	}
	if len(inv.Trackers) == 0 {
		inv.Trackers = []Host{inv.Tracker}
	}
	inv.Tracker = inv.Trackers[0]
	inv.TrackerStore = f.Tracker.Store
	if inv.TrackerStore == "memory" {
		inv.TrackerStore = ""
	}
	if inv.TrackerStore != "" {
		if _, err := tracker.ParseRedisURL(inv.TrackerStore); err != nil {
			return nil, fmt.Errorf("fleet: %stracker.store: %w", lineOf("tracker.store"), err)
		}
	}
	if len(inv.Trackers) > 1 && inv.TrackerStore == "" {
		return nil, fmt.Errorf("fleet: %sroles.tracker: %d trackers keep separate swarms in memory; set [tracker] store = \"redis://HOST:PORT\" so that they share them",
			lineOf("roles.tracker"), len(inv.Trackers))
	}
	if f.Roles.Seeder != "" {
		if inv.Seeder, err = ParseHost(f.Roles.Seeder); err != nil {
			return nil, fmt.Errorf("fleet: %sroles.seeder: %w", lineOf("roles.seeder"), err)
		}
	}

	known := make(map[string]bool)
	for _, h := range inv.All() {
		known[h.Name] = true
	}
	for name, hf := range f.Hosts {
		if !known[name] {
			return nil, fmt.Errorf("fleet: %shosts.%s: not a host of any role", lineOfKey(data, "hosts", name), name)
		}
		if hf.Address != "" {
			if _, err := netipParse(hf.Address); err != nil {
				return nil, fmt.Errorf("fleet: %shosts.%s.address: %q is not an IP address", lineOfKey(data, "hosts", name, "address"), name, hf.Address)
			}
		}
	}
	places, err := hostPlaces(data, &f, known)
	if err != nil {
		return nil, err
	}
	apply := func(h *Host) {
		if hf, ok := f.Hosts[h.Name]; ok {
			h.Announce = hf.Address
		}
		h.Datacenter, h.Rack = places[h.Name].Datacenter, places[h.Name].Rack
	}
	apply(&inv.Tracker)
	for i := range inv.Trackers {
		apply(&inv.Trackers[i])
	}
	apply(&inv.Seeder)
	for i := range inv.Peers {
		apply(&inv.Peers[i])
	}
	return inv, nil
}

func netipParse(s string) (net.IP, error) {
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, errors.New("bad address")
	}
	return ip, nil
}

// ParseHost parses a host spec [user@]host[:port]; IPv6 addresses with a
// port are written in brackets ([::1]:2222).
func ParseHost(spec string) (Host, error) {
	h := Host{Spec: spec}
	if spec == "" {
		return h, errors.New("empty host")
	}
	if strings.ContainsAny(spec, " \t\r\n/'\"\\$`;&|<>()") {
		return h, fmt.Errorf("bad host %q: unexpected character", spec)
	}
	rest := spec
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		h.User, rest = rest[:i], rest[i+1:]
		if h.User == "" || strings.Contains(h.User, "@") {
			return h, fmt.Errorf("bad host %q: empty or bad user", spec)
		}
	}
	switch {
	case strings.HasPrefix(rest, "["):
		end := strings.Index(rest, "]")
		if end < 0 {
			return h, fmt.Errorf("bad host %q: missing ]", spec)
		}
		h.Name = rest[1:end]
		if net.ParseIP(h.Name) == nil {
			return h, fmt.Errorf("bad host %q: %q in brackets is not an IP address", spec, h.Name)
		}
		tail := rest[end+1:]
		if tail != "" {
			if !strings.HasPrefix(tail, ":") {
				return h, fmt.Errorf("bad host %q: unexpected %q after ]", spec, tail)
			}
			p, err := parsePort(tail[1:])
			if err != nil {
				return h, fmt.Errorf("bad host %q: %w", spec, err)
			}
			h.Port = p
		}
	case strings.Count(rest, ":") > 1:
		if net.ParseIP(rest) == nil {
			return h, fmt.Errorf("bad host %q: write an IPv6 address with a port as [addr]:port", spec)
		}
		h.Name = rest
	default:
		name, port, found := strings.Cut(rest, ":")
		h.Name = name
		if found {
			p, err := parsePort(port)
			if err != nil {
				return h, fmt.Errorf("bad host %q: %w", spec, err)
			}
			h.Port = p
		}
	}
	if h.Name == "" {
		return h, fmt.Errorf("bad host %q: empty host name", spec)
	}
	return h, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return p, nil
}

func lineOfKey(data []byte, key ...string) string {
	if l := keyLine(data, key); l > 0 {
		return fmt.Sprintf("line %d: ", l)
	}
	return ""
}

// keyLine finds the line where a key is set, by following table headers and
// key assignments. It returns 0 when the key is not found.
func keyLine(data []byte, key []string) int {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var table []string
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		if strings.HasPrefix(s, "[") {
			s = strings.TrimLeft(s, "[")
			if i := strings.Index(s, "]"); i >= 0 {
				s = s[:i]
			}
			table = splitKey(s)
			if hasPrefix(table, key) && len(table) == len(key) {
				return line
			}
			continue
		}
		k, _, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		full := append(append([]string(nil), table...), splitKey(k)...)
		if hasPrefix(full, key) {
			return line
		}
	}
	return 0
}

func hasPrefix(full, key []string) bool {
	if len(key) == 0 || len(full) < len(key) {
		return false
	}
	for i := range key {
		if full[i] != key[i] {
			return false
		}
	}
	return true
}

// splitKey splits a dotted TOML key into its parts, honouring quotes.
func splitKey(k string) []string {
	var parts []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		case c == ' ' || c == '\t':
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}

// Roles a host may have, for Select.
const (
	RoleTracker = "tracker"
	RoleSeeder  = "seeder"
	RolePeers   = "peers"
)

// Select returns a test for the hosts that limit and roles choose: a host
// is chosen when limit is empty or names it (as written in the inventory,
// or by its name alone), and roles is empty or holds one of its roles
// (tracker, seeder, peers). A name in limit that is no host of the
// inventory, or an unknown role, is an error.
func (inv *Inventory) Select(limit, roles []string) (func(Host) bool, error) {
	names := map[string]bool{}
	for _, l := range limit {
		for _, n := range strings.Split(l, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names[n] = true
			}
		}
	}
	for n := range names {
		found := false
		for _, h := range inv.All() {
			if h.Spec == n || h.Name == n {
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("fleet: --limit %s: no such host in the inventory", n)
		}
	}
	want := map[string]bool{}
	for _, r := range roles {
		for _, n := range strings.Split(r, ",") {
			switch n = strings.TrimSpace(n); n {
			case RoleTracker, RoleSeeder, RolePeers:
				want[n] = true
			case "peer":
				want[RolePeers] = true
			case "":
			default:
				return nil, fmt.Errorf("fleet: --role %s: want tracker, seeder or peers", n)
			}
		}
	}
	return func(h Host) bool {
		if len(names) > 0 && !names[h.Spec] && !names[h.Name] {
			return false
		}
		if len(want) == 0 {
			return true
		}
		if want[RoleSeeder] && h.key() == inv.Seeder.key() {
			return true
		}
		if want[RoleTracker] {
			for _, t := range append([]Host{inv.Tracker}, inv.Trackers...) {
				if t.key() == h.key() {
					return true
				}
			}
		}
		if want[RolePeers] {
			for _, p := range inv.Peers {
				if p.key() == h.key() {
					return true
				}
			}
		}
		return false
	}, nil
}

// hostPlaces returns the place of each host name from the [datacenters]
// groups and the hosts' own datacenter and rack keys, which win. Every
// name must be a host of a role and be given one place only; names are
// those murder's tracker accepts.
func hostPlaces(data []byte, f *file, known map[string]bool) (map[string]tracker.Place, error) {
	places := make(map[string]tracker.Place)
	for dc, g := range f.Datacenters {
		if err := tracker.CheckPlaceName("datacenter", dc); err != nil {
			return nil, fmt.Errorf("fleet: %sdatacenters.%s: %w", lineOfKey(data, "datacenters", dc), dc, err)
		}
		set := func(name, rack, key string) error {
			if !known[name] {
				return fmt.Errorf("fleet: %s%s: %q is not a host of any role", lineOfKey(data, "datacenters", dc), key, name)
			}
			if p, dup := places[name]; dup && (p.Datacenter != dc || p.Rack != "" && rack != "") {
				return fmt.Errorf("fleet: %s%s: host %q is already in %s", lineOfKey(data, "datacenters", dc), key, name, p)
			}
			if p := places[name]; rack == "" && p.Rack != "" {
				rack = p.Rack // listed in a rack before the datacenter's hosts
			}
			places[name] = tracker.Place{Datacenter: dc, Rack: rack}
			return nil
		}
		for _, name := range g.Hosts {
			if err := set(name, "", "datacenters."+dc+".hosts"); err != nil {
				return nil, err
			}
		}
		for rack, names := range g.Racks {
			if err := tracker.CheckPlaceName("rack", rack); err != nil {
				return nil, fmt.Errorf("fleet: %sdatacenters.%s.racks.%s: %w", lineOfKey(data, "datacenters", dc), dc, rack, err)
			}
			for _, name := range names {
				if err := set(name, rack, "datacenters."+dc+".racks."+rack); err != nil {
					return nil, err
				}
			}
		}
	}
	for name, hf := range f.Hosts {
		if hf.Datacenter == "" && hf.Rack == "" {
			continue
		}
		p := places[name]
		if hf.Datacenter != "" {
			if err := tracker.CheckPlaceName("datacenter", hf.Datacenter); err != nil {
				return nil, fmt.Errorf("fleet: %shosts.%s.datacenter: %w", lineOfKey(data, "hosts", name, "datacenter"), name, err)
			}
			if hf.Datacenter != p.Datacenter {
				p = tracker.Place{Datacenter: hf.Datacenter}
			}
		}
		if hf.Rack != "" {
			if err := tracker.CheckPlaceName("rack", hf.Rack); err != nil {
				return nil, fmt.Errorf("fleet: %shosts.%s.rack: %w", lineOfKey(data, "hosts", name, "rack"), name, err)
			}
			if p.Datacenter == "" {
				return nil, fmt.Errorf("fleet: %shosts.%s.rack: a rack needs a datacenter (hosts.%s.datacenter, or a [datacenters] group)", lineOfKey(data, "hosts", name, "rack"), name, name)
			}
			p.Rack = hf.Rack
		}
		places[name] = p
	}
	return places, nil
}
