package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/tracker"
)

// trackers returns the tracker hosts.
func (f *Fleet) trackers() []fleet.Host {
	if len(f.inv.Trackers) > 0 {
		return f.inv.Trackers
	}
	return []fleet.Host{f.inv.Tracker}
}

// StartTracker starts the tracker on every tracker host where it is not
// running, and waits until each answers. started says whether this call
// started any; err reports the hosts where no tracker answers.
func (f *Fleet) StartTracker(ctx context.Context) (started bool, err error) {
	s, _, err := f.startTrackers(ctx, f.trackers())
	return len(s) > 0, err
}

// trackerArgs is the command line of the fleet's trackers, without the
// binary, quoted for the shell.
func (f *Fleet) trackerArgs() string {
	args := "tracker --listen :" + strconv.Itoa(f.inv.TrackerPort)
	if f.inv.TrackerStore != "" {
		args += " --store " + fleet.Quote(f.inv.TrackerStore)
	}
	for _, c := range f.inv.Trust.AllowFrom {
		args += " --allow-from " + fleet.Quote(c)
	}
	return args
}

// startTrackers starts the tracker on the given hosts where it is not
// running, waits until each answers, and returns the hosts where this
// call started it and those where a tracker answers.
func (f *Fleet) startTrackers(ctx context.Context, hosts []fleet.Host) (started, running []fleet.Host, err error) {
	args := f.trackerArgs()
	if f.dryRun("start-tracker", hosts, func(fleet.Host) string {
		return f.bin() + " " + args + " (detached, pid in " + f.dryTemp(trackerPid()) + "; unless it runs), then wait until it answers"
	}) {
		return nil, nil, nil
	}
	f.header("start-tracker", len(hosts))
	var mu sync.Mutex
	err = fleet.Each(ctx, hosts, f.run.Concurrency(), func(ctx context.Context, h fleet.Host) error {
		c, err := f.conn(ctx, h)
		if err != nil {
			return err
		}
		out, err := c.Output(ctx, f.script(
			"if murder_alive "+trackerPid()+" tracker >/dev/null; then echo running; exit 0; fi",
			"rm -f "+trackerPid(),
			"murder_start "+trackerPid()+" "+trackerLog()+" "+trackerLog()+" "+args,
			"echo started",
		))
		if err != nil {
			return fmt.Errorf("deploy: start tracker: %w", err)
		}
		isNew := strings.TrimSpace(out) == "started"
		if isNew {
			mu.Lock()
			started = append(started, h)
			mu.Unlock()
		}
		if err := f.waitTracker(ctx, h, c); err != nil {
			return err
		}
		mu.Lock()
		running = append(running, h)
		mu.Unlock()
		if isNew {
			f.say("  tracker started on %s:%d", announceIP(h, c), f.inv.TrackerPort)
		} else {
			f.say("  tracker already running on %s:%d", announceIP(h, c), f.inv.TrackerPort)
		}
		return nil
	})
	return started, running, err
}

// While the tracker or the seeder starts, the deploy asks the tracker every
// pollEvery whether it is ready, and the host whether the daemon still
// runs every aliveEvery polls.
const (
	pollEvery  = 25 * time.Millisecond
	aliveEvery = 20
)

// trackerAddrs are the trackers' addresses as the peers reach them, in
// the order of the inventory. A tracker host that cannot be reached fails
// the call: every tracker goes into the torrent.
func (f *Fleet) trackerAddrs(ctx context.Context) ([]string, error) {
	hosts := f.trackers()
	addrs := make([]string, len(hosts))
	for i, h := range hosts {
		err := f.one(ctx, h, func(ctx context.Context, c *fleet.Conn) error {
			addrs[i] = net.JoinHostPort(announceIP(h, c), strconv.Itoa(f.inv.TrackerPort))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return addrs, nil
}

// trackerClient returns a client for the trackers of hosts, each reached
// through its host's SSH connection in conns (hosts without one are left
// out), one tier each in order (BEP 12): the first that answers serves.
func (f *Fleet) trackerClient(hosts []fleet.Host, conns []*fleet.Conn) *tracker.Client {
	port := strconv.Itoa(f.inv.TrackerPort)
	var tiers [][]string
	byName := make(map[string]int)
	for i, c := range conns {
		if c == nil {
			continue
		}
		name := "tracker" + strconv.Itoa(i)
		byName[name] = i
		tiers = append(tiers, []string{"http://" + name + "/announce"})
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			name, _, _ := net.SplitHostPort(addr)
			i, ok := byName[name]
			if !ok {
				return nil, fmt.Errorf("deploy: no tracker %q", name)
			}
			c := conns[i]
			nc, err := c.DialTCP(ctx, net.JoinHostPort("127.0.0.1", port))
			var oce *ssh.OpenChannelError
			if errors.As(err, &oce) {
				// The host's sshd forbids forwarding: ask the tracker
				// directly, at the address the peers use.
				var d net.Dialer
				return d.DialContext(ctx, "tcp", net.JoinHostPort(announceIP(hosts[i], c), port))
			}
			return nc, err
		},
		DisableKeepAlives: true,
	}
	return tracker.NewClient(tiers, tracker.ClientConfig{
		HTTPClient: &http.Client{Transport: tr},
		Timeout:    5 * time.Second,
		Logger:     f.log,
	})
}

// trackersClient returns a client for every tracker host that can be
// reached, and fails only when none can.
func (f *Fleet) trackersClient(ctx context.Context) (*tracker.Client, error) {
	hosts := f.trackers()
	conns := make([]*fleet.Conn, len(hosts))
	var errs []error
	for i, h := range hosts {
		c, err := f.conn(ctx, h)
		if err != nil {
			errs = append(errs, &fleet.HostError{Host: h, Err: err})
			continue
		}
		conns[i] = c
	}
	if len(errs) == len(hosts) {
		return nil, errors.Join(errs...)
	}
	return f.trackerClient(hosts, conns), nil
}

func (f *Fleet) waitTracker(ctx context.Context, h fleet.Host, c *fleet.Conn) error {
	tc := f.trackerClient([]fleet.Host{h}, []*fleet.Conn{c})
	var last error
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if err := tc.Alive(ctx); err == nil {
			return nil
		} else {
			last = err
		}
		if i%aliveEvery == aliveEvery-1 {
			if out, err := c.Output(ctx, f.script("murder_alive "+trackerPid()+" tracker >/dev/null && echo alive || echo dead")); err == nil && strings.TrimSpace(out) == "dead" {
				return fmt.Errorf("deploy: tracker exited: %s", f.remoteTail(ctx, c, trackerLog()))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
	return fmt.Errorf("deploy: tracker does not answer on port %d: %v; log: %s", f.inv.TrackerPort, last, f.remoteTail(ctx, c, trackerLog()))
}

// StopTracker stops the tracker on every tracker host; stopping one that
// is not running succeeds.
func (f *Fleet) StopTracker(ctx context.Context) error {
	return f.stopTrackers(ctx, f.trackers())
}

// trackerSpecs names the tracker hosts as the inventory writes them.
func trackerSpecs(hosts []fleet.Host) string {
	specs := make([]string, len(hosts))
	for i, h := range hosts {
		specs[i] = h.Spec
	}
	return strings.Join(specs, ", ")
}

// stopTrackers stops the tracker on the given hosts.
func (f *Fleet) stopTrackers(ctx context.Context, hosts []fleet.Host) error {
	if f.dryRun("stop-tracker", hosts, func(fleet.Host) string { return f.dryStop("tracker", f.dryTemp(trackerPid())) }) {
		return nil
	}
	f.header("stop-tracker", len(hosts))
	return f.each(ctx, hosts, func(ctx context.Context, c *fleet.Conn) error {
		out, err := c.Output(ctx, f.script("murder_stop "+trackerPid()+" tracker"))
		if err != nil {
			return fmt.Errorf("deploy: stop tracker: %w", err)
		}
		f.say("  %s", strings.TrimSpace(out))
		return nil
	})
}
