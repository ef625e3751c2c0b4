package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/murder-deploy/murder/internal/fleet"
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

// Summary is what a deploy did.
type Summary struct {
	Hosts     int           // peers in the inventory
	Succeeded int           // peers with the files in place
	Bytes     int64         // artifact bytes in place, summed over the peers
	Wall      time.Duration // wall time of the whole deploy
	// Result is the per-host report of a deploy on this machine (Local);
	// a Fleet's comes from Fleet.Result.
	Result *Result
}

// Throughput is the aggregate rate: bytes placed per second of wall time.
func (s *Summary) Throughput() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return float64(s.Bytes) / s.Wall.Seconds()
}

// Print writes the summary.
func (s *Summary) Print(f *Fleet) {
	f.say("\ndeployed to %d/%d hosts: %s in %s, %s/s aggregate", s.Succeeded, s.Hosts, humanBytes(s.Bytes), roundDur(s.Wall), humanBytes(int64(s.Throughput())))
}

// Deploy runs Murder's deploy strategy in one go: copy murder to the hosts,
// start the tracker unless it is running, create the torrent on the
// seeder, seed, peer on every reachable host, stop seeding, stop the
// tracker if this run started it, and clean the temp files. Peers that fail
// are reported (fleet.HostErrors) while the others finish; a failure of
// the tracker or seeder host stops the deploy.
func (f *Fleet) Deploy(ctx context.Context, opt Options) (*Summary, error) {
	if err := ValidTag(opt.Tag); err != nil {
		return nil, err
	}
	if opt.FilesPath == "" {
		return nil, errors.New("deploy: --files-path is required")
	}
	if opt.Destination == "" {
		return nil, errors.New("deploy: --destination-path is required")
	}
	start := time.Now()
	selected := f.Pick(f.inv.Peers)
	if len(selected) == 0 {
		return nil, errors.New("deploy: --limit and --role select no peer")
	}
	if opt.Activate != nil {
		opt.Activate.Destination = opt.Destination
	}
	sum := &Summary{Hosts: len(selected)}
	// The tracker and the seeder take part whatever --limit says.
	everyone := []fleet.Host{f.inv.Tracker, f.inv.Seeder}
	for _, h := range f.inv.All() {
		if h.Spec != f.inv.Tracker.Spec && h.Spec != f.inv.Seeder.Spec && f.Pick([]fleet.Host{h}) != nil {
			everyone = append(everyone, h)
		}
	}
	if f.inv.Tracker.Spec == f.inv.Seeder.Spec {
		everyone = everyone[1:]
	}
	var failed []error

	// Hosts that fail a step drop out of the later ones.
	bad := map[string]bool{}
	note := func(err error) {
		for _, he := range fleet.HostErrors(err) {
			bad[he.Host.Spec] = true
			failed = append(failed, he)
		}
	}
	role := func(h fleet.Host, what string) error {
		if bad[h.Spec] {
			return fmt.Errorf("deploy: the %s host %s failed; stopping", what, h.Spec)
		}
		return nil
	}
	result := func(err error) (*Summary, error) {
		sum.Wall = time.Since(start)
		if err != nil {
			failed = append(failed, err)
		}
		if len(failed) == 0 {
			return sum, nil
		}
		return sum, fleet.NewFailedHostsError(errors.Join(failed...), len(f.inv.All()))
	}

	note(f.distribute(ctx, everyone))
	if err := errors.Join(role(f.inv.Tracker, "tracker"), role(f.inv.Seeder, "seeder")); err != nil {
		return result(err)
	}
	started, err := f.StartTracker(ctx)
	note(err)
	if err := role(f.inv.Tracker, "tracker"); err != nil {
		return result(err)
	}
	stopTracker := func() {
		if started {
			// Use a fresh context so that an interrupted deploy still stops
			// the tracker it started.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			note(f.StopTracker(sctx))
			cancel()
		}
	}
	if err := f.CreateTorrent(ctx, opt.Tag, opt.FilesPath); err != nil {
		note(err)
		stopTracker()
		return result(firstNonHost(err))
	}
	if err := f.StartSeeding(ctx, opt.Tag); err != nil {
		note(err)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		f.StopSeeding(sctx, opt.Tag)
		cancel()
		stopTracker()
		return result(firstNonHost(err))
	}
	var peers []fleet.Host
	for _, h := range selected {
		if !bad[h.Spec] {
			peers = append(peers, h)
		}
	}
	rep, err := f.peer(ctx, opt.Tag, opt.PeerOptions, peers)
	note(err)
	if rep != nil {
		sum.Succeeded, sum.Bytes = rep.Succeeded, rep.Bytes
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if ctx.Err() != nil {
		// Interrupted: do not leave peers downloading on their own.
		f.StopPeering(sctx, opt.Tag)
	}
	note(f.StopSeeding(sctx, opt.Tag))
	stopTracker()
	if opt.Activate != nil && ctx.Err() == nil {
		var have []fleet.Host
		for _, h := range selected {
			if !bad[h.Spec] {
				have = append(have, h)
			}
		}
		note(f.activate(ctx, opt.Tag, *opt.Activate, have, len(selected)))
	}
	var ok []fleet.Host
	for _, h := range everyone {
		if !bad[h.Spec] {
			ok = append(ok, h)
		}
	}
	note(f.clean(sctx, opt.Tag, ok))
	return result(nil)
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
