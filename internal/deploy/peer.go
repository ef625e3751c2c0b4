package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/murder-deploy/murder/internal/fleet"
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

// Peer sends the tag's .torrent to every peer and runs `murder peer` there
// as a detached process (pid and log files in the temp path), following
// its JSON progress until the files are in place. A live status line
// covers the whole fleet; hosts that fail are reported and the others
// still finish.
func (f *Fleet) Peer(ctx context.Context, tag string, opt PeerOptions) (*PeerReport, error) {
	return f.peer(ctx, tag, opt, f.inv.Peers, peerHooks{})
}

// peerHooks let a deploy start a peer as soon as its host is ready and
// clean up after it as soon as it is done.
type peerHooks struct {
	// ready, when set, returns once the host can run murder, or why not.
	ready func(ctx context.Context, h fleet.Host) error
	// clean removes the tag's temp files on a peer once its files are in
	// place (it seeds on from the open artifact).
	clean bool
}

func (f *Fleet) peer(ctx context.Context, tag string, opt PeerOptions, peers []fleet.Host, hooks peerHooks) (*PeerReport, error) {
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
	torrent, err := os.ReadFile(f.localTorrent(tag))
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	src := fleet.LocalBytes(torrent)
	size := mi.Info.TotalLength()
	f.header("peer", len(peers))
	rep := &PeerReport{Hosts: len(peers)}
	var dcIndex map[string]int
	rep.Datacenters, dcIndex = datacenterReports(peers)
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
			rep.LastInPlace = time.Now()
			if rep.Datacenters != nil {
				d := &rep.Datacenters[dcIndex[h.Datacenter]]
				d.Succeeded++
				d.Bytes += size
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
			err := f.peerSession(ctx, c, tag, opt, src, prog, func() { close(started) })
			done(h, err)
			if err == nil && hooks.clean {
				// Nothing waits for this; a failure only leaves files.
				f.cleanHost(ctx, c, tag)
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
	err = errors.Join(append([]error{startErr}, followErrs...)...)
	stop()
	wg.Wait()
	rep.Elapsed = time.Since(start)
	f.say("  %d/%d peers have %s in place (%s each) in %s", rep.Succeeded, rep.Hosts, tag, humanBytes(size), roundDur(rep.Elapsed))
	for _, d := range rep.Datacenters {
		name, last := d.Name, "-"
		if name == "" {
			name = "(none)"
		}
		if d.Succeeded > 0 {
			last = roundDur(d.LastInPlace.Sub(start)).String()
		}
		f.say("    datacenter %s: %d/%d peers, %s, the last in place after %s", name, d.Succeeded, d.Hosts, humanBytes(d.Bytes), last)
	}
	return rep, err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return oneLine(err.Error())
}

// startedLine is what a peer session prints once the peer runs.
const startedLine = "murder-peer-started"

// peerSession is one peer's whole run in one SSH session: the .torrent
// goes in on standard input, `murder peer` is started detached (pid file,
// log and JSON progress in the temp path), and its JSON events come back
// into prog until it reports done or error (sed quits there, so the
// session ends while the peer seeds on), or exits. started is called once
// the peer runs.
func (f *Fleet) peerSession(ctx context.Context, c *fleet.Conn, tag string, opt PeerOptions, torrent *fleet.LocalFile, prog *progress, started func()) error {
	args := shellWords(peerCommand{
		Torrent:            f.remoteTemp(torrentName(tag)),
		Destination:        opt.Destination,
		TempPath:           f.inv.TempPath,
		IP:                 announceIP(c.Host, c),
		SeedTime:           f.inv.SeedTime,
		Timeout:            f.inv.PeerTimeout + f.inv.SeedTime,
		NoTagDirectory:     opt.NoTagDirectory,
		UnsafePleaseDelete: opt.UnsafePleaseDelete,
		MaxUploadRate:      f.inv.MaxUploadRate,
		MaxDownloadRate:    f.inv.MaxDownloadRate,
		MetricsListen:      metricsListen(f.inv.MetricsPort),
		Datacenter:         c.Host.Datacenter,
		Rack:               c.Host.Rack,
	}.args())
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
	then := f.scriptBody(
		check,
		"murder_stop "+peerPid(tag)+" peer >/dev/null",
		": > "+peerLog(tag),
		"murder_start "+peerPid(tag)+" "+peerJSON(tag)+" "+peerLog(tag)+" "+args,
		"echo "+startedLine,
		"p=$(cat "+peerPid(tag)+")",
		"tail -n +1 -f --pid=\"$p\" "+peerJSON(tag)+" 2>/dev/null | sed -u -n -e p -e '/\"event\": *\"done\"/q' -e '/\"event\": *\"error\"/q'",
	)
	t0 := time.Now()
	pr, pw := io.Pipe()
	var result error
	var sawDone, sawEvent bool
	parsed := make(chan struct{})
	go func() {
		defer close(parsed)
		sawStart := false
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			if !sawStart && sc.Text() == startedLine {
				sawStart = true
				f.log.Debug("peer started", "host", c.Host.Spec, "seconds", time.Since(t0).Seconds())
				started()
				continue
			}
			var ev peerEvent
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			sawEvent = true
			switch ev.Event {
			case "done":
				sawDone = true
				f.log.Debug("peer done", "host", c.Host.Spec, "seconds", time.Since(t0).Seconds())
				prog.update(c.Host.Spec, ev)
			case "error":
				result = errors.New(ev.Message)
			default:
				prog.update(c.Host.Spec, ev)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	_, runErr := c.WithTimeout(f.inv.PeerTimeout+time.Minute).Put(ctx, fleet.Put{
		Src: torrent, Dst: f.remoteTemp(torrentName(tag)), Mode: 0o644, Then: then, ThenOut: pw,
	})
	pw.Close()
	<-parsed
	switch {
	case result != nil:
		return fmt.Errorf("deploy: peer: %w", result)
	case sawDone:
		return nil
	case runErr != nil:
		return fmt.Errorf("deploy: peer: %w", unwrapCopy(runErr))
	case !sawEvent:
		return fmt.Errorf("deploy: peer exited without output: %s", f.remoteTail(ctx, c, peerLog(tag)))
	default:
		return fmt.Errorf("deploy: peer exited before the files were in place: %s", f.remoteTail(ctx, c, peerLog(tag)))
	}
}

// unwrapCopy drops fleet.Put's "copy to" prefix from a failure of the
// commands that ran after the copy.
func unwrapCopy(err error) error {
	var ee *fleet.ExitError
	if errors.As(err, &ee) {
		return ee
	}
	return err
}
