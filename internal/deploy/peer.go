package deploy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/murder-deploy/murder/internal/agent"
	"github.com/murder-deploy/murder/internal/bytesize"
	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/progress"
)

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
	// LastInPlace is when the last peer that succeeded had its files in
	// place; zero when none did.
	LastInPlace time.Time
	// Datacenters splits the figures by the peers' datacenters (by name;
	// "" holds the peers of no datacenter); nil when no peer has one.
	Datacenters []DatacenterReport
}

// DatacenterReport is what a peer run moved into one datacenter.
type DatacenterReport struct {
	Name        string
	Hosts       int
	Succeeded   int
	Bytes       int64
	LastInPlace time.Time
}

// datacenterReports returns an empty report per datacenter of peers, by
// name, and the index of each peer's; nil when no peer has a datacenter.
func datacenterReports(peers []fleet.Host) ([]DatacenterReport, map[string]int) {
	var names []string
	for _, h := range peers {
		if !slices.Contains(names, h.Datacenter) {
			names = append(names, h.Datacenter)
		}
	}
	if len(names) == 1 && names[0] == "" {
		return nil, nil
	}
	slices.Sort(names)
	out := make([]DatacenterReport, len(names))
	index := make(map[string]int, len(names))
	for i, n := range names {
		out[i].Name, index[n] = n, i
	}
	for _, h := range peers {
		out[index[h.Datacenter]].Hosts++
	}
	return out, index
}

// payload is what each peer receives: the .torrent's exact bytes and,
// when deploys are signed, its signature.
type payload struct {
	torrent, sig []byte
}

// loadRelease reads the tag's .torrent, and its signature when deploys
// are signed, from the local temp path.
func (f *Fleet) loadRelease(tag string) (payload, error) {
	if _, err := f.loadTorrent(tag); err != nil {
		return payload{}, err
	}
	b, err := os.ReadFile(f.localTorrent(tag))
	if err != nil {
		return payload{}, fmt.Errorf("deploy: %w", err)
	}
	r := payload{torrent: b}
	if f.inv.Trust.Signed() {
		if r.sig, err = os.ReadFile(f.localSig(tag)); err != nil {
			return payload{}, fmt.Errorf("deploy: [trust] is set but the signature is missing: %w (run create-torrent or download-torrent)", err)
		}
	}
	return r, nil
}

// Peer sends the tag's .torrent to every peer and runs `murder peer` there
// as a detached process (pid and log files in the temp path), following
// its JSON progress until the files are in place. A live status line
// covers the whole fleet; hosts that fail are reported and the others
// still finish.
func (f *Fleet) Peer(ctx context.Context, tag string, opt PeerOptions) (*PeerReport, error) {
	return f.peer(ctx, tag, opt, f.Pick(f.inv.Peers), peerHooks{})
}

// peerHooks let a deploy open each peer's session as soon as its host is
// ready, start the peer as soon as the .torrent and the tracker are, and
// clean up after it as soon as it is done.
type peerHooks struct {
	// ready, when set, returns once the host can run murder, or why not.
	ready func(ctx context.Context, h fleet.Host) error
	// torrent, when set, returns the .torrent (and its signature) once
	// the peers may start; until then their sessions are open and
	// waiting. Unset, the local .torrent is sent at once.
	torrent func(ctx context.Context) (payload, error)
	// clean removes the tag's temp files on a peer once its files are in
	// place (it seeds on from the open artifact).
	clean bool
}

func (f *Fleet) peer(ctx context.Context, tag string, opt PeerOptions, peers []fleet.Host, hooks peerHooks) (*PeerReport, error) {
	if err := ValidTag(tag); err != nil {
		return nil, err
	}
	if err := validDestination(opt.Destination); err != nil {
		return nil, err
	}
	immediate := hooks.torrent == nil
	if immediate && f.dryRun("peer", peers, func(h fleet.Host) string {
		return "receive " + f.localTorrent(tag) + " as " + f.remoteTemp(torrentName(tag)) + f.sigNote() + ", then " + f.bin() + " " + shellWords(f.peerCommand(tag, opt, h, dryAnnounce(h)).args()) +
			" (detached, pid in " + f.dryTemp(peerPid(tag)) + "), following its progress"
	}) {
		return &PeerReport{Hosts: len(peers)}, nil
	}
	if immediate {
		r, err := f.loadRelease(tag)
		if err != nil {
			return nil, err
		}
		hooks.torrent = func(context.Context) (payload, error) { return r, nil }
	}
	// Nothing is said of the peers until they may start: a deploy that
	// stops before says nothing of them.
	prog := newStatusLine(f.out, f.cfg.Live, "peer", len(peers))
	prog.hold()
	open := func() { prog.open(func() { f.header("peer", len(peers)) }) }
	if immediate {
		open()
	}
	// size is known once the .torrent is, before any peer can finish.
	var size atomic.Int64
	torrent := func(ctx context.Context) (payload, error) {
		r, err := hooks.torrent(ctx)
		if err != nil {
			return payload{}, err
		}
		mi, err := metainfo.Parse(r.torrent)
		if err != nil {
			return payload{}, fmt.Errorf("deploy: %w", err)
		}
		size.Store(mi.Info.TotalLength())
		open()
		return r, nil
	}
	rep := &PeerReport{Hosts: len(peers)}
	var dcIndex map[string]int
	rep.Datacenters, dcIndex = datacenterReports(peers)
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); prog.run(pctx) }()
	start := time.Now()
	var mu sync.Mutex
	var followErrs []error
	done := func(h fleet.Host, err error) {
		prog.finish(h.Spec, err == nil, errString(err))
		var placed int64
		if err == nil {
			placed = size.Load()
		}
		f.rec.add(h.Spec, time.Since(start), placed, err)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			rep.Succeeded++
			rep.Bytes += size.Load()
			rep.LastInPlace = time.Now()
			if rep.Datacenters != nil {
				d := &rep.Datacenters[dcIndex[h.Datacenter]]
				d.Succeeded++
				d.Bytes += size.Load()
				d.LastInPlace = rep.LastInPlace
			}
		}
	}
	// Starting is bounded by the SSH concurrency; following is not, so that
	// every peer of a large fleet is in the swarm at once. Each peer is
	// one session: the .torrent in, the peer started, its progress out.
	var follow sync.WaitGroup
	startErr := fleet.Each(ctx, peers, f.run.Concurrency(), func(ctx context.Context, h fleet.Host) error {
		var c *fleet.Conn
		var err error
		if hooks.ready != nil {
			err = hooks.ready(ctx, h)
		}
		if err == nil {
			c, err = f.conn(ctx, h)
		}
		if err != nil {
			done(h, err)
			return err
		}
		started := make(chan struct{})
		ended := make(chan error, 1)
		follow.Add(1)
		go func() {
			defer follow.Done()
			placed := false
			err := f.peerSession(ctx, c, tag, opt, torrent, prog, sessionHooks{
				started: func() { close(started) },
				// The host counts from its done event; cleaning up after
				// it is not waited for.
				placed: func() { placed = true; done(h, nil) },
				clean:  hooks.clean,
			})
			if !placed {
				done(h, err)
			}
			ended <- err
		}()
		select {
		case <-started:
			follow.Add(1)
			go func() {
				defer follow.Done()
				if err := <-ended; err != nil {
					mu.Lock()
					followErrs = append(followErrs, &fleet.HostError{Host: h, Err: err})
					mu.Unlock()
				}
			}()
			return nil
		case err := <-ended:
			return err
		}
	})
	follow.Wait()
	err := errors.Join(append([]error{startErr}, followErrs...)...)
	stop()
	wg.Wait()
	rep.Elapsed = time.Since(start)
	if !prog.opened() {
		return rep, err
	}
	f.say("  %d/%d peers have %s in place (%s each) in %s", rep.Succeeded, rep.Hosts, tag, bytesize.Format(size.Load()), roundDur(rep.Elapsed))
	for _, d := range rep.Datacenters {
		name, last := d.Name, "-"
		if name == "" {
			name = "(none)"
		}
		if d.Succeeded > 0 {
			last = roundDur(d.LastInPlace.Sub(start)).String()
		}
		f.say("    datacenter %s: %d/%d peers, %s, the last in place after %s", name, d.Succeeded, d.Hosts, bytesize.Format(d.Bytes), last)
	}
	return rep, err
}

// validDestination checks the destination path given for the peers.
func validDestination(dest string) error {
	if dest == "" {
		return errors.New("deploy: --destination-path is required")
	}
	if !strings.HasPrefix(dest, "/") {
		return fmt.Errorf("deploy: --destination-path must be absolute on the peers, got %q", dest)
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return oneLine(err.Error())
}

// Lines a peer session prints besides the peer's events: once the peer
// runs, and once its event stream has ended.
const (
	startedLine   = "murder-peer-started"
	eventsEndLine = "murder-peer-events-end"
)

// sessionHooks are told how a peer session goes.
type sessionHooks struct {
	started func() // the peer runs
	placed  func() // the peer reported its files in place
	// clean removes the tag's temp files on the host in the same session
	// once the files are in place (the peer seeds on from the open
	// artifact).
	clean bool
}

// peerSession is one peer's whole run in one SSH session. The host checks
// the destination and stops a peer of the tag left from an earlier run,
// then waits for the .torrent on standard input ("SIZE SHA256 SIGSIZE\n",
// the .torrent's bytes, then SIGSIZE bytes of its signature; SHA256 covers
// both), which it checks and puts in the temp path; it starts `murder
// peer` detached (pid file and log in the temp path) with its status on a
// FIFO, which the session copies to standard output: the peer's JSON
// events come back into prog as it writes them, and the stream ends when
// the peer closes it after its last event (done or error) or exits. The
// session then waits for one line on standard input: "clean" removes the
// tag's temp files. It returns nil once the peer has reported its files
// in place, whatever the cleaning does.
func (f *Fleet) peerSession(ctx context.Context, c *fleet.Conn, tag string, opt PeerOptions, torrent func(context.Context) (payload, error), prog *statusLine, hooks sessionHooks) error {
	cmd := f.peerCommand(tag, opt, c.Host, announceIP(c.Host, c))
	cmd.StatusFD = agent.StatusFD
	args := shellWords(cmd.args())
	check := ":"
	if !opt.UnsafePleaseDelete {
		// Refuse before downloading, as the peer would after.
		eff := strings.TrimSuffix(opt.Destination, "/") + "/" + tag
		if opt.NoTagDirectory {
			eff = opt.Destination
		}
		check = "d=" + fleet.Quote(eff) + `; if [ -d "$d" ] && [ -n "$(ls -A "$d" 2>/dev/null)" ]; then echo "destination exists and is not empty: $d (use --unsafe-please-delete to replace it)" >&2; exit 3; fi`
	}
	lines := []string{
		check,
		// A peer of this tag still seeding from an earlier run is
		// stopped first.
		"murder_stop " + peerPid(tag) + " peer >/dev/null",
		// No header means that the deploy stopped before the peers.
		`read -r size sum sigsize || exit 0`,
		`case "$size$sigsize" in ''|*[!0-9]*) echo "bad .torrent header" >&2; exit 1;; esac`,
		"tf=" + peerTorrent(tag) + "; sf=" + peerSig(tag) + `; f="$tf.murder-tmp.$$"; trap 'rm -f "$f" "$f.t" "$f.s"' EXIT`,
		`head -c "$((size + sigsize))" > "$f"`,
		`got=$(` + fleet.SHA256Cmd + `)`,
		`if [ "$got" != "$sum" ]; then echo ".torrent damaged on the way: SHA-256 ${got:-missing}, want $sum" >&2; exit 1; fi`,
		// A signature left from an earlier run never stands beside
		// this .torrent.
		`rm -f "$sf"`,
		`if [ "$sigsize" -gt 0 ]; then head -c "$size" "$f" > "$f.t"; tail -c "$sigsize" "$f" > "$f.s"; mv -f "$f.s" "$sf"; mv -f "$f.t" "$f"; fi`,
		`mv -f "$f" "$tf"; trap - EXIT`,
		"s=" + peerStatus(tag) + `.$$; rm -f "$s"; mkfifo -m 600 "$s"; trap 'rm -f "$s"' EXIT`,
		"murder_start_status " + peerPid(tag) + " " + peerLog(tag) + ` "$s" ` + args,
		"echo " + startedLine,
		`cat "$s" || true`,
		`rm -f "$s"; trap - EXIT`,
		"echo " + eventsEndLine,
		`read -r next || next=`,
		`[ "$next" = clean ] || exit 0`,
	}
	lines = append(lines, cleanLines(tag)...)
	script := f.script(lines...)
	t0 := time.Now()
	var result error
	var sawDone, sawEvent bool
	var feedErr error
	runErr := c.WithTimeout(f.inv.PeerTimeout+time.Minute).Interact(ctx, script, func(stdin io.WriteCloser, stdout io.Reader) {
		fctx, cancel := context.WithCancel(ctx)
		fed := make(chan struct{})
		go func() {
			defer close(fed)
			r, err := torrent(fctx)
			if err != nil {
				feedErr = err
				stdin.Close()
				return
			}
			h := sha256.New()
			h.Write(r.torrent)
			h.Write(r.sig)
			fmt.Fprintf(stdin, "%d %s %d\n", len(r.torrent), hex.EncodeToString(h.Sum(nil)), len(r.sig))
			stdin.Write(r.torrent)
			stdin.Write(r.sig)
		}()
		sawStart := false
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), progress.MaxLine)
		for sc.Scan() {
			switch {
			case !sawStart && sc.Text() == startedLine:
				sawStart = true
				f.log.Debug("peer started", "host", c.Host.Spec, "seconds", time.Since(t0).Seconds())
				hooks.started()
				continue
			case sc.Text() == eventsEndLine:
				<-fed
				if sawDone && result == nil && hooks.clean {
					io.WriteString(stdin, "clean\n")
				}
				stdin.Close()
				continue
			}
			ev, err := progress.Decode(sc.Bytes())
			if err != nil {
				continue
			}
			sawEvent = true
			switch ev.Event {
			case progress.EventDone:
				sawDone = true
				f.log.Debug("peer done", "host", c.Host.Spec, "seconds", time.Since(t0).Seconds())
				prog.update(c.Host.Spec, ev)
				hooks.placed()
			case progress.EventError:
				result = errors.New(ev.Message)
			default:
				prog.update(c.Host.Spec, ev)
			}
		}
		io.Copy(io.Discard, stdout)
		// The session has ended: stop waiting for the .torrent.
		cancel()
		<-fed
		stdin.Close()
		if ctx.Err() == nil && errors.Is(feedErr, context.Canceled) {
			feedErr = nil
		}
	})
	switch {
	case result != nil:
		return fmt.Errorf("deploy: peer: %w", result)
	case sawDone:
		if runErr != nil {
			f.log.Debug("peer session after done", "host", c.Host.Spec, "err", runErr)
		}
		return nil
	case feedErr != nil:
		return feedErr
	case runErr != nil:
		return fmt.Errorf("deploy: peer: %w", runErr)
	case !sawEvent:
		return fmt.Errorf("deploy: peer exited without output: %s", f.remoteTail(ctx, c, peerLog(tag)))
	default:
		return fmt.Errorf("deploy: peer exited before the files were in place: %s", f.remoteTail(ctx, c, peerLog(tag)))
	}
}

// peerCommand is the command line of the peer of tag on h, announcing ip.
func (f *Fleet) peerCommand(tag string, opt PeerOptions, h fleet.Host, ip string) peerCommand {
	return peerCommand{
		Torrent:            f.remoteTemp(torrentName(tag)),
		Destination:        opt.Destination,
		TempPath:           f.inv.TempPath,
		IP:                 ip,
		SeedTime:           f.inv.SeedTime,
		Timeout:            f.inv.PeerTimeout + f.inv.SeedTime,
		NoTagDirectory:     opt.NoTagDirectory,
		UnsafePleaseDelete: opt.UnsafePleaseDelete,
		MaxUploadRate:      f.inv.MaxUploadRate,
		MaxDownloadRate:    f.inv.MaxDownloadRate,
		Datacenter:         h.Datacenter,
		Rack:               h.Rack,
		AllowFrom:          f.inv.Trust.AllowFrom,
		AllowedSigners:     f.allowedSignersArg(),
	}
}

// allowedSignersArg is the peers' --allowed-signers: the file
// distribute-files put beside the binary, when deploys are signed.
func (f *Fleet) allowedSignersArg() string {
	if !f.inv.Trust.Signed() {
		return ""
	}
	return f.inv.AllowedSignersPath()
}
