package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/tracker"
)

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

// While the tracker or the seeder starts, the deploy asks the tracker every
// pollEvery whether it is ready, and the host whether the daemon still
// runs every aliveEvery polls.
const (
	pollEvery  = 25 * time.Millisecond
	aliveEvery = 20
)

// trackerAddr is the tracker's address as the peers reach it.
func (f *Fleet) trackerAddr(ctx context.Context) (string, error) {
	var addr string
	err := f.one(ctx, f.inv.Tracker, func(ctx context.Context, c *fleet.Conn) error {
		addr = net.JoinHostPort(announceIP(f.inv.Tracker, c), strconv.Itoa(f.inv.TrackerPort))
		return nil
	})
	return addr, err
}

// trackerClient returns a client for the tracker that reaches it through
// the tracker host's SSH connection c.
func (f *Fleet) trackerClient(c *fleet.Conn) *tracker.Client {
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
	return tracker.NewClient([][]string{{"http://tracker/announce"}}, tracker.ClientConfig{
		HTTPClient: &http.Client{Transport: tr},
		Timeout:    5 * time.Second,
		Logger:     f.log,
	})
}

func (f *Fleet) waitTracker(ctx context.Context, c *fleet.Conn) error {
	tc := f.trackerClient(c)
	var last error
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if _, err := tc.Scrape(ctx); err == nil {
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
