package tracker

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for MemStore.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testPeer(i int) Peer {
	var id [20]byte
	copy(id[:], fmt.Sprintf("peer-%015d", i))
	return Peer{ID: id, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), uint16(1000+i))}
}

// storeKind is a Store implementation the store tests run on.
type storeKind struct {
	name string
	// open returns an empty store configured as cfg says (Shards aside).
	open func(t *testing.T, cfg MemStoreConfig) Store
	// sweep drops expired peers where the store needs it; nil when
	// expired peers are never listed.
	sweep func(st Store, now time.Time)
}

// storeKinds returns the in-memory store and the Redis store; the Redis
// one ends its subtest through testenv.Missing when redis-server is
// missing.
func storeKinds() []storeKind {
	return []storeKind{
		{"memory", func(t *testing.T, cfg MemStoreConfig) Store { return NewMemStore(cfg) },
			func(st Store, now time.Time) { st.(*MemStore).Sweep(now) }},
		{"redis", func(t *testing.T, cfg MemStoreConfig) Store {
			return openRedisStore(t, RedisStoreConfig{PeerTTL: cfg.PeerTTL, MaxGap: cfg.MaxGap, TorrentTTL: cfg.TorrentTTL, Now: cfg.Now,
				MaxTorrents: cfg.MaxTorrents, MaxPeers: cfg.MaxPeers})
		}, nil},
	}
}

// fillSwarm announces seeders 0..s-1 and leechers s..s+l-1.
func fillSwarm(t *testing.T, st Store, ih [20]byte, s, l int) {
	t.Helper()
	for i := range s + l {
		a := PeerAnnounce{InfoHash: ih, Peer: testPeer(i), Seeder: i < s, Event: EventStarted}
		if _, _, err := st.Announce(context.Background(), &a, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStoreSelection(t *testing.T) {
	tests := []struct {
		name             string
		seeders, leechs  int
		requester        int // index of the announcing peer; >= seeders+leechs is a new peer
		requesterSeeder  bool
		numWant          int
		wantN            int
		wantOnlyLeechers bool
	}{
		{"leecher gets everyone else", 3, 4, 5, false, 50, 6, false},
		{"new leecher gets everyone", 3, 4, 100, false, 50, 7, false},
		{"seeder gets leechers only", 3, 4, 0, true, 50, 4, true},
		{"new seeder gets leechers only", 3, 4, 100, true, 50, 4, true},
		{"leecher turning seeder excludes itself", 3, 4, 4, true, 50, 3, true},
		{"seeder among seeders gets nothing", 5, 0, 1, true, 50, 0, true},
		{"numwant caps, floyd", 30, 170, 7, false, 10, 10, false},
		{"numwant caps, fisher-yates", 30, 70, 99, false, 60, 60, false},
		{"numwant caps seeder", 30, 170, 2, true, 25, 25, true},
		{"numwant zero", 3, 4, 5, false, 0, 0, false},
		{"large numwant over map", 10, 990, 500, false, 300, 300, false},
	}
	ih := hash20("swarm")
	for _, kind := range storeKinds() {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				st := kind.open(t, MemStoreConfig{Shards: 4})
				fillSwarm(t, st, ih, tt.seeders, tt.leechs)
				me := testPeer(tt.requester)
				a := PeerAnnounce{InfoHash: ih, Peer: me, Seeder: tt.requesterSeeder, NumWant: tt.numWant}
				got, _, err := st.Announce(context.Background(), &a, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != tt.wantN {
					t.Fatalf("got %d peers, want %d", len(got), tt.wantN)
				}
				seen := map[[20]byte]bool{}
				for _, p := range got {
					if p.ID == me.ID {
						t.Errorf("requester got itself")
					}
					if seen[p.ID] {
						t.Errorf("peer %q twice", p.ID)
					}
					seen[p.ID] = true
					var idx int
					fmt.Sscanf(string(p.ID[5:]), "%d", &idx)
					if tt.wantOnlyLeechers && idx < tt.seeders {
						t.Errorf("seeder %d handed to a seeder", idx)
					}
					if p != testPeer(idx) {
						t.Errorf("peer %d has address %v, want %v", idx, p.Addr, testPeer(idx).Addr)
					}
				}
			})
		}
	}
}

// TestStoreSampleSpreads checks that repeated samples reach every peer,
// which a fixed window would not.
func TestStoreSampleSpreads(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) {
			st := kind.open(t, MemStoreConfig{})
			ih := hash20("spread")
			fillSwarm(t, st, ih, 0, 100)
			seen := map[[20]byte]bool{}
			for range 300 {
				a := PeerAnnounce{InfoHash: ih, Peer: testPeer(1000), NumWant: 10}
				got, _, _ := st.Announce(context.Background(), &a, nil)
				for _, p := range got {
					seen[p.ID] = true
				}
				a.Event = EventStopped
				st.Announce(context.Background(), &a, nil)
			}
			if len(seen) != 100 {
				t.Errorf("300 samples of 10 reached %d of 100 peers", len(seen))
			}
		})
	}
}

func TestStoreLifecycle(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) { testStoreLifecycle(t, kind) })
	}
}

func testStoreLifecycle(t *testing.T, kind storeKind) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	st := kind.open(t, MemStoreConfig{PeerTTL: 30 * time.Second, Now: clock.Now})
	ctx := context.Background()
	ih := hash20("life")
	sweep := func() {
		if kind.sweep != nil {
			kind.sweep(st, clock.Now())
		}
	}
	stats := func() ScrapeStats {
		m, err := st.Scrape(ctx, [][20]byte{ih})
		if err != nil {
			t.Fatal(err)
		}
		return m[ih]
	}
	announce := func(i int, seeder bool, event string) ScrapeStats {
		a := PeerAnnounce{InfoHash: ih, Peer: testPeer(i), Seeder: seeder, Event: event, NumWant: 50}
		_, s, err := st.Announce(ctx, &a, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	steps := []struct {
		name string
		do   func() ScrapeStats
		want ScrapeStats
	}{
		{"two leechers start", func() ScrapeStats { announce(1, false, EventStarted); return announce(2, false, EventStarted) }, ScrapeStats{Incomplete: 2}},
		{"seeder starts", func() ScrapeStats { return announce(3, true, EventStarted) }, ScrapeStats{Complete: 1, Incomplete: 2}},
		{"leecher completes", func() ScrapeStats { return announce(1, true, EventCompleted) }, ScrapeStats{Complete: 2, Incomplete: 1, Downloaded: 1}},
		{"repeated completed is not counted", func() ScrapeStats { return announce(1, true, EventCompleted) }, ScrapeStats{Complete: 2, Incomplete: 1, Downloaded: 1}},
		{"leecher finishing and stopping at once counts", func() ScrapeStats { announce(4, false, ""); return announce(4, true, EventStopped) }, ScrapeStats{Complete: 2, Incomplete: 1, Downloaded: 2}},
		{"seeder stopping does not count", func() ScrapeStats { announce(5, true, ""); return announce(5, true, EventStopped) }, ScrapeStats{Complete: 2, Incomplete: 1, Downloaded: 2}},
		{"stopped removes at once", func() ScrapeStats { return announce(3, true, EventStopped) }, ScrapeStats{Complete: 1, Incomplete: 1, Downloaded: 2}},
		{"stopped for an unknown peer", func() ScrapeStats { return announce(9, false, EventStopped) }, ScrapeStats{Complete: 1, Incomplete: 1, Downloaded: 2}},
		{"peer 2 re-announces at 10s", func() ScrapeStats { clock.Add(10 * time.Second); return announce(2, false, "") }, ScrapeStats{Complete: 1, Incomplete: 1, Downloaded: 2}},
		{"at 31s peer 1 is gone", func() ScrapeStats { clock.Add(21 * time.Second); sweep(); return stats() }, ScrapeStats{Incomplete: 1, Downloaded: 2}},
		{"at 41s peer 2 is gone", func() ScrapeStats { clock.Add(10 * time.Second); sweep(); return stats() }, ScrapeStats{Downloaded: 2}},
	}
	for _, s := range steps {
		if got := s.do(); got != s.want {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
	all, err := st.Scrape(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[ih] != (ScrapeStats{Downloaded: 2}) {
		t.Errorf("scrape of every torrent got %+v, want the completed torrent kept with 0 peers", all)
	}

	// The completed count goes after TorrentTTL (24 h) without announces.
	clock.Add(24 * time.Hour)
	sweep()
	if all, _ := st.Scrape(ctx, nil); len(all) != 0 {
		t.Errorf("store holds %d torrents a day after the last announce, want 0", len(all))
	}

	// A swarm that never completed anything is forgotten when empty.
	ih2 := hash20("gone")
	a := PeerAnnounce{InfoHash: ih2, Peer: testPeer(1)}
	st.Announce(ctx, &a, nil)
	clock.Add(time.Minute)
	sweep()
	if m, _ := st.Scrape(ctx, [][20]byte{ih2}); len(m) != 0 {
		t.Errorf("expired swarm still scraped: %+v", m)
	}
}

func TestMemStoreConcurrent(t *testing.T) {
	st := NewMemStore(MemStoreConfig{Shards: 8})
	ctx := context.Background()
	const workers, torrents, peers = 8, 16, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			buf := make([]Peer, 0, 50)
			for i := range torrents * peers {
				ih := hash20(fmt.Sprint("t", i%torrents))
				p := testPeer(w*10000 + i/torrents)
				a := PeerAnnounce{InfoHash: ih, Peer: p, Seeder: i%3 == 0, NumWant: 20}
				buf, _, _ = st.Announce(ctx, &a, buf[:0])
			}
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			st.Sweep(time.Now())
			st.Scrape(ctx, nil)
		}
	}()
	wg.Wait()
	all, _ := st.Scrape(ctx, nil)
	if len(all) != torrents {
		t.Fatalf("got %d torrents, want %d", len(all), torrents)
	}
	for ih, s := range all {
		if s.Complete+s.Incomplete != workers*peers {
			t.Errorf("torrent %q has %d peers, want %d", ih, s.Complete+s.Incomplete, workers*peers)
		}
	}
}

// TestStoreExpiry pins when a peer is dropped: after two of its announce
// intervals, the tracker's or the longer gap it is seen to keep.
func TestStoreExpiry(t *testing.T) {
	const (
		started   = "started"
		regular   = "regular" // no event
		seed      = "seed"    // no event, left=0
		completed = "completed"
		stopped   = "stopped"
		listed    = "listed" // sweep, then the peer must be listed
		gone      = "gone"   // sweep, then the peer must not be listed
	)
	type op struct {
		at time.Duration
		do string
	}
	s := func(n int) time.Duration { return time.Duration(n) * time.Second }
	tests := []struct {
		name   string
		client string // peer id prefix
		maxGap time.Duration
		ops    []op
	}{
		{"honours the interval: two missed intervals", "-MU0100-", 0,
			[]op{{0, started}, {s(15), regular}, {s(30), regular}, {s(45), regular}, {s(75), listed}, {s(76), gone}}},
		{"seen once", "-MU0100-", 0,
			[]op{{0, started}, {s(30), listed}, {s(31), gone}}},
		{"announcing late once is learned", "-MU0100-", 0,
			[]op{{0, started}, {s(20), regular}, {s(60), listed}, {s(61), gone}}},
		{"libtorrent seen once stays 600s", "-LT2080-", 0,
			[]op{{0, started}, {s(600), listed}, {s(601), gone}}},
		{"qBittorrent seen once stays 600s", "-qB5010-", 0,
			[]op{{0, started}, {s(600), listed}, {s(601), gone}}},
		{"libtorrent's observed gap wins over the default", "-LT2080-", 0,
			[]op{{0, started}, {s(120), regular}, {s(360), listed}, {s(361), gone}}},
		{"libtorrent re-announcing every 300s stays listed", "-LT2080-", 0,
			[]op{{0, started}, {s(299), listed}, {s(300), regular}, {s(599), listed}, {s(600), regular}, {s(1199), listed}, {s(1200), listed}, {s(1201), gone}}},
		{"an unknown slow client is learned once it returns", "-XX0001-", 0,
			[]op{{0, started}, {s(31), gone}, {s(300), regular}, {s(301), listed}, {s(600), listed}, {s(900), listed}, {s(901), gone}}},
		{"events do not set the gap", "-MU0100-", 0,
			[]op{{0, started}, {s(25), completed}, {s(55), listed}, {s(56), gone}}},
		{"a restart after being dropped does not set the gap", "-MU0100-", 0,
			[]op{{0, started}, {s(31), gone}, {s(200), started}, {s(230), listed}, {s(231), gone}}},
		{"an early announce does not shrink the gap", "-MU0100-", 0,
			[]op{{0, started}, {s(100), regular}, {s(110), regular}, {s(310), listed}, {s(311), gone}}},
		{"the gap survives turning seeder", "-MU0100-", 0,
			[]op{{0, started}, {s(100), regular}, {s(150), seed}, {s(350), listed}, {s(351), gone}}},
		{"gap capped at MaxGap", "-MU0100-", s(100),
			[]op{{0, started}, {s(30), regular}, {s(85), regular}, {s(190), regular}, {s(390), listed}, {s(391), gone}}},
		{"libtorrent's default capped at MaxGap", "-LT2080-", s(100),
			[]op{{0, started}, {s(200), listed}, {s(201), gone}}},
		{"a dropped peer is forgotten after MaxGap", "-MU0100-", s(100),
			[]op{{0, started}, {s(31), gone}, {s(140), gone}, {s(150), regular}, {s(180), listed}, {s(181), gone}}},
		{"a dropped peer is forgotten after MaxGap, unswept", "-MU0100-", s(100),
			[]op{{0, started}, {s(31), gone}, {s(101), regular}, {s(131), listed}, {s(132), gone}}},
		{"stopped forgets the gap", "-MU0100-", 0,
			[]op{{0, started}, {s(100), regular}, {s(150), stopped}, {s(151), gone}, {s(160), started}, {s(190), listed}, {s(191), gone}}},
	}
	for _, kind := range storeKinds() {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				start := time.Unix(1e6, 0)
				clock := &fakeClock{t: start}
				st := kind.open(t, MemStoreConfig{PeerTTL: 30 * time.Second, MaxGap: tt.maxGap, Now: clock.Now})
				ctx := context.Background()
				ih := hash20("expiry")
				var id [20]byte
				copy(id[:], tt.client+"abcdefghijkl")
				peer := Peer{ID: id, Addr: netip.MustParseAddrPort("127.0.0.1:6881")}
				for _, o := range tt.ops {
					clock.t = start.Add(o.at)
					a := PeerAnnounce{InfoHash: ih, Peer: peer, NumWant: 50}
					switch o.do {
					case listed, gone:
						if kind.sweep != nil {
							kind.sweep(st, clock.Now())
						}
						m, _ := st.Scrape(ctx, [][20]byte{ih})
						n := m[ih].Complete + m[ih].Incomplete
						if want := map[string]int{listed: 1, gone: 0}[o.do]; n != want {
							t.Fatalf("at %s: %d peers listed, want %d", o.at, n, want)
						}
						continue
					case started, completed, stopped:
						a.Event = o.do
						a.Seeder = o.do == completed
					case seed:
						a.Seeder = true
					}
					if _, _, err := st.Announce(ctx, &a, nil); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// TestMemStoreGoneBounded checks that the dropped peers a shard remembers
// stay bounded.
func TestMemStoreGoneBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e6, 0)}
	st := NewMemStore(MemStoreConfig{Shards: 1, PeerTTL: time.Second, Now: clock.Now})
	ih := hash20("many")
	for i := range maxGone + 100 {
		a := PeerAnnounce{InfoHash: ih, Peer: testPeer(i)}
		st.Announce(context.Background(), &a, nil)
	}
	clock.Add(2 * time.Second)
	st.Sweep(clock.Now())
	if n := len(st.shards[0].gone); n != maxGone {
		t.Errorf("shard remembers %d dropped peers, want the bound %d", n, maxGone)
	}
	clock.Add(31 * time.Minute)
	st.Sweep(clock.Now())
	if n := len(st.shards[0].gone); n != 0 {
		t.Errorf("shard remembers %d dropped peers after MaxGap, want 0", n)
	}
}
