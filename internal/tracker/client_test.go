package tracker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func hash20(s string) [20]byte {
	var h [20]byte
	copy(h[:], s)
	return h
}

func TestAppendQuery(t *testing.T) {
	req := AnnounceRequest{
		InfoHash: hash20("a b+c/\x00\xff~-._01234567"),
		PeerID:   hash20("-MU0001-abcdefghijkl"),
		Port:     6881, Uploaded: 1, Downloaded: 2, Left: 3,
		Event: EventStarted, NumWant: 80, Key: 0xbeef, IP: "198.18.0.5",
		Place: Place{Datacenter: "east", Rack: "r-1"},
	}
	got := string(appendQuery(nil, &req))
	want := "info_hash=a%20b%2Bc%2F%00%FF~-._01234567&peer_id=-MU0001-abcdefghijkl&port=6881" +
		"&uploaded=1&downloaded=2&left=3&compact=1&numwant=80&key=0000BEEF&event=started&ip=198.18.0.5" +
		"&datacenter=east&rack=r-1&places=1"
	if got != want {
		t.Errorf("query:\ngot  %s\nwant %s", got, want)
	}
	req.Event, req.IP, req.Place = EventStopped, "", Place{}
	got = string(appendQuery(nil, &req))
	if !strings.Contains(got, "&numwant=0&") || !strings.HasSuffix(got, "&event=stopped") {
		t.Errorf("stopped query %s: want numwant=0 and event=stopped", got)
	}
}

func TestDecodeAnnounceResponse(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name    string
		body    string
		want    *AnnounceResponse
		failure string
		wantErr bool
	}{
		{
			name: "compact",
			body: "d8:completei2e10:incompletei3e8:intervali15e12:min intervali5e5:peers12:\x7f\x00\x00\x01\x1a\xe1\xc6\x12\x00\x05\x00\x50e",
			want: &AnnounceResponse{Interval: 15 * time.Second, MinInterval: 5 * time.Second, Complete: 2, Incomplete: 3,
				Peers: []netip.AddrPort{ap("127.0.0.1:6881"), ap("198.18.0.5:80")}},
		},
		{
			name: "compact with peers6",
			body: "d8:intervali30e5:peers0:6:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1e",
			want: &AnnounceResponse{Interval: 30 * time.Second, Peers: []netip.AddrPort{ap("[::1]:6881")}},
		},
		{
			name: "dictionary peers, hostnames skipped",
			body: "d8:intervali15e5:peersld2:ip9:127.0.0.27:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti7000eed2:ip11:example.com4:porti1eed2:ip3:::14:porti9eeee",
			want: &AnnounceResponse{Interval: 15 * time.Second, Peers: []netip.AddrPort{ap("127.0.0.2:7000"), ap("[::1]:9")}},
		},
		{
			name: "no peers key",
			body: "d8:intervali15ee",
			want: &AnnounceResponse{Interval: 15 * time.Second},
		},
		{
			name: "murder's places, compact with peers6",
			body: "d8:intervali15e5:peers6:\x7f\x00\x00\x01\x1a\xe16:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1" +
				"5:place7:east/r16:placesl4:west0:ee",
			want: &AnnounceResponse{Interval: 15 * time.Second, Peers: []netip.AddrPort{ap("127.0.0.1:6881"), ap("[::1]:6881")},
				Place: Place{"east", "r1"}, Places: []Place{{"west", ""}, {}}},
		},
		{
			name: "murder's places line up with the dictionary peers kept",
			body: "d8:intervali15e5:peersld2:ip11:example.com4:porti1eed2:ip9:127.0.0.24:porti7000eee5:place4:east6:placesl1:x1:yee",
			want: &AnnounceResponse{Interval: 15 * time.Second, Peers: []netip.AddrPort{ap("127.0.0.2:7000")},
				Place: Place{"east", ""}, Places: []Place{{"y", ""}}},
		},
		{
			name: "places of the wrong length are ignored, bad names are unknown",
			body: "d8:intervali15e5:peers6:\x7f\x00\x00\x01\x1a\xe15:place3:a b6:placesl1:x1:yee",
			want: &AnnounceResponse{Interval: 15 * time.Second, Peers: []netip.AddrPort{ap("127.0.0.1:6881")}},
		},
		{name: "failure reason alone", body: "d14:failure reason9:not showne", failure: "not shown"},
		{name: "missing interval", body: "d5:peers0:e", wantErr: true},
		{name: "bad compact length", body: "d8:intervali15e5:peers5:abcdee", wantErr: true},
		{name: "bad peers6 length", body: "d8:intervali15e5:peers0:6:peers62:abe", wantErr: true},
		{name: "not a dict", body: "li1ee", wantErr: true},
		{name: "truncated", body: "d8:intervali15e", wantErr: true},
		{name: "html", body: "<html>oops</html>", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeAnnounceResponse([]byte(tt.body))
			switch {
			case tt.failure != "":
				var fe *FailureError
				if !errors.As(err, &fe) || fe.Reason != tt.failure || !errors.Is(err, ErrFailure) {
					t.Fatalf("got err %v, want failure %q", err, tt.failure)
				}
				return
			case tt.wantErr:
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				return
			case err != nil:
				t.Fatalf("got err %v", err)
			}
			if got.Interval != tt.want.Interval || got.MinInterval != tt.want.MinInterval ||
				got.Complete != tt.want.Complete || got.Incomplete != tt.want.Incomplete ||
				!slices.Equal(got.Peers, tt.want.Peers) || got.Place != tt.want.Place || !slices.Equal(got.Places, tt.want.Places) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestScrapeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://t:8998/announce", "http://t:8998/scrape"},
		{"http://t/x/announce.php?pk=1", "http://t/x/scrape.php?pk=1"},
		{"http://t/a/announce", "http://t/a/scrape"},
		{"http://t/announce/x", ""},
		{"http://t/", ""},
	}
	for _, tt := range tests {
		got, err := ScrapeURL(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ScrapeURL(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ScrapeURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// replyServer answers every request with body and records the raw queries.
func replyServer(t *testing.T, status int, body string) (*httptest.Server, *atomic.Value) {
	var last atomic.Value
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last.Store(r.URL.Path + "?" + r.URL.RawQuery)
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts, &last
}

func TestClientAnnounce(t *testing.T) {
	ts, last := replyServer(t, 200, "d8:intervali15e5:peers6:\x7f\x00\x00\x01\x1a\xe1e")
	c := NewClient([][]string{{ts.URL + "/announce?pk=x"}}, ClientConfig{})
	resp, err := c.Announce(context.Background(), AnnounceRequest{InfoHash: hash20(" +"), PeerID: hash20("p"), Port: 1, Left: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 1 || resp.Peers[0] != netip.MustParseAddrPort("127.0.0.1:6881") {
		t.Errorf("peers %v, want [127.0.0.1:6881]", resp.Peers)
	}
	q := last.Load().(string)
	if !strings.HasPrefix(q, "/announce?pk=x&info_hash=%20%2B%00") || !strings.Contains(q, "&compact=1") {
		t.Errorf("tracker saw %q", q)
	}
}

func TestClientTrackerID(t *testing.T) {
	ts, last := replyServer(t, 200, "d8:intervali15e5:peers0:10:tracker id4:a b?e")
	c := NewClient([][]string{{ts.URL + "/announce"}}, ClientConfig{})
	for i, want := range []bool{false, true} {
		if _, err := c.Announce(context.Background(), AnnounceRequest{Port: 1}); err != nil {
			t.Fatal(err)
		}
		if got := strings.HasSuffix(last.Load().(string), "&trackerid=a%20b%3F"); got != want {
			t.Errorf("announce %d sent %q: trackerid sent = %v, want %v", i, last.Load(), got, want)
		}
	}
}

func TestClientFailover(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/announce"
	dead.Close()
	bad, _ := replyServer(t, 500, "oops")
	refuse, _ := replyServer(t, 200, "d14:failure reason7:go awaye")
	good, _ := replyServer(t, 200, "d8:intervali15e5:peers0:e")
	goodURL := good.URL + "/announce"

	c := NewClient([][]string{{deadURL, bad.URL + "/announce"}, {refuse.URL + "/announce", goodURL}}, ClientConfig{Timeout: 5 * time.Second})
	for i := range 3 {
		if _, err := c.Announce(context.Background(), AnnounceRequest{Port: 1}); err != nil {
			t.Fatalf("announce %d: %v", i, err)
		}
		if tiers := c.Tiers(); tiers[1][0] != goodURL {
			t.Fatalf("after announce %d tiers %v: want %s first in tier 2", i, tiers, goodURL)
		}
	}

	c = NewClient([][]string{{deadURL}, {refuse.URL + "/announce"}}, ClientConfig{})
	_, err := c.Announce(context.Background(), AnnounceRequest{Port: 1})
	var fe *FailureError
	if !errors.Is(err, ErrFailure) || !errors.As(err, &fe) || fe.Reason != "go away" {
		t.Errorf("got %v, want the refusal among the errors", err)
	}

	if _, err := NewClient(nil, ClientConfig{}).Announce(context.Background(), AnnounceRequest{Port: 1}); err == nil {
		t.Error("client without trackers: got no error")
	}
	if _, err := NewClient([][]string{{"udp://x:1/announce"}}, ClientConfig{}).Announce(context.Background(), AnnounceRequest{Port: 1}); err == nil {
		t.Error("udp tracker: got no error")
	}
}

func TestClientAnnounceCancelled(t *testing.T) {
	block := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(block); ts.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err := NewClient([][]string{{ts.URL + "/announce"}, {ts.URL + "/announce"}}, ClientConfig{}).
		Announce(ctx, AnnounceRequest{Port: 1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestClientScrape(t *testing.T) {
	ih := hash20("abcdefghijklmnopqrst")
	ts, last := replyServer(t, 200, "d5:filesd20:abcdefghijklmnopqrstd8:completei1e10:downloadedi4e10:incompletei2eeee")
	got, err := NewClient([][]string{{ts.URL + "/announce"}}, ClientConfig{}).Scrape(context.Background(), ih)
	if err != nil {
		t.Fatal(err)
	}
	if got[ih] != (ScrapeStats{Complete: 1, Incomplete: 2, Downloaded: 4}) {
		t.Errorf("got %+v", got)
	}
	if q := last.Load().(string); q != "/scrape?info_hash=abcdefghijklmnopqrst" {
		t.Errorf("tracker saw %q", q)
	}
}

// TestClientFailsOverAndBack announces to two trackers, each a tier of
// its own as murder create writes them: while the first is down the
// second answers, and once the first is back it answers again.
func TestClientFailsOverAndBack(t *testing.T) {
	store := NewMemStore(MemStoreConfig{}) // one swarm, as on one Redis
	var down atomic.Bool
	var hits [2]atomic.Int64
	var urls []string
	for i := range 2 {
		srv, err := NewServer(Config{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if i == 0 && down.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			hits[i].Add(1)
			srv.ServeHTTP(w, r)
		}))
		t.Cleanup(ts.Close)
		urls = append(urls, ts.URL+"/announce")
	}
	c := NewClient([][]string{{urls[0]}, {urls[1]}}, ClientConfig{})
	announce := func(peer int) *AnnounceResponse {
		t.Helper()
		resp, err := c.Announce(context.Background(), AnnounceRequest{InfoHash: hash20("back"), PeerID: testPeer(peer).ID, Port: 7000 + peer, Left: 1, NumWant: 50})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	steps := []struct {
		name   string
		down   bool
		peer   int
		served int // which tracker must answer
		peers  int
	}{
		{"first answers", false, 1, 0, 0},
		{"first down: second answers with the same swarm", true, 2, 1, 1},
		{"first back: it answers again", false, 3, 0, 2},
	}
	for _, s := range steps {
		down.Store(s.down)
		before := [2]int64{hits[0].Load(), hits[1].Load()}
		resp := announce(s.peer)
		if hits[s.served].Load() != before[s.served]+1 || hits[1-s.served].Load() != before[1-s.served] {
			t.Fatalf("%s: tracker %d did not answer alone (hits %d, %d)", s.name, s.served+1, hits[0].Load(), hits[1].Load())
		}
		if len(resp.Peers) != s.peers {
			t.Fatalf("%s: got %d peers, want %d", s.name, len(resp.Peers), s.peers)
		}
	}
}
