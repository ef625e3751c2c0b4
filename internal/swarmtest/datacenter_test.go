package swarmtest

import (
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/testbed"
)

// TestDatacenters deploys to peers in two datacenters joined by a router
// whose WAN links are capped well below the hosts' links, the tracker
// placing peers by its topology: every peer ends with the exact tree, and
// about one copy of the artifact enters the remote datacenter over its WAN
// link (at least one, at most 1.5, from the router's counters).
func TestDatacenters(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	const wan = 2 << 20 // bytes/s, each way
	s := newSwarm(t, ctx, options{
		size: 6 << 20, link: testbed.Link{Up: 12 << 20, Down: 12 << 20}, pieceSize: "64KiB",
		datacenters: []testbed.Datacenter{{Name: "east", Hosts: 5, WAN: wan}, {Name: "west", Hosts: 4, WAN: wan}},
	})
	before, err := s.bed.WAN(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.startSeeder()
	var peers []*peer
	for _, h := range s.hosts {
		peers = append(peers, s.startPeer(h, nil))
	}
	s.waitDone(peers...)
	after, err := s.bed.WAN(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		s.checkTree(p.host)
	}
	stopAll(peers...)
	copies := float64(after.In-before.In) / float64(s.total)
	t.Logf("%.2f copies of %d bytes entered west over its WAN link", copies, s.total)
	if copies < 1 || copies > 1.5 {
		t.Errorf("%.2f copies entered the remote datacenter, want 1 to 1.5", copies)
	}
}
