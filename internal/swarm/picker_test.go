package swarm

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/storage"
	"github.com/murder-deploy/murder/internal/tracker"
)

// pickerSwarm returns a swarm over n pieces of pieceLen bytes with no
// network, and a helper adding fake connections holding the given pieces.
func pickerSwarm(t *testing.T, n int, pieceLen int64) (*Swarm, func(pieces ...int) *conn) {
	t.Helper()
	mi, _ := makeTorrent(t, n*int(pieceLen), pieceLen, nil)
	s, err := New(Config{}, mi, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := 0
	add := func(pieces ...int) *conn {
		id++
		c := &conn{
			s: s, reqs: map[blockKey]time.Time{}, rejected: map[uint32]bool{},
			bits: storage.NewBitfield(n), assigned: storage.NewBitfield(n),
			maxReqs: ourReqq, depth: 64, amInterested: true, wsig: make(chan struct{}, 1),
		}
		c.id[0] = byte(id)
		for _, k := range pieces {
			c.bits.Set(k)
			s.avail[k]++
		}
		s.conns[c] = struct{}{}
		return c
	}
	return s, add
}

// queuedMessages parses and takes the messages queued on c.
func queuedMessages(t *testing.T, c *conn) []peerwire.Message {
	t.Helper()
	c.wmu.Lock()
	b := c.ctrl
	c.ctrl = nil
	c.wmu.Unlock()
	var out []peerwire.Message
	for len(b) > 0 {
		n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		m, err := peerwire.NewDecoder(bytes.NewReader(b[:4+n]), 0).Decode()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
		b = b[4+n:]
	}
	return out
}

// decodeRequests parses and takes the requests queued on c.
func decodeRequests(t *testing.T, c *conn) []peerwire.Message {
	t.Helper()
	var out []peerwire.Message
	for _, m := range queuedMessages(t, c) {
		if m.ID == peerwire.Request {
			out = append(out, m)
		}
	}
	return out
}

func TestPickRarestFirst(t *testing.T) {
	s, add := pickerSwarm(t, 8, 16<<10)
	for _, k := range []int{0, 1, 2, 3} { // past the random first pieces
		s.have.Set(k)
	}
	c := add(4, 5, 6, 7)
	add(4, 5, 7)
	add(4, 7)
	// availability: 4:3 5:2 6:1 7:3
	if got := s.pickNew(c, false); got != 6 {
		t.Fatalf("picked %d, want the rarest piece 6", got)
	}
	s.startPiece(6)
	if got := s.pickNew(c, false); got != 5 {
		t.Fatalf("picked %d, want 5 once 6 is in progress", got)
	}
}

func TestPickTiesAreRandom(t *testing.T) {
	s, add := pickerSwarm(t, 16, 16<<10)
	for k := range 4 {
		s.have.Set(k)
	}
	c := add(4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
	seen := map[int]bool{}
	for range 200 {
		seen[s.pickNew(c, false)] = true
	}
	if len(seen) < 6 {
		t.Fatalf("ties broken towards %v only, want a random spread over 12 pieces", seen)
	}
}

func TestPickRandomFirst(t *testing.T) {
	s, add := pickerSwarm(t, 16, 16<<10)
	c := add(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
	add(0) // piece 0 is more common, but the first pieces are random
	seen := map[int]bool{}
	for range 200 {
		seen[s.pickNew(c, false)] = true
	}
	if !seen[0] || len(seen) < 8 {
		t.Fatalf("first picks %v, want random over all pieces", seen)
	}
}

// TestRefusingSeedAskedForUnheldOnly checks that a seed that refused a
// piece (a super-seeder) is then asked only for pieces no other peer has,
// neither new pieces nor free blocks of pieces in progress, and for
// anything again once steerMemory has passed.
func TestRefusingSeedAskedForUnheldOnly(t *testing.T) {
	s, add := pickerSwarm(t, 8, 2*peerwire.BlockSize)
	for k := range 4 {
		s.have.Set(k)
		s.want.Clear(k)
	}
	seed := add(0, 1, 2, 3, 4, 5, 6, 7)
	for k := range 8 {
		s.avail[k]-- // availability counts peers that are not seeds
	}
	seed.seed, seed.fast = true, true
	s.seeds++
	peer := add(4, 5)

	peer.depth = 1
	s.fill(peer)
	reqs := decodeRequests(t, peer)
	if len(reqs) != 1 || reqs[0].Begin != 0 {
		t.Fatalf("peer asked for %v, want the first block of piece 4 or 5", reqs)
	}
	started := reqs[0].Index
	other := 9 - started // the other one of 4 and 5

	// Not yet steered: the seed is asked for the free block of the piece
	// in progress, which it refuses.
	seed.depth = 1
	s.fill(seed)
	reqs = decodeRequests(t, seed)
	if len(reqs) != 1 || reqs[0].Index != started {
		t.Fatalf("seed asked for %v, want the free block of piece %d", reqs, started)
	}
	refusal := reqs[0]
	refusal.ID = peerwire.Reject
	if err := s.handle(seed, &refusal); err != nil {
		t.Fatal(err)
	}
	seed.depth = 64
	s.fill(seed)
	for _, m := range decodeRequests(t, seed) {
		if m.Index != 6 && m.Index != 7 {
			t.Errorf("seed that refused a piece asked for piece %d, which a peer has", m.Index)
		}
	}
	if len(seed.reqs) != 4 {
		t.Errorf("seed has %d requests, want the 4 blocks of pieces 6 and 7", len(seed.reqs))
	}

	seed.steered = time.Now().Add(-steerMemory)
	s.fill(seed)
	asked := false
	for _, m := range decodeRequests(t, seed) {
		asked = asked || m.Index == other
	}
	if !asked {
		t.Errorf("seed not asked for piece %d once steerMemory passed", other)
	}
}

func TestFillRespectsDepthAndBlockSize(t *testing.T) {
	s, add := pickerSwarm(t, 8, 64<<10)
	c := add(0, 1, 2, 3, 4, 5, 6, 7)
	c.depth = 10
	s.peakDown = 1 << 30 // a budget of requests in flight (inFlightBudget) above the depth
	s.fill(c)
	reqs := decodeRequests(t, c)
	if len(reqs) != 10 || len(c.reqs) != 10 {
		t.Fatalf("%d requests (%d tracked), want 10", len(reqs), len(c.reqs))
	}
	seen := map[blockKey]bool{}
	for _, m := range reqs {
		if m.Length != peerwire.BlockSize || m.Begin%peerwire.BlockSize != 0 {
			t.Errorf("request %+v, want 16 KiB aligned blocks", m)
		}
		k := blockKey{m.Index, m.Begin}
		if seen[k] {
			t.Errorf("block %+v requested twice", k)
		}
		seen[k] = true
	}
	// Two pieces and a half: whole pieces are filled before new ones start.
	if len(s.active) != 3 {
		t.Errorf("%d pieces in progress, want 3", len(s.active))
	}
	s.fill(c)
	if reqs := decodeRequests(t, c); len(reqs) != 0 {
		t.Errorf("full pipeline sent %d more requests", len(reqs))
	}
	c.maxReqs = 4
	c.updateDepth()
	if c.depth > 4 {
		t.Errorf("depth %d above the peer's reqq 4", c.depth)
	}
}

func TestFillChokedOrUninterested(t *testing.T) {
	s, add := pickerSwarm(t, 4, 16<<10)
	c := add(0, 1, 2, 3)
	c.peerChoking = true
	s.fill(c)
	c.peerChoking = false
	c.amInterested = false
	s.fill(c)
	if len(c.reqs) != 0 {
		t.Fatalf("%d requests to a choking or uninteresting peer", len(c.reqs))
	}
}

func TestEndgame(t *testing.T) {
	s, add := pickerSwarm(t, 2, 32<<10)
	a := add(0, 1)
	b := add(0, 1)
	seed := add(0, 1)
	s.becameSeed(seed)
	s.fill(a) // every block goes to a
	if len(a.reqs) != 4 {
		t.Fatalf("a has %d requests, want all 4 blocks", len(a.reqs))
	}
	first := uint32(s.active[0].index) // the piece started first
	s.fill(b)
	// At most endgameDups duplicates per connection, oldest piece first.
	if len(b.reqs) != endgameDups {
		t.Fatalf("endgame: b has %d requests, want %d duplicates", len(b.reqs), endgameDups)
	}
	for k := range b.reqs {
		if k.index != first {
			t.Errorf("endgame: b asked for piece %d before piece %d", k.index, first)
		}
	}
	s.fill(b)
	if len(b.reqs) != endgameDups {
		t.Fatalf("endgame: b has %d requests after a refill, want %d", len(b.reqs), endgameDups)
	}
	s.fill(seed)
	if len(seed.reqs) != 0 {
		t.Fatalf("endgame duplicates sent to a seed: %d", len(seed.reqs))
	}
	c := add(0, 1)
	s.fill(c)
	for k := range c.reqs {
		if _, ok := b.reqs[k]; ok {
			t.Errorf("a third copy of block %+v requested", k)
		}
	}
	if len(c.reqs) != 2 {
		t.Fatalf("c has %d requests, want the 2 blocks of the other piece", len(c.reqs))
	}
	// The first copy wins; the duplicate request is cancelled.
	decodeRequests(t, b)
	s.onPiece(a, &peerwire.Message{ID: peerwire.Piece, Index: first, Begin: 0, Block: make([]byte, peerwire.BlockSize)})
	if _, ok := b.reqs[blockKey{first, 0}]; ok {
		t.Fatal("duplicate request not released")
	}
	b.wmu.Lock()
	ctrl := b.ctrl
	b.wmu.Unlock()
	m, err := peerwire.NewDecoder(bytes.NewReader(ctrl), 0).Decode()
	if err != nil || m.ID != peerwire.Cancel || m.Index != first || m.Begin != 0 {
		t.Fatalf("b got %+v (%v), want cancel of block %d/0", m, err, first)
	}
	// With a duplicate slot free again, b takes no block: the other block
	// of the first piece is its own already and the blocks of the other
	// piece are asked twice.
	s.fill(b)
	if len(b.reqs) != 1 {
		t.Fatalf("b has %d requests after its duplicate was cancelled, want 1", len(b.reqs))
	}
}

// TestBlockBeingReceivedNotAskedAgain: a block a connection is reading
// straight into its piece is asked of nobody else, not even in endgame,
// until that connection lets go of it.
func TestBlockBeingReceivedNotAskedAgain(t *testing.T) {
	s, add := pickerSwarm(t, 1, 32<<10)
	a := add(0)
	b := add(0)
	s.fill(a)
	if len(a.reqs) != 2 {
		t.Fatalf("a has %d requests, want both blocks", len(a.reqs))
	}
	if s.blockBuffer(a, 0, 0, peerwire.BlockSize) == nil {
		t.Fatal("a could not claim block 0")
	}
	// a's requests return to the picker (a timeout or a choke) while it is
	// still reading block 0.
	s.releaseAll(a, false)
	s.fill(b)
	want := map[blockKey]time.Time{{0, peerwire.BlockSize}: {}}
	if !maps.EqualFunc(b.reqs, want, func(time.Time, time.Time) bool { return true }) {
		t.Fatalf("b asked for %v while a receives block 0, want only block 1", slices.Collect(maps.Keys(b.reqs)))
	}
	s.dropClaim(a) // a's connection failed mid-block
	s.fill(b)
	if _, ok := b.reqs[blockKey{0, 0}]; !ok {
		t.Fatal("block 0 not asked for once a let go of it")
	}
}

// TestDepthHeadroomShared: the headroom is a share of the highest download
// rate seen, so a peer whose rate fell keeps asking as much, between
// minHeadroom and maxRemoteHeadroom blocks toward a peer in another
// datacenter; toward one nearby it is maxHeadroom.
func TestDepthHeadroomShared(t *testing.T) {
	tests := []struct {
		name  string
		conns int
		rates []float64 // bytes/s of the whole swarm, one per tick
		want  int       // depth of an idle remote connection (rate 0)
	}{
		{"one peer", 1, []float64{8 << 20}, maxRemoteHeadroom},
		{"no rate yet", 16, nil, maxRemoteHeadroom},
		{"16 peers at 2 MB/s", 16, []float64{2e6, 2e6, 2e6, 2e6, 2e6, 2e6, 2e6, 2e6}, minHeadroom},
		{"16 peers at 3.2 MB/s", 16, []float64{3.2e6, 3.2e6, 3.2e6, 3.2e6, 3.2e6, 3.2e6, 3.2e6, 3.2e6}, 3},
		{"16 peers, fallen from 3.2 to 1 MB/s", 16, []float64{3.2e6, 3.2e6, 3.2e6, 3.2e6, 3.2e6, 3.2e6, 3.2e6, 3.2e6, 1e6, 1e6, 1e6, 1e6}, 3},
		{"16 peers at 8 MB/s", 16, []float64{8e6, 8e6, 8e6, 8e6, 8e6, 8e6, 8e6, 8e6}, maxRemoteHeadroom},
		{"200 peers fast", 200, []float64{1e9, 1e9, 1e9, 1e9, 1e9, 1e9, 1e9, 1e9}, maxRemoteHeadroom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, add := pickerSwarm(t, 4, 16<<10)
			var c *conn
			for range tt.conns {
				c = add()
			}
			for _, r := range tt.rates {
				s.updateRates(r, 0)
			}
			c.near.Store(nearRemote)
			c.updateDepth()
			if c.depth != tt.want {
				t.Errorf("remote: depth %d, want %d (download rate %.0f, highest %.0f)", c.depth, tt.want, s.downRate, s.peakDown)
			}
			c.near.Store(nearDatacenter)
			c.updateDepth()
			if c.depth != maxHeadroom {
				t.Errorf("nearby: depth %d, want %d", c.depth, maxHeadroom)
			}
		})
	}
}

// seederSwarm returns a seeder of n pieces with no network and four fake
// connections to peers that have nothing, with the fast extension or not.
func seederSwarm(t *testing.T, n int, fast bool) (*Swarm, []*conn) {
	t.Helper()
	mi, _ := makeTorrent(t, n*(16<<10), 16<<10, nil)
	have := storage.NewBitfield(n)
	have.SetAll()
	s, err := New(Config{}, mi, nil, have)
	if err != nil {
		t.Fatal(err)
	}
	var conns []*conn
	for i := range 4 {
		c := &conn{
			s: s, fast: fast, reqs: map[blockKey]time.Time{}, rejected: map[uint32]bool{},
			bits: storage.NewBitfield(n), assigned: storage.NewBitfield(n),
			maxReqs: ourReqq, depth: 64, wsig: make(chan struct{}, 1),
		}
		c.id[0] = byte(i + 1)
		s.conns[c] = struct{}{}
		conns = append(conns, c)
	}
	return s, conns
}

// TestSeederHandsOutInOrder has four peers ask a seeder for pieces, each
// taking the piece the seeder suggested last if any, else one at random:
// every piece must go out once before any twice, in about index order
// (no piece more than the front window behind), and while more than a
// window of pieces is left no two peers may hold the same suggestion.
func TestSeederHandsOutInOrder(t *testing.T) {
	const n = 1024
	s, conns := seederSwarm(t, n, true)
	const window = 64 // the front window of a seeder with four peers
	suggested := map[*conn][]int{}
	rng := rand.New(rand.NewPCG(3, 4))
	sent := 0
	for step := 0; s.unsent > 0; step++ {
		if step > 10*n {
			t.Fatalf("%d pieces unsent after %d requests", s.unsent, step)
		}
		c := conns[step%len(conns)]
		k := rng.IntN(n)
		if q := suggested[c]; len(q) > 0 {
			k, suggested[c] = q[0], q[1:]
		}
		first := s.sentTo[k] == 0
		if err := s.onRequest(c, &peerwire.Message{ID: peerwire.Request, Index: uint32(k), Length: 16 << 10}); err != nil {
			t.Fatal(err)
		}
		for _, m := range queuedMessages(t, c) {
			if m.ID == peerwire.Suggest {
				suggested[c] = append(suggested[c], int(m.Index))
			}
		}
		if first && s.sentTo[k] == 1 {
			sent++
			// The first request of each peer is at random, anywhere.
			if front := lowestUnsent(s); front < sent-window-len(conns) {
				t.Fatalf("after %d pieces sent, piece %d is still unsent: more than a window (%d) behind", sent, front, window)
			}
		}
		holder := map[int]*conn{}
		for o, q := range suggested {
			if s.unsent <= window {
				break
			}
			for _, k := range q {
				if h := holder[k]; h != nil && h != o {
					t.Fatalf("piece %d suggested to two peers at once", k)
				}
				holder[k] = o
			}
		}
	}
	if s.earlyDups != 0 || sent != n {
		t.Errorf("%d pieces went out once, %d twice before every piece once; want %d and 0", sent, s.earlyDups, n)
	}
}

// TestHeldElsewhere has peers of a seeder announce pieces and be sent
// pieces at random, and leave: heldElsewhere, which counts, must agree
// with asking every connection after each step.
func TestHeldElsewhere(t *testing.T) {
	const n = 64
	s, conns := seederSwarm(t, n, false)
	rng := rand.New(rand.NewPCG(9, 10))
	for step := range 200 {
		c, k := conns[rng.IntN(len(conns))], uint32(rng.IntN(n))
		m := &peerwire.Message{ID: peerwire.Have, Index: k}
		if step%2 == 0 {
			m = &peerwire.Message{ID: peerwire.Request, Index: k, Length: 16 << 10}
		}
		if err := s.handle(c, m); err != nil {
			t.Fatal(err)
		}
		queuedMessages(t, c)
		checkHeld(t, s)
	}
	for _, c := range conns[1:] {
		s.unregister(c)
		checkHeld(t, s)
	}
}

// checkHeld compares heldElsewhere, which counts, with asking every
// connection.
func checkHeld(t *testing.T, s *Swarm) {
	t.Helper()
	for _, c := range append([]*conn{nil}, slices.Collect(maps.Keys(s.conns))...) {
		for k := range s.numPieces {
			want := false
			for o := range s.conns {
				if o != c && (o.bits.Has(k) || o.assigned.Has(k)) {
					want = true
				}
			}
			if got := s.heldElsewhere(k, c); got != want {
				t.Fatalf("heldElsewhere(%d) = %v, asking every connection says %v", k, got, want)
			}
		}
	}
}

// lowestUnsent returns the lowest piece the seeder has sent to nobody, or
// numPieces.
func lowestUnsent(s *Swarm) int {
	for k, n := range s.sentTo {
		if n == 0 {
			return k
		}
	}
	return s.numPieces
}

// TestHavesWait checks that a have does not wake the writer at once but
// within haveDelay.
func TestHavesWait(t *testing.T) {
	// In virtual time: on a loaded machine a real millisecond can pass
	// between queueing the have and looking for the wake-up.
	synctest.Test(t, func(t *testing.T) {
		s, add := pickerSwarm(t, 4, 16<<10)
		c := add()
		s.mu.Lock()
		c.sendLater(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Have, Index: 1}))
		s.flushLater()
		s.mu.Unlock()
		synctest.Wait()
		select {
		case <-c.wsig:
			t.Fatal("the writer was woken at once")
		default:
		}
		start := time.Now()
		select {
		case <-c.wsig:
		case <-time.After(time.Second):
			t.Fatalf("the writer was not woken within a second (haveDelay %v)", haveDelay)
		}
		if d := time.Since(start); d < minHaveDelay || d > haveDelay {
			t.Errorf("the writer was woken after %v, want between %v and %v", d, minHaveDelay, haveDelay)
		}
		if m := queuedMessages(t, c); len(m) != 1 || m[0].ID != peerwire.Have || m[0].Index != 1 {
			t.Errorf("queued %v, want have 1", m)
		}
	})
}

// TestHavesOnlyToPeersLacking: a verified piece is announced to the peers
// that lack it and to seeds, not to the other peers that have it.
func TestHavesOnlyToPeersLacking(t *testing.T) {
	s, add := pickerSwarm(t, 3, 16<<10)
	lacking := add(1)
	having := add(0, 2)
	seed := add(0, 1, 2)
	s.becameSeed(seed)
	s.mu.Lock()
	p := s.startPiece(0)
	s.mu.Unlock()
	s.pieceDone(p, true, nil)
	for _, tt := range []struct {
		name string
		c    *conn
		want bool
	}{{"a peer lacking the piece", lacking, true}, {"a peer having it", having, false}, {"a seed", seed, true}} {
		got := false
		for _, m := range queuedMessages(t, tt.c) {
			got = got || m.ID == peerwire.Have && m.Index == 0
		}
		if got != tt.want {
			t.Errorf("%s: have sent %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestOfferOfLeftPeerFreed checks that a suggestion does not keep the
// connection of a peer that left, and that its piece is suggested to the
// next peer.
func TestOfferOfLeftPeerFreed(t *testing.T) {
	const n = 4
	s, conns := seederSwarm(t, n, true)
	a, b := conns[0], conns[1]
	for k := range n - 1 { // every piece but the last went out
		s.sentTo[k] = 1
	}
	s.unsent = 1
	if !s.suggestUnsent(a) || s.offers[n-1].c != a {
		t.Fatalf("piece %d not suggested to a (offers %+v)", n-1, s.offers)
	}
	if got := s.pickUnsent(b); got != n-1 {
		t.Fatalf("pickUnsent(b) = %d, want %d, the last piece, as a fallback", got, n-1)
	}
	s.unregister(a)
	for k, o := range s.offers {
		if o.c == a {
			t.Fatalf("offer of piece %d still holds the closed connection", k)
		}
	}
	if !s.suggestUnsent(b) || s.offers[n-1].c != b {
		t.Fatalf("piece %d not suggested to b after a left (offers %+v)", n-1, s.offers)
	}
}

// TestPickSparesRemotePeers checks that a host that knows its place asks
// a peer of another datacenter only for pieces no peer of its own
// datacenter has, and asks local peers for the rest; and that a host of
// unknown place treats every peer alike.
func TestPickSparesRemotePeers(t *testing.T) {
	for _, placed := range []bool{true, false} {
		s, add := pickerSwarm(t, 8, 16<<10)
		if placed {
			s.cfgPlace = tracker.Place{Datacenter: "east"}
			s.place = s.cfgPlace
		}
		local, remote := add(0, 1, 2, 3), add(0, 1, 2, 3, 4, 5, 6, 7)
		local.addr = netip.MustParseAddrPort("198.19.0.2:6881")
		remote.addr = netip.MustParseAddrPort("198.19.1.2:6881")
		s.learnPlaces(tracker.Place{Datacenter: "east"}, []netip.AddrPort{local.addr, remote.addr},
			[]tracker.Place{{Datacenter: "east"}, {Datacenter: "west"}})
		if got := s.Place(); got.Datacenter != "east" {
			t.Fatalf("own place %+v, want east (from Config or the tracker)", got)
		}
		// Learning the tracker's place made the unplaced host placed too:
		// undo that for the unplaced case.
		if !placed {
			s.mu.Lock()
			s.place = tracker.Place{}
			for c := range s.conns {
				s.setNearLocked(c, s.nearLocked(c.addr.Addr()))
			}
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.fill(remote)
		s.fill(local)
		s.mu.Unlock()
		fromRemote := map[uint32]bool{}
		for _, m := range decodeRequests(t, remote) {
			fromRemote[m.Index] = true
		}
		for k := range uint32(4) {
			if placed && fromRemote[k] {
				t.Errorf("placed: piece %d, which a local peer has, asked of the remote peer", k)
			}
		}
		if placed && len(fromRemote) != 4 {
			t.Errorf("placed: asked the remote peer for pieces %v, want 4 to 7", slices.Sorted(maps.Keys(fromRemote)))
		}
		if !placed && len(fromRemote) != 8 {
			t.Errorf("unplaced: asked the remote peer for %d pieces, want all 8 (it is asked first)", len(fromRemote))
		}
		if placed && len(decodeRequests(t, local)) == 0 {
			t.Error("placed: nothing asked of the local peer")
		}
	}
}

// TestLocalCountsFollowPlaces checks that the local counts move with a
// peer whose place is learned after it connected, and with its haves.
func TestLocalCountsFollowPlaces(t *testing.T) {
	s, add := pickerSwarm(t, 4, 16<<10)
	s.cfgPlace = tracker.Place{Datacenter: "east", Rack: "r1"}
	s.place = s.cfgPlace
	c := add(0, 1)
	c.addr = netip.MustParseAddrPort("198.19.0.2:6881")
	if s.heldLocally(0) {
		t.Fatal("a peer of unknown place counts as local")
	}
	s.learnPlaces(s.place, []netip.AddrPort{c.addr}, []tracker.Place{{Datacenter: "east", Rack: "r1"}})
	if !s.heldLocally(0) || !s.heldLocally(1) || s.heldLocally(2) || c.near.Load() != nearRack {
		t.Fatalf("after learning: local avail %v, near %d; want pieces 0 and 1, same rack", s.localAvail, c.near.Load())
	}
	for _, k := range []uint32{2, 3} { // then it is a seed
		if err := s.handle(c, &peerwire.Message{ID: peerwire.Have, Index: k}); err != nil {
			t.Fatal(err)
		}
	}
	if s.localSeeds != 1 || s.localAvail[0] != 0 {
		t.Errorf("after it became a seed: local seeds %d, local avail %v; want 1 and none", s.localSeeds, s.localAvail)
	}
	s.learnPlaces(s.place, []netip.AddrPort{c.addr}, []tracker.Place{{Datacenter: "west"}})
	if s.localSeeds != 0 || s.heldLocally(3) {
		t.Errorf("after it moved away: local seeds %d; want 0", s.localSeeds)
	}
	s.unregister(c)
	if s.seeds != 0 || s.localSeeds != 0 {
		t.Errorf("after unregister: seeds %d, local seeds %d", s.seeds, s.localSeeds)
	}
}

// TestUnlistedPeerIsNotHeldBack checks that a peer no tracker reply has
// listed yet is asked for anything, and one the tracker put in no place
// only for what local peers lack.
func TestUnlistedPeerIsNotHeldBack(t *testing.T) {
	s, add := pickerSwarm(t, 4, 16<<10)
	s.cfgPlace = tracker.Place{Datacenter: "east"}
	s.place = s.cfgPlace
	local, unlisted, unplaced := add(0, 1), add(0, 1, 2, 3), add(0, 1, 2, 3)
	local.addr = netip.MustParseAddrPort("198.19.0.2:6881")
	unlisted.addr = netip.MustParseAddrPort("198.19.0.3:6881")
	unplaced.addr = netip.MustParseAddrPort("198.19.9.9:6881")
	s.learnPlaces(s.place, []netip.AddrPort{local.addr, unplaced.addr}, []tracker.Place{{Datacenter: "east"}, {}})
	if unlisted.near.Load() != nearUnknown || unplaced.near.Load() != nearRemote {
		t.Fatalf("near: unlisted %d, unplaced %d; want %d and %d", unlisted.near.Load(), unplaced.near.Load(), nearUnknown, nearRemote)
	}
	if !s.spareRemote(unlisted, 0) || s.spareRemote(unplaced, 0) || !s.spareRemote(unplaced, 2) {
		t.Error("want the unlisted peer asked for anything, the unplaced one only for pieces 2 and 3")
	}
}

// TestRoomKeptForRemotePeers checks that a host that knows its place keeps
// a fifth of its connections for remote peers, and one that does not
// keeps none.
func TestRoomKeptForRemotePeers(t *testing.T) {
	for _, placed := range []bool{true, false} {
		s, add := pickerSwarm(t, 4, 16<<10)
		s.cfg.MaxConns = 10
		if placed {
			s.cfgPlace = tracker.Place{Datacenter: "east"}
			s.place = s.cfgPlace
		}
		for range 7 {
			c := add()
			c.near.Store(s.nearLocked(c.addr.Addr()))
		}
		s.mu.Lock()
		local, remote := s.roomForLocked(nearDatacenter, false), s.roomForLocked(nearRemote, false)
		unlisted := s.roomForLocked(nearUnknown, false)
		add()
		full := s.roomForLocked(nearDatacenter, false)
		s.mu.Unlock()
		if !local || !remote || !unlisted {
			t.Errorf("placed=%v, 7 of 10 connections: room for local %v, remote %v, unlisted %v; want all", placed, local, remote, unlisted)
		}
		if full == placed {
			t.Errorf("placed=%v, 8 of 10 connections: room for another local one is %v, want %v", placed, full, !placed)
		}
	}
	// Remote peers take at most half.
	s, add := pickerSwarm(t, 4, 16<<10)
	s.cfg.MaxConns = 10
	s.cfgPlace = tracker.Place{Datacenter: "east"}
	s.place = s.cfgPlace
	for range 5 {
		add().near.Store(nearRemote)
	}
	s.mu.Lock()
	remote, local := s.roomForLocked(nearRemote, false), s.roomForLocked(nearDatacenter, false)
	s.mu.Unlock()
	if remote || !local {
		t.Errorf("5 remote of 10 connections: room for another remote %v, a local %v; want false, true", remote, local)
	}
	s.cfg.MaxConns = 16 // 8 remote, of which 2 only for those that dial in
	s.mu.Lock()
	add().near.Store(nearRemote)
	dial, accept := s.roomForLocked(nearRemote, false), s.roomForLocked(nearRemote, true)
	s.mu.Unlock()
	if dial || !accept {
		t.Errorf("6 remote of 16 connections: room to dial another %v, to accept one %v; want false, true", dial, accept)
	}

	// Peers of its own datacenter leave room for a remote peer to dial
	// in: 4 dialed remote peers and 10 local ones are 14 of 16, and the
	// last 2 are kept for remote peers that dial in.
	s, add = pickerSwarm(t, 4, 16<<10)
	s.cfg.MaxConns = 16
	s.cfgPlace = tracker.Place{Datacenter: "east"}
	s.place = s.cfgPlace
	for range 4 {
		c := add()
		c.outgoing = true
		c.near.Store(nearRemote)
	}
	for range 10 {
		add().near.Store(nearDatacenter)
	}
	s.mu.Lock()
	local, accept = s.roomForLocked(nearDatacenter, true), s.roomForLocked(nearRemote, true)
	s.mu.Unlock()
	if local || !accept {
		t.Errorf("4 dialed remote and 10 local of 16: room for a local %v, to accept a remote %v; want false, true", local, accept)
	}
}

func TestRequestsInFlightBudget(t *testing.T) {
	tests := []struct {
		name   string
		near   int32
		pieces int // in the torrent
		first  []int
		want   int // requests the first connection sends with one left out
	}{
		// 4 and 4 fill the budget of 8; the other two keep minHeadroom.
		// With 9 in flight, one left out may become minHeadroom again.
		{"over the budget", nearDatacenter, 64, []int{4, 4, 2, 2}, 1},
		{"toward another datacenter", nearRemote, 64, []int{4, 4, 4, 4}, 3},
		// The last connection's batch starts the last piece: endgame,
		// where the budget no longer holds.
		{"in endgame", nearDatacenter, 12, []int{4, 4, 2, 2}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, add := pickerSwarm(t, tt.pieces, 16<<10)
			all := make([]int, tt.pieces)
			for k := range all {
				all[k] = k
			}
			var conns []*conn
			for i, want := range tt.first {
				c := add(all...)
				c.depth = 4
				c.near.Store(tt.near)
				s.fill(c)
				if len(c.reqs) != want {
					t.Fatalf("connection %d: first batch of %d requests, want %d", i, len(c.reqs), want)
				}
				decodeRequests(t, c)
				conns = append(conns, c)
			}
			c := conns[0]
			for k := range maps.Keys(c.reqs) {
				if len(c.reqs) == 1 {
					break
				}
				s.release(c, k, false) // as if the block arrived
			}
			s.fill(c)
			if got := len(decodeRequests(t, c)); got != tt.want {
				t.Errorf("%d more requests with %d in flight, want %d", got, s.inFlight, tt.want)
			}
			n := 0
			for _, c := range conns {
				n += len(c.reqs)
			}
			if n != s.inFlight {
				t.Errorf("inFlight %d, connections hold %d requests", s.inFlight, n)
			}
		})
	}
}
