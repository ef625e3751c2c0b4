package testbed

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/murder-deploy/murder/internal/testenv"
)

// Host is one host of a bed: a network namespace with address Addr on
// eth0, and a mount namespace with private directories.
type Host struct {
	bed   *Bed
	index int
	ns    string
	dir   string // private directories live under here
	addr  netip.Addr
	dirs  []string
	// brNS is the namespace of the bridge the host hangs off; prefix its
	// subnet; dc its datacenter (nil in a bed without datacenters).
	brNS   string
	prefix netip.Prefix
	dc     *dc

	holder holder

	linkMu sync.Mutex
	link   Link
	delay  *delayer
}

// Index is the host's number in the bed, from 0.
func (h *Host) Index() int { return h.index }

// Name is the host's network namespace name (usable with ip netns exec).
func (h *Host) Name() string { return h.ns }

// Addr is the host's IPv4 address, in 198.18.0.0/15 (in a bed with
// datacenters, in its datacenter's Prefix).
func (h *Host) Addr() netip.Addr { return h.addr }

// Link returns the host's current link settings.
func (h *Host) Link() Link {
	h.linkMu.Lock()
	defer h.linkMu.Unlock()
	return h.link
}

func (h *Host) vethName() string { return "h" + strconv.Itoa(h.index) }

func (h *Host) build(ctx context.Context, dirs, share []string) error {
	if err := run(ctx, "ip", "netns", "add", h.ns); err != nil {
		return err
	}
	if err := batch(ctx, h.brNS, "ip", []string{
		fmt.Sprintf("link add %s type veth peer name eth0 netns %s", h.vethName(), h.ns),
		fmt.Sprintf("link set %s master br0 up", h.vethName()),
	}); err != nil {
		return err
	}
	cmds := []string{
		fmt.Sprintf("addr add %s/%d dev eth0", h.addr, h.prefix.Bits()),
		"link set eth0 up",
		"link set lo up",
	}
	if h.dc != nil {
		cmds = append(cmds, fmt.Sprintf("route add %s via %s", bedPrefix, h.dc.gateway()))
	}
	if err := batch(ctx, h.ns, "ip", cmds); err != nil {
		return err
	}
	h.dirs = dirs
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("testbed: mount point: %w", err)
		}
		if err := os.MkdirAll(h.Path(d), 0o755); err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
		if d == "/tmp" || d == "/var/tmp" {
			os.Chmod(h.Path(d), 0o1777|os.ModeSticky)
		}
	}
	return h.startHolder(ctx, dirs, share)
}

func (h *Host) startHolder(ctx context.Context, dirs, share []string) error {
	script, err := mountScript(h, dirs, share)
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", "netns", "exec", h.ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr testenv.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testbed: start host %s: %w", h.ns, err)
	}
	h.holder.mu.Lock()
	h.holder.cmd, h.holder.stdin = cmd, stdin
	h.holder.mu.Unlock()
	line, err := readLine(stdout, 20*time.Second)
	if err != nil || line != "ready" {
		return fmt.Errorf("testbed: set up mounts of host %s: %v: %s", h.ns, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func (h *Host) closeHolder() {
	h.holder.mu.Lock()
	defer h.holder.mu.Unlock()
	if h.holder.cmd == nil {
		return
	}
	h.holder.stdin.Close()
	h.holder.cmd.Process.Kill()
	h.holder.cmd.Wait()
	h.holder.cmd = nil
}

func (h *Host) holderPid() int {
	h.holder.mu.Lock()
	defer h.holder.mu.Unlock()
	if h.holder.cmd == nil {
		return 0
	}
	return h.holder.cmd.Process.Pid
}

// Path maps path p as the host sees it to where the same file is from
// outside the bed: paths inside one of the private directories land in the
// host's own copy, other paths are returned unchanged.
func (h *Host) Path(p string) string {
	p = filepath.Clean(p)
	best := ""
	for _, d := range h.dirs {
		if (p == d || strings.HasPrefix(p, d+"/") || d == "/") && len(d) > len(best) {
			best = d
		}
	}
	if best == "" {
		return p
	}
	return filepath.Join(h.dir, p)
}

// Command returns a command that runs name with args inside the host: in
// its network and mount namespaces. It starts in / (set the directory with
// sh -c 'cd DIR && exec ...' when needed). The process is killed when ctx
// ends or when the process that built the bed dies; Close kills whatever
// is left.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	pid := h.holderPid()
	argv := append([]string{"--target", strconv.Itoa(pid), "--mount", "--net", "--", name}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs name with args inside the host and returns its combined output.
func (h *Host) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("testbed: %s: %s %s: %w: %s", h.ns, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Listen opens a listener inside the host's network namespace, from the
// calling process (see net.Listen).
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := h.inNetns(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// DialContext connects from inside the host's network namespace, from the
// calling process (see net.Dialer.DialContext).
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := h.inNetns(func() error {
		var err error
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// inNetns runs fn on an OS thread that has entered the host's network
// namespace. Sockets keep the namespace they were created in, so
// listeners and connections made by fn work from any goroutine afterwards.
func (h *Host) inNetns(fn func() error) error {
	target, err := os.Open(filepath.Join("/run/netns", h.ns))
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("testbed: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("testbed: setns %s: %w", h.ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine
			// instead of serving others in the wrong namespace.
			errc <- fmt.Errorf("testbed: restore namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// SetLink changes the host's caps, latency and loss.
func (h *Host) SetLink(ctx context.Context, l Link) error {
	if err := checkLink(l); err != nil {
		return err
	}
	h.linkMu.Lock()
	defer h.linkMu.Unlock()
	// Only what changed is touched (a new host starts without limits).
	if l.Up != h.link.Up {
		if err := shape(ctx, h.ns, "eth0", l.Up); err != nil {
			return err
		}
	}
	if l.Down != h.link.Down {
		if err := shape(ctx, h.brNS, h.vethName(), l.Down); err != nil {
			return err
		}
	}
	if l.Loss != h.link.Loss || (l.Latency > 0) != (h.link.Latency > 0) {
		if err := h.setFilter(ctx, l); err != nil {
			return err
		}
	}
	if l.Latency > 0 {
		if h.delay == nil {
			d, err := startDelayer(h, l.Latency)
			if err != nil {
				return err
			}
			h.delay = d
		}
		h.delay.setLatency(l.Latency)
	}
	h.link = l
	return nil
}

func (h *Host) stopDelay() {
	h.linkMu.Lock()
	defer h.linkMu.Unlock()
	if h.delay != nil {
		h.delay.stop()
		h.delay = nil
	}
}

// shape puts a token bucket of rate bytes/s on dev's egress, or removes it.
func shape(ctx context.Context, ns, dev string, rate int64) error {
	if rate == 0 {
		// Ignore the error: there may be no qdisc to delete.
		exec.CommandContext(ctx, "tc", "-n", ns, "qdisc", "del", "dev", dev, "root").Run()
		return nil
	}
	burst := max(rate/100, 32<<10)
	limit := max(rate/50, 64<<10) + burst
	return run(ctx, "tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", strconv.FormatInt(rate*8, 10)+"bit",
		"burst", strconv.FormatInt(burst, 10),
		"limit", strconv.FormatInt(limit, 10))
}

// setFilter installs the iptables rules (raw table, before conntrack)
// that drop and delay arriving packets. The kernel has the xt statistic
// match and NFQUEUE target, but neither netem nor nft's queue expression.
func (h *Host) setFilter(ctx context.Context, l Link) error {
	var sb strings.Builder
	sb.WriteString("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	if l.Loss > 0 {
		fmt.Fprintf(&sb, "-A PREROUTING -i eth0 -m statistic --mode random --probability %.6f -j DROP\n", l.Loss)
	}
	if l.Latency > 0 {
		fmt.Fprintf(&sb, "-A PREROUTING -i eth0 -j NFQUEUE --queue-num %d --queue-bypass\n", queueNum)
	}
	sb.WriteString("COMMIT\n")
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", h.ns, "iptables-restore", "-w", "5")
	cmd.Stdin = strings.NewReader(sb.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testbed: iptables-restore in %s: %w: %s", h.ns, err, bytes.TrimSpace(out))
	}
	return nil
}
