package swarm

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/storage"
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

// TestPlaceToldInHandshake runs a seeder in one datacenter and a peer in
// another, with no tracker: the peer dials the seeder, and each learns
// the other's place from its extension handshake, so the bytes the peer
// receives count as remote.
func TestPlaceToldInHandshake(t *testing.T) {
	mi, data := makeTorrent(t, 1<<20, 64<<10, nil)
	seeder, _ := newNode(t, mi, data, true, Config{Datacenter: "east"})
	peer, _ := newNode(t, mi, nil, false, Config{Datacenter: "west", Rack: "w1"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wait := runAll(t, ctx, seeder, peer)
	peer.AddPeer(seeder.Addr().(*net.TCPAddr).AddrPort())
	waitComplete(t, ctx, peer)
	for _, tc := range []struct {
		name string
		s    *Swarm
		want tracker.Place
	}{{"seeder", seeder, tracker.Place{Datacenter: "west", Rack: "w1"}}, {"peer", peer, tracker.Place{Datacenter: "east"}}} {
		tc.s.mu.Lock()
		var got []tracker.Place
		var near []int32
		for c := range tc.s.conns {
			got = append(got, tc.s.placeOf[c.addr.Addr()])
			near = append(near, c.near.Load())
		}
		tc.s.mu.Unlock()
		if len(got) != 1 || got[0] != tc.want || near[0] != nearRemote {
			t.Errorf("%s: its peer's place %v, nearness %v; want [%v], remote", tc.name, got, near, tc.want)
		}
	}
	if r := peer.Stats().Received; r.Remote != int64(len(data)) {
		t.Errorf("peer received %+v, want all %d bytes remote", r, len(data))
	}
	cancel()
	wait()
}

// TestReadFirst feeds a listening side the first messages of a peer that
// dialed in: murder's (have none, then its extension handshake with its
// place) are read up to the handshake and place the peer; another
// client's order (interested first) is read no further.
func TestReadFirst(t *testing.T) {
	ext, _ := peerwire.ExtHandshake{V: "murder", Place: "west/w2"}.Marshal()
	extMsg := peerwire.Message{ID: peerwire.Extended, ExtID: peerwire.ExtHandshakeID, Payload: ext}
	for _, tc := range []struct {
		name      string
		msgs      []peerwire.Message
		wantRead  int
		wantPlace tracker.Place
	}{
		{"murder", []peerwire.Message{{ID: peerwire.HaveNone}, extMsg, {ID: peerwire.Interested}}, 2, tracker.Place{Datacenter: "west", Rack: "w2"}},
		{"keep-alive first", []peerwire.Message{{KeepAlive: true}, {ID: peerwire.Bitfield, Bitfield: []byte{0x80}}, extMsg}, 2, tracker.Place{Datacenter: "west", Rack: "w2"}},
		{"other order", []peerwire.Message{{ID: peerwire.Interested}, extMsg}, 1, tracker.Place{}},
		{"no place", []peerwire.Message{{ID: peerwire.HaveNone}, {ID: peerwire.Extended, ExtID: peerwire.ExtHandshakeID, Payload: []byte("d1:md1:xi1eee")}}, 2, tracker.Place{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := pickerSwarm(t, 1, 16<<10)
			s.place = tracker.Place{Datacenter: "east"}
			c := &conn{s: s, ext: true, addr: netip.MustParseAddrPort("198.18.0.9:6881")}
			if !s.placeFirst(c) {
				t.Fatal("placeFirst: false for an unlisted peer that dialed in, want true")
			}
			var b []byte
			for _, m := range tc.msgs {
				b = peerwire.AppendMessage(b, m)
			}
			first, err := s.readFirst(c, peerwire.NewDecoder(bytes.NewReader(b), 0), true)
			if err != nil {
				t.Fatal(err)
			}
			if len(first) != tc.wantRead {
				t.Errorf("read %d messages, want %d", len(first), tc.wantRead)
			}
			if got := s.placeOf[c.addr.Addr()]; got != tc.wantPlace {
				t.Errorf("place %v, want %v", got, tc.wantPlace)
			}
		})
	}
}

// TestSharesBetweenDatacenters: two hosts in different datacenters, each
// with a remote peer that is not a seed in the other, split the pieces
// between them, and each asks a remote seed first for its own share.
func TestSharesBetweenDatacenters(t *testing.T) {
	const n = 64
	owned := map[string]*storage.Bitfield{}
	for _, dc := range []string{"east", "west"} {
		other := map[string]string{"east": "west", "west": "east"}[dc]
		s, add := pickerSwarm(t, n, 16<<10)
		s.place = tracker.Place{Datacenter: dc}
		all := make([]int, n)
		for k := range all {
			all[k] = k
		}
		gw := add(0)
		gw.addr = netip.MustParseAddrPort("198.18.1.1:6881")
		s.placeOf[gw.addr.Addr()] = tracker.Place{Datacenter: other}
		gw.near.Store(nearRemote)
		seed := add(all...)
		seed.addr = netip.MustParseAddrPort("198.18.2.1:6881")
		s.placeOf[seed.addr.Addr()] = tracker.Place{Datacenter: "origin"}
		s.becameSeed(seed)
		seed.near.Store(nearRemote)
		s.have.Set(0)
		s.have.Set(1)
		s.have.Set(2)
		s.have.Set(3) // past the random first pieces
		for k := range 4 {
			s.want.Clear(k)
		}
		s.mu.Lock()
		s.updateSharesLocked()
		owned[dc] = s.owned
		// pickNew breaks ties at random: 20 picks all in the share.
		for range 20 {
			if k := s.pickNew(seed, false); k < 0 || !s.owned.Has(k) {
				t.Errorf("%s: asked the remote seed for piece %d, want one of its own share", dc, k)
				break
			}
		}
		s.mu.Unlock()
	}
	mine, theirs := owned["east"].Count(), owned["west"].Count()
	if mine+theirs != n || mine == 0 || theirs == 0 {
		t.Fatalf("east owns %d and west %d of %d pieces, want a split of all", mine, theirs, n)
	}
	for k := range n {
		if owned["east"].Has(k) == owned["west"].Has(k) {
			t.Errorf("piece %d: owned by both or neither", k)
		}
	}
}
