package tracker

import (
	"net/netip"
	"testing"
	"time"
)

func TestBoardDeploy(t *testing.T) {
	ih := hash20("board-torrent-000001")
	seed, p1, p2 := hash20("-MU0001-seed00000000"), hash20("-MU0001-peer00000001"), hash20("-MU0001-peer00000002")
	addr := netip.MustParseAddrPort("198.18.0.1:6881")
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	b := newBoard(30 * time.Second)
	ann := func(s float64, id [20]byte, left, down int64, event string) {
		b.record(&AnnounceRequest{InfoHash: ih, PeerID: id, Left: left, Downloaded: down, Event: event, Name: "demo.tgz"}, addr, Place{}, torrentInfo{}, at(s))
	}
	ann(0, seed, 0, 0, EventStarted)
	if _, deploys := b.list(at(0)); len(deploys) != 0 {
		t.Fatalf("a seeder alone: got deploys %+v, want none", deploys)
	}
	ann(1, p1, 1000, 0, EventStarted)
	ann(1, p2, 1000, 0, EventStarted)
	ann(3, p1, 400, 600, EventNone)

	d, ok := b.swarm(ih, at(3))
	if !ok {
		t.Fatal("swarm not on the board")
	}
	if d.Name != "demo.tgz" || d.Size != 1000 || d.Seeders != 1 || d.Leechers != 2 {
		t.Errorf("got name %q size %d seeders %d leechers %d, want demo.tgz 1000 1 2", d.Name, d.Size, d.Seeders, d.Leechers)
	}
	var got1 PeerStatus
	for _, p := range d.Peers {
		if p.Left == 400 {
			got1 = p
		}
	}
	if got1.Progress != 0.6 || got1.DownloadRate != 300 {
		t.Errorf("peer 1: got progress %v rate %v, want 0.6 and 300 B/s", got1.Progress, got1.DownloadRate)
	}
	if d.Deploy == nil || d.Deploy.Finished != nil || d.Deploy.Seconds != 2 || d.Deploy.Hosts != 0 {
		t.Errorf("deploy under way: got %+v, want started 2 s ago, 0 hosts", d.Deploy)
	}

	ann(5, p1, 0, 1000, EventCompleted)
	ann(8, p2, 0, 1000, EventCompleted)
	d, _ = b.swarm(ih, at(20))
	if d.Deploy == nil || d.Deploy.Finished == nil || d.Deploy.Seconds != 7 || d.Deploy.Hosts != 2 {
		t.Errorf("finished deploy: got %+v, want 7 s and 2 hosts", d.Deploy)
	}
	want := []DonePoint{{4, 1}, {7, 2}}
	if len(d.Done) != 2 || d.Done[0] != want[0] || d.Done[1] != want[1] {
		t.Errorf("done over time: got %+v, want %+v", d.Done, want)
	}
	_, deploys := b.list(at(20))
	if len(deploys) != 1 || deploys[0].Hosts != 2 || deploys[0].Name != "demo.tgz" {
		t.Errorf("recent deploys: got %+v, want the one of 2 hosts", deploys)
	}

	// A peer stops; a new one starts a second deploy of the same swarm.
	ann(21, p1, 0, 1000, EventStopped)
	p3 := hash20("-MU0001-peer00000003")
	ann(30, p3, 1000, 0, EventStarted)
	d, _ = b.swarm(ih, at(31))
	states := map[string]int{}
	for _, p := range d.Peers {
		states[p.State]++
	}
	if states["stopped"] != 1 || states["seeding"] != 2 || states["downloading"] != 1 || d.Deploy == nil || d.Deploy.Finished != nil || len(d.Done) != 0 {
		t.Errorf("second deploy: got peers %v, deploy %+v, done %v; want 1 stopped, 2 seeding, 1 downloading, a new deploy under way", states, d.Deploy, d.Done)
	}

	// Peers that stop announcing are stopped after two intervals; the
	// swarm stays for emptySwarmTTL, then goes with them.
	b.sweep(at(30 + 61))
	d, ok = b.swarm(ih, at(91))
	for _, p := range d.Peers {
		if p.State != "stopped" {
			t.Errorf("after the sweep: peer %s is %s, want stopped", p.Address, p.State)
		}
	}
	if !ok || len(d.Peers) != 4 || d.Leechers != 0 || d.Seeders != 0 {
		t.Errorf("after the sweep: on board %v with %d peers, %d leechers, %d seeders; want it kept with its 4 peers stopped", ok, len(d.Peers), d.Leechers, d.Seeders)
	}
	b.sweep(at(30).Add(emptySwarmTTL + time.Minute))
	if _, ok := b.swarm(ih, at(30).Add(emptySwarmTTL+time.Minute)); ok || b.npeers.Load() != 0 {
		t.Errorf("a swarm without live peers for emptySwarmTTL: on the board %v with %d peers counted, want gone with none", ok, b.npeers.Load())
	}
}

func TestBoardBounds(t *testing.T) {
	b := newBoard(30 * time.Second)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	addr := netip.MustParseAddrPort("198.18.0.1:6881")
	var ih, id [20]byte
	for i := range maxBoardSwarms + 10 {
		ih[0], ih[1] = byte(i), byte(i>>8)
		b.record(&AnnounceRequest{InfoHash: ih, PeerID: id, Left: 1}, addr, Place{}, torrentInfo{}, t0)
	}
	if n := b.nswarms.Load(); n != maxBoardSwarms {
		t.Errorf("after %d torrents with peers: %d swarms on the board, want %d", maxBoardSwarms+10, n, maxBoardSwarms)
	}
	ih = [20]byte{} // the first swarm, which is on the board
	for i := range maxBoardPeers + 10 {
		id[0], id[1], id[2] = byte(i), byte(i>>8), byte(i>>16)
		b.record(&AnnounceRequest{InfoHash: ih, PeerID: id, Left: 1}, addr, Place{}, torrentInfo{}, t0)
	}
	if b.npeers.Load() != maxBoardPeers {
		t.Errorf("board holds %d peers, want at most %d", b.npeers.Load(), maxBoardPeers)
	}
}

// BenchmarkBoardRecord measures what the board adds to an announce: a
// re-announce of one of 100 peers in each of 1,000 swarms.
func BenchmarkBoardRecord(b *testing.B) {
	bd := newBoard(30 * time.Second)
	addr := netip.MustParseAddrPort("198.18.0.1:6881")
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	reqs := make([]AnnounceRequest, 100_000)
	for i := range reqs {
		r := &reqs[i]
		r.InfoHash[0], r.InfoHash[1] = byte(i%1000), byte(i%1000>>8)
		r.PeerID[0], r.PeerID[1], r.PeerID[2] = byte(i), byte(i>>8), byte(i>>16)
		r.Left, r.Name = int64(i%5), "bench.tgz"
		bd.record(r, addr, Place{}, torrentInfo{}, now)
	}
	b.ResetTimer()
	for i := range b.N {
		now = now.Add(time.Microsecond)
		bd.record(&reqs[i%len(reqs)], addr, Place{}, torrentInfo{}, now)
	}
}
