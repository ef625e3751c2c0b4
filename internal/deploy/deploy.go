package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/murder-deploy/murder/internal/bundle"
	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/tracker"
)

// Options are the deploy's settings.
type Options struct {
	Tag       string // name of the deploy (required)
	FilesPath string // directory on the seeder to distribute (required)
	PeerOptions
	// Activate, when set, switches DESTINATION/current to the tag on the
	// peers once they have it (see Fleet.Activate).
	Activate *ActivateOptions
}

// Deploy runs Murder's deploy strategy in one go: copy murder to the hosts,
// start the tracker unless it is running, create the torrent on the
// seeder, seed, peer on every reachable host, stop seeding, stop the
// tracker if this run started it, and clean the temp files. Peers that fail
// are reported (fleet.HostErrors) while the others finish; a failure of
// the tracker or seeder host stops the deploy.
//
// Steps that do not depend on each other overlap: each host goes on as
// soon as it has murder, the torrent is created while the tracker starts,
// and the seeder starts with the peers (docs/deploy.md says what stays
// sequential and why). With Config.DryRun it prints the Plan instead.
func (f *Fleet) Deploy(ctx context.Context, opt Options) (*Summary, error) {
	if err := ValidTag(opt.Tag); err != nil {
		return nil, err
	}
	if opt.FilesPath == "" {
		return nil, errors.New("deploy: --files-path is required")
	}
	if f.cfg.DryRun {
		return nil, f.Plan(opt)
	}
	if err := validDestination(opt.Destination); err != nil {
		return nil, err
	}
	start := time.Now()
	st := newSteps(start)
	selected := f.Pick(f.inv.Peers)
	if len(selected) == 0 {
		return nil, errors.New("deploy: --limit and --role select no peer")
	}
	if opt.Activate != nil {
		opt.Activate.Destination = opt.Destination
	}
	sum := &Summary{Hosts: len(selected)}

	// Hosts that fail a step drop out of the later ones.
	var mu sync.Mutex
	var failed []error
	bad := map[string]bool{}
	note := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		for _, he := range fleet.HostErrors(err) {
			bad[he.Host.Spec] = true
			failed = append(failed, he)
		}
	}
	isBad := func(h fleet.Host) bool {
		mu.Lock()
		defer mu.Unlock()
		return bad[h.Spec]
	}
	result := func(err error) (*Summary, error) {
		sum.Wall = time.Since(start)
		sum.Steps = st.list()
		if err != nil {
			failed = append(failed, err)
		}
		if len(failed) == 0 {
			return sum, nil
		}
		return sum, fleet.NewFailedHostsError(errors.Join(failed...), len(f.inv.All()))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()

	// Every host gets murder at once, and goes on as soon as it has it.
	all := f.deployHosts()
	ready := make(map[string]*future[struct{}], len(all))
	for _, h := range all {
		ready[h.Spec] = newFuture[struct{}]()
	}
	hostReady := func(ctx context.Context, h fleet.Host) error {
		_, err := ready[h.Spec].wait(ctx)
		return err
	}
	distributed := make(chan struct{})
	go func() {
		defer close(distributed)
		end := st.begin("distribute-files")
		err := f.distribute(ctx, all, true, func(h fleet.Host, err error) { ready[h.Spec].set(struct{}{}, err) })
		end()
		note(err)
	}()

	// Each peer's session opens as soon as its host has murder, and
	// waits there for the .torrent: the peers start the moment it exists
	// and the tracker answers (a peer that cannot announce tries again
	// only 2 s later).
	gate := newFuture[payload]()
	pctx, stopPeers := context.WithCancel(ctx)
	defer stopPeers()
	var rep *PeerReport
	var peerErr error
	peered := make(chan struct{})
	go func() {
		defer close(peered)
		end := st.begin("peer")
		rep, peerErr = f.peer(pctx, opt.Tag, opt.PeerOptions, selected, peerHooks{ready: hostReady, torrent: gate.wait, clean: true})
		end()
	}()

	// The trackers start while the torrent is created: create needs only
	// their addresses. The deploy goes on while one tracker answers; the
	// peers fail over between them (BEP 12).
	var started []fleet.Host
	tracking := make(chan error, 1)
	go func() {
		var hosts []fleet.Host
		var errs []error
		for _, h := range f.trackers() {
			if err := hostReady(ctx, h); err != nil {
				errs = append(errs, err)
				continue
			}
			hosts = append(hosts, h)
		}
		if len(hosts) == 0 {
			tracking <- errors.Join(errs...)
			return
		}
		end := st.begin("start-tracker")
		s, running, err := f.startTrackers(ctx, hosts)
		end()
		started = s
		note(err)
		if len(running) == 0 {
			tracking <- errors.Join(append(errs, err)...)
			return
		}
		tracking <- nil
	}()
	// The torrent is created on the seeder host, and the seeder started
	// there in the same session once the trackers answer (seedSession).
	var ss *seedSession
	createErr := hostReady(ctx, f.inv.Seeder)
	if createErr == nil {
		end := st.begin("create-torrent")
		ss = f.startSeedSession(ctx, opt.Tag, opt.FilesPath)
		createErr = ss.created(ctx)
		end()
		note(createErr)
	}
	trackerErr := <-tracking
	stopTracker := func() {
		if len(started) > 0 {
			// A fresh context, so that an interrupted deploy still stops
			// the trackers it started.
			note(f.stopTrackers(sctx, started))
		}
	}
	if trackerErr != nil || createErr != nil {
		// The peers never started: their sessions end without a word.
		gate.set(payload{}, errors.New("deploy: stopped before the peers started"))
		stopPeers()
		if ss != nil {
			ss.seed(ctx, false)
		}
		<-peered
		<-distributed
		var errs []error
		if trackerErr != nil {
			errs = append(errs, fmt.Errorf("deploy: the tracker host %s failed; stopping", trackerSpecs(f.trackers())))
		}
		if ready[f.inv.Seeder.Spec].err != nil {
			errs = append(errs, fmt.Errorf("deploy: the seeder host %s failed; stopping", f.inv.Seeder.Spec))
		} else if createErr != nil {
			errs = append(errs, firstNonHost(createErr))
		}
		stopTracker()
		return result(errors.Join(errs...))
	}

	// The seeder starts with the peers: the seeder connects to every peer
	// the tracker lists when it announces. If the seeder fails, so do the
	// peers.
	torrent, err := f.loadRelease(opt.Tag)
	if err != nil {
		gate.set(payload{}, err)
		stopPeers()
		ss.seed(ctx, false)
		<-peered
		<-distributed
		stopTracker()
		return result(err)
	}
	gate.set(torrent, nil)
	seeding := make(chan error, 1)
	go func() {
		end := st.begin("start-seeding")
		f.header("start-seeding", 1)
		err := ss.seed(ctx, true)
		end()
		if err != nil {
			stopPeers()
		}
		seeding <- err
	}()
	<-peered
	seedErr := <-seeding
	<-distributed
	if rep != nil {
		sum.Succeeded, sum.Bytes = rep.Succeeded, rep.Bytes
		if !rep.LastInPlace.IsZero() {
			sum.FilesInPlace = rep.LastInPlace.Sub(start)
		}
		for _, d := range rep.Datacenters {
			ds := DatacenterSummary{Name: d.Name, Hosts: d.Hosts, Succeeded: d.Succeeded, Bytes: d.Bytes}
			if !d.LastInPlace.IsZero() {
				ds.FilesInPlace = d.LastInPlace.Sub(start)
			}
			sum.Datacenters = append(sum.Datacenters, ds)
		}
	}
	if seedErr != nil {
		// The peers failed because the seeder did.
		note(seedErr)
	} else {
		note(peerErr)
	}
	if ctx.Err() != nil || seedErr != nil {
		// Do not leave peers downloading on their own.
		f.StopPeering(sctx, opt.Tag)
	}
	end := st.begin("stop-and-clean")
	note(f.finish(sctx, opt.Tag, started, isBad))
	end()
	if opt.Activate != nil && ctx.Err() == nil && seedErr == nil {
		var have []fleet.Host
		for _, h := range selected {
			if !isBad(h) {
				have = append(have, h)
			}
		}
		end = st.begin("activate")
		note(f.activate(ctx, opt.Tag, *opt.Activate, have, len(selected)))
		end()
	}
	return result(firstNonHost(seedErr))
}

// seedSession is the session on the seeder host that creates the torrent
// and then starts the seeder (createSession).
type seedSession struct {
	f       *Fleet
	tag     string
	torrent chan error     // the .torrent is back, or why not
	start   chan bool      // whether to start the seeder
	c       *fleet.Conn    // set before torrent is sent on
	done    chan error     // the session's end
	state   string         // "started" or "running", once done
	once    sync.Once      // for start
	res     *future[error] // the seeder listed by the trackers, or why not
}

// startSeedSession starts the create session on the seeder host.
func (f *Fleet) startSeedSession(ctx context.Context, tag, filesPath string) *seedSession {
	ss := &seedSession{f: f, tag: tag, torrent: make(chan error, 1), start: make(chan bool, 1), done: make(chan error, 1)}
	f.header("create-torrent", 1)
	go func() {
		sent := false
		err := f.one(ctx, f.inv.Seeder, func(ctx context.Context, c *fleet.Conn) error {
			var err error
			ss.state, err = f.createSession(ctx, c, tag, filesPath, func(ctx context.Context) bool {
				ss.c, sent = c, true
				ss.torrent <- nil
				select {
				case ok := <-ss.start:
					return ok
				case <-ctx.Done():
					return false
				}
			})
			return err
		})
		if !sent {
			ss.torrent <- err
		}
		ss.done <- err
	}()
	return ss
}

// created returns once the .torrent is back, or why it is not.
func (ss *seedSession) created(ctx context.Context) error {
	select {
	case err := <-ss.torrent:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// seed tells the session whether to start the seeder; with true it waits
// until the trackers list it, and returns why not. Only the first call
// counts; with false it waits for the session to end.
func (ss *seedSession) seed(ctx context.Context, start bool) error {
	ss.once.Do(func() {
		ss.start <- start
		err := <-ss.done
		if err == nil && start {
			err = ss.listed(ctx)
		}
		ss.res = newFuture[error]()
		ss.res.set(err, nil)
	})
	err, _ := ss.res.wait(context.Background())
	return err
}

// listed waits until the trackers list the seeder the session started.
func (ss *seedSession) listed(ctx context.Context) error {
	f := ss.f
	mi, err := f.loadTorrent(ss.tag)
	if err == nil {
		var tc *tracker.Client
		if tc, err = f.trackersClient(ctx); err == nil {
			err = f.waitSeeder(ctx, ss.c, tc, ss.tag, mi, ss.state)
		}
	}
	if err != nil {
		return &fleet.HostError{Host: f.inv.Seeder, Err: err}
	}
	return nil
}

// deployHosts are the hosts a deploy works on: the trackers and the
// seeder, whatever --limit says, and the selected peers.
func (f *Fleet) deployHosts() []fleet.Host {
	always := map[string]bool{f.inv.Seeder.Spec: true}
	for _, h := range f.trackers() {
		always[h.Spec] = true
	}
	var all []fleet.Host
	for _, h := range f.inv.All() {
		if always[h.Spec] || len(f.Pick([]fleet.Host{h})) > 0 {
			all = append(all, h)
		}
	}
	return all
}

// finish stops the seeder, then the given trackers (those it started),
// and cleans the temp files of their hosts in the same sessions (the peers
// cleaned theirs when their files were in place), and the local .torrent.
// The seeder goes first so that its last announce ("stopped") reaches a
// tracker that still answers: against one that is shutting down it waits
// for the tracker client's timeout. Hosts for which skip says so are not
// cleaned.
func (f *Fleet) finish(ctx context.Context, tag string, trackers []fleet.Host, skip func(fleet.Host) bool) error {
	stops := map[string][]string{f.inv.Seeder.Spec: {"murder_stop " + seedPid(tag) + " seed"}}
	var others []fleet.Host
	for _, t := range trackers {
		if t.Spec != f.inv.Seeder.Spec {
			others = append(others, t)
		}
		stops[t.Spec] = append(stops[t.Spec], "murder_stop "+trackerPid()+" tracker")
	}
	var mu sync.Mutex
	var said []string
	cleaned := 0
	stop := func(ctx context.Context, h fleet.Host) (err error) {
		start := time.Now()
		defer func() { f.rec.add(h.Spec, time.Since(start), 0, err) }()
		c, err := f.conn(ctx, h)
		if err != nil {
			return err
		}
		lines := stops[h.Spec]
		clean := !skip(h)
		if clean {
			lines = append(lines, cleanLines(tag)...)
		}
		out, err := c.Output(ctx, f.script(lines...))
		if err != nil {
			return fmt.Errorf("deploy: stop and clean: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		said = append(said, strings.Split(strings.TrimSpace(out), "\n")...)
		if clean {
			cleaned++
		}
		return nil
	}
	err := fleet.Each(ctx, []fleet.Host{f.inv.Seeder}, 1, stop)
	err = errors.Join(err, fleet.Each(ctx, others, f.run.Concurrency(), stop))
	if rerr := os.Remove(f.localTorrent(tag)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, fmt.Errorf("deploy: %w", rerr))
	}
	task := "stop-seeding, clean-temp-files"
	if len(trackers) > 0 {
		task = "stop-seeding, stop-tracker, clean-temp-files"
	}
	f.header(task, 1+len(others))
	for _, l := range said {
		f.say("  %s", l)
	}
	f.say("  removed %s's temp files on %d host(s); the peers removed theirs when done", tag, cleaned)
	return err
}

// firstNonHost returns err unless it is only per-host failures (already
// noted), in which case nil.
func firstNonHost(err error) error {
	for _, he := range fleet.HostErrors(err) {
		if he.Host.Spec == "" {
			return he.Err
		}
	}
	return nil
}

// ValidTag checks a tag with murder's one tag rule (bundle.ValidateTag),
// the rule murder create applies on the seeder.
func ValidTag(tag string) error {
	if tag == "" {
		return errors.New("deploy: --tag is required")
	}
	if err := bundle.ValidateTag(tag); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	return nil
}
