package swarm

import (
	"sync"
	"time"

	"github.com/murder-deploy/murder/internal/peerwire"
)

// pacer sends a host's blocks at its upload rate (Config.UploadRate), one
// after another across all its connections, in the order they became
// ready. The blocks wait here, not in the sockets: a connection whose
// block waits for its turn still writes its requests and haves at once
// (conn.waitTurn), so they reach the peer after at most the block on the
// wire, not behind every block queued for the link. Set just below the
// host's link rate, it keeps the link's queue short, and what is queued
// is the engine's (bench/sim/README.md, step 11).
//
// The previous limit, a token bucket of one second's bytes waited for in
// the connection's writer, let a second of blocks into the link's queue
// after an idle spell, and held the connection's requests and haves while
// its block waited.
type pacer struct {
	clock Clock
	rate  float64       // bytes per second
	block time.Duration // a block's time at the rate

	mu    sync.Mutex
	next  time.Time // when the link is free for the next block
	queue []*turn   // waiting, first in first out
	armed bool      // a timer will grant queue[0]
}

// paceBurst is the most blocks that may go at once, after a pause or when
// the pacer's timer fired late: on a busy machine timers and the writers
// they wake run milliseconds late. A pacer that let half a block's time
// go by unused made the test bed's seeder, paced at 60 Mbit/s, take 8-20 %
// longer than its rate allows to send every piece once; with 4 blocks it
// keeps the rate (bench/sim/README.md, step 11).
const paceBurst = 4

// turn is a block's place in a pacer's queue; ch is closed when it may go.
type turn struct {
	n  int
	ch chan struct{}
}

func newPacer(c Clock, bps int64) *pacer {
	if bps <= 0 {
		return nil
	}
	p := &pacer{clock: c, rate: float64(bps)}
	p.block = p.time(peerwire.BlockSize)
	return p
}

func (p *pacer) time(n int) time.Duration {
	return time.Duration(float64(n) / p.rate * float64(time.Second))
}

// sendLocked books the link for n bytes, at its turn or, when that has
// passed by more than paceBurst-1 blocks' time, from that long before now.
func (p *pacer) sendLocked(now time.Time, n int) {
	p.next = later(p.next, now.Add(-(paceBurst-1)*p.block)).Add(p.time(n))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// enter asks to send a block of n bytes: nil when it may go now, else a
// turn to wait for (or to give back with leave).
func (p *pacer) enter(n int) *turn {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	if len(p.queue) == 0 && !now.Before(p.next) {
		p.sendLocked(now, n)
		return nil
	}
	t := &turn{n: n, ch: make(chan struct{})}
	p.queue = append(p.queue, t)
	p.armLocked(now)
	return t
}

// leave gives back a turn that was not granted; a granted one's time is
// spent.
func (p *pacer) leave(t *turn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, q := range p.queue {
		if q == t {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			return
		}
	}
}

func (p *pacer) armLocked(now time.Time) {
	if p.armed || len(p.queue) == 0 {
		return
	}
	p.armed = true
	p.clock.AfterFunc(p.next.Sub(now), p.grant)
}

// grant lets the waiting blocks whose turn came go.
func (p *pacer) grant() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = false
	now := p.clock.Now()
	for len(p.queue) > 0 && !now.Before(p.next) {
		t := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.sendLocked(now, t.n)
		close(t.ch)
	}
	p.armLocked(now)
}
