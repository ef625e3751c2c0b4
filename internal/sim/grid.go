package sim

import (
	"time"

	"github.com/murder-deploy/murder/internal/swarm"
)

// grid is the resolution of the simulation's timers: the links, the
// delays and the engine's own timers (gridClock) fire on whole multiples
// of it. The bubble's clock advances only when every goroutine waits,
// once per distinct instant a timer is due; with timers at exact
// nanoseconds a swarm of 1,000 hosts had millions of such instants (a few
// for every segment), each running a goroutine or two, so the simulation
// used 1.2 of the machine's 2 cores. On the grid the events of one
// microsecond run together, on every core (1.7-1.8 of 2, and the same
// swarm in 40 % of the wall time, bench/sim/README.md step 13). The links keep their
// exact rates (link.serve books each segment from when the previous one
// left, not from when it woke), so the grid delays an event by less than
// one grid step and does not accumulate.
const grid = time.Microsecond

// untilGrid returns how long from now until the first instant on the
// grid at or after t.
func untilGrid(now, t time.Time) time.Duration {
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	if r := t.UnixNano() % int64(grid); r != 0 {
		d += grid - time.Duration(r)
	}
	return d
}

// gridClock is the bubble's clock with timers on the grid (swarm.Clock).
type gridClock struct{}

func (gridClock) Now() time.Time { return time.Now() }

func (gridClock) NewTimer(d time.Duration) swarm.Timer {
	return gridTimer{time.NewTimer(onGrid(d))}
}

func (gridClock) AfterFunc(d time.Duration, f func()) swarm.Timer {
	return gridTimer{time.AfterFunc(onGrid(d), f)}
}

// onGrid stretches a timer of d from now to end on the grid.
func onGrid(d time.Duration) time.Duration {
	now := time.Now()
	return untilGrid(now, now.Add(d))
}

type gridTimer struct{ t *time.Timer }

func (t gridTimer) C() <-chan time.Time        { return t.t.C }
func (t gridTimer) Stop() bool                 { return t.t.Stop() }
func (t gridTimer) Reset(d time.Duration) bool { return t.t.Reset(onGrid(d)) }

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
