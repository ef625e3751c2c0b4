package tracker

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/metainfo"
)

// startServer serves a tracker for cfg on a loopback port until the test
// ends, and checks that it then shuts down cleanly.
func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	return startServerWith(t, cfg, nil)
}

// startServerWith is startServer with a hook that adjusts the server before
// it starts serving.
func startServerWith(t *testing.T, cfg Config, adjust func(*Server)) (*Server, string) {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if adjust != nil {
		adjust(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return srv, "http://" + ln.Addr().String()
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func rawQuery(ih, peer [20]byte, port int, left int64, extra string) string {
	req := AnnounceRequest{InfoHash: ih, PeerID: peer, Port: port, Left: left}
	return string(appendQuery(nil, &req)) + extra
}

func TestServerAnnounceFlow(t *testing.T) {
	_, base := startServer(t, Config{FullScrape: true})
	ctx := context.Background()
	ih := hash20("flow")
	c := NewClient([][]string{{base + "/announce"}}, ClientConfig{})
	announce := func(name string, port int, left int64, event string) *AnnounceResponse {
		t.Helper()
		resp, err := c.Announce(ctx, AnnounceRequest{InfoHash: ih, PeerID: hash20(name), Port: port, Left: left, Event: event})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return resp
	}
	addr := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port) }

	r := announce("leecher-a", 7001, 100, EventStarted)
	if len(r.Peers) != 0 || r.Incomplete != 1 || r.Interval != DefaultInterval || r.MinInterval != DefaultInterval/3 {
		t.Errorf("first announce: %+v", r)
	}
	r = announce("seeder-b", 7002, 0, EventStarted)
	if !slices.Equal(r.Peers, []netip.AddrPort{addr(7001)}) || r.Complete != 1 || r.Incomplete != 1 {
		t.Errorf("seeder b: %+v, want leecher a", r)
	}
	r = announce("seeder-c", 7003, 0, EventStarted)
	if !slices.Equal(r.Peers, []netip.AddrPort{addr(7001)}) {
		t.Errorf("seeder c got %v, want only leecher a", r.Peers)
	}
	r = announce("leecher-a", 7001, 100, "")
	slices.SortFunc(r.Peers, netip.AddrPort.Compare)
	if !slices.Equal(r.Peers, []netip.AddrPort{addr(7002), addr(7003)}) {
		t.Errorf("leecher a got %v, want both seeders", r.Peers)
	}
	announce("leecher-a", 7001, 0, EventCompleted)
	announce("seeder-b", 7002, 0, EventStopped)

	got, err := c.Scrape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ScrapeStats{Complete: 2, Downloaded: 1}); got[ih] != want || len(got) != 1 {
		t.Errorf("scrape all: got %+v, want %+v", got, want)
	}
	other := hash20("never seen")
	got, err = c.Scrape(ctx, ih, other)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[other] != (ScrapeStats{}) || got[ih].Complete != 2 {
		t.Errorf("scrape two: got %+v", got)
	}
}

func TestServerReplyForms(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		extra  string // appended to the second peer's announce
		want   string // the first peer as the second one sees it
		decode bool
	}{
		{"compact ipv4 from ip parameter", Config{}, "", "198.18.0.9:7001", true},
		{"ip parameter ignored", Config{IgnoreIPParam: true}, "", "127.0.0.1:7001", true},
		{"dictionary form", Config{}, "&compact=0", "d2:ip10:198.18.0.97:peer id20:first-peer\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" + "4:porti7001ee", false},
		{"dictionary form without peer id", Config{}, "&compact=0&no_peer_id=1", "d2:ip10:198.18.0.94:porti7001ee", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, base := startServer(t, tt.cfg)
			ih := hash20(tt.name)
			httpGet(t, base+"/announce?"+rawQuery(ih, hash20("first-peer"), 7001, 5, "&ip=198.18.0.9"))
			status, body := httpGet(t, base+"/announce?"+rawQuery(ih, hash20("second-peer"), 7002, 5, tt.extra))
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			if !tt.decode {
				if !strings.Contains(string(body), "5:peersl"+tt.want+"e") {
					t.Errorf("reply %q does not hold %q", body, tt.want)
				}
				return
			}
			r, err := DecodeAnnounceResponse(body)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Peers) != 1 || r.Peers[0].String() != tt.want {
				t.Errorf("peers %v, want [%s]", r.Peers, tt.want)
			}
		})
	}
}

func TestServerPeers6(t *testing.T) {
	_, base := startServer(t, Config{})
	ih := hash20("v6")
	httpGet(t, base+"/announce?"+rawQuery(ih, hash20("six"), 7001, 5, "&ip=%3A%3A1"))
	httpGet(t, base+"/announce?"+rawQuery(ih, hash20("four"), 7002, 5, ""))
	_, body := httpGet(t, base+"/announce?"+rawQuery(ih, hash20("me"), 7003, 5, ""))
	if !strings.Contains(string(body), "6:peers618:") {
		t.Errorf("reply %q has no peers6", body)
	}
	r, err := DecodeAnnounceResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(r.Peers, netip.AddrPort.Compare)
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:7002"), netip.MustParseAddrPort("[::1]:7001")}
	if !slices.Equal(r.Peers, want) {
		t.Errorf("peers %v, want %v", r.Peers, want)
	}
}

func TestServerBadRequests(t *testing.T) {
	_, base := startServer(t, Config{})
	ih, peer := hash20("bad"), hash20("peer")
	tests := []struct{ name, query, reason string }{
		{"no parameters", "", "missing info_hash"},
		{"short info hash", "info_hash=abc&peer_id=01234567890123456789&port=1&left=0", "invalid info_hash: want 20 bytes"},
		{"bad port", rawQuery(ih, peer, 1, 0, "&port=99999"), "invalid port"},
		{"non-numeric left", rawQuery(ih, peer, 1, 0, "&left=all"), "invalid left: not an integer"},
		{"non-numeric uploaded", rawQuery(ih, peer, 1, 0, "&uploaded=-x"), "invalid uploaded: not an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := httpGet(t, base+"/announce?"+tt.query)
			if status != 200 {
				t.Errorf("status %d, want 200", status)
			}
			_, err := DecodeAnnounceResponse(body)
			var fe *FailureError
			if !errors.As(err, &fe) || fe.Reason != tt.reason {
				t.Errorf("got %v, want failure %q", err, tt.reason)
			}
		})
	}
	if status, _ := httpGet(t, base+"/nothing"); status != 404 {
		t.Errorf("unknown path: status %d, want 404", status)
	}
	resp, err := http.Post(base+"/announce", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
}

// writeTorrent writes a small single-file .torrent for name into dir.
func writeTorrent(t *testing.T, dir, file, name string) [20]byte {
	t.Helper()
	info := metainfo.Info{Name: name, PieceLength: 16384, Pieces: make([]byte, 20), Length: 100}
	m, err := metainfo.New(info, []string{"http://127.0.0.1:8998/announce"})
	if err != nil {
		t.Fatal(err)
	}
	if err := metainfo.WriteFile(filepath.Join(dir, file), m, false); err != nil {
		t.Fatal(err)
	}
	return [20]byte(m.InfoHash())
}

func TestServerAllowDir(t *testing.T) {
	dir := t.TempDir()
	allowed := writeTorrent(t, dir, "v1.tgz.torrent", "v1.tgz")
	os.WriteFile(filepath.Join(dir, "junk.torrent"), []byte("not bencode"), 0o644)
	_, base := startServer(t, Config{AllowDir: dir, AllowPoll: 20 * time.Millisecond, FullScrape: true})
	ctx := context.Background()
	c := NewClient([][]string{{base + "/announce"}}, ClientConfig{})

	if _, err := c.Announce(ctx, AnnounceRequest{InfoHash: allowed, PeerID: hash20("p"), Port: 1, Left: 1}); err != nil {
		t.Errorf("allowed torrent: %v", err)
	}
	later := hash20("later")
	if _, err := c.Announce(ctx, AnnounceRequest{InfoHash: later, Port: 1}); !errors.Is(err, ErrFailure) {
		t.Errorf("torrent outside the dir: got %v, want a failure reason", err)
	}

	want, err := os.ReadFile(filepath.Join(dir, "v1.tgz.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"v1.tgz.torrent", "v1.tgz", "v1"} {
		status, body := httpGet(t, base+"/torrents/"+name)
		if status != 200 || string(body) != string(want) {
			t.Errorf("/torrents/%s: status %d, %d bytes; want the %d-byte file", name, status, len(body), len(want))
		}
	}
	for _, name := range []string{"junk.torrent", "v2", "..%2Fv1.tgz.torrent", ""} {
		if status, _ := httpGet(t, base+"/torrents/"+name); status != 404 {
			t.Errorf("/torrents/%s: status %d, want 404", name, status)
		}
	}

	// A torrent added later is picked up.
	later = writeTorrent(t, dir, "v2.tgz.torrent", "v2.tgz")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Announce(ctx, AnnounceRequest{InfoHash: later, PeerID: hash20("p"), Port: 1, Left: 0})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("torrent added to the dir still refused: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, err := c.Scrape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[allowed].Incomplete != 1 || got[later].Complete != 1 {
		t.Errorf("scrape all: %+v", got)
	}
}

func TestServerAllowDirMissing(t *testing.T) {
	if _, err := NewServer(Config{AllowDir: filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Error("missing allow dir: got no error")
	}
}

func TestAnnounceReplyRoundTrip(t *testing.T) {
	peers := []Peer{
		{ID: hash20("a"), Addr: netip.MustParseAddrPort("127.0.0.1:1")},
		{ID: hash20("b"), Addr: netip.MustParseAddrPort("[2001:db8::1]:65535")},
		{ID: hash20("c"), Addr: netip.MustParseAddrPort("198.18.0.1:6881")},
	}
	st := ScrapeStats{Complete: 4, Incomplete: 5, Downloaded: 6}
	for _, compact := range []bool{true, false} {
		b := appendAnnounceReply(nil, 15*time.Second, 5*time.Second, st, peers, compact, false, nil)
		r, err := DecodeAnnounceResponse(b)
		if err != nil {
			t.Fatalf("compact=%v: %v", compact, err)
		}
		var want []netip.AddrPort
		for _, p := range peers {
			want = append(want, p.Addr)
		}
		slices.SortFunc(r.Peers, netip.AddrPort.Compare)
		slices.SortFunc(want, netip.AddrPort.Compare)
		if !slices.Equal(r.Peers, want) || r.Complete != 4 || r.Incomplete != 5 || r.Interval != 15*time.Second || r.MinInterval != 5*time.Second {
			t.Errorf("compact=%v: got %+v", compact, r)
		}
	}
}

// TestDecodeRealReplies decodes replies of other trackers kept in testdata.
func TestDecodeRealReplies(t *testing.T) {
	b, err := os.ReadFile("testdata/replies/opentracker-announce.bencode")
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeAnnounceResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Interval != 1840*time.Second || r.Incomplete != 1 || len(r.Peers) != 1 || r.Peers[0].String() != "127.0.0.1:16882" {
		t.Errorf("opentracker announce: %+v", r)
	}
	b, err = os.ReadFile("testdata/replies/opentracker-scrape.bencode")
	if err != nil {
		t.Fatal(err)
	}
	s, err := DecodeScrapeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	ih, _ := metainfo.ParseHash("e913a5587fef1d9128338fbf5d81de064cba8d29")
	if len(s) != 1 || s[[20]byte(ih)] != (ScrapeStats{Incomplete: 1}) {
		t.Errorf("opentracker scrape: %+v", s)
	}
}

// FuzzDecodeAnnounceResponse checks that decoding never panics and that a
// decoded reply, written again by the server, decodes to the same peers.
func FuzzDecodeAnnounceResponse(f *testing.F) {
	files, err := filepath.Glob("testdata/replies/*.bencode")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed replies: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeAnnounceResponse(body)
		if err != nil {
			return
		}
		peers := make([]Peer, len(r.Peers))
		for i, a := range r.Peers {
			peers[i].Addr = a
			if r.Places != nil {
				peers[i].Place = r.Places[i]
			}
		}
		var self *Place
		if r.Places != nil {
			self = &r.Place
		}
		st := ScrapeStats{Complete: r.Complete, Incomplete: r.Incomplete}
		again, err := DecodeAnnounceResponse(appendAnnounceReply(nil, r.Interval, r.MinInterval, st, peers, true, true, self))
		if err != nil {
			t.Fatalf("re-encoded reply does not decode: %v", err)
		}
		want := slices.Clone(r.Peers)
		slices.SortFunc(want, netip.AddrPort.Compare)
		slices.SortFunc(again.Peers, netip.AddrPort.Compare)
		if !slices.Equal(again.Peers, want) || again.Interval != r.Interval || again.Complete != r.Complete || again.Incomplete != r.Incomplete {
			t.Fatalf("round trip:\ngot  %+v\nwant %+v", again, r)
		}
		if r.Places != nil && (again.Place != r.Place || len(again.Places) != len(r.Places)) {
			t.Fatalf("round trip places:\ngot  %+v\nwant %+v", again, r)
		}
	})
}
