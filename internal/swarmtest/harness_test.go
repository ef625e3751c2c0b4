package swarmtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/testbed"
	"github.com/murder-deploy/murder/internal/testenv"
)

// murderBin is the murder binary built by TestMain; binDir is shared into
// every host of a bed.
var murderBin, binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "murder-swarmtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if pkg := os.Getenv("SWARMTEST_MURDER_PKG"); pkg != "" {
		murderBin, err = testenv.Build(dir, pkg) // for trying a work-in-progress build of the command
	} else {
		murderBin, err = testenv.BuildMurder(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// need skips the test when the machine cannot run it, and fails it in CI,
// which installs everything.
func need(t *testing.T) {
	t.Helper()
	if err := testbed.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	for _, sub := range []string{"tracker", "create", "seed", "peer"} {
		if err := exec.Command(murderBin, sub, "--help").Run(); err != nil {
			testenv.Missing(t, "murder %s is not available: %v", sub, err)
		}
	}
}

const (
	trackerPort = "8998"
	peerPort    = "6881" // murder seed and murder peer listen here
	destDir     = "/srv/murder"
	srcDir      = "/srv/murder/src" // on the seeder host
	// topologyPath is the tracker's topology file, on the tracker host.
	topologyPath = "/tmp/topology.toml"
)

// options shape one swarm.
type options struct {
	peers     int
	size      int64 // bytes of file content in the tree
	link      testbed.Link
	pieceSize string
	interval  string // tracker announce interval
	// datacenters, when set, builds the bed as these datacenters (the
	// tracker and the seeder are the first two hosts of the first) and
	// runs the tracker with the bed's topology; peers is then ignored.
	datacenters []testbed.Datacenter
}

// swarm is a tracker (host 0), a seeder (host 1) and peers (hosts 2...)
// on one bed.
type swarm struct {
	t        *testing.T
	ctx      context.Context
	bed      *testbed.Bed
	tracker  *testbed.Host
	seeder   *testbed.Host
	hosts    []*testbed.Host // peer hosts
	tag      string
	torrent  string // path of the .torrent inside every host
	total    int64  // artifact size
	topology bool   // the tracker runs with --topology topologyPath

	mu         sync.Mutex
	trackerCmd *proc
	seedCmd    *proc
}

func newSwarm(t *testing.T, ctx context.Context, o options) *swarm {
	t.Helper()
	need(t)
	if o.interval == "" {
		o.interval = "3s"
	}
	bed, err := testbed.New(ctx, testbed.Config{Hosts: o.peers + 2, Link: o.link, Share: []string{binDir}, Datacenters: o.datacenters})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bed.Close(); err != nil {
			t.Errorf("close bed: %v", err)
		}
	})
	s := &swarm{t: t, ctx: ctx, bed: bed, tracker: bed.Host(0), seeder: bed.Host(1), hosts: bed.Hosts()[2:], tag: "build-42"}
	writeTree(t, s.seeder.Path(srcDir), o.size)
	if len(o.datacenters) > 0 {
		if err := os.WriteFile(s.tracker.Path(topologyPath), []byte(bed.Topology()), 0o644); err != nil {
			t.Fatal(err)
		}
		s.topology = true
	}
	s.startTracker(o.interval)

	args := []string{"create", "--tag", s.tag, "--files-path", srcDir, "--temp-path", "/tmp",
		"--tracker", net.JoinHostPort(s.tracker.Addr().String(), trackerPort)}
	if o.pieceSize != "" {
		args = append(args, "--piece-size", o.pieceSize)
	}
	if _, err := s.seeder.Run(ctx, murderBin, args...); err != nil {
		t.Fatal(err)
	}
	s.torrent = "/tmp/" + s.tag + ".tgz.torrent"
	data, err := os.ReadFile(s.seeder.Path(s.torrent))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.seeder.Path("/tmp/" + s.tag + ".tgz"))
	if err != nil {
		t.Fatal(err)
	}
	s.total = fi.Size()
	for _, h := range s.hosts {
		if err := os.WriteFile(h.Path(s.torrent), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// writeTree writes a tree of incompressible files (about size bytes),
// with an executable, a symlink and an empty directory, and a .git
// directory that murder must leave out.
func writeTree(t *testing.T, root string, size int64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(42, uint64(size)))
	files := []struct {
		name string
		frac int64 // size/frac bytes
		mode os.FileMode
	}{
		{"bin/app", 2, 0o755},
		{"lib/libfoo.so", 4, 0o644},
		{"share/data/a.bin", 8, 0o644},
		{"share/data/b.bin", 16, 0o600},
		{"etc/app.toml", 0, 0o644},
	}
	for _, f := range files {
		p := filepath.Join(root, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		n := int64(100)
		if f.frac > 0 {
			n = size / f.frac
		}
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, buf, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"var/empty", ".git/objects"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, ".git/HEAD"), []byte("ref: refs/heads/main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bin/app", filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
}

// checkTree compares a peer's extracted tree with the seeder's source.
func (s *swarm) checkTree(h *testbed.Host) {
	s.t.Helper()
	testenv.SameTree(s.t, s.seeder.Path(srcDir), h.Path(filepath.Join(destDir, s.tag)), testenv.Mode)
}

// proc is a process started in a host, with its stderr kept.
type proc struct {
	host   *testbed.Host
	cmd    *exec.Cmd
	stderr *testenv.Buffer
	exited chan struct{}
	err    error // valid after exited
}

func start(t *testing.T, ctx context.Context, h *testbed.Host, stdout func(line string), args ...string) *proc {
	t.Helper()
	p := &proc{host: h, cmd: h.Command(ctx, murderBin, args...), stderr: &testenv.Buffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	var lines *bufio.Scanner
	if stdout != nil {
		r, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		lines = bufio.NewScanner(r)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		if lines != nil {
			for lines.Scan() {
				stdout(lines.Text())
			}
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p
}

// signal sends sig and waits (bounded) for the process to exit.
func (p *proc) signal(sig syscall.Signal) {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// tail returns the last lines of a log for error messages.
func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

func (s *swarm) trackerAddr() string {
	return net.JoinHostPort(s.tracker.Addr().String(), trackerPort)
}

// startTracker starts murder tracker on host 0 and waits until it accepts
// connections.
func (s *swarm) startTracker(interval string) {
	s.t.Helper()
	args := []string{"tracker", "--listen", s.trackerAddr(), "--interval", interval}
	if s.topology {
		args = append(args, "--topology", topologyPath)
	}
	p := start(s.t, s.ctx, s.tracker, nil, args...)
	s.mu.Lock()
	s.trackerCmd = p
	s.mu.Unlock()
	waitListening(s.t, s.ctx, s.seeder, s.trackerAddr(), p)
}

func (s *swarm) killTracker() {
	s.mu.Lock()
	p := s.trackerCmd
	s.mu.Unlock()
	p.signal(syscall.SIGKILL)
}

func waitListening(t *testing.T, ctx context.Context, from *testbed.Host, addr string, p *proc) {
	t.Helper()
	for range 200 {
		c, err := from.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited: %v\n%s", strings.Join(p.cmd.Args, " "), p.err, tail(p.stderr.String()))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s does not accept connections at %s", strings.Join(p.cmd.Args, " "), addr)
}

// startSeeder runs murder seed on host 1, with extra arguments.
func (s *swarm) startSeeder(extra ...string) *proc {
	s.t.Helper()
	args := append([]string{"seed", "--torrent", s.torrent, "--ip", s.seeder.Addr().String(),
		"--listen", net.JoinHostPort(s.seeder.Addr().String(), peerPort)}, extra...)
	p := start(s.t, s.ctx, s.seeder, nil, args...)
	s.mu.Lock()
	s.seedCmd = p
	s.mu.Unlock()
	return p
}

// event is one line of murder peer --progress json.
type event struct {
	Event      string `json:"event"`
	Tag        string `json:"tag"`
	State      string `json:"state"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"`
	Peers      int    `json:"peers"`
	Message    string `json:"message"`
}

// peer is one murder peer process and what it reported.
type peer struct {
	*proc
	mu     sync.Mutex
	first  *event // first event
	last   event
	bad    []string // lines that are not events
	done   chan struct{}
	failed chan string
	onEv   func(event)
}

func (p *peer) progress() event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// startPeer runs murder peer in h, with extra arguments. It seeds on long
// after it is done, so that peers that finish stay sources until the test
// ends.
func (s *swarm) startPeer(h *testbed.Host, onEvent func(event), extra ...string) *peer {
	s.t.Helper()
	pr := &peer{done: make(chan struct{}), failed: make(chan string, 1), onEv: onEvent}
	var doneOnce sync.Once
	handle := func(line string) {
		var ev event
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Event == "" {
			pr.mu.Lock()
			pr.bad = append(pr.bad, line)
			pr.mu.Unlock()
			return
		}
		pr.mu.Lock()
		if pr.first == nil {
			e := ev
			pr.first = &e
		}
		pr.last = ev
		pr.mu.Unlock()
		if pr.onEv != nil {
			pr.onEv(ev)
		}
		switch ev.Event {
		case "done":
			doneOnce.Do(func() { close(pr.done) })
		case "error":
			select {
			case pr.failed <- ev.Message:
			default:
			}
		}
	}
	args := append([]string{"peer", "--torrent", s.torrent, "--destination-path", destDir,
		"--ip", h.Addr().String(), "--listen", net.JoinHostPort(h.Addr().String(), peerPort), "--progress", "json", "--seed-time", "10m", "--timeout", "4m"}, extra...)
	pr.proc = start(s.t, s.ctx, h, handle, args...)
	return pr
}

// waitDone waits until every peer reported done; it fails the test when
// one reports an error, exits first, or the context ends.
func (s *swarm) waitDone(peers ...*peer) {
	s.t.Helper()
	for _, p := range peers {
		select {
		case <-p.done:
		case msg := <-p.failed:
			s.t.Fatalf("%s: error event: %s\n%s", p.host.Name(), msg, tail(p.stderr.String()))
		case <-p.exited:
			select {
			case <-p.done:
				continue
			default:
			}
			s.t.Fatalf("%s: murder peer exited before done: %v\n%s", p.host.Name(), p.err, tail(p.stderr.String()))
		case <-s.ctx.Done():
			ev := p.progress()
			s.t.Fatalf("%s: not done when the test timed out: %d of %d bytes, %d peers\n%s",
				p.host.Name(), ev.BytesDone, ev.BytesTotal, ev.Peers, tail(p.stderr.String()))
		}
	}
}

// waitPlaced waits until every peer reported done, as waitDone does, and
// compares each peer's tree with the seeder's source.
func (s *swarm) waitPlaced(peers ...*peer) {
	s.t.Helper()
	s.waitDone(peers...)
	for _, p := range peers {
		s.checkTree(p.host)
	}
}

// stop ends every peer with SIGTERM.
func stopAll(peers ...*peer) {
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() { p.signal(syscall.SIGTERM) })
	}
	wg.Wait()
}

// rxBytes is what host h's eth0 has received so far.
func rxBytes(t *testing.T, ctx context.Context, h *testbed.Host) int64 {
	t.Helper()
	out, err := h.Run(ctx, "cat", "/sys/class/net/eth0/statistics/rx_bytes")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if _, err := fmt.Sscan(string(out), &n); err != nil {
		t.Fatalf("rx_bytes %q: %v", out, err)
	}
	return n
}
