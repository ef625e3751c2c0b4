package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	if _, err := c.CopyFile(ctx, f.localTorrent(tag), f.remoteTemp(torrentName(tag)), 0o644, true); err != nil {
		return err
	}
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
	_, err := c.Output(ctx, f.script(
		check,
		"murder_stop "+peerPid(tag)+" peer >/dev/null",
		": > "+peerLog(tag),
		"murder_start "+peerPid(tag)+" "+peerJSON(tag)+" "+peerLog(tag)+" "+args,
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
