package deploy

import (
	"context"
	"errors"
	"sync"

	"github.com/murder-deploy/murder/internal/fleet"
)

// connEntry is one host's connection, dialled once; mu is held while
// dialling, so that concurrent tasks on the host wait for the same dial.
type connEntry struct {
	mu   sync.Mutex
	done bool
	c    *fleet.Conn
	err  error
}

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
