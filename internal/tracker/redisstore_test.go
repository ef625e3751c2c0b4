package tracker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/murder-deploy/murder/internal/testenv"
)

// openRedisStore returns a RedisStore for cfg on a redis-server of its
// own, closed when t ends.
func openRedisStore(t *testing.T, cfg RedisStoreConfig) *RedisStore {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = testenv.StartRedis(t, "").URL()
	}
	st, err := NewRedisStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestParseRedisURL(t *testing.T) {
	tests := []struct {
		url     string
		addrs   []string
		db      int
		master  string
		cluster bool
		tls     bool
		pass    string
		wantErr string
	}{
		{url: "redis://10.0.0.5:6380/2", addrs: []string{"10.0.0.5:6380"}, db: 2},
		{url: "redis://r1", addrs: []string{"r1:6379"}},
		{url: "redis://:secret@r1:6379/0", addrs: []string{"r1:6379"}, pass: "secret"},
		{url: "rediss://r1:6380", addrs: []string{"r1:6380"}, tls: true},
		{url: "redis://[2001:db8::1]:6379/1", addrs: []string{"[2001:db8::1]:6379"}, db: 1},
		{url: "redis://r1:6379?dial_timeout=2s&pool_size=5", addrs: []string{"r1:6379"}},
		{url: "unix:///run/redis.sock?db=3", addrs: []string{"/run/redis.sock"}, db: 3},
		{url: "redis+sentinel://s1:26379/1?master_name=mymaster&addr=s2:26379", addrs: []string{"s1:26379", "s2:26379"}, db: 1, master: "mymaster"},
		{url: "rediss+sentinel://s1:26379?master_name=m", addrs: []string{"s1:26379"}, master: "m", tls: true},
		{url: "redis+cluster://c1:7000?addr=c2:7000&addr=c3:7000", addrs: []string{"c1:7000", "c2:7000", "c3:7000"}, cluster: true},
		{url: "memory", wantErr: "scheme"},
		{url: "http://r1:6379", wantErr: `scheme "http"`},
		{url: "redis+sentinel://s1:26379", wantErr: "master_name=NAME is required"},
		{url: "redis+mesh://r1", wantErr: `scheme "redis+mesh"`},
		{url: "unix+cluster:///x", wantErr: "scheme"},
		{url: "redis://r1/notadb", wantErr: "invalid database number"},
		{url: "redis://r1?bogus=1", wantErr: "unexpected option: bogus"},
		{url: "redis://:hunter2@r1?bogus=1", wantErr: "xxxxx@r1"},
		{url: "redis:///0", wantErr: "has no host"},
		{url: "redis://r1:6379/0 x%zz", wantErr: "redis URL"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			o, err := ParseRedisURL(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(o.Addrs) != fmt.Sprint(tt.addrs) || o.DB != tt.db || o.MasterName != tt.master ||
				o.IsClusterMode != tt.cluster || (o.TLSConfig != nil) != tt.tls || o.Password != tt.pass {
				t.Errorf("got addrs %v db %d master %q cluster %v tls %v password %q, want %v %d %q %v %v %q",
					o.Addrs, o.DB, o.MasterName, o.IsClusterMode, o.TLSConfig != nil, o.Password,
					tt.addrs, tt.db, tt.master, tt.cluster, tt.tls, tt.pass)
			}
		})
	}
}

// FuzzParseRedisURL checks that no input panics, and that an accepted URL
// names at least one address.
func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{"redis://r1:6379/0", "rediss://u:p@r1", "unix:///s?db=1",
		"redis+sentinel://s1?master_name=m&addr=s2:1", "redis+cluster://c1:7000?addr=c2:7000", "memory"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseRedisURL(s)
		if err != nil {
			return
		}
		if len(o.Addrs) == 0 || o.Addrs[0] == "" {
			t.Errorf("ParseRedisURL(%q) accepted it with no address", s)
		}
	})
}

// TestRedisReplicas runs two trackers on one redis-server: each sees the
// peers that announced to the other, and their scrapes agree.
func TestRedisReplicas(t *testing.T) {
	r := testenv.StartRedis(t, "")
	var bases []string
	for range 2 {
		st := openRedisStore(t, RedisStoreConfig{URL: r.URL()})
		_, base := startServer(t, Config{Store: st})
		bases = append(bases, base)
	}
	ctx := context.Background()
	ih := hash20("replicas")
	clients := []*Client{
		NewClient([][]string{{bases[0] + "/announce"}}, ClientConfig{}),
		NewClient([][]string{{bases[1] + "/announce"}}, ClientConfig{}),
	}
	announce := func(c int, peer int, left int64) *AnnounceResponse {
		t.Helper()
		resp, err := clients[c].Announce(ctx, AnnounceRequest{InfoHash: ih, PeerID: testPeer(peer).ID, Port: 7000 + peer,
			Left: left, Event: EventStarted, NumWant: 50, IP: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	announce(0, 1, 0) // a seeder on tracker A
	resp := announce(1, 2, 100)
	if len(resp.Peers) != 1 || resp.Peers[0].Port() != 7001 {
		t.Fatalf("tracker B returned %v, want the seeder that announced to A (port 7001)", resp.Peers)
	}
	resp = announce(0, 3, 100)
	if len(resp.Peers) != 2 {
		t.Fatalf("tracker A returned %v, want the seeder and B's leecher", resp.Peers)
	}
	var scrapes []map[[20]byte]ScrapeStats
	for _, c := range clients {
		m, err := c.Scrape(ctx, ih)
		if err != nil {
			t.Fatal(err)
		}
		scrapes = append(scrapes, m)
	}
	want := ScrapeStats{Complete: 1, Incomplete: 2}
	if scrapes[0][ih] != want || scrapes[1][ih] != want {
		t.Errorf("scrapes got A %+v, B %+v, want both %+v", scrapes[0][ih], scrapes[1][ih], want)
	}
}

// TestRedisRestart stops redis-server under a running tracker: announces
// get a failure reason and /metrics shows the store down; once Redis is
// back, announces succeed again without restarting the tracker.
func TestRedisRestart(t *testing.T) {
	r := testenv.StartRedis(t, "")
	st := openRedisStore(t, RedisStoreConfig{URL: r.URL(), Timeout: 500 * time.Millisecond})
	_, base := startServer(t, Config{Store: st})
	ctx := context.Background()
	ih := hash20("restart")
	// The client waits far longer than the store may take, so a reply
	// proves the tracker answered in bounded time rather than hung.
	c := NewClient([][]string{{base + "/announce"}}, ClientConfig{Timeout: time.Minute})
	req := AnnounceRequest{InfoHash: ih, PeerID: testPeer(1).ID, Port: 7001, Left: 100, NumWant: 50, IP: "127.0.0.1"}
	if _, err := c.Announce(ctx, req); err != nil {
		t.Fatalf("announce with Redis up: %v", err)
	}
	metric := func(name string) string {
		t.Helper()
		_, body := httpGet(t, base+"/metrics")
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				return v
			}
		}
		t.Fatalf("/metrics has no %s", name)
		return ""
	}
	if v := metric("murder_tracker_store_up"); v != "1" {
		t.Errorf("murder_tracker_store_up %s with Redis up, want 1", v)
	}

	r.Stop()
	for range 3 {
		_, err := c.Announce(ctx, req)
		var fe *FailureError
		if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "store unavailable") {
			t.Fatalf("announce with Redis down: got %v, want a failure reason about the store", err)
		}
	}
	if v := metric("murder_tracker_store_up"); v != "0" {
		t.Errorf("murder_tracker_store_up %s with Redis down, want 0", v)
	}
	if v := metric(`murder_tracker_store_errors_total{op="announce"}`); v != "3" {
		t.Errorf("store errors %s, want 3", v)
	}

	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 20 {
		if _, err = c.Announce(ctx, req); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("announce after Redis came back: %v", err)
	}
	resp, err := NewClient([][]string{{base + "/announce"}}, ClientConfig{}).Announce(ctx,
		AnnounceRequest{InfoHash: ih, PeerID: testPeer(2).ID, Port: 7002, Left: 100, NumWant: 50, IP: "127.0.0.1"})
	if err != nil || len(resp.Peers) != 1 {
		t.Fatalf("second peer after Redis came back: got %v, %v; want the first peer", resp, err)
	}
	if v := metric("murder_tracker_store_up"); v != "1" {
		t.Errorf("murder_tracker_store_up %s after Redis came back, want 1", v)
	}
}

// TestRedisBounds checks the caps and that every key of a torrent expires
// by itself.
func TestRedisBounds(t *testing.T) {
	r := testenv.StartRedis(t, "")
	st := openRedisStore(t, RedisStoreConfig{URL: r.URL(), MaxPeers: 5, MaxTorrents: 2 * redisShards})
	ctx := context.Background()
	ih := hash20("bounds")
	for i := range 8 {
		a := PeerAnnounce{InfoHash: ih, Peer: testPeer(i), Seeder: i == 0, Event: EventStarted, NumWant: 50}
		peers, stats, err := st.Announce(ctx, &a, nil)
		if i >= 5 {
			if !errors.Is(err, ErrSwarmFull) {
				t.Errorf("peer %d of a torrent capped at 5: got %v, want ErrSwarmFull", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(peers) != i {
			t.Errorf("peer %d got %d peers, want %d", i, len(peers), i)
		}
		if n := stats.Complete + stats.Incomplete; n != i+1 {
			t.Errorf("after peer %d: %d peers listed, want %d", i, n, i+1)
		}
	}

	// Two torrents fit in each shard; a third of the same shard does not.
	full := 0
	for i := 1; full == 0 && i < 10; i++ {
		h := hash20(fmt.Sprint("bt", i)) // in the shard of ih, which starts with 'b' too
		a := PeerAnnounce{InfoHash: h, Peer: testPeer(1)}
		if _, _, err := st.Announce(ctx, &a, nil); errors.Is(err, ErrStoreFull) {
			full = i
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if full != 2 {
		t.Fatalf("the shard refused torrent %d, want the third (ErrStoreFull past 2)", full+1)
	}

	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 {
			t.Errorf("key %q has no expiry (PTTL %v)", k, ttl)
		}
	}
	if len(keys) < 5 {
		t.Errorf("Redis holds keys %q, want the torrent's and the index", keys)
	}
}

// TestRedisConcurrent announces from several goroutines into a few
// torrents, as several trackers would.
func TestRedisConcurrent(t *testing.T) {
	r := testenv.StartRedis(t, "")
	const workers, torrents, peers = 4, 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		st := openRedisStore(t, RedisStoreConfig{URL: r.URL()})
		wg.Go(func() {
			for i := range torrents * peers {
				a := PeerAnnounce{InfoHash: hash20(fmt.Sprint("t", i%torrents)), Peer: testPeer(w*10000 + i/torrents), Seeder: i%3 == 0, NumWant: 20}
				if _, _, err := st.Announce(context.Background(), &a, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := openRedisStore(t, RedisStoreConfig{URL: r.URL()})
	all, err := st.Scrape(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != torrents {
		t.Fatalf("got %d torrents, want %d", len(all), torrents)
	}
	for ih, s := range all {
		if s.Complete+s.Incomplete != workers*peers {
			t.Errorf("torrent %x has %d peers, want %d", ih, s.Complete+s.Incomplete, workers*peers)
		}
	}
}

// BenchmarkRedisStoreAnnounce re-announces random peers of 100 torrents of
// 100 peers each from parallel goroutines; bench/tracker measures the
// whole tracker.
func BenchmarkRedisStoreAnnounce(b *testing.B) {
	r := testenv.StartRedis(b, "")
	st, err := NewRedisStore(RedisStoreConfig{URL: r.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	const torrents, per = 100, 100
	for i := range torrents * per {
		a := PeerAnnounce{InfoHash: hash20(fmt.Sprint(i % torrents)), Peer: testPeer(i), Seeder: i%5 == 0, Event: EventStarted}
		if _, _, err := st.Announce(ctx, &a, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.SetParallelism(8)
	redisCPU, ownCPU := redisCPUTime(b, st), processCPUTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]Peer, 0, 50)
		for pb.Next() {
			i := rand.IntN(torrents * per)
			a := PeerAnnounce{InfoHash: hash20(fmt.Sprint(i % torrents)), Peer: testPeer(i), Seeder: i%5 == 0, NumWant: 50}
			var err error
			if buf, _, err = st.Announce(ctx, &a, buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(redisCPUTime(b, st)-redisCPU)/float64(time.Microsecond)/float64(b.N), "redis-µs/op")
	b.ReportMetric(float64(processCPUTime(b)-ownCPU)/float64(time.Microsecond)/float64(b.N), "client-µs/op")
}

// redisCPUTime returns the CPU time redis-server has used (INFO cpu).
func redisCPUTime(b *testing.B, st *RedisStore) time.Duration {
	b.Helper()
	info, err := st.rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			d, err := time.ParseDuration(v + "s")
			if err != nil {
				b.Fatal(err)
			}
			total += d
		}
	}
	return total
}

// processCPUTime returns the CPU time this process has used.
func processCPUTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// checkRedisPlaceIndex checks the invariant of a torrent's place lists in
// a RedisStore: every listed peer of known place is in its datacenter's
// and rack's lists on its side (seeders or leechers), those lists hold
// nothing else, and the seeders counted per datacenter are those listed.
func checkRedisPlaceIndex(t *testing.T, st *RedisStore, ih [20]byte) {
	t.Helper()
	ctx := context.Background()
	keys := st.keys(&ih)
	prefix := strings.TrimSuffix(keys[1], "seeders")
	want := map[string]map[string]bool{} // place list key -> members
	for side, k := range map[string]string{":s": keys[1], ":l": keys[2]} {
		members, err := st.rdb.ZRange(ctx, k, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			p, ok := parseRedisMember(m)
			if !ok {
				t.Fatalf("list %s holds a bad member %q", k, m)
			}
			if !p.Place.Known() {
				continue
			}
			lists := []string{prefix + "d:" + p.Place.Datacenter + side}
			if p.Place.Rack != "" {
				lists = append(lists, prefix+"r:"+p.Place.String()+side)
			}
			for _, l := range lists {
				if want[l] == nil {
					want[l] = map[string]bool{}
				}
				want[l][m] = true
			}
		}
	}
	got := map[string]map[string]bool{}
	for _, pattern := range []string{prefix + "d:*", prefix + "r:*"} {
		ks, err := st.rdb.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			members, err := st.rdb.ZRange(ctx, k, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			got[k] = map[string]bool{}
			for _, m := range members {
				got[k][m] = true
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("place lists:\ngot  %v\nwant %v", got, want)
	}
	seeded, err := st.rdb.HGetAll(ctx, prefix+"seeded").Result()
	if err != nil {
		t.Fatal(err)
	}
	wantSeeded := map[string]string{}
	for l, m := range want {
		if dc, ok := strings.CutSuffix(strings.TrimPrefix(l, prefix+"d:"), ":s"); ok && strings.HasPrefix(l, prefix+"d:") {
			wantSeeded[dc] = fmt.Sprint(len(m))
		}
	}
	if fmt.Sprint(seeded) != fmt.Sprint(wantSeeded) {
		t.Fatalf("seeders per datacenter: got %v, want %v", seeded, wantSeeded)
	}
	// Gateways are leechers of their datacenter, at most FirstPeers of
	// each, and the list of every gateway holds each datacenter's.
	all, err := st.rdb.ZRange(ctx, prefix+"gw", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	gks, err := st.rdb.Keys(ctx, prefix+"g:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range gks {
		dc := strings.TrimPrefix(k, prefix+"g:")
		members, err := st.rdb.ZRange(ctx, k, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			if !want[prefix+"d:"+dc+":l"][m] {
				t.Fatalf("gateway %q of %s is not a leecher there", m, dc)
			}
			if !slices.Contains(all, m) {
				t.Fatalf("gateway %q of %s is missing from the list of every gateway", m, dc)
			}
		}
		if len(members) > FirstPeers {
			t.Fatalf("%s has %d gateways, want at most %d", dc, len(members), FirstPeers)
		}
		n += len(members)
	}
	if n != len(all) {
		t.Fatalf("%d gateways by datacenter, %d in the list of every gateway", n, len(all))
	}
}

func TestParseRedisMember(t *testing.T) {
	id := "-MU0100-abcdefghijkl"
	tests := []struct {
		name, member string
		want         Peer
		ok           bool
	}{
		{"IPv4, no place", id + "\x06\x7f\x00\x00\x01\x1a\xe1\x00", Peer{Addr: netip.MustParseAddrPort("127.0.0.1:6881")}, true},
		{"IPv6 with rack", id + "\x12" + string(netip.MustParseAddr("2001:db8::1").AsSlice()) + "\x1a\xe1\x07east/r1",
			Peer{Addr: netip.MustParseAddrPort("[2001:db8::1]:6881"), Place: Place{"east", "r1"}}, true},
		{"datacenter only", id + "\x06\x0a\x00\x00\x02\x00\x50\x04west", Peer{Addr: netip.MustParseAddrPort("10.0.0.2:80"), Place: Place{"west", ""}}, true},
		{"short", id[:19], Peer{}, false},
		{"bad address length", id + "\x05\x7f\x00\x00\x01\x1a\x00", Peer{}, false},
		{"address cut short", id + "\x06\x7f\x00", Peer{}, false},
		{"no place length", id + "\x06\x7f\x00\x00\x01\x1a\xe1", Peer{}, false},
		{"place cut short", id + "\x06\x7f\x00\x00\x01\x1a\xe1\x05west", Peer{}, false},
		{"bytes after the place", id + "\x06\x7f\x00\x00\x01\x1a\xe1\x03westX", Peer{}, false},
		{"format 1, without the place length", id + "\x06\x7f\x00\x00\x01\x1a\xe1west", Peer{}, false},
		{"bad place", id + "\x06\x7f\x00\x00\x01\x1a\xe1\x05east/", Peer{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRedisMember(tt.member)
			if tt.ok {
				copy(tt.want.ID[:], id)
			}
			if ok != tt.ok || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseRedisMember checks that a member the parser accepts encodes
// back to the same bytes.
func FuzzParseRedisMember(f *testing.F) {
	id := "-MU0100-abcdefghijkl"
	f.Add(id + "\x06\x7f\x00\x00\x01\x1a\xe1")
	f.Add(id + "\x12" + string(netip.MustParseAddr("2001:db8::1").AsSlice()) + "\x1a\xe1east/r1")
	f.Add(id + "\x06\x0a\x00\x00\x02\x00\x50west")
	f.Fuzz(func(t *testing.T, m string) {
		p, ok := parseRedisMember(m)
		if !ok {
			return
		}
		again := string(appendRedisPeer(append([]byte(nil), p.ID[:]...), p))
		if again != m {
			t.Errorf("member %q parsed as %+v encodes as %q", m, p, again)
		}
	})
}

// TestRedisPackedLists runs random announces (joins, re-announces, moves
// between the lists, new addresses, stops and expiries) on one torrent and
// checks after each that a packed list, when it exists, holds exactly the
// members of its list, and that the peers drawn from it are listed peers
// other than the announcing one, each once.
func TestRedisPackedLists(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	st := openRedisStore(t, RedisStoreConfig{PeerTTL: 10 * time.Second, Now: func() time.Time { return now }})
	ctx := context.Background()
	ih := hash20("packed")
	keys := st.keys(&ih)
	prefix := strings.TrimSuffix(keys[1], "seeders")
	rng := rand.New(rand.NewPCG(1, 2))
	ports := map[int]uint16{}
	events := []string{EventNone, EventNone, EventNone, EventStarted, EventCompleted, EventStopped}
	packedSeen := 0
	for step := range 600 {
		if step%60 == 59 {
			now = now.Add(11 * time.Second) // every peer expires
		} else {
			now = now.Add(100 * time.Millisecond)
		}
		i := rng.IntN(24)
		if ports[i] == 0 || rng.IntN(10) == 0 {
			ports[i] = uint16(2000 + rng.IntN(1000))
		}
		p := testPeer(i)
		p.Addr = netip.AddrPortFrom(p.Addr.Addr(), ports[i])
		a := PeerAnnounce{InfoHash: ih, Peer: p, Seeder: rng.IntN(3) == 0, Event: events[rng.IntN(len(events))], NumWant: []int{0, 5, 50}[rng.IntN(3)]}
		got, _, err := st.Announce(ctx, &a, nil)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		listed := map[Peer]bool{}
		for _, side := range []string{"seeders", "leechers"} {
			members, err := st.rdb.ZRange(ctx, prefix+side, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range members {
				p, ok := parseRedisMember(m)
				if !ok {
					t.Fatalf("step %d: %s holds a bad member %q", step, side, m)
				}
				listed[p] = true
			}
			packed, err := st.rdb.Get(ctx, prefix+side+":packed").Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			packedSeen++
			var unpacked []string
			for len(packed) > 0 {
				n := redisMemberLen(packed)
				if n == 0 {
					t.Fatalf("step %d: bad packed %s %q", step, side, packed)
				}
				unpacked = append(unpacked, packed[:n])
				packed = packed[n:]
			}
			slices.Sort(unpacked)
			slices.Sort(members)
			if !slices.Equal(unpacked, members) {
				t.Fatalf("step %d: packed %s holds %q, want %q", step, side, unpacked, members)
			}
		}
		seen := map[[20]byte]bool{}
		for _, q := range got {
			if q.ID == a.Peer.ID {
				t.Errorf("step %d: peer %d got itself", step, i)
			}
			if seen[q.ID] {
				t.Errorf("step %d: peer %q returned twice", step, q.ID)
			}
			seen[q.ID] = true
			if !listed[q] {
				t.Errorf("step %d: returned %+v, which is not listed", step, q)
			}
		}
	}
	if packedSeen < 100 {
		t.Errorf("packed lists existed %d times in 600 steps, want the test to reach them", packedSeen)
	}
}
