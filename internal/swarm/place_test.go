package swarm

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/tracker"
)

// TestTrackerSwarmPlaces runs a seeder and peers that announce their
// datacenter to a real tracker: each learns its peers' places from the
// replies and counts what it received by where it came from (bytes from
// a peer that connected before a reply listed it are unplaced). Without
// places every byte is unplaced.
func TestTrackerSwarmPlaces(t *testing.T) {
	for _, placed := range []bool{true, false} {
		srv, err := tracker.NewServer(tracker.Config{Interval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		mi, data := makeTorrent(t, 2<<20, 64<<10, []string{ts.URL + "/announce"})
		cfg := Config{}
		if placed {
			cfg = Config{Datacenter: "east", Rack: "r1"}
		}
		seeder, _ := newNode(t, mi, data, true, cfg)
		var peers []*Swarm
		for range 2 {
			p, _ := newNode(t, mi, nil, false, cfg)
			peers = append(peers, p)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		// The seeder first, so that the peers' first replies list it.
		waitSeeder := runAll(t, ctx, seeder)
		client := tracker.NewClient([][]string{{ts.URL + "/announce"}}, tracker.ClientConfig{})
		for {
			st, err := client.Scrape(ctx, mi.InfoHash())
			if err == nil && st[mi.InfoHash()].Complete == 1 {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("the seeder never announced")
			}
			time.Sleep(10 * time.Millisecond)
		}
		wait := runAll(t, ctx, peers...)
		for _, p := range peers {
			waitComplete(t, ctx, p)
		}
		cancel()
		wait()
		waitSeeder()
		ts.Close()
		for i, p := range peers {
			st := p.Stats()
			r := st.Received
			if sum := r.SameRack + r.SameDatacenter + r.Remote + r.Unplaced; sum != st.Downloaded {
				t.Errorf("placed=%v peer %d: received %+v adds up to %d, want the %d downloaded", placed, i, r, sum, st.Downloaded)
			}
			switch {
			case placed && (r.SameRack == 0 || r.Remote != 0 || p.Place() != (tracker.Place{Datacenter: "east", Rack: "r1"})):
				t.Errorf("placed peer %d: received %+v, place %+v; want bytes from its rack, none remote, place east/r1", i, r, p.Place())
			case !placed && r.Unplaced != st.Downloaded:
				t.Errorf("unplaced peer %d: received %+v, want all %d unplaced", i, r, st.Downloaded)
			}
		}
	}
}
