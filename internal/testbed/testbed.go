// Package testbed builds a multi-host test bed on one Linux machine for
// murder's multi-host tests and benchmarks.
//
// Each host is a network namespace with one interface (eth0) joined by a
// veth pair to a bridge that lives in a namespace of its own, so nothing
// touches the machine's own network. Hosts get addresses from 198.18.0.0/15
// (reserved for network benchmarking) and no route anywhere else. Each
// host's link can be capped (tc tbf on both directions), delayed and made
// lossy, and each host has a private mount namespace in which a few
// directories (by default /tmp, /srv/murder and /usr/local/murder) are
// replaced by directories of its own, so hosts do not see each other's
// files.
//
// Building a bed needs root and the ip, tc, iptables-restore, nsenter,
// unshare and mount commands. Every name a bed creates starts with
// "mt<pid>x<n>", and New removes what killed earlier runs left behind
// (names of that form whose process is gone), so a bed is torn down on
// Close, and at the latest at the start of the next run.
package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Link describes one host's network link. Zero values mean no limit, no
// delay and no loss.
type Link struct {
	// Up caps what the host sends, in bytes per second (tc tbf on eth0).
	Up int64
	// Down caps what the host receives, in bytes per second (tc tbf on the
	// bridge side of the host's veth pair).
	Down int64
	// Latency delays every packet that arrives at the host, so the round
	// trip between two hosts with the same Latency is twice this value.
	// The kernel here has no netem, so packets are held in an nfqueue by
	// the process that built the bed; it needs that process to stay alive.
	Latency time.Duration
	// Loss is the fraction (0 to 1) of arriving packets that are dropped
	// at random.
	Loss float64
}

// Config configures a test bed. The zero value gives one host without
// limits.
type Config struct {
	// Hosts is the number of hosts; 0 means 1.
	Hosts int
	// Link applies to every host; Host.SetLink changes one later.
	Link Link
	// Dirs are absolute directories that each host sees as a private,
	// initially empty directory of its own. Missing directories are
	// created on the machine as empty mount points (and left there).
	// Empty means /tmp, /srv/murder and /usr/local/murder.
	Dirs []string
	// Share lists absolute paths (files or directories, for example the
	// murder binary under a test's temporary directory) that stay visible
	// at the same path in every host even when they lie in one of Dirs.
	Share []string
	// Datacenters, when set, splits the bed into datacenters joined by a
	// router (see Datacenter); Hosts is then their sum and is ignored.
	Datacenters []Datacenter
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Bed is a running test bed. Close tears it down.
type Bed struct {
	name   string // mt<pid>x<seq>
	brNS   string // the first datacenter's bridge
	dcs    []*dc  // nil without Config.Datacenters
	rtNS   string // the router joining dcs
	base   string
	hosts  []*Host
	log    *slog.Logger
	closed atomic.Bool
}

const (
	namePrefix = "mt"
	baseDirTag = "murder-testbed-"
)

// New builds a test bed of cfg.Hosts hosts and returns once every host is
// up. On error, everything built so far is removed.
func New(ctx context.Context, cfg Config) (*Bed, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	n := cfg.Hosts
	if len(cfg.Datacenters) > 0 {
		var err error
		if n, err = checkDatacenters(cfg.Datacenters); err != nil {
			return nil, err
		}
	}
	if n <= 0 {
		n = 1
	}
	if n > 1000 {
		return nil, fmt.Errorf("testbed: %d hosts is too many (at most 1000)", n)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dirs := cfg.Dirs
	if len(dirs) == 0 {
		dirs = []string{"/tmp", "/srv/murder", "/usr/local/murder"}
	}
	dirs, err := cleanAbs(dirs)
	if err != nil {
		return nil, err
	}
	share, err := cleanAbs(cfg.Share)
	if err != nil {
		return nil, err
	}
	if err := checkLink(cfg.Link); err != nil {
		return nil, err
	}
	CleanLeftovers(ctx, log)
	if err := raiseNeighbourLimits(n); err != nil {
		return nil, err
	}

	// The temporary directory's random part makes the name unique among
	// the beds of this process.
	base, err := os.MkdirTemp("", fmt.Sprintf("%s%s%dx*", baseDirTag, namePrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	name := strings.TrimPrefix(filepath.Base(base), baseDirTag)
	b := &Bed{name: name, brNS: name + "br", base: base, log: log}
	if err := b.build(ctx, n, cfg.Link, cfg.Datacenters, dirs, share); err != nil {
		b.Close()
		return nil, err
	}
	log.Debug("testbed up", "name", name, "hosts", n, "base", base)
	return b, nil
}

// neighbourSysctl is where the kernel's IPv4 neighbour (ARP) table limits
// live; tests point it elsewhere.
var neighbourSysctl = "/proc/sys/net/ipv4/neigh/default"

// raiseNeighbourLimits makes room in the kernel's neighbour table for a
// bed of n hosts that all talk to each other. The table and its limits
// are shared by every network namespace, so a full mesh of n hosts needs
// about n*n entries, more than the default hard limit (gc_thresh3, 1024)
// from n=33 on. Past it the kernel cannot resolve new neighbours: in
// 32-peer fleet runs one host's dials all timed out for 5-10 s at the
// start (table_fulls in /proc/net/stat/arp_cache). Limits are only ever
// raised, never lowered, so beds built side by side do not undo each
// other; the raised values stay after the bed is gone.
func raiseNeighbourLimits(n int) error {
	want := 2*n*n + 256
	for i, name := range []string{"gc_thresh1", "gc_thresh2", "gc_thresh3"} {
		v := want >> (2 - i) // thresh1 < thresh2 < thresh3, as the defaults are
		path := filepath.Join(neighbourSysctl, name)
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("testbed: neighbour table limits: %w", err)
		}
		cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("testbed: neighbour table limits: %s: %w", path, err)
		}
		if cur >= v {
			continue
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(v)), 0o644); err != nil {
			return fmt.Errorf("testbed: neighbour table limits: %w", err)
		}
	}
	return nil
}

// Available reports why a bed cannot be built on this machine, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("testbed: needs root")
	}
	for _, tool := range []string{"ip", "tc", "iptables-restore", "nsenter", "unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("testbed: %s not found: %w", tool, err)
		}
	}
	return nil
}

func cleanAbs(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("testbed: path %q is not absolute", p)
		}
		out = append(out, filepath.Clean(p))
	}
	return out, nil
}

func checkLink(l Link) error {
	if l.Up < 0 || l.Down < 0 || l.Latency < 0 {
		return fmt.Errorf("testbed: negative link value in %+v", l)
	}
	if l.Loss < 0 || l.Loss >= 1 {
		return fmt.Errorf("testbed: loss %v out of range [0, 1)", l.Loss)
	}
	return nil
}

func (b *Bed) build(ctx context.Context, n int, link Link, dcs []Datacenter, dirs, share []string) error {
	if err := b.buildBridge(ctx, b.brNS); err != nil {
		return err
	}
	if len(dcs) > 0 {
		if err := b.buildDatacenters(ctx, dcs); err != nil {
			return err
		}
	}
	for i := range n {
		h := &Host{bed: b, index: i, ns: fmt.Sprintf("%sh%d", b.name, i), dir: filepath.Join(b.base, fmt.Sprintf("h%d", i))}
		h.addr, h.brNS, h.prefix = hostAddr(i), b.brNS, bedPrefix
		if len(dcs) > 0 {
			b.placeHost(h)
		}
		b.hosts = append(b.hosts, h)
		if err := h.build(ctx, dirs, share); err != nil {
			return err
		}
		if err := h.SetLink(ctx, link); err != nil {
			return err
		}
	}
	return nil
}

// buildBridge makes the namespace ns with a bridge br0.
func (b *Bed) buildBridge(ctx context.Context, ns string) error {
	if err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	if err := batch(ctx, ns, "ip", []string{
		"link add br0 type bridge",
		"link set br0 up",
		"link set lo up",
	}); err != nil {
		return err
	}
	// Bridged frames skip iptables: a switch does not filter, and the
	// hosts' own rules (loss, latency) sit in their namespaces. With
	// br_netfilter on (the default where Docker runs) every frame went
	// through the bridge namespace's hooks, about 5 % of the machine's
	// CPU time in a 32-host swarm. The setting is the namespace's own.
	return run(ctx, "ip", "netns", "exec", ns, "sh", "-c", bridgeNoFilter)
}

// bridgeNoFilter turns off the bridge netfilter calls of the namespace it
// runs in, where the kernel has them.
const bridgeNoFilter = `for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ ! -e "$f" ] || echo 0 > "$f"; done`

// bedPrefix is the range of a bed's addresses.
var bedPrefix = netip.MustParsePrefix("198.18.0.0/15")

// hostAddr gives host i the address 198.18.0.0 + i + 1 (in a /15).
func hostAddr(i int) netip.Addr {
	v := uint32(198)<<24 | uint32(18)<<16 + uint32(i+1)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Name is the bed's name, the prefix of every namespace it created.
func (b *Bed) Name() string { return b.name }

// Len is the number of hosts.
func (b *Bed) Len() int { return len(b.hosts) }

// Host returns host i (0-based).
func (b *Bed) Host(i int) *Host { return b.hosts[i] }

// Hosts returns all hosts in order.
func (b *Bed) Hosts() []*Host { return append([]*Host(nil), b.hosts...) }

// Close kills every process left in the bed's hosts, deletes its
// namespaces and removes the hosts' private directories. It is safe to call
// more than once.
func (b *Bed) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, h := range b.hosts {
		h.stopDelay()
	}
	var nss []string
	for _, h := range b.hosts {
		nss = append(nss, h.ns)
	}
	nss = append(nss, b.brNS)
	for _, d := range b.dcs[min(1, len(b.dcs)):] {
		nss = append(nss, d.brNS)
	}
	if b.rtNS != "" {
		nss = append(nss, b.rtNS)
	}
	for _, ns := range nss {
		if err := removeNetns(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range b.hosts {
		h.closeHolder()
	}
	if err := os.RemoveAll(b.base); err != nil {
		errs = append(errs, fmt.Errorf("testbed: %w", err))
	}
	return errors.Join(errs...)
}

// removeNetns kills every process in the named network namespace, then
// deletes it. A namespace that does not exist is not an error.
func removeNetns(ctx context.Context, ns string) error {
	if !netnsExists(ns) {
		return nil
	}
	for range 50 {
		pids := netnsPids(ctx, ns)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := run(ctx, "ip", "netns", "del", ns); err != nil && netnsExists(ns) {
		return err
	}
	return nil
}

func netnsExists(ns string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", ns))
	return err == nil
}

func netnsPids(ctx context.Context, ns string) []int {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// CleanLeftovers removes namespaces and directories that beds of processes
// that no longer exist left behind (a test binary that was killed). It only
// touches names of the form mt<pid>x<seq>... whose pid is not running. New
// calls it; it is exported for the command that starts a bed by hand.
func CleanLeftovers(ctx context.Context, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if pid, ok := leftoverPid(f[0]); ok && !alive(pid) {
				log.Debug("testbed: removing leftover namespace", "ns", f[0])
				removeNetns(ctx, f[0])
			}
		}
	}
	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), baseDirTag)
		if !ok || !e.IsDir() {
			continue
		}
		if pid, ok := leftoverPid(rest); ok && !alive(pid) {
			log.Debug("testbed: removing leftover directory", "dir", e.Name())
			os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
		}
	}
}

// leftoverPid parses names of the form mt<pid>x<seq>... .
func leftoverPid(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, false
	}
	digits, after, ok := strings.Cut(rest, "x")
	if !ok || digits == "" || after == "" || after[0] < '0' || after[0] > '9' {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// alive reports whether pid is a running process; a zombie (killed, not
// yet reaped) counts as gone.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return true
	}
	state := data[i+2]
	return state != 'Z' && state != 'X'
}

// run runs a command and returns its combined output in the error.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testbed: %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// batch runs ip or tc commands in namespace ns in one process.
func batch(ctx context.Context, ns, tool string, lines []string) error {
	cmd := exec.CommandContext(ctx, tool, "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("testbed: %s -n %s: %w: %s (commands: %q)", tool, ns, err, bytes.TrimSpace(out), lines)
	}
	return nil
}

// mountScript is run by the host's holder process inside its new mount
// namespace: it bind-mounts shared paths into the private directories,
// then the private directories over the real ones, then waits on stdin so
// the namespace lives as long as the bed (or the process that built it).
func mountScript(h *Host, dirs, share []string) (string, error) {
	// A directory inside another private one already lies in that one's
	// copy (Path maps both alike), so only the outermost are mounted; the
	// one holding the bed's base directory goes last, since covering it
	// hides the sources of the others.
	var sorted []string
	for _, d := range dirs {
		nested := false
		for _, o := range dirs {
			if o != d && (o == "/" || strings.HasPrefix(d, o+"/")) {
				nested = true
			}
		}
		if !nested && !slices.Contains(sorted, d) {
			sorted = append(sorted, d)
		}
	}
	holdsBase := func(d string) bool { return d == "/" || strings.HasPrefix(h.bed.base, d+"/") }
	sort.SliceStable(sorted, func(i, j int) bool { return !holdsBase(sorted[i]) && holdsBase(sorted[j]) })
	var sb strings.Builder
	sb.WriteString("set -e\n")
	// Shares first, so that they sit inside the private copies.
	for _, p := range share {
		hp := h.Path(p)
		if hp == p {
			continue // not under a private dir: visible anyway
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("testbed: share: %w", err)
		}
		if fi.IsDir() {
			if err := os.MkdirAll(hp, 0o755); err != nil {
				return "", fmt.Errorf("testbed: %w", err)
			}
		} else {
			if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
				return "", fmt.Errorf("testbed: %w", err)
			}
			if err := os.WriteFile(hp, nil, 0o644); err != nil {
				return "", fmt.Errorf("testbed: %w", err)
			}
		}
		fmt.Fprintf(&sb, "mount --bind %s %s\n", shellQuote(p), shellQuote(hp))
	}
	for _, d := range sorted {
		fmt.Fprintf(&sb, "mount --rbind %s %s\n", shellQuote(h.Path(d)), shellQuote(d))
	}
	sb.WriteString("echo ready\nexec cat >/dev/null\n")
	return sb.String(), nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// readLine reads the holder's first line, waiting at most timeout.
func readLine(r io.Reader, timeout time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var buf []byte
		one := make([]byte, 1)
		for len(buf) < 256 {
			n, err := r.Read(one)
			if n == 1 {
				if one[0] == '\n' {
					ch <- res{string(buf), nil}
					return
				}
				buf = append(buf, one[0])
			}
			if err != nil {
				ch <- res{string(buf), err}
				return
			}
		}
		ch <- res{string(buf), errors.New("line too long")}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(timeout):
		return "", errors.New("timed out")
	}
}

// holder keeps a host's mount namespace alive.
type holder struct {
	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.WriteCloser
}
