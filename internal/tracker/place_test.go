package tracker

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// placedPeer is peer i at place pl.
func placedPeer(i int, pl Place) Peer {
	p := testPeer(i)
	p.Place = pl
	return p
}

func announceAt(t *testing.T, st Store, ih [20]byte, p Peer, seeder bool, numWant int) []Peer {
	t.Helper()
	a := PeerAnnounce{InfoHash: ih, Peer: p, Seeder: seeder, NumWant: numWant}
	got, _, err := st.Announce(context.Background(), &a, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkStorePlaceIndex(t, st, ih)
	return got
}

// checkStorePlaceIndex checks the place lists of a MemStore or a
// RedisStore.
func checkStorePlaceIndex(t *testing.T, st Store, ih [20]byte) {
	t.Helper()
	switch st := st.(type) {
	case *MemStore:
		checkPlaceIndex(t, st, ih)
	case *RedisStore:
		checkRedisPlaceIndex(t, st, ih)
	}
}

// checkPlaceIndex checks the invariant of a swarm's place lists: every
// peer of known place is listed once, where its pos says, under its place
// and seeder state, and nothing else is listed.
func checkPlaceIndex(t *testing.T, st *MemStore, ih [20]byte) {
	t.Helper()
	sw := st.shard(&ih).swarms[ih]
	if sw == nil {
		return
	}
	listed := 0
	for dc, d := range sw.dcs {
		if d.len() == 0 {
			t.Fatalf("datacenter %q listed with no peers", dc)
		}
		if (len(d.ids[1]) > 0) != (sw.seeded[dc] == d) {
			t.Fatalf("datacenter %q: %d seeders but seeded is %v", dc, len(d.ids[1]), sw.seeded[dc] != nil)
		}
		for s := range 2 {
			for i, id := range d.ids[s] {
				slot, ok := sw.index[id]
				if !ok {
					t.Fatalf("datacenter %q lists a peer the swarm does not hold", dc)
				}
				e := sw.at(slot)
				if e.Place.Datacenter != dc || seederSide(slot < 0) != s || int(e.pos[0]) != i {
					t.Fatalf("datacenter %q list %d slot %d holds %+v", dc, s, i, e)
				}
				listed++
				if e.Place.Rack != "" {
					r := d.racks[e.Place.Rack]
					if r == nil || int(e.pos[1]) >= len(r.ids[s]) || r.ids[s][e.pos[1]] != id {
						t.Fatalf("peer %+v missing from its rack's list", e)
					}
				}
			}
		}
		for name, r := range d.racks {
			for s := range 2 {
				for _, id := range r.ids[s] {
					if e := sw.entryOf(id); e.Place.Rack != name || e.Place.Datacenter != dc {
						t.Fatalf("rack %s/%s lists %+v", dc, name, e)
					}
				}
			}
		}
	}
	for _, s := range sw.seeded {
		if s.len() == 0 {
			t.Fatal("seeded lists an empty datacenter")
		}
	}
	gateways := 0
	for dc, d := range sw.dcs {
		for _, id := range d.gateways {
			gateways++
			i, listed := sw.gateways[id]
			if slot, ok := sw.index[id]; !ok || sw.at(slot).Place.Datacenter != dc || !listed || sw.gatewayList[i] != id {
				t.Fatalf("gateway of %q is not a peer of it, or not listed where gateways says", dc)
			}
		}
	}
	if gateways != len(sw.gateways) || gateways != len(sw.gatewayList) {
		t.Fatalf("%d gateways listed by datacenter, %d in all (%d in the list)", gateways, len(sw.gateways), len(sw.gatewayList))
	}
	known := 0
	for _, l := range [][]entry{sw.seeders, sw.leechers} {
		for _, e := range l {
			if e.Place.Known() {
				known++
			}
		}
	}
	if known != listed {
		t.Fatalf("%d peers of known place, %d listed", known, listed)
	}
}

func placesOf(peers []Peer) []string {
	var out []string
	for _, p := range peers {
		out = append(out, p.Place.String())
	}
	return out
}

func TestStorePicksByPlace(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) { testStorePicksByPlace(t, kind) })
	}
}

func testStorePicksByPlace(t *testing.T, kind storeKind) {
	east1, east2 := Place{"east", "r1"}, Place{"east", "r2"}
	west, north := Place{"west", ""}, Place{"north", ""}
	st := kind.open(t, MemStoreConfig{})
	// The swarm: seeder 0 in east/r1; leechers 1-2 in east/r1, 3-5 in
	// east/r2, 6-8 in west, 9 of unknown place; a new torrent each time.
	n := 0
	fill := func(t *testing.T) [20]byte {
		n++
		ih := hash20(fmt.Sprint("places", n))
		announceAt(t, st, ih, placedPeer(0, east1), true, 0)
		for i := 1; i <= 9; i++ {
			pl := east1
			switch {
			case i >= 9:
				pl = Place{}
			case i >= 6:
				pl = west
			case i >= 3:
				pl = east2
			}
			announceAt(t, st, ih, placedPeer(i, pl), false, 0)
		}
		return ih
	}
	tests := []struct {
		name    string
		peer    Peer
		seeder  bool
		numWant int
		// want lists the places of the reply, group by group; the order
		// within a group is random.
		want [][]string
	}{
		{"own rack first, then own datacenter", placedPeer(1, east1), false, 4,
			[][]string{{"east/r1", "east/r1"}, {"east/r2", "east/r2"}}},
		{"a datacenter with a seeder gets no remote peers", placedPeer(1, east1), false, 50,
			[][]string{{"east/r1", "east/r1"}, {"east/r2", "east/r2", "east/r2"}}},
		{"a seeder gets no seeders", placedPeer(20, east1), true, 50,
			[][]string{{"east/r1", "east/r1"}, {"east/r2", "east/r2", "east/r2"}}},
		{"the gateway of a datacenter gets remote peers again", placedPeer(6, west), false, 50,
			[][]string{{"west", "west"}, {"east/r1"}, {"east/r1", "east/r1", "east/r2", "east/r2", "east/r2"}}},
		{"later peers of a datacenter get only their own", placedPeer(7, west), false, 50,
			[][]string{{"west", "west"}}},
		{"the first peer of a datacenter gets seeders, then other gateways, then the seeders' datacenters", placedPeer(30, north), false, 50,
			[][]string{{"east/r1"}, {"west"}, {"east/r1", "east/r1", "east/r2", "east/r2", "east/r2"}}},
		{"the first peer's remote peers are cut to its numwant, seeders first", placedPeer(30, north), false, 1,
			[][]string{{"east/r1"}}},
		{"a rack of its own still counts its datacenter", placedPeer(31, Place{"west", "r9"}), false, 50,
			[][]string{{"west", "west", "west"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 20 { // the picks are random: look at several
				ih := fill(t)
				got := announceAt(t, st, ih, tt.peer, tt.seeder, tt.numWant)
				gotPlaces := placesOf(got)
				if !sameGroups(gotPlaces, tt.want) {
					t.Fatalf("got places %q, want %q", gotPlaces, tt.want)
				}
				ids := map[[20]byte]bool{}
				for _, p := range got {
					if p.ID == tt.peer.ID || ids[p.ID] {
						t.Fatalf("reply holds the peer itself or a peer twice: %v", got)
					}
					ids[p.ID] = true
				}
				if strings.Contains(tt.name, "seeders first") && got[0].ID != testPeer(0).ID {
					t.Fatalf("first remote peer is %v, want the seeder", got[0])
				}
			}
		})
	}
}

// sameGroups reports whether got is the groups of want one after the
// other, in any order within each group.
func sameGroups(got []string, want [][]string) bool {
	for _, g := range want {
		if len(got) < len(g) {
			return false
		}
		a, b := slices.Clone(got[:len(g)]), slices.Clone(g)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			return false
		}
		got = got[len(g):]
	}
	return len(got) == 0
}

// TestMemStoreUnknownPlaceSamplesAll checks that a peer of unknown place
// gets the old uniform sample: every peer, whatever its place.
func TestStoreUnknownPlaceSamplesAll(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) {
			st := kind.open(t, MemStoreConfig{})
			ih := hash20("unknown")
			for i := range 6 {
				announceAt(t, st, ih, placedPeer(i, Place{Datacenter: fmt.Sprint("dc", i%3)}), false, 0)
			}
			got := announceAt(t, st, ih, placedPeer(100, Place{}), false, 50)
			if len(got) != 6 {
				t.Errorf("got %d peers, want all 6", len(got))
			}
			for _, p := range got {
				var i int
				fmt.Sscanf(string(p.ID[5:]), "%d", &i)
				if want := (Place{Datacenter: fmt.Sprint("dc", i%3)}); p.Place != want {
					t.Errorf("peer %d has place %v, want %v", i, p.Place, want)
				}
			}
		})
	}
}

// TestMemStorePlaceIndexChurn moves peers between places and seeder
// states, stops and expires them, and checks the place lists after each
// step.
func TestStorePlaceIndexChurn(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) { testStorePlaceIndexChurn(t, kind) })
	}
}

func testStorePlaceIndexChurn(t *testing.T, kind storeKind) {
	clock := &fakeClock{t: time.Unix(1e6, 0)}
	st := kind.open(t, MemStoreConfig{Now: clock.Now})
	ih := hash20("churn")
	places := []Place{{}, {"a", ""}, {"a", "r1"}, {"a", "r2"}, {"b", ""}, {"b", "r1"}}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 3000 {
		p := placedPeer(rng.IntN(40), places[rng.IntN(len(places))])
		a := PeerAnnounce{InfoHash: ih, Peer: p, Seeder: rng.IntN(4) == 0, NumWant: rng.IntN(10)}
		if rng.IntN(8) == 0 {
			a.Event = EventStopped
		}
		got, _, err := st.Announce(context.Background(), &a, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > a.NumWant {
			t.Fatalf("step %d: %d peers for numwant %d", step, len(got), a.NumWant)
		}
		checkStorePlaceIndex(t, st, ih)
		if step%500 == 499 {
			clock.Add(DefaultInterval)
			if kind.sweep != nil {
				kind.sweep(st, clock.Now())
			}
			checkStorePlaceIndex(t, st, ih)
		}
	}
}

// TestServerPlaces announces through the HTTP server with a topology: a
// murder peer gets its own place and the places of its peers, a peer's own
// datacenter wins over the file, and a client that does not ask for places
// (aria2, libtorrent) gets the reply it always got.
func TestServerPlaces(t *testing.T) {
	dir := t.TempDir()
	topo := filepath.Join(dir, "topology.toml")
	writeFile := func(s string) {
		if err := os.WriteFile(topo, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(`[[datacenter]]
name = "east"
cidrs = ["198.18.1.0/24"]
[[datacenter]]
name = "west"
cidrs = ["198.18.2.0/24"]
`)
	srv, base := startServer(t, Config{Topology: topo})
	ctx := context.Background()
	c := NewClient([][]string{{base + "/announce"}}, ClientConfig{})
	ih := hash20("dc")
	announce := func(name, ip string, left int64, pl Place) *AnnounceResponse {
		t.Helper()
		r, err := c.Announce(ctx, AnnounceRequest{InfoHash: ih, PeerID: hash20(name), Port: 7000, IP: ip, Left: left, Place: pl})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r
	}
	ap := func(ip string) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(ip), 7000) }

	if r := announce("seeder", "198.18.1.1", 0, Place{}); r.Place != (Place{"east", ""}) || r.Places == nil {
		t.Errorf("seeder: place %+v, places %v; want east and an empty list", r.Place, r.Places)
	}
	announce("east-2", "198.18.1.2", 10, Place{})
	r := announce("west-1", "198.18.2.1", 10, Place{})
	if r.Place != (Place{"west", ""}) || len(r.Peers) != 2 || r.Peers[0] != ap("198.18.1.1") ||
		!slices.Equal(r.Places, []Place{{"east", ""}, {"east", ""}}) {
		t.Errorf("first of west: place %+v peers %v places %v; want the seeder first, all east", r.Place, r.Peers, r.Places)
	}
	r = announce("west-2", "198.18.2.2", 10, Place{})
	if !slices.Equal(r.Peers, []netip.AddrPort{ap("198.18.2.1")}) || !slices.Equal(r.Places, []Place{{"west", ""}}) {
		t.Errorf("second of west: peers %v places %v; want west-1 only", r.Peers, r.Places)
	}
	// The peer's own datacenter wins over the file.
	r = announce("moved", "198.18.2.3", 10, Place{"east", "r7"})
	if r.Place != (Place{"east", "r7"}) || len(r.Peers) != 2 {
		t.Errorf("announced east/r7: place %+v peers %v; want east/r7 and the two east peers", r.Place, r.Peers)
	}

	// Another client's announce: no places=1, no place keys.
	q := rawQuery(ih, hash20("aria2"), 6881, 10, "")
	q = strings.Replace(q, "&places=1", "", 1)
	_, body := httpGet(t, base+"/announce?"+q+"&ip=198.18.2.9")
	if bytes.Contains(body, []byte("place")) {
		t.Errorf("reply to a client that did not ask has place keys: %q", body)
	}
	if dr, err := DecodeAnnounceResponse(body); err != nil || dr.Places != nil || len(dr.Peers) != 2 {
		t.Errorf("reply to another client: %+v, %v; want west's 2 peers and no places", dr, err)
	}
	_, body = httpGet(t, base+"/announce?"+q+"&ip=198.18.2.9&compact=0")
	if bytes.Contains(body, []byte("place")) {
		t.Errorf("dictionary reply to a client that did not ask has place keys: %q", body)
	}

	// Bad announced places are refused.
	for _, extra := range []string{"&datacenter=a%20b", "&rack=r1", "&datacenter=" + strings.Repeat("x", 65)} {
		_, body := httpGet(t, base+"/announce?"+rawQuery(ih, hash20("bad"), 6881, 10, extra))
		if _, err := DecodeAnnounceResponse(body); err == nil || !strings.Contains(err.Error(), "datacenter") && !strings.Contains(err.Error(), "rack") {
			t.Errorf("announce with %s: got %v, want a failure about the place", extra, err)
		}
	}

	// A bad file on reload keeps the old topology; a good one replaces it.
	writeFile("[[datacenter]]\nname = \"east\"\ncidrs = [\"198.18.1.0/33\"]\n")
	if err := srv.ReloadTopology(); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("reload of a bad file: got %v, want an error on line 3", err)
	}
	if r := announce("east-3", "198.18.1.3", 10, Place{}); r.Place != (Place{"east", ""}) {
		t.Errorf("after a bad reload: place %+v, want east from the old file", r.Place)
	}
	writeFile("[[datacenter]]\nname = \"south\"\ncidrs = [\"198.18.0.0/16\"]\n")
	if err := srv.ReloadTopology(); err != nil {
		t.Fatal(err)
	}
	if r := announce("east-3", "198.18.1.3", 10, Place{}); r.Place != (Place{"south", ""}) {
		t.Errorf("after a good reload: place %+v, want south", r.Place)
	}
}

func TestServerBadTopologyFile(t *testing.T) {
	_, err := NewServer(Config{Topology: "testdata/topology/duplicate-dc.toml"})
	if err == nil || !strings.Contains(err.Error(), "duplicate-dc.toml") || !strings.Contains(err.Error(), "line 5") {
		t.Errorf("got %v, want the file, line 5 and the reason", err)
	}
}

// BenchmarkMemStoreAnnounceByPlace announces in a swarm of 10,000 peers in
// 10 datacenters of 10 racks.
func BenchmarkMemStoreAnnounceByPlace(b *testing.B) {
	st := NewMemStore(MemStoreConfig{})
	ih := hash20("bench")
	const n = 10000
	place := func(i int) Place { return Place{fmt.Sprint("dc", i%10), fmt.Sprint("r", i/10%10)} }
	for i := range n {
		a := PeerAnnounce{InfoHash: ih, Peer: placedPeer(i, place(i)), Seeder: i == 0}
		st.Announce(context.Background(), &a, nil)
	}
	dst := make([]Peer, 0, 50)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		a := PeerAnnounce{InfoHash: ih, Peer: placedPeer(i%n, place(i%n)), NumWant: 50}
		dst, _, _ = st.Announce(context.Background(), &a, dst[:0])
	}
}

// TestStoreNoSeededDatacenter checks a gateway's remote peers when no
// datacenter holds a seeder: the other gateways, and when there are none,
// every remote leecher; with a seeder of unknown place, that seeder first.
func TestStoreNoSeededDatacenter(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) { testStoreNoSeededDatacenter(t, kind) })
	}
}

func testStoreNoSeededDatacenter(t *testing.T, kind storeKind) {
	st := kind.open(t, MemStoreConfig{})
	ih := hash20("unseeded")
	announceAt(t, st, ih, placedPeer(3, Place{}), false, 0)
	got := placesOf(announceAt(t, st, ih, placedPeer(1, Place{"east", ""}), false, 50))
	if !sameGroups(got, [][]string{{""}}) {
		t.Errorf("no seeder, no gateway: got places %q, want the peer of unknown place", got)
	}
	announceAt(t, st, ih, placedPeer(2, Place{"west", ""}), false, 0)
	got = placesOf(announceAt(t, st, ih, placedPeer(4, Place{"north", ""}), false, 50))
	if !sameGroups(got, [][]string{{"east", "west"}}) {
		t.Errorf("no seeder: got places %q, want the gateways of east and west", got)
	}
	announceAt(t, st, ih, placedPeer(0, Place{}), true, 0) // a seeder of unknown place
	got = placesOf(announceAt(t, st, ih, placedPeer(5, Place{"south", ""}), false, 50))
	if !sameGroups(got, [][]string{{""}, {"east", "west", "north"}}) {
		t.Errorf("a seeder of unknown place: got places %q, want the seeder, then the gateways", got)
	}
}

// TestStoreGatewayLeaves checks that a datacenter whose gateway left
// gets a new one: the next of its peers to announce.
func TestStoreGatewayLeaves(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) { testStoreGatewayLeaves(t, kind) })
	}
}

func testStoreGatewayLeaves(t *testing.T, kind storeKind) {
	st := kind.open(t, MemStoreConfig{})
	ih := hash20("gateway")
	east, west := Place{"east", ""}, Place{"west", ""}
	announceAt(t, st, ih, placedPeer(0, east), true, 0)
	announceAt(t, st, ih, placedPeer(1, west), false, 50) // the gateway
	if got := placesOf(announceAt(t, st, ih, placedPeer(2, west), false, 50)); !sameGroups(got, [][]string{{"west"}}) {
		t.Fatalf("second of west: got %q, want west's gateway only", got)
	}
	a := PeerAnnounce{InfoHash: ih, Peer: placedPeer(1, west), Event: EventStopped}
	if _, _, err := st.Announce(context.Background(), &a, nil); err != nil {
		t.Fatal(err)
	}
	checkStorePlaceIndex(t, st, ih)
	if got := placesOf(announceAt(t, st, ih, placedPeer(2, west), false, 50)); !sameGroups(got, [][]string{{"east"}}) {
		t.Errorf("after the gateway left: got %q, want the seeder", got)
	}
	if got := placesOf(announceAt(t, st, ih, placedPeer(3, west), false, 50)); !sameGroups(got, [][]string{{"west"}}) {
		t.Errorf("a later peer: got %q, want west's new gateway only", got)
	}
}

// TestStoreGatewayKeepsRoomForRemote checks that a gateway of a
// datacenter larger than its numwant still gets remote peers: half of
// what it asks for at most comes from its own datacenter.
func TestStoreGatewayKeepsRoomForRemote(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) { testStoreGatewayKeepsRoomForRemote(t, kind) })
	}
}

func testStoreGatewayKeepsRoomForRemote(t *testing.T, kind storeKind) {
	st := kind.open(t, MemStoreConfig{})
	ih := hash20("big")
	announceAt(t, st, ih, placedPeer(0, Place{"west", ""}), true, 0)
	for i := 1; i <= 30; i++ {
		announceAt(t, st, ih, placedPeer(i, Place{"east", ""}), false, 0) // peer 1 is east's gateway
	}
	got := placesOf(announceAt(t, st, ih, placedPeer(1, Place{"east", ""}), false, 10))
	if !sameGroups(got, [][]string{{"east", "east", "east", "east", "east"}, {"west"}}) {
		t.Errorf("gateway: got %q, want 5 of east, then the seeder", got)
	}
	got = placesOf(announceAt(t, st, ih, placedPeer(2, Place{"east", ""}), false, 10))
	if len(got) != 10 || slices.Contains(got, "west") {
		t.Errorf("another peer: got %q, want 10 of east", got)
	}
}
