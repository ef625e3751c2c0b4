// Package deploy is Murder's workflow on top of the fleet runner: copy
// murder to the hosts, run the tracker and the seeder as detached daemons,
// create the torrent on the seeder and have every peer download it, with
// live progress and a per-host report. Local runs the same pipeline as
// processes on this machine.
package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/tracker"
)

// Config configures a Fleet.
type Config struct {
	// Inventory is the parsed murder.toml (required).
	Inventory *fleet.Inventory
	// Runner opens the SSH connections (required).
	Runner *fleet.Runner
	// Binary is the local murder binary that distribute-files copies;
	// "" means the running executable.
	Binary string
	// LocalTempPath keeps the .torrent on this machine between tasks; ""
	// means the inventory's temp_path.
	LocalTempPath string
	// Out receives the human report; nil discards it.
	Out io.Writer
	// Live redraws the progress line in place (Out is a terminal).
	Live bool
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Fleet runs Murder's tasks on the hosts of an inventory. Connections are
// opened on first use and kept until Close; a host that could not be
// reached is not tried again by the same Fleet.
type Fleet struct {
	cfg Config
	inv *fleet.Inventory
	run *fleet.Runner
	out io.Writer
	log *slog.Logger

	mu    sync.Mutex
	conns map[string]*connEntry
}

type connEntry struct {
	mu   sync.Mutex
	done bool
	c    *fleet.Conn
	err  error
}

// New returns a Fleet for cfg.
func New(cfg Config) (*Fleet, error) {
	if cfg.Inventory == nil || cfg.Runner == nil {
		return nil, errors.New("deploy: inventory and runner are required")
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LocalTempPath == "" {
		cfg.LocalTempPath = cfg.Inventory.TempPath
	}
	return &Fleet{cfg: cfg, inv: cfg.Inventory, run: cfg.Runner, out: cfg.Out, log: cfg.Logger, conns: make(map[string]*connEntry)}, nil
}

// Inventory returns the inventory the fleet works on.
func (f *Fleet) Inventory() *fleet.Inventory { return f.inv }

// Close closes every open connection.
func (f *Fleet) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, e := range f.conns {
		if e.c != nil {
			errs = append(errs, e.c.Close())
		}
	}
	f.conns = make(map[string]*connEntry)
	return errors.Join(errs...)
}

func (f *Fleet) conn(ctx context.Context, h fleet.Host) (*fleet.Conn, error) {
	f.mu.Lock()
	e, ok := f.conns[h.Spec]
	if !ok {
		e = &connEntry{}
		f.conns[h.Spec] = e
	}
	f.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.done {
		e.c, e.err = f.run.Dial(ctx, h)
		e.done = e.err == nil || !errors.Is(e.err, context.Canceled)
	}
	return e.c, e.err
}

// each runs fn on every host with a connection, at the runner's
// concurrency; failures come back per host (fleet.HostErrors).
func (f *Fleet) each(ctx context.Context, hosts []fleet.Host, fn func(ctx context.Context, c *fleet.Conn) error) error {
	return fleet.Each(ctx, hosts, f.run.Concurrency(), func(ctx context.Context, h fleet.Host) error {
		c, err := f.conn(ctx, h)
		if err != nil {
			return err
		}
		return fn(ctx, c)
	})
}

// one runs fn on a single host, reporting a failure under that host.
func (f *Fleet) one(ctx context.Context, h fleet.Host, fn func(ctx context.Context, c *fleet.Conn) error) error {
	return f.each(ctx, []fleet.Host{h}, fn)
}

// announceIP is the address h announces to the tracker: the inventory's, or
// the one SSH connected to.
func announceIP(h fleet.Host, c *fleet.Conn) string {
	if h.Announce != "" {
		return h.Announce
	}
	return c.RemoteIP()
}

func (f *Fleet) say(format string, args ...any) {
	fmt.Fprintf(f.out, format+"\n", args...)
}

func (f *Fleet) header(task string, hosts int) {
	s := "s"
	if hosts == 1 {
		s = ""
	}
	f.say("==> %s (%d host%s)", task, hosts, s)
}

// ValidTag checks a tag the way murder create does: not empty, no '/', no
// "..", no NUL, and nothing a shell would treat specially.
func ValidTag(tag string) error {
	switch {
	case tag == "":
		return errors.New("deploy: --tag is required")
	case strings.ContainsAny(tag, "/\x00") || strings.Contains(tag, ".."):
		return fmt.Errorf("deploy: bad tag %q: no '/', '..' or NUL", tag)
	case strings.ContainsAny(tag, " \t\n'\"\\$`;&|<>*?[]{}()!#~"):
		return fmt.Errorf("deploy: bad tag %q: use letters, digits, '.', '-' and '_'", tag)
	}
	return nil
}

// DistributeFiles copies the murder binary to remote_murder_path on every
// host, skipping hosts that already have the same binary, and checks that
// it runs there.
func (f *Fleet) DistributeFiles(ctx context.Context) error {
	return f.distribute(ctx, f.inv.All())
}

func (f *Fleet) distribute(ctx context.Context, hosts []fleet.Host) error {
	bin := f.cfg.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("deploy: find the murder binary: %w (pass --binary)", err)
		}
		bin = exe
	}
	f.header("distribute-files", len(hosts))
	var mu sync.Mutex
	copied, same := 0, 0
	err := f.each(ctx, hosts, func(ctx context.Context, c *fleet.Conn) error {
		res, err := c.CopyFile(ctx, bin, f.inv.Binary(), 0o755, true)
		if err != nil {
			return err
		}
		if _, err := c.Output(ctx, fleet.Quote(f.inv.Binary())+" version"); err != nil {
			return fmt.Errorf("deploy: %s does not run there: %w", f.inv.Binary(), err)
		}
		mu.Lock()
		if res == fleet.Unchanged {
			same++
		} else {
			copied++
		}
		mu.Unlock()
		return nil
	})
	f.say("  %s: copied to %d, already current on %d, failed on %d", f.inv.Binary(), copied, same, len(hosts)-copied-same)
	return err
}

// StartTracker starts the tracker on the tracker host unless it is running,
// and waits until it answers. started says whether this call started it.
func (f *Fleet) StartTracker(ctx context.Context) (started bool, err error) {
	f.header("start-tracker", 1)
	err = f.one(ctx, f.inv.Tracker, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script(
			"if murder_alive "+trackerPid()+" tracker >/dev/null; then echo running; exit 0; fi",
			"rm -f "+trackerPid(),
			"murder_start "+trackerPid()+" "+trackerLog()+" "+trackerLog()+" tracker --listen :"+strconv.Itoa(f.inv.TrackerPort),
			"echo started",
		))
		if err != nil {
			return fmt.Errorf("deploy: start tracker: %w", err)
		}
		started = strings.TrimSpace(out) == "started"
		if err := f.waitTracker(ctx, c); err != nil {
			return err
		}
		if started {
			f.say("  tracker started on %s:%d", announceIP(f.inv.Tracker, c), f.inv.TrackerPort)
		} else {
			f.say("  tracker already running on %s:%d", announceIP(f.inv.Tracker, c), f.inv.TrackerPort)
		}
		return nil
	})
	return started, err
}

// scrape asks the tracker, through the tracker host's SSH connection, for
// its counts.
func (f *Fleet) scrape(ctx context.Context, c *fleet.Conn, hash *metainfo.Hash) (map[[20]byte]tracker.ScrapeStats, error) {
	port := strconv.Itoa(f.inv.TrackerPort)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			nc, err := c.DialTCP(ctx, net.JoinHostPort("127.0.0.1", port))
			var oce *ssh.OpenChannelError
			if errors.As(err, &oce) {
				// The host's sshd forbids forwarding: ask the tracker
				// directly, at the address the peers use.
				var d net.Dialer
				return d.DialContext(ctx, "tcp", net.JoinHostPort(announceIP(f.inv.Tracker, c), port))
			}
			return nc, err
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	return scrapeWith(ctx, &http.Client{Transport: tr, Timeout: 5 * time.Second}, "http://tracker/scrape", hash)
}

func scrapeWith(ctx context.Context, hc *http.Client, u string, hash *metainfo.Hash) (map[[20]byte]tracker.ScrapeStats, error) {
	if hash != nil {
		u += "?info_hash=" + escapeBytes(hash[:])
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape: HTTP %s", resp.Status)
	}
	return tracker.DecodeScrapeResponse(body)
}

// escapeBytes percent-escapes every byte that is not unreserved (RFC 3986).
func escapeBytes(b []byte) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	for _, c := range b {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('%')
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
		}
	}
	return sb.String()
}

// remoteTail returns the last lines of a remote log, for error messages.
func (f *Fleet) remoteTail(ctx context.Context, c *fleet.Conn, file string) string {
	out, _ := c.Output(ctx, "T="+fleet.Quote(f.inv.TempPath)+"; tail -n 3 "+file+" 2>/dev/null")
	return oneLine(out)
}

func (f *Fleet) waitTracker(ctx context.Context, c *fleet.Conn) error {
	var last error
	for i := 0; i < 100; i++ {
		if _, err := f.scrape(ctx, c, nil); err == nil {
			return nil
		} else {
			last = err
		}
		if out, err := c.Output(ctx, f.script("murder_alive "+trackerPid()+" tracker >/dev/null && echo alive || echo dead")); err == nil && strings.TrimSpace(out) == "dead" {
			return fmt.Errorf("deploy: tracker exited: %s", f.remoteTail(ctx, c, trackerLog()))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("deploy: tracker does not answer on port %d: %v; log: %s", f.inv.TrackerPort, last, f.remoteTail(ctx, c, trackerLog()))
}

// StopTracker stops the tracker; stopping one that is not running succeeds.
func (f *Fleet) StopTracker(ctx context.Context) error {
	f.header("stop-tracker", 1)
	return f.one(ctx, f.inv.Tracker, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script("murder_stop "+trackerPid()+" tracker"))
		if err != nil {
			return fmt.Errorf("deploy: stop tracker: %w", err)
		}
		f.say("  %s", strings.TrimSpace(out))
		return nil
	})
}

// localTorrent is where the tag's .torrent is kept on this machine.
func (f *Fleet) localTorrent(tag string) string {
	return filepath.Join(f.cfg.LocalTempPath, torrentName(tag))
}

// CreateTorrent packs filesPath on the seeder into TEMP/TAG.tgz with a
// .torrent announcing to the tracker, and brings the .torrent back to the
// local temp path.
func (f *Fleet) CreateTorrent(ctx context.Context, tag, filesPath string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	if filesPath == "" {
		return errors.New("deploy: --files-path is required")
	}
	f.header("create-torrent", 1)
	trackerAddr, err := f.trackerAddr(ctx)
	if err != nil {
		return err
	}
	err = f.one(ctx, f.inv.Seeder, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script(
			`"$BIN" create --tag `+fleet.Quote(tag)+` --files-path `+remotePath(filesPath)+
				` --tracker `+fleet.Quote(trackerAddr)+` --temp-path "$T" --force 2>&1`,
		))
		if err != nil {
			return fmt.Errorf("deploy: create: %w", err)
		}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f.say("  %s", l)
		}
		return f.fetchTorrent(ctx, c, tag)
	})
	return err
}

// remotePath quotes a path for the remote shell, expanding a leading ~/ to
// the remote user's home as Murder's files_path="~/files" did.
func remotePath(p string) string {
	switch {
	case p == "~":
		return `"$HOME"`
	case strings.HasPrefix(p, "~/"):
		return `"$HOME"/` + fleet.Quote(p[2:])
	}
	return fleet.Quote(p)
}

func (f *Fleet) trackerAddr(ctx context.Context) (string, error) {
	var addr string
	err := f.one(ctx, f.inv.Tracker, func(ctx context.Context, c *fleet.Conn) error {
		addr = net.JoinHostPort(announceIP(f.inv.Tracker, c), strconv.Itoa(f.inv.TrackerPort))
		return nil
	})
	return addr, err
}

func (f *Fleet) fetchTorrent(ctx context.Context, c *fleet.Conn, tag string) error {
	if err := os.MkdirAll(f.cfg.LocalTempPath, 0o755); err != nil {
		return fmt.Errorf("deploy: local temp path: %w", err)
	}
	remote := strings.TrimSuffix(f.inv.TempPath, "/") + "/" + torrentName(tag)
	if err := c.FetchFile(ctx, remote, f.localTorrent(tag)); err != nil {
		return err
	}
	f.say("  fetched %s to %s", remote, f.localTorrent(tag))
	return nil
}

// DownloadTorrent brings TEMP/TAG.tgz.torrent from the seeder to the local
// temp path.
func (f *Fleet) DownloadTorrent(ctx context.Context, tag string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	f.header("download-torrent", 1)
	return f.one(ctx, f.inv.Seeder, func(ctx context.Context, c *fleet.Conn) error {
		return f.fetchTorrent(ctx, c, tag)
	})
}

func (f *Fleet) loadTorrent(tag string) (*metainfo.MetaInfo, error) {
	mi, err := metainfo.Load(f.localTorrent(tag))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("deploy: no torrent for tag %q at %s: run create-torrent or download-torrent first", tag, f.localTorrent(tag))
		}
		return nil, fmt.Errorf("deploy: %w", err)
	}
	return mi, nil
}

// StartSeeding starts `murder seed` for the tag on the seeder unless it is
// running, and waits until the tracker lists it as a complete peer.
func (f *Fleet) StartSeeding(ctx context.Context, tag string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	mi, err := f.loadTorrent(tag)
	if err != nil {
		return err
	}
	hash := mi.InfoHash()
	f.header("start-seeding", 1)
	tc, err := f.conn(ctx, f.inv.Tracker)
	if err != nil {
		return errors.Join(&fleet.HostError{Host: f.inv.Tracker, Err: err})
	}
	return f.one(ctx, f.inv.Seeder, func(ctx context.Context, c *fleet.Conn) error {
		args := "seed --torrent \"$T\"/" + fleet.Quote(torrentName(tag)) + " --ip " + fleet.Quote(announceIP(f.inv.Seeder, c))
		if f.inv.MaxUploadRate != "" {
			args += " --max-upload-rate " + fleet.Quote(f.inv.MaxUploadRate)
		}
		out, err := c.Output(ctx, f.script(
			"if murder_alive "+seedPid(tag)+" seed >/dev/null; then echo running; exit 0; fi",
			"murder_start "+seedPid(tag)+" "+seedLog(tag)+" "+seedLog(tag)+" "+args,
			"echo started",
		))
		if err != nil {
			return fmt.Errorf("deploy: start seeding: %w", err)
		}
		state := strings.TrimSpace(out)
		for i := 0; ; i++ {
			st, err := f.scrape(ctx, tc, &hash)
			if err == nil && st[hash].Complete > 0 {
				break
			}
			alive, _ := c.Output(ctx, f.script("murder_alive "+seedPid(tag)+" seed >/dev/null && echo alive || echo dead"))
			if strings.TrimSpace(alive) == "dead" {
				return fmt.Errorf("deploy: seeder exited: %s", f.remoteTail(ctx, c, seedLog(tag)))
			}
			if i == 600 {
				return fmt.Errorf("deploy: seeder has not announced to the tracker after 2 minutes (scrape: %v); log: %s", err, f.remoteTail(ctx, c, seedLog(tag)))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		f.say("  seeding %s (%s, info hash %s), %s", tag, humanBytes(mi.Info.TotalLength()), hash, map[string]string{"running": "already running", "started": "started"}[state])
		return nil
	})
}

// StopSeeding stops the seeder of the tag; stopping one that is not
// running succeeds.
func (f *Fleet) StopSeeding(ctx context.Context, tag string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	f.header("stop-seeding", 1)
	return f.one(ctx, f.inv.Seeder, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script("murder_stop "+seedPid(tag)+" seed"))
		if err != nil {
			return fmt.Errorf("deploy: stop seeding: %w", err)
		}
		f.say("  %s", strings.TrimSpace(out))
		return nil
	})
}

// stopAll stops every daemon of a kind on hosts through the pid files
// TEMP/murder-KIND-*.pid.
func (f *Fleet) stopAll(ctx context.Context, task, kind string, hosts []fleet.Host) error {
	f.header(task, len(hosts))
	var mu sync.Mutex
	stopped := 0
	err := f.each(ctx, hosts, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script(
			`for pf in "$T"/murder-`+kind+`-*.pid; do [ -e "$pf" ] || continue; murder_stop "$pf" `+kind+`; done`,
		))
		if err != nil {
			return fmt.Errorf("deploy: %s: %w", task, err)
		}
		n := strings.Count(out, "stopped "+kind)
		mu.Lock()
		stopped += n
		mu.Unlock()
		return nil
	})
	f.say("  stopped %d %s process(es)", stopped, kind)
	return err
}

// StopAllSeeding stops every seeder that murder started on the seeder host.
func (f *Fleet) StopAllSeeding(ctx context.Context) error {
	return f.stopAll(ctx, "stop-all-seeding", "seed", []fleet.Host{f.inv.Seeder})
}

// StopAllPeering stops every peer that murder started on the peers.
func (f *Fleet) StopAllPeering(ctx context.Context) error {
	return f.stopAll(ctx, "stop-all-peering", "peer", f.inv.Peers)
}

// StopPeering stops the peers of the tag (they seed on after finishing);
// stopping what is not running succeeds.
func (f *Fleet) StopPeering(ctx context.Context, tag string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	f.header("stop-peering", len(f.inv.Peers))
	var mu sync.Mutex
	stopped := 0
	err := f.each(ctx, f.inv.Peers, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script("murder_stop "+peerPid(tag)+" peer"))
		if err != nil {
			return fmt.Errorf("deploy: stop peering: %w", err)
		}
		if strings.HasPrefix(out, "stopped") {
			mu.Lock()
			stopped++
			mu.Unlock()
		}
		return nil
	})
	f.say("  stopped %d peer process(es)", stopped)
	return err
}

// PeerOptions are the peer task's settings.
type PeerOptions struct {
	Destination        string // destination path on each peer (required)
	NoTagDirectory     bool
	UnsafePleaseDelete bool
}

// PeerReport is what a peer run moved.
type PeerReport struct {
	Hosts     int           // peers asked
	Succeeded int           // peers with the files in place
	Bytes     int64         // artifact bytes in place, summed over the peers
	Elapsed   time.Duration // wall time of the peer step
}

// Peer sends the tag's .torrent to every peer and runs `murder peer` there
// as a detached process (pid and log files in the temp path), following
// its JSON progress until the files are in place. A live status line
// covers the whole fleet; hosts that fail are reported and the others
// still finish.
func (f *Fleet) Peer(ctx context.Context, tag string, opt PeerOptions) (*PeerReport, error) {
	return f.peer(ctx, tag, opt, f.inv.Peers)
}

func (f *Fleet) peer(ctx context.Context, tag string, opt PeerOptions, peers []fleet.Host) (*PeerReport, error) {
	if err := ValidTag(tag); err != nil {
		return nil, err
	}
	if opt.Destination == "" {
		return nil, errors.New("deploy: --destination-path is required")
	}
	if !strings.HasPrefix(opt.Destination, "/") {
		return nil, fmt.Errorf("deploy: --destination-path must be absolute on the peers, got %q", opt.Destination)
	}
	mi, err := f.loadTorrent(tag)
	if err != nil {
		return nil, err
	}
	size := mi.Info.TotalLength()
	f.header("peer", len(peers))
	rep := &PeerReport{Hosts: len(peers)}
	prog := newProgress(f.out, f.cfg.Live, "peer", len(peers))
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); prog.run(pctx) }()
	start := time.Now()
	var mu sync.Mutex
	var followErrs []error
	done := func(h fleet.Host, err error) {
		prog.finish(h.Spec, err == nil, errString(err))
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			rep.Succeeded++
			rep.Bytes += size
		}
	}
	// Starting is bounded by the SSH concurrency; following is not, so that
	// every peer of a large fleet is in the swarm at once.
	var follow sync.WaitGroup
	startErr := fleet.Each(ctx, peers, f.run.Concurrency(), func(ctx context.Context, h fleet.Host) error {
		c, err := f.conn(ctx, h)
		if err == nil {
			err = f.peerStart(ctx, c, tag, opt)
		}
		if err != nil {
			done(h, err)
			return err
		}
		follow.Add(1)
		go func() {
			defer follow.Done()
			err := f.peerFollow(ctx, c, tag, prog)
			done(h, err)
			if err != nil {
				mu.Lock()
				followErrs = append(followErrs, &fleet.HostError{Host: h, Err: err})
				mu.Unlock()
			}
		}()
		return nil
	})
	follow.Wait()
	err = errors.Join(append([]error{startErr}, followErrs...)...)
	stop()
	wg.Wait()
	rep.Elapsed = time.Since(start)
	f.say("  %d/%d peers have %s in place (%s each) in %s", rep.Succeeded, rep.Hosts, tag, humanBytes(size), roundDur(rep.Elapsed))
	return rep, err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return oneLine(err.Error())
}

// peerStart sends the .torrent to a peer and starts `murder peer` there,
// detached, with its pid file, log and JSON progress in the temp path.
func (f *Fleet) peerStart(ctx context.Context, c *fleet.Conn, tag string, opt PeerOptions) error {
	remoteTorrent := strings.TrimSuffix(f.inv.TempPath, "/") + "/" + torrentName(tag)
	if _, err := c.CopyFile(ctx, f.localTorrent(tag), remoteTorrent, 0o644, true); err != nil {
		return err
	}
	args := []string{
		"peer", "--torrent", `"$T"/` + fleet.Quote(torrentName(tag)),
		"--destination-path", fleet.Quote(opt.Destination),
		"--temp-path", `"$T"`,
		"--ip", fleet.Quote(announceIP(c.Host, c)),
		"--seed-time", f.inv.SeedTime.String(),
		"--timeout", (f.inv.PeerTimeout + f.inv.SeedTime).String(),
		"--progress", "json",
	}
	if opt.NoTagDirectory {
		args = append(args, "--no-tag-directory")
	}
	if opt.UnsafePleaseDelete {
		args = append(args, "--unsafe-please-delete")
	}
	if f.inv.MaxUploadRate != "" {
		args = append(args, "--max-upload-rate", fleet.Quote(f.inv.MaxUploadRate))
	}
	if f.inv.MaxDownloadRate != "" {
		args = append(args, "--max-download-rate", fleet.Quote(f.inv.MaxDownloadRate))
	}
	check := ":"
	if !opt.UnsafePleaseDelete {
		// Refuse before downloading, as the peer would after.
		eff := strings.TrimSuffix(opt.Destination, "/") + "/" + tag
		if opt.NoTagDirectory {
			eff = opt.Destination
		}
		check = "d=" + fleet.Quote(eff) + `; if [ -d "$d" ] && [ -n "$(ls -A "$d" 2>/dev/null)" ]; then echo "destination exists and is not empty: $d (use --unsafe-please-delete to replace it)" >&2; exit 3; fi`
	}
	// A peer of this tag still seeding from an earlier run is stopped
	// first.
	_, err := c.Output(ctx, f.script(
		check,
		"murder_stop "+peerPid(tag)+" peer >/dev/null",
		": > "+peerLog(tag),
		"murder_start "+peerPid(tag)+" "+peerJSON(tag)+" "+peerLog(tag)+" "+strings.Join(args, " "),
	))
	if err != nil {
		return fmt.Errorf("deploy: peer: %w", err)
	}
	return nil
}

// peerFollow streams a started peer's JSON events into prog until it
// reports done or error (sed quits there, so the session ends while the
// peer seeds on), or exits.
func (f *Fleet) peerFollow(ctx context.Context, c *fleet.Conn, tag string, prog *progress) error {
	script := f.script(
		"p=$(cat "+peerPid(tag)+")",
		"tail -n +1 -f --pid=\"$p\" "+peerJSON(tag)+" 2>/dev/null | sed -u -n -e p -e '/\"event\": *\"done\"/q' -e '/\"event\": *\"error\"/q'",
	)
	pr, pw := io.Pipe()
	var result error
	var sawDone, sawEvent bool
	parsed := make(chan struct{})
	go func() {
		defer close(parsed)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			var ev peerEvent
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			sawEvent = true
			switch ev.Event {
			case "done":
				sawDone = true
				prog.update(c.Host.Spec, ev)
			case "error":
				result = errors.New(ev.Message)
			default:
				prog.update(c.Host.Spec, ev)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	runErr := c.WithTimeout(f.inv.PeerTimeout+time.Minute).Run(ctx, script, nil, pw, nil)
	pw.Close()
	<-parsed
	switch {
	case result != nil:
		return fmt.Errorf("deploy: peer: %w", result)
	case sawDone:
		return nil
	case runErr != nil:
		return fmt.Errorf("deploy: peer: %w", runErr)
	case !sawEvent:
		return fmt.Errorf("deploy: peer exited without output: %s", f.remoteTail(ctx, c, peerLog(tag)))
	default:
		return fmt.Errorf("deploy: peer exited before the files were in place: %s", f.remoteTail(ctx, c, peerLog(tag)))
	}
}

// CleanTempFiles removes the tag's artifact, .torrent and the pid, log and
// progress files of daemons that are no longer running, on every host, and
// the local copy of the .torrent.
func (f *Fleet) CleanTempFiles(ctx context.Context, tag string) error {
	return f.clean(ctx, tag, f.inv.All())
}

func (f *Fleet) clean(ctx context.Context, tag string, hosts []fleet.Host) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	f.header("clean-temp-files", len(hosts))
	q := fleet.Quote(tag)
	err := f.each(ctx, hosts, func(ctx context.Context, c *fleet.Conn) error {
		_, err := c.Output(ctx, f.script(
			`rm -rf "$T"/`+q+`.tgz "$T"/`+q+`.tgz.* "$T"/`+q+`.tar.zst "$T"/`+q+`.tar.zst.* "$T"/`+q+`.tar "$T"/`+q+`.tar.*`,
			`murder_alive `+seedPid(tag)+` seed >/dev/null || rm -f `+seedPid(tag)+` `+seedLog(tag),
			`murder_alive `+peerPid(tag)+` peer >/dev/null || rm -f `+peerPid(tag)+` `+peerLog(tag)+` `+peerJSON(tag),
			`murder_alive `+trackerPid()+` tracker >/dev/null || rm -f `+trackerPid()+` `+trackerLog(),
		))
		if err != nil {
			return fmt.Errorf("deploy: clean temp files: %w", err)
		}
		return nil
	})
	if rerr := os.Remove(f.localTorrent(tag)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, fmt.Errorf("deploy: %w", rerr))
	}
	f.say("  removed %s's temp files", tag)
	return err
}
