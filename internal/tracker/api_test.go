package tracker

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAPI(t *testing.T) {
	dir := t.TempDir()
	allowed := writeTorrent(t, dir, "v1.tgz.torrent", "v1.tgz")
	hostile := hash20("hostile-name-torrent")
	_, base := startServer(t, Config{AllowDir: dir, Interval: time.Second})
	// The allow directory names v1.tgz; announces cannot rename it.
	ctx := context.Background()
	c := NewClient([][]string{{base + "/announce"}}, ClientConfig{})
	for _, a := range []AnnounceRequest{
		{InfoHash: allowed, PeerID: hash20("-MU0001-seed00000000"), Port: 1, Left: 0, Event: EventStarted, Name: "renamed"},
		{InfoHash: allowed, PeerID: hash20("-MU0001-peer00000001"), Port: 2, Left: 50, Downloaded: 50, Event: EventStarted},
	} {
		if _, err := c.Announce(ctx, a); err != nil {
			t.Fatalf("announce %+v: %v", a, err)
		}
	}
	api := NewAPIClient(strings.TrimPrefix(base, "http://"))
	list, err := api.Swarms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Swarms) != 1 {
		t.Fatalf("got %d swarms, want 1: %+v", len(list.Swarms), list)
	}
	s := list.Swarms[0]
	if s.InfoHash != hex.EncodeToString(allowed[:]) || s.Name != "v1.tgz" || s.Seeders != 1 || s.Leechers != 1 || s.Completed != 0 {
		t.Errorf("got swarm %+v, want v1.tgz with 1 seeder and 1 leecher", s)
	}
	if len(list.Deploys) != 1 || list.Deploys[0].Finished != nil {
		t.Errorf("got deploys %+v, want one under way", list.Deploys)
	}
	d, err := api.Swarm(ctx, s.InfoHash)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Peers) != 2 || d.Peers[0].Address != "127.0.0.1:1" || !d.Peers[0].Seeder || d.Peers[1].Progress != 0.5 {
		t.Errorf("got peers %+v, want the seeder on port 1 and a peer at 50%%", d.Peers)
	}

	// Names come from murder's announces where no allow directory names
	// the torrent; a second tracker without one shows them.
	_, open := startServer(t, Config{Interval: time.Second})
	c2 := NewClient([][]string{{open + "/announce"}}, ClientConfig{})
	name := "<img src=x onerror=alert(1)>"
	if _, err := c2.Announce(ctx, AnnounceRequest{InfoHash: hostile, PeerID: hash20("p"), Port: 3, Left: 10, Event: EventStarted, Name: name,
		Place: Place{Datacenter: "ams", Rack: "r1"}}); err != nil {
		t.Fatal(err)
	}
	d2, err := NewAPIClient(open).Swarm(ctx, hex.EncodeToString(hostile[:]))
	if err != nil || d2.Name != name || d2.Size != 10 {
		t.Errorf("got %+v, %v; want the name %q and size 10", d2, err, name)
	}
	if err == nil && (len(d2.Peers) != 1 || d2.Peers[0].Datacenter != "ams" || d2.Peers[0].Rack != "r1") {
		t.Errorf("got peers %+v, want one in datacenter ams, rack r1", d2.Peers)
	}

	t.Run("errors", func(t *testing.T) {
		if _, err := api.Swarm(ctx, strings.Repeat("00", 20)); !errors.Is(err, ErrNoSwarm) {
			t.Errorf("unknown swarm: got %v, want ErrNoSwarm", err)
		}
		if code, _ := httpGet(t, base+"/api/swarms/xyz"); code != http.StatusBadRequest {
			t.Errorf("bad info hash: got HTTP %d, want 400", code)
		}
	})

	t.Run("page", func(t *testing.T) {
		resp, err := http.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET /: got %d, %v", resp.StatusCode, resp.Header)
		}
		for _, f := range []string{"/ui/app.js", "/ui/style.css"} {
			if code, body := httpGet(t, base+f); code != 200 || len(body) == 0 {
				t.Errorf("GET %s: got %d with %d bytes", f, code, len(body))
			}
		}
		if code, _ := httpGet(t, base+"/ui/nope.js"); code != 404 {
			t.Errorf("GET /ui/nope.js: got %d, want 404", code)
		}
	})
}

func TestNewAPIClient(t *testing.T) {
	for in, want := range map[string]string{
		"tracker:8998":                       "http://tracker:8998",
		"http://tracker:8998/announce":       "http://tracker:8998",
		"https://tracker.example/x/announce": "https://tracker.example",
		"127.0.0.1:1":                        "http://127.0.0.1:1",
	} {
		if got := NewAPIClient(in).Base; got != want {
			t.Errorf("NewAPIClient(%q).Base = %q, want %q", in, got, want)
		}
	}
}
