package tracker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/cidr"
	"github.com/murder-deploy/murder/internal/metrics/metricstest"
	"github.com/murder-deploy/murder/internal/testenv"
)

// limitsQuery is an announce query with the given key ("" for none).
func limitsQuery(ih, peer [20]byte, port int, left int64, key, extra string) string {
	q := "info_hash=" + string(appendEscaped(nil, ih[:])) + "&peer_id=" + string(appendEscaped(nil, peer[:])) +
		"&port=" + strconv.Itoa(port) + "&left=" + strconv.FormatInt(left, 10) + "&compact=1&numwant=50"
	if key != "" {
		q += "&key=" + key
	}
	return q + extra
}

// clientFrom returns an HTTP client whose connections come from src, an
// address of the loopback range.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
}

// announceVia sends an announce query with hc and decodes the reply; a
// failure reason comes back as a *FailureError.
func announceVia(t *testing.T, hc *http.Client, base, query string) (*AnnounceResponse, error) {
	t.Helper()
	resp, err := hc.Get(base + "/announce?" + query)
	if err != nil {
		t.Fatalf("announce: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("announce: %v", err)
	}
	return DecodeAnnounceResponse(body)
}

// startOnStore serves a tracker configured by cfg on a store of kind made
// with mc.
func startOnStore(t *testing.T, kind storeKind, mc MemStoreConfig, cfg Config) (string, Store) {
	t.Helper()
	st := kind.open(t, mc)
	cfg.Store = st
	_, base := startServer(t, cfg)
	return base, st
}

func refusedSample(reason string) sample {
	return sample{"murder_tracker_refused_total", []string{"reason", reason}}
}

// TestServerFloodStaysWithinCaps floods the tracker with announces for
// random info hashes, with every event, and one torrent with new peer ids:
// the store stays within its caps, the refusals are counted, and the real
// swarm keeps being served.
func TestServerFloodStaysWithinCaps(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) { testServerFloodStaysWithinCaps(t, kind) })
	}
}

func testServerFloodStaysWithinCaps(t *testing.T, kind storeKind) {
	// 4 torrents for each of the Redis store's 64 shards.
	const maxTorrents, maxPeers, flood, peerFlood = 4 * redisShards, 20, 3000, 200
	base, st := startOnStore(t, kind, MemStoreConfig{MaxTorrents: maxTorrents, MaxPeers: maxPeers}, Config{})
	ctx := context.Background()
	real := hash20("the real deploy")
	hc := clientFrom("127.0.0.1")
	for i := range 2 {
		if _, err := announceVia(t, hc, base, limitsQuery(real, hash20(fmt.Sprint("real", i)), 7000+i, 1, "0000000"+strconv.Itoa(i+1), "&event=started")); err != nil {
			t.Fatalf("real peer %d: %v", i, err)
		}
	}

	// Random info hashes from 8 clients at once.
	var full, otherFailures, ok atomic.Int64
	events := []string{"", "&event=started", "&event=completed", "&event=stopped"}
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for q := range work {
				_, err := announceVia(t, hc, base, q)
				var fe *FailureError
				switch {
				case err == nil:
					ok.Add(1)
				case errors.As(err, &fe) && fe.Reason == "tracker holds too many torrents, retry later":
					full.Add(1)
				default:
					otherFailures.Add(1)
					t.Errorf("flood announce: %v", err)
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(17, 4))
	deadline := time.Now().Add(time.Minute)
	for i := 0; i < flood && time.Now().Before(deadline); i++ {
		var ih, id [20]byte
		for j := range ih {
			ih[j], id[j] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		work <- limitsQuery(ih, id, 1+i%60000, int64(i%2), "", events[i%len(events)])
	}
	close(work)
	wg.Wait()
	if full.Load() == 0 {
		t.Errorf("%d announces for random torrents with a cap of %d: none refused", flood, maxTorrents)
	}

	// New peer ids for the real torrent, one after the other.
	peersFull := 0
	for i := range peerFlood {
		_, err := announceVia(t, hc, base, limitsQuery(real, hash20(fmt.Sprint("intruder", i)), 9000+i, 1, "", ""))
		var fe *FailureError
		if errors.As(err, &fe) && fe.Reason == "torrent has too many peers, retry later" {
			peersFull++
		} else if err != nil {
			t.Fatalf("intruder %d: %v", i, err)
		}
	}
	if want := peerFlood - (maxPeers - 2); peersFull != want {
		t.Errorf("%d new peers into a torrent of 2 capped at %d: %d refused, want %d", peerFlood, maxPeers, peersFull, want)
	}

	all, err := st.Scrape(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) > maxTorrents || len(all) < 2 {
		t.Errorf("store holds %d torrents after the flood, want 2 to %d", len(all), maxTorrents)
	}
	if n := all[real].Complete + all[real].Incomplete; n != maxPeers {
		t.Errorf("real torrent lists %d peers, want %d", n, maxPeers)
	}
	checkMetrics(t, "after the flood", base+"/metrics", map[*sample]float64{
		ptr(refusedSample("torrents")): float64(full.Load()),
		ptr(refusedSample("peers")):    float64(peersFull),
	})

	// The real peers are still served, and still find each other.
	r, err := announceVia(t, hc, base, limitsQuery(real, hash20("real0"), 7000, 1, "00000001", ""))
	if err != nil {
		t.Fatalf("real peer after the flood: %v", err)
	}
	if !containsAddr(r.Peers, netip.MustParseAddrPort("127.0.0.1:7001")) {
		t.Errorf("real peer 0 got %v, want real peer 1 among them", r.Peers)
	}
}

func containsAddr(peers []netip.AddrPort, a netip.AddrPort) bool {
	for _, p := range peers {
		if p == a {
			return true
		}
	}
	return false
}

// TestStoreNoTorrentForUnknownPeerEvents checks that the completed and
// stopped events of a peer nobody listed make no torrent.
func TestStoreNoTorrentForUnknownPeerEvents(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) {
			st := kind.open(t, MemStoreConfig{})
			ctx := context.Background()
			for i, ev := range []string{EventCompleted, EventStopped} {
				for _, seeder := range []bool{true, false} {
					a := PeerAnnounce{InfoHash: hash20(fmt.Sprint("unknown", i, seeder)), Peer: testPeer(i), Seeder: seeder, Event: ev, NumWant: 50}
					peers, stats, err := st.Announce(ctx, &a, nil)
					if err != nil || len(peers) != 0 || stats != (ScrapeStats{}) {
						t.Errorf("%s (seeder %v) for an unknown torrent: got %v, %+v, %v; want nothing", ev, seeder, peers, stats, err)
					}
				}
			}
			if all, err := st.Scrape(ctx, nil); err != nil || len(all) != 0 {
				t.Errorf("store holds %+v (%v), want no torrent", all, err)
			}
		})
	}
}

// TestServerForgedAnnounces checks that only the client that listed a
// peer changes or removes it: by its key, or without a key by its source
// address.
func TestServerForgedAnnounces(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) { testServerForgedAnnounces(t, kind) })
	}
}

func testServerForgedAnnounces(t *testing.T, kind storeKind) {
	base, _ := startOnStore(t, kind, MemStoreConfig{}, Config{})
	ih := hash20("forged")
	local, other := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	watcher := hash20("watcher")
	listed := func(step string, want ...netip.AddrPort) {
		t.Helper()
		r, err := announceVia(t, local, base, limitsQuery(ih, watcher, 6000, 1, "77777777", ""))
		if err != nil {
			t.Fatalf("%s: watcher: %v", step, err)
		}
		if len(r.Peers) != len(want) {
			t.Fatalf("%s: watcher sees %v, want %v", step, r.Peers, want)
		}
		for _, w := range want {
			if !containsAddr(r.Peers, w) {
				t.Fatalf("%s: watcher sees %v, want %v", step, r.Peers, want)
			}
		}
	}
	keyed, keyless := hash20("keyed victim"), hash20("keyless victim")
	keyedAddr := netip.MustParseAddrPort("127.0.0.1:7001")
	keylessAddr := netip.MustParseAddrPort("127.0.0.1:7002")
	if _, err := announceVia(t, local, base, limitsQuery(ih, keyed, 7001, 1, "A1B2C3D4", "&event=started")); err != nil {
		t.Fatal(err)
	}
	if _, err := announceVia(t, local, base, limitsQuery(ih, keyless, 7002, 1, "", "&event=started")); err != nil {
		t.Fatal(err)
	}
	listed("start", keyedAddr, keylessAddr)

	forgeries := []struct {
		name  string
		hc    *http.Client
		query string
	}{
		{"stopped with another key", local, limitsQuery(ih, keyed, 7001, 1, "0BADC0DE", "&event=stopped")},
		{"stopped without the key, same address", local, limitsQuery(ih, keyed, 7001, 1, "", "&event=stopped")},
		{"stopped with another key, other address", other, limitsQuery(ih, keyed, 7001, 1, "0BADC0DE", "&event=stopped")},
		{"re-announce with another key and ip", local, limitsQuery(ih, keyed, 9999, 0, "0BADC0DE", "&ip=127.0.0.9")},
		{"re-announce with the key's digits in lower case", local, limitsQuery(ih, keyed, 9999, 0, "a1b2c3d4", "")},
		{"keyless: stopped from another address", other, limitsQuery(ih, keyless, 7002, 1, "", "&event=stopped")},
		{"keyless: re-announce from another address", other, limitsQuery(ih, keyless, 9998, 0, "", "&ip=127.0.0.1")},
		{"keyless: re-announce with a key", local, limitsQuery(ih, keyless, 9998, 0, "00000000", "")},
		{"keyless: completed from another address", other, limitsQuery(ih, keyless, 7002, 0, "", "&event=completed")},
	}
	for _, f := range forgeries {
		_, err := announceVia(t, f.hc, base, f.query)
		if !errors.Is(err, ErrFailure) {
			t.Errorf("%s: got %v, want a failure reason", f.name, err)
		}
		listed(f.name, keyedAddr, keylessAddr)
	}
	checkMetrics(t, "forgeries", base+"/metrics", map[*sample]float64{ptr(refusedSample("owner")): float64(len(forgeries))})

	// The owners themselves may move and leave.
	if _, err := announceVia(t, local, base, limitsQuery(ih, keyless, 7003, 1, "", "")); err != nil {
		t.Fatalf("keyless victim moving: %v", err)
	}
	listed("keyless victim moved", keyedAddr, netip.MustParseAddrPort("127.0.0.1:7003"))
	if _, err := announceVia(t, other, base, limitsQuery(ih, keyed, 7001, 1, "A1B2C3D4", "&event=stopped")); err != nil {
		t.Fatalf("keyed victim stopping from another address: %v", err)
	}
	listed("keyed victim left", netip.MustParseAddrPort("127.0.0.1:7003"))
}

func TestUsableIPParam(t *testing.T) {
	lo, lo2, bed := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("198.18.0.9")
	bed6 := netip.MustParseAddr("2001:db8::9")
	trustLo2 := testenv.CIDR(t, "127.0.0.2")
	trustBed := testenv.CIDR(t, "198.18.0.0/15", "2001:db8::/32")
	tests := []struct {
		ip      string
		src     netip.Addr
		trusted cidr.List
		want    bool
	}{
		{"198.18.0.5", bed, cidr.List{}, true},
		{"10.1.2.3", bed, cidr.List{}, true},
		{"2001:db8::5", bed6, cidr.List{}, true},
		{"::ffff:198.18.0.5", bed, cidr.List{}, true},
		{"127.0.0.5", bed, cidr.List{}, false},
		{"::1", bed6, cidr.List{}, false},
		{"127.0.0.5", lo, cidr.List{}, true},
		{"::1", lo, cidr.List{}, true},
		{"169.254.169.254", bed, cidr.List{}, false},
		{"fe80::1", bed6, cidr.List{}, false},
		{"224.0.0.1", bed, cidr.List{}, false},
		{"239.255.255.250", bed, cidr.List{}, false},
		{"ff02::1", bed6, cidr.List{}, false},
		{"ff01::1", bed6, cidr.List{}, false},
		{"255.255.255.255", bed, cidr.List{}, false},
		{"0.0.0.0", bed, cidr.List{}, false},
		{"0.1.2.3", bed, cidr.List{}, false},
		{"::", bed6, cidr.List{}, false},
		{"::ffff:127.0.0.1", bed, cidr.List{}, false},
		{"::ffff:169.254.169.254", bed, cidr.List{}, false},
		{"198.18.0.5", lo, trustLo2, false},
		{"198.18.0.5", lo2, trustLo2, true},
		{"198.18.0.5", bed, trustBed, true},
		{"198.18.0.5", netip.MustParseAddr("::ffff:198.18.0.9"), trustBed, true},
		{"2001:db8::5", bed6, trustBed, true},
		{"198.18.0.5", netip.MustParseAddr("203.0.113.1"), trustBed, false},
	}
	for _, tt := range tests {
		t.Run(tt.ip+" from "+tt.src.String(), func(t *testing.T) {
			if got := usableIPParam(netip.MustParseAddr(tt.ip), tt.src, tt.trusted); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if usableIPParam(netip.MustParseAddr("fe80::1%eth0"), bed6, cidr.List{}) {
		t.Error("an address with a zone was taken")
	}
}

// TestServerIPParam checks which ip parameters the tracker lists a peer
// at, and that --trust-ip-from limits who may give one.
func TestServerIPParam(t *testing.T) {
	ih := hash20("ip param")
	tests := []struct {
		name string
		cfg  Config
		src  string
		ip   string
		want string
	}{
		{"unicast", Config{}, "127.0.0.1", "198.18.0.5", "198.18.0.5"},
		{"loopback from loopback", Config{}, "127.0.0.1", "127.0.0.5", "127.0.0.5"},
		{"link-local", Config{}, "127.0.0.1", "169.254.169.254", "127.0.0.1"},
		{"multicast", Config{}, "127.0.0.1", "224.0.0.1", "127.0.0.1"},
		{"broadcast", Config{}, "127.0.0.1", "255.255.255.255", "127.0.0.1"},
		{"not an address", Config{}, "127.0.0.1", "peer.example", "127.0.0.1"},
		{"untrusted source", Config{TrustIPFrom: testenv.CIDR(t, "127.0.0.2/32")}, "127.0.0.1", "198.18.0.5", "127.0.0.1"},
		{"trusted source", Config{TrustIPFrom: testenv.CIDR(t, "127.0.0.2/32")}, "127.0.0.2", "198.18.0.5", "198.18.0.5"},
		{"ignored", Config{IgnoreIPParam: true}, "127.0.0.1", "198.18.0.5", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, base := startServer(t, tt.cfg)
			hc := clientFrom(tt.src)
			if _, err := announceVia(t, hc, base, limitsQuery(ih, hash20("peer"), 7001, 1, "", "&ip="+tt.ip)); err != nil {
				t.Fatal(err)
			}
			r, err := announceVia(t, hc, base, limitsQuery(ih, hash20("watcher"), 7002, 1, "", ""))
			if err != nil {
				t.Fatal(err)
			}
			want := netip.AddrPortFrom(netip.MustParseAddr(tt.want), 7001)
			if len(r.Peers) != 1 || r.Peers[0] != want {
				t.Errorf("peer listed at %v, want %v", r.Peers, want)
			}
		})
	}
}

// TestServerAllowFrom checks that a tracker with AllowFrom closes
// connections from elsewhere and counts them.
func TestServerAllowFrom(t *testing.T) {
	_, base := startServer(t, Config{AllowFrom: testenv.CIDR(t, "127.0.0.2/32")})
	ih := hash20("allow from")
	if _, err := announceVia(t, clientFrom("127.0.0.2"), base, limitsQuery(ih, hash20("in"), 7001, 1, "", "")); err != nil {
		t.Fatalf("announce from an allowed address: %v", err)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", base[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /announce?%s HTTP/1.1\r\nHost: x\r\n\r\n", limitsQuery(ih, hash20("out"), 7002, 1, "", ""))
	if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Fatalf("a connection from outside --allow-from got %q, want it closed", line)
	}
	resp, err := clientFrom("127.0.0.2").Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	fams, err := metricstest.Parse(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := fams.Value("murder_tracker_refused_total", "reason", "address"); n != 1 {
		t.Errorf("murder_tracker_refused_total{reason=address} = %v, want 1", n)
	}
	// The refused announce left nothing.
	r, err := announceVia(t, clientFrom("127.0.0.2"), base, limitsQuery(ih, hash20("in"), 7001, 1, "", ""))
	if err != nil || len(r.Peers) != 0 || r.Incomplete != 1 {
		t.Errorf("after the refusal: %+v, %v; want the allowed peer alone", r, err)
	}
}

// TestServerFullScrape checks that a scrape of every torrent is refused
// unless FullScrape, and that Client.Alive works either way.
func TestServerFullScrape(t *testing.T) {
	ih := hash20("scraped")
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprint("full=", full), func(t *testing.T) {
			_, base := startServer(t, Config{FullScrape: full})
			ctx := context.Background()
			c := NewClient([][]string{{base + "/announce"}}, ClientConfig{})
			if _, err := c.Announce(ctx, AnnounceRequest{InfoHash: ih, PeerID: hash20("p"), Port: 7001, Left: 1}); err != nil {
				t.Fatal(err)
			}
			all, err := c.Scrape(ctx)
			if full && (err != nil || len(all) != 1 || all[ih].Incomplete != 1) {
				t.Errorf("full scrape: got %+v, %v; want the torrent", all, err)
			}
			if !full && !errors.Is(err, ErrFailure) {
				t.Errorf("full scrape: got %+v, %v; want a failure reason", all, err)
			}
			one, err := c.Scrape(ctx, ih)
			if err != nil || one[ih].Incomplete != 1 {
				t.Errorf("scrape of one torrent: got %+v, %v", one, err)
			}
			if err := c.Alive(ctx); err != nil {
				t.Errorf("Alive: %v", err)
			}
		})
	}
	// Alive fails when nothing answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := NewClient([][]string{{"http://" + addr + "/announce"}}, ClientConfig{Timeout: 2 * time.Second})
	if err := c.Alive(context.Background()); err == nil {
		t.Error("Alive on a closed port: no error")
	}
}

// TestClientKey checks that each Client announces with a key of its own.
func TestClientKey(t *testing.T) {
	srv, got := replyServer(t, http.StatusOK, "d8:intervali60e5:peers0:e")
	keys := map[string]bool{}
	for range 3 {
		c := NewClient([][]string{{srv.URL + "/announce"}}, ClientConfig{})
		for range 2 {
			if _, err := c.Announce(context.Background(), AnnounceRequest{InfoHash: hash20("k"), PeerID: hash20("p"), Port: 1}); err != nil {
				t.Fatal(err)
			}
			_, raw, _ := strings.Cut(got.Load().(string), "?")
			q, err := parseAnnounceQuery(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !q.hasKey || q.Key == 0 {
				t.Fatalf("announce without a key: %+v", q)
			}
			keys[fmt.Sprint(q.Key)] = true
		}
	}
	if len(keys) != 3 {
		t.Errorf("3 clients announced with %d keys, want 3", len(keys))
	}
}
