package swarmtest

import (
	"context"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/testbed"
)

// capped is the link of every host in these tests: 8 MiB/s each way, so
// the artifacts below take a couple of seconds per copy.
var capped = testbed.Link{Up: 8 << 20, Down: 8 << 20}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestSwarmExactTree: eight peers on capped links all end with the exact
// tree.
func TestSwarmExactTree(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	s := newSwarm(t, ctx, options{peers: 8, size: 12 << 20, link: capped, pieceSize: "256KiB"})
	s.startSeeder()
	var peers []*peer
	for _, h := range s.hosts {
		peers = append(peers, s.startPeer(h, nil))
	}
	s.waitDone(peers...)
	for _, p := range peers {
		s.checkTree(p.host)
		if ev := p.progress(); ev.BytesDone != s.total || ev.BytesTotal != s.total {
			t.Errorf("%s: done with %d of %d bytes, want %d", p.host.Name(), ev.BytesDone, ev.BytesTotal, s.total)
		}
		p.mu.Lock()
		if len(p.bad) > 0 {
			t.Errorf("%s: stdout has lines that are not JSON events: %q", p.host.Name(), p.bad)
		}
		p.mu.Unlock()
	}
	stopAll(peers...)
}

// TestSeederKilled: the seeder dies as soon as one full copy exists in the
// swarm (a peer is done); the peers finish from each other.
func TestSeederKilled(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	s := newSwarm(t, ctx, options{peers: 8, size: 12 << 20, link: capped, pieceSize: "256KiB"})
	seed := s.startSeeder()
	var once sync.Once
	firstDone := make(chan struct{})
	var peers []*peer
	for _, h := range s.hosts {
		peers = append(peers, s.startPeer(h, func(ev event) {
			if ev.Event == "done" {
				once.Do(func() { close(firstDone) })
			}
		}))
	}
	select {
	case <-firstDone:
	case <-ctx.Done():
		t.Fatal("no peer finished")
	}
	seed.signal(syscall.SIGKILL)
	var pending int
	for _, p := range peers {
		select {
		case <-p.done:
		default:
			pending++
		}
	}
	t.Logf("seeder killed with %d of %d peers still downloading", pending, len(peers))
	s.waitPlaced(peers...)
	stopAll(peers...)
}

// TestPeersKilled: two peers are killed mid-transfer; the others finish,
// and one of the killed peers, restarted, fetches only what it lacked.
func TestPeersKilled(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	s := newSwarm(t, ctx, options{peers: 8, size: 12 << 20, link: capped, pieceSize: "256KiB"})
	s.startSeeder()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	victims := rng.Perm(len(s.hosts))[:2]
	isVictim := func(i int) bool { return i == victims[0] || i == victims[1] }
	// Slow the victims down so that progress events (one a second) catch
	// them mid-transfer.
	for _, i := range victims {
		l := capped
		l.Down = 1 << 20
		if err := s.hosts[i].SetLink(ctx, l); err != nil {
			t.Fatal(err)
		}
	}

	type kill struct {
		at int64 // bytes done when killed
	}
	var mu sync.Mutex
	killed := map[int]kill{}
	killNow := make([]chan int64, len(s.hosts))
	var peers []*peer
	for i, h := range s.hosts {
		killNow[i] = make(chan int64, 1)
		var once sync.Once
		peers = append(peers, s.startPeer(h, func(ev event) {
			// Kill a victim between 40% and 80% of the way.
			if isVictim(i) && ev.Event == "progress" && ev.BytesTotal > 0 &&
				ev.BytesDone*10 >= ev.BytesTotal*4 && ev.BytesDone*10 <= ev.BytesTotal*8 {
				once.Do(func() { killNow[i] <- ev.BytesDone })
			}
		}))
	}
	for _, i := range victims {
		t.Logf("victim %s", s.hosts[i].Name())
		select {
		case at := <-killNow[i]:
			peers[i].signal(syscall.SIGKILL)
			mu.Lock()
			killed[i] = kill{at: at}
			mu.Unlock()
		case <-peers[i].done:
			t.Fatalf("victim %s finished before it could be killed mid-transfer", s.hosts[i].Name())
		case <-ctx.Done():
			t.Fatalf("victim %s never got 40%% of the way", s.hosts[i].Name())
		}
	}
	var rest []*peer
	for i, p := range peers {
		if !isVictim(i) {
			rest = append(rest, p)
		}
	}
	s.waitPlaced(rest...)

	// Restart the first victim: it re-checks what it had and fetches the rest.
	v := victims[0]
	h := s.hosts[v]
	if err := h.SetLink(ctx, capped); err != nil {
		t.Fatal(err)
	}
	before := rxBytes(t, ctx, h)
	var mu2 sync.Mutex
	var resumedAt int64 = -1 // bytes done at the first "downloading" event
	again := s.startPeer(h, func(ev event) {
		mu2.Lock()
		defer mu2.Unlock()
		if resumedAt < 0 && ev.State == "downloading" {
			resumedAt = ev.BytesDone
		}
	})
	s.waitDone(again)
	s.checkTree(h)
	received := rxBytes(t, ctx, h) - before
	had := killed[v].at
	t.Logf("restarted peer had %d of %d bytes, started again with %d, received %d more", had, s.total, resumedAt, received)
	mu2.Lock()
	if resumedAt < had {
		t.Errorf("restarted peer started downloading with %d bytes done, want at least the %d it had when killed", resumedAt, had)
	}
	mu2.Unlock()
	// Without resume it would receive the whole artifact plus protocol
	// overhead; with it, about total-had (the victim had at least 40%).
	if limit := s.total - had/2; received > limit {
		t.Errorf("restarted peer received %d bytes, want at most %d: it had %d of %d bytes when killed and should not fetch them again",
			received, limit, had, s.total)
	}
	stopAll(append(rest, again)...)
}

// TestTrackerRestart: the tracker is killed mid-transfer and restarted;
// the swarm finishes, including peers that start only after the restart.
func TestTrackerRestart(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	s := newSwarm(t, ctx, options{peers: 8, size: 12 << 20, link: capped, pieceSize: "256KiB", interval: "2s"})
	s.startSeeder()
	early, late := s.hosts[:4], s.hosts[4:]
	var once sync.Once
	midway := make(chan struct{})
	var peers []*peer
	for _, h := range early {
		peers = append(peers, s.startPeer(h, func(ev event) {
			if ev.BytesTotal > 0 && ev.BytesDone*4 >= ev.BytesTotal {
				once.Do(func() { close(midway) })
			}
		}))
	}
	select {
	case <-midway:
	case <-ctx.Done():
		t.Fatal("no peer got a quarter of the way")
	}
	s.killTracker()
	time.Sleep(time.Second) // announces in this window fail
	s.startTracker("2s")
	for _, h := range late {
		peers = append(peers, s.startPeer(h, nil))
	}
	s.waitPlaced(peers...)
	stopAll(peers...)
}

// TestLossAndLatency: with 2% loss and 20 ms added to every packet's
// arrival (40 ms round trip), the swarm finishes.
func TestLossAndLatency(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	link := capped
	link.Latency = 20 * time.Millisecond
	link.Loss = 0.02
	s := newSwarm(t, ctx, options{peers: 6, size: 8 << 20, link: link, pieceSize: "256KiB"})
	s.startSeeder()
	var peers []*peer
	for _, h := range s.hosts {
		peers = append(peers, s.startPeer(h, nil))
	}
	s.waitPlaced(peers...)
	stopAll(peers...)
}
