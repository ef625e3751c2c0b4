package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/testenv"
)

// needBed skips the test when a bed cannot be built here, and fails it in
// CI, where everything a bed needs is installed.
func needBed(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
}

func newBed(t *testing.T, cfg Config) *Bed {
	t.Helper()
	needBed(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestHostAddr(t *testing.T) {
	tests := []struct {
		i    int
		want string
	}{
		{0, "198.18.0.1"},
		{253, "198.18.0.254"},
		{254, "198.18.0.255"},
		{255, "198.18.1.0"},
		{999, "198.18.3.232"},
	}
	pfx := netip.MustParsePrefix("198.18.0.0/15")
	for _, tt := range tests {
		got := hostAddr(tt.i)
		if got.String() != tt.want {
			t.Errorf("hostAddr(%d) = %s, want %s", tt.i, got, tt.want)
		}
		if !pfx.Contains(got) {
			t.Errorf("hostAddr(%d) = %s outside %s", tt.i, got, pfx)
		}
	}
}

func TestRaiseNeighbourLimits(t *testing.T) {
	dir := t.TempDir()
	old := neighbourSysctl
	neighbourSysctl = dir
	t.Cleanup(func() { neighbourSysctl = old })
	set := func(a, b, c int) {
		for i, v := range []int{a, b, c} {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("gc_thresh%d", i+1)), []byte(fmt.Sprintf("%d\n", v)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	get := func() []string {
		var out []string
		for i := range 3 {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("gc_thresh%d", i+1)))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.TrimSpace(string(b)))
		}
		return out
	}
	tests := []struct {
		n      int
		before [3]int
		want   string
	}{
		{34, [3]int{128, 512, 1024}, "642 1284 2568"},      // a 32-peer fleet bed outgrows the defaults
		{8, [3]int{128, 512, 1024}, "128 512 1024"},        // a small bed fits: nothing changes
		{34, [3]int{4096, 8192, 16384}, "4096 8192 16384"}, // never lowered
	}
	for _, tt := range tests {
		set(tt.before[0], tt.before[1], tt.before[2])
		if err := raiseNeighbourLimits(tt.n); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(get(), " "); got != tt.want {
			t.Errorf("n=%d from %v: limits %s, want %s", tt.n, tt.before, got, tt.want)
		}
	}
}

func TestLeftoverPid(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		ok   bool
	}{
		{"mt123x1h0", 123, true},
		{"mt123x1br", 123, true},
		{"mt123x1-abc", 123, true},
		{"mt123", 0, false},
		{"mt123xh0", 0, false},
		{"mtx1h0", 0, false},
		{"other", 0, false},
		{"mtabcx1h0", 0, false},
	}
	for _, tt := range tests {
		pid, ok := leftoverPid(tt.name)
		if pid != tt.pid || ok != tt.ok {
			t.Errorf("leftoverPid(%q) = %d, %v, want %d, %v", tt.name, pid, ok, tt.pid, tt.ok)
		}
	}
}

// TestReach checks that every host reaches every other one, from inside
// the bed (both with the process's own sockets and with commands run in
// the hosts).
func TestReach(t *testing.T) {
	b := newBed(t, Config{Hosts: 3})
	ctx := testCtx(t)
	for _, h := range b.Hosts() {
		out, err := h.Run(ctx, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), h.Addr().String()+"/15") {
			t.Errorf("host %d: eth0 is %q, want address %s", h.Index(), out, h.Addr())
		}
	}
	for _, srv := range b.Hosts() {
		ln, err := srv.Listen("tcp", net.JoinHostPort(srv.Addr().String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "host %d\n", srv.Index())
				c.Close()
			}
		}()
		for _, cli := range b.Hosts() {
			c, err := cli.DialContext(ctx, "tcp", ln.Addr().String())
			if err != nil {
				t.Fatalf("host %d -> host %d: %v", cli.Index(), srv.Index(), err)
			}
			got, _ := io.ReadAll(c)
			c.Close()
			if want := fmt.Sprintf("host %d\n", srv.Index()); string(got) != want {
				t.Errorf("host %d -> host %d: read %q, want %q", cli.Index(), srv.Index(), got, want)
			}
			if got := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); cli != srv && got != cli.Addr() {
				t.Errorf("host %d dialed from %s, want %s", cli.Index(), got, cli.Addr())
			}
		}
		ln.Close()
	}
}

// TestIsolated checks that the hosts do not reach the machine's own
// network: the only routes are the bed's /15 and loopback.
func TestIsolated(t *testing.T) {
	b := newBed(t, Config{Hosts: 1})
	ctx := testCtx(t)
	out, err := b.Host(0).Run(ctx, "ip", "-4", "route", "show")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(out)), "198.18.0.0/15 dev eth0 proto kernel scope link src 198.18.0.1"; got != want {
		t.Errorf("routes: got %q, want %q", got, want)
	}
	if _, err := b.Host(0).DialContext(ctx, "tcp", "192.0.2.1:80"); err == nil {
		t.Error("dial outside the bed succeeded")
	}
}

// TestBridgeNoFilter checks that the bed's bridge hands frames on without
// the bridge netfilter hooks, and that the machine's own setting is left
// alone.
func TestBridgeNoFilter(t *testing.T) {
	const knob = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	before, err := os.ReadFile(knob)
	if err != nil {
		t.Skipf("the kernel has no bridge netfilter: %v", err)
	}
	b := newBed(t, Config{Hosts: 1})
	out, err := exec.CommandContext(testCtx(t), "ip", "netns", "exec", b.brNS, "cat", knob).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "0" {
		t.Errorf("bridge namespace: %s = %s, want 0", knob, got)
	}
	if after, _ := os.ReadFile(knob); !bytes.Equal(after, before) {
		t.Errorf("machine: %s went from %s to %s", knob, bytes.TrimSpace(before), bytes.TrimSpace(after))
	}
}

// TestPrivateDirs checks that each host has its own /tmp and destination,
// that Path finds a host's files from outside, and that shared paths stay
// visible inside.
func TestPrivateDirs(t *testing.T) {
	shared := t.TempDir() // under /tmp, which the hosts replace
	if err := os.WriteFile(filepath.Join(shared, "tool"), []byte("shared\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	b := newBed(t, Config{Hosts: 2, Dirs: []string{"/tmp", dest}, Share: []string{shared}})
	ctx := testCtx(t)
	for _, h := range b.Hosts() {
		script := fmt.Sprintf("echo %d > /tmp/who && echo %d > %s/who", h.Index(), h.Index(), dest)
		if _, err := h.Run(ctx, "sh", "-c", script); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range b.Hosts() {
		for _, p := range []string{"/tmp/who", filepath.Join(dest, "who")} {
			out, err := h.Run(ctx, "cat", p)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%d\n", h.Index()); string(out) != want {
				t.Errorf("host %d sees %s = %q, want %q", h.Index(), p, out, want)
			}
			got, err := os.ReadFile(h.Path(p))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%d\n", h.Index()); string(got) != want {
				t.Errorf("host %d: %s from outside = %q, want %q", h.Index(), h.Path(p), got, want)
			}
		}
		out, err := h.Run(ctx, "cat", filepath.Join(shared, "tool"))
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != "shared\n" {
			t.Errorf("host %d: shared file = %q", h.Index(), out)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "who")); !os.IsNotExist(err) {
		t.Errorf("host file leaked into the machine's %s: %v", dest, err)
	}
	if got := b.Host(0).Path("/etc/passwd"); got != "/etc/passwd" {
		t.Errorf("Path(/etc/passwd) = %q, want it unchanged", got)
	}
}

// rate sends n bytes from one host to another and returns bytes/s.
func rate(t *testing.T, ctx context.Context, from, to *Host, n int64) float64 {
	t.Helper()
	ln, err := to.Listen("tcp", net.JoinHostPort(to.Addr().String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		k, _ := io.Copy(io.Discard, c)
		got <- k
	}()
	c, err := from.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.CopyN(c, zeros{}, n); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case k := <-got:
		if k != n {
			t.Fatalf("received %d bytes, want %d", k, n)
		}
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return float64(n) / time.Since(start).Seconds()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestCaps checks that tbf caps each direction: a capped transfer runs at
// a small fraction of an uncapped one and not above the cap.
func TestCaps(t *testing.T) {
	const limit = 2 << 20 // bytes/s
	tests := []struct {
		name string
		link func(*Bed) (*Host, Link)
	}{
		{"sender up", func(b *Bed) (*Host, Link) { return b.Host(0), Link{Up: limit} }},
		{"receiver down", func(b *Bed) (*Host, Link) { return b.Host(1), Link{Down: limit} }},
	}
	b := newBed(t, Config{Hosts: 2})
	ctx := testCtx(t)
	free := rate(t, ctx, b.Host(0), b.Host(1), 64<<20)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, l := tt.link(b)
			if err := h.SetLink(ctx, l); err != nil {
				t.Fatal(err)
			}
			defer h.SetLink(ctx, Link{})
			capped := rate(t, ctx, b.Host(0), b.Host(1), 3*limit)
			t.Logf("uncapped %.1f MiB/s, capped %.2f MiB/s", free/(1<<20), capped/(1<<20))
			if capped > free/4 {
				t.Errorf("capped rate %.0f B/s is not well below the uncapped %.0f B/s", capped, free)
			}
			// The first burst and the socket buffers let a little more
			// through than the rate; never much more.
			if capped > 1.5*limit {
				t.Errorf("capped rate %.0f B/s above the cap %d B/s", capped, limit)
			}
		})
	}
}

// TestLatencyAndLoss checks the delay on arriving packets (a TCP connect
// takes at least the round trip) and random loss (UDP datagrams).
func TestLatencyAndLoss(t *testing.T) {
	const latency = 25 * time.Millisecond
	b := newBed(t, Config{Hosts: 2, Link: Link{Latency: latency}})
	ctx := testCtx(t)
	ln, err := b.Host(1).Listen("tcp", net.JoinHostPort(b.Host(1).Addr().String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(c, c)
			c.Close()
		}
	}()
	start := time.Now()
	c, err := b.Host(0).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rtt := time.Since(start)
	if rtt < 2*latency {
		t.Errorf("connect took %v, want at least the round trip %v", rtt, 2*latency)
	}
	// Data keeps flowing through the queue, in order.
	msg := bytes.Repeat([]byte("murder"), 100000)
	go func() { c.Write(msg); c.(*net.TCPConn).CloseWrite() }()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || !bytes.Equal(got, msg) {
		t.Errorf("echo through delayed link: %d bytes, err %v; want %d bytes back", len(got), err, len(msg))
	}

	for _, h := range b.Hosts() {
		if err := h.SetLink(ctx, Link{Loss: 0.5}); err != nil {
			t.Fatal(err)
		}
	}
	var pc net.PacketConn
	if err := b.Host(1).inNetns(func() error {
		var err error
		pc, err = net.ListenPacket("udp", net.JoinHostPort(b.Host(1).Addr().String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	uc, err := b.Host(0).DialContext(ctx, "udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	const sent = 1000
	counted := make(chan int)
	go func() {
		received := 0
		buf := make([]byte, 16)
		for {
			pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, _, err := pc.ReadFrom(buf); err != nil {
				break
			}
			received++
		}
		counted <- received
	}()
	for i := range sent {
		uc.Write([]byte{byte(i)})
		if i%20 == 0 {
			time.Sleep(time.Millisecond) // stay below socket buffer limits
		}
	}
	received := <-counted
	if received < sent*3/10 || received > sent*7/10 {
		t.Errorf("received %d of %d datagrams with loss 0.5, want about half", received, sent)
	}
}

// TestTeardown checks that Close leaves no namespace and no directory
// behind, and that the leftovers of a dead run are removed.
func TestTeardown(t *testing.T) {
	needBed(t)
	ctx := testCtx(t)
	b, err := New(ctx, Config{Hosts: 3, Link: Link{Up: 1 << 20, Latency: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	// A process left running in a host must not keep anything alive.
	sleeper := b.Host(0).Command(context.Background(), "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	hostDir := b.Host(0).Path("/tmp")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	sleeper.Wait()
	if n := namespacesWithPrefix(t, b.Name()); len(n) > 0 {
		t.Errorf("namespaces left after Close: %v", n)
	}
	if _, err := os.Stat(hostDir); !os.IsNotExist(err) {
		t.Errorf("host directory %s left after Close: %v", hostDir, err)
	}

	// A leftover of a run whose process is gone.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("mt%dx1", dead.Process.Pid)
	if alive(dead.Process.Pid) {
		t.Skip("pid reused already")
	}
	if err := run(ctx, "ip", "netns", "add", stale+"h0"); err != nil {
		t.Fatal(err)
	}
	staleDir := filepath.Join(os.TempDir(), baseDirTag+stale+"-x")
	if err := os.MkdirAll(staleDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A live run's names must survive.
	mine := fmt.Sprintf("mt%dx999999h0", os.Getpid())
	if err := run(ctx, "ip", "netns", "add", mine); err != nil {
		t.Fatal(err)
	}
	defer removeNetns(ctx, mine)
	CleanLeftovers(ctx, nil)
	if n := namespacesWithPrefix(t, stale); len(n) > 0 {
		t.Errorf("stale namespaces survived: %v", n)
	}
	if _, err := os.Stat(staleDir); !os.IsNotExist(err) {
		t.Errorf("stale directory survived: %v", err)
	}
	if n := namespacesWithPrefix(t, mine); len(n) != 1 {
		t.Errorf("a live run's namespace was removed")
	}
}

func namespacesWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names
}

// TestSSHD logs in from one host to another with OpenSSH and checks that
// the session sees the target host's private files.
func TestSSHD(t *testing.T) {
	for _, tool := range []string{"/usr/sbin/sshd", "ssh", "ssh-keygen"} {
		testenv.Require(t, tool)
	}
	b := newBed(t, Config{Hosts: 2})
	ctx := testCtx(t)
	client, server := b.Host(0), b.Host(1)
	if _, err := client.Run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/tmp/id"); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(client.Path("/tmp/id.pub"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.StartSSHD(ctx, string(pub))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := os.WriteFile(client.Path("/tmp/known_hosts"), []byte(s.KnownHostsLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(server.Path("/tmp/who"), []byte("server\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := client.Run(ctx, "ssh", "-i", "/tmp/id", "-o", "UserKnownHostsFile=/tmp/known_hosts",
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@"+server.Addr().String(), "cat /tmp/who")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "server\n" {
		t.Errorf("ssh session read %q, want %q", out, "server\n")
	}
	// A key that is not authorized is refused.
	if _, err := server.Run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/tmp/other"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(server.Path("/tmp/known_hosts"), []byte(s.KnownHostsLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := server.Run(ctx, "ssh", "-i", "/tmp/other", "-o", "UserKnownHostsFile=/tmp/known_hosts",
		"-o", "BatchMode=yes", "root@"+server.Addr().String(), "true"); err == nil {
		t.Errorf("login with an unknown key succeeded: %s", out)
	}
}

// TestDatacenters builds two datacenters joined by the router: hosts reach
// each other across it, the WAN cap holds, and the router counts what
// crosses each WAN link and nothing that stays inside a datacenter.
func TestDatacenters(t *testing.T) {
	const wan = 2 << 20 // bytes/s
	b := newBed(t, Config{Datacenters: []Datacenter{{Name: "east", Hosts: 2, WAN: wan}, {Hosts: 2, WAN: wan}}})
	ctx := testCtx(t)
	if b.Len() != 4 || b.Datacenters() != 2 || b.DatacenterName(1) != "dc1" {
		t.Fatalf("bed of %d hosts in %d datacenters, second %q; want 4 in 2, dc1", b.Len(), b.Datacenters(), b.DatacenterName(1))
	}
	for i, want := range []string{"198.19.0.1", "198.19.0.2", "198.19.1.1", "198.19.1.2"} {
		h := b.Host(i)
		if h.Addr().String() != want || !b.DatacenterPrefix(h.DatacenterIndex()).Contains(h.Addr()) {
			t.Errorf("host %d at %s in datacenter %s, want %s", i, h.Addr(), h.Datacenter(), want)
		}
	}
	if got := b.DatacenterHosts(1); len(got) != 2 || got[0] != b.Host(2) {
		t.Errorf("DatacenterHosts(1) = %v, want hosts 2 and 3", got)
	}
	wanted := func(i int) WANBytes {
		t.Helper()
		w, err := b.WAN(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	before0, before1 := wanted(0), wanted(1)
	const n = 4 << 20
	local := rate(t, ctx, b.Host(2), b.Host(3), n)
	mid0, mid1 := wanted(0), wanted(1)
	if d := mid1.In - before1.In + mid0.Out - before0.Out; d > 64<<10 {
		t.Errorf("a transfer inside dc1 crossed the WAN links: %d bytes", d)
	}
	remote := rate(t, ctx, b.Host(0), b.Host(3), n)
	after0, after1 := wanted(0), wanted(1)
	t.Logf("inside a datacenter %.1f MiB/s, across %.2f MiB/s", local/(1<<20), remote/(1<<20))
	if remote > 1.5*wan || remote > local/4 {
		t.Errorf("across the WAN %.0f B/s, want at most the cap %d B/s and well below %.0f B/s inside", remote, wan, local)
	}
	// Frames carry headers: a little more than n crosses, never less.
	for _, got := range []int64{after1.In - mid1.In, after0.Out - mid0.Out} {
		if got < n || got > n*11/10 {
			t.Errorf("WAN counters saw %d bytes of a %d-byte transfer, want n to n+10%%", got, n)
		}
	}
	if _, err := b.WAN(ctx, 2); err == nil {
		t.Error("WAN(2) of a bed of 2 datacenters: got no error")
	}
	topo := b.Topology()
	if !strings.Contains(topo, `name = "east"`) || !strings.Contains(topo, `cidrs = ["198.19.1.0/24"]`) {
		t.Errorf("topology:\n%s", topo)
	}
}
