package swarm

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/storage"
	"github.com/murder-deploy/murder/internal/testenv"
)

// dialFrom connects to s from the loopback address from (127.0.0.2 and
// up stand for other hosts).
func dialFrom(t *testing.T, from string, s *Swarm) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sendHandshake writes a handshake for infoHash with a peer id ending in
// n.
func sendHandshake(t *testing.T, c net.Conn, infoHash [20]byte, n int) {
	t.Helper()
	var h peerwire.Handshake
	h.SetFast()
	h.SetExtended()
	h.InfoHash = infoHash
	copy(h.PeerID[:], "-XX0001-flood0000000")
	h.PeerID[18], h.PeerID[19] = byte(n>>8), byte(n)
	if err := peerwire.WriteHandshake(c, h); err != nil {
		t.Fatal(err)
	}
}

// readAll returns what c sends until it closes (or 10 s pass, which
// fails the test: a refused connection is closed at once).
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("reading from the swarm: %v (want the connection closed)", err)
	}
	return b
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

// TestListenerHidesInfoHash: a swarm that is dialed answers a handshake
// only when it names its torrent, so a stranger learns nothing of it.
func TestListenerHidesInfoHash(t *testing.T) {
	mi, data := makeTorrent(t, 64<<10, 16<<10, nil)
	seeder, _ := newNode(t, mi, data, true, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	wait := runAll(t, ctx, seeder)
	defer func() { cancel(); wait() }()

	wrong := dialFrom(t, "127.0.0.1", seeder)
	sendHandshake(t, wrong, [20]byte{1, 2, 3}, 1)
	if got := readAll(t, wrong); len(got) != 0 {
		t.Errorf("a dialer asking for another torrent got %d bytes back (%x), want none", len(got), got[:min(len(got), 48)])
	}

	right := dialFrom(t, "127.0.0.1", seeder)
	sendHandshake(t, right, mi.InfoHash(), 2)
	h, err := peerwire.ReadHandshake(bufio.NewReader(right))
	if err != nil {
		t.Fatalf("a dialer asking for the torrent got no handshake: %v", err)
	}
	if h.InfoHash != mi.InfoHash() {
		t.Errorf("handshake info hash %x, want %x", h.InfoHash, mi.InfoHash())
	}
}

// TestFloodFromOneAddress opens many connections to a peer from one
// address, idle ones and ones that finish the handshake and then say
// nothing, and checks that the peer still downloads from a real seeder,
// and that the address got no more than its share of connections.
func TestFloodFromOneAddress(t *testing.T) {
	mi, data := makeTorrent(t, 2<<20, 64<<10, nil)
	seeder, _ := newNode(t, mi, data, true, Config{UploadRate: 8 << 20})
	p, path := newNode(t, mi, nil, false, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := runAll(t, ctx, seeder, p)

	const flood = 64
	answered := 0
	for i := range flood {
		c := dialFrom(t, "127.0.0.2", p)
		if i%4 == 0 {
			continue // connects and says nothing
		}
		sendHandshake(t, c, mi.InfoHash(), i)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := peerwire.ReadHandshake(bufio.NewReader(c)); err == nil {
			answered++
		}
	}
	if answered > DefaultMaxConnsPerIP {
		t.Errorf("one address got %d handshakes answered, want at most %d", answered, DefaultMaxConnsPerIP)
	}

	// More of the same while the download runs, bounded in count.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: time.Second}
		for i := range 500 {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			c, err := d.Dial("tcp", p.Addr().String())
			if err != nil {
				continue
			}
			var h peerwire.Handshake
			h.InfoHash = mi.InfoHash()
			h.PeerID[0], h.PeerID[1] = byte(i>>8), byte(i)
			peerwire.WriteHandshake(c, h)
			defer c.Close()
		}
	})
	p.AddPeer(addrOf(t, seeder))
	waitComplete(t, ctx, p)
	close(stop)
	wg.Wait()
	st := p.Stats()
	cancel()
	wait()
	checkFile(t, path, data)
	if st.Refused == 0 {
		t.Error("no connection of the flood was refused")
	}
	t.Logf("flood: %d handshakes answered of %d, %d connections refused", answered, flood, st.Refused)
}

// TestBanHoldsPerAddress bans a peer for bad data, then has the same
// address come back with a new port and peer id: it is refused at
// accept, and another listener at that address is not dialed.
func TestBanHoldsPerAddress(t *testing.T) {
	mi, data := makeTorrent(t, 512<<10, 64<<10, nil)
	bad := startTestPeer(t, mi, nil, func(b *testPeer) { b.host = "127.0.0.2" })
	other := startTestPeer(t, mi, data, func(b *testPeer) { b.host = "127.0.0.2" })
	p, _ := newNode(t, mi, nil, false, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := runAll(t, ctx, p)
	defer func() { cancel(); wait() }()
	p.AddPeer(bad.addr())
	for i := 0; p.Stats().Banned == 0 && i < 2000; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if p.Stats().Banned != 1 {
		t.Fatalf("banned %d, want 1", p.Stats().Banned)
	}

	c := dialFrom(t, "127.0.0.2", p)
	sendHandshake(t, c, mi.InfoHash(), 7)
	if got := readAll(t, c); len(got) != 0 {
		t.Errorf("banned address with a new peer id got %d bytes back, want none", len(got))
	}
	p.AddPeer(other.addr())
	// Dials happen in Run's loop; one from the honest address proves it
	// ran since.
	honest := dialFrom(t, "127.0.0.1", p)
	sendHandshake(t, honest, mi.InfoHash(), 8)
	if _, err := peerwire.ReadHandshake(bufio.NewReader(honest)); err != nil {
		t.Fatalf("another address was refused too: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := other.accepts.Load(); n != 0 {
		t.Errorf("dialed the banned address %d times, want 0", n)
	}
}

// TestAllowFromLoopback runs a peer that allows 127.0.0.1 only: another
// loopback address is refused at accept and not dialed, and the download
// from an allowed seeder completes.
func TestAllowFromLoopback(t *testing.T) {
	mi, data := makeTorrent(t, 512<<10, 64<<10, nil)
	seeder, _ := newNode(t, mi, data, true, Config{})
	outsider := startTestPeer(t, mi, data, func(b *testPeer) { b.host = "127.0.0.2" })
	p, path := newNode(t, mi, nil, false, Config{AllowFrom: testenv.CIDR(t, "127.0.0.1/32")})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := runAll(t, ctx, seeder, p)

	c := dialFrom(t, "127.0.0.2", p)
	sendHandshake(t, c, mi.InfoHash(), 1)
	if got := readAll(t, c); len(got) != 0 {
		t.Errorf("a host outside allow-from got %d bytes back, want none", len(got))
	}
	p.AddPeer(outsider.addr())
	p.AddPeer(addrOf(t, seeder))
	waitComplete(t, ctx, p)
	st := p.Stats()
	cancel()
	wait()
	checkFile(t, path, data)
	if n := outsider.accepts.Load(); n != 0 {
		t.Errorf("dialed a peer outside allow-from %d times, want 0", n)
	}
	if st.Refused == 0 {
		t.Error("refused count is 0, want the outsider's connection counted")
	}
}

// handlerBed is a swarm that wants mi and one registered connection from
// a seed, c, which is unchoked and has been sent requests. Nothing reads
// what the swarm sends c; messages are fed to s.handle directly.
func handlerBed(t testing.TB, mi *metainfo.MetaInfo, fast bool) (*Swarm, *conn) {
	t.Helper()
	s, err := New(Config{}, mi, discardStore{}, storage.NewBitfield(mi.Info.NumPieces()))
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	c := s.newConn(a, netip.MustParseAddrPort("198.18.0.9:6881"), true)
	c.id[0], c.fast, c.ext = 1, fast, true
	if !s.register(c, nil) {
		t.Fatal("register refused the connection")
	}
	return s, c
}

// discardStore is a Store that keeps nothing.
type discardStore struct{}

func (discardStore) ReadAt(p []byte, off int64) (int, error) { return len(p), nil }
func (discardStore) WritePiece(int, []byte) error            { return nil }

// TestUnrequestedBlockDropped feeds a connection a block it was not asked
// for, of a piece being downloaded: it is dropped and counted, and the
// requested one is taken.
func TestUnrequestedBlockDropped(t *testing.T) {
	// Pieces of 128 blocks, more than a first pipeline asks for.
	mi, _ := makeTorrent(t, 4<<20, 2<<20, nil)
	s, c := handlerBed(t, mi, true)
	for _, m := range []peerwire.Message{{ID: peerwire.HaveAll}, {ID: peerwire.Unchoke}} {
		if err := s.handle(c, &m); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	var asked, notAsked blockKey
	found := false
	for _, p := range s.active {
		for b := range p.nblocks {
			k := blockKey{uint32(p.index), uint32(b * peerwire.BlockSize)}
			if c.requested(k.index, k.begin) {
				asked = k
			} else if !found {
				notAsked, found = k, true
			}
		}
	}
	nreqs := len(c.reqs)
	s.mu.Unlock()
	if !found || nreqs == 0 {
		t.Fatalf("want some blocks of the pieces in flight asked for and some not; %d requests", nreqs)
	}
	block := make([]byte, peerwire.BlockSize)
	for _, k := range []blockKey{notAsked, asked} {
		m := peerwire.Message{ID: peerwire.Piece, Index: k.index, Begin: k.begin, Block: block}
		if err := s.handle(c, &m); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	gotNot := s.pieces[notAsked.index].got[notAsked.begin/peerwire.BlockSize]
	gotAsked := s.pieces[asked.index].got[asked.begin/peerwire.BlockSize]
	s.mu.Unlock()
	if gotNot {
		t.Error("the unrequested block was taken into its piece")
	}
	if !gotAsked {
		t.Error("the requested block was not taken")
	}
	if n := s.Stats().Unrequested; n != 1 {
		t.Errorf("unrequested blocks counted: got %d, want 1", n)
	}
}

// TestChokedMidBlockFreed has a peer without the fast extension choke
// (which takes back every request) and then stop in the middle of a
// block it was asked for. Nothing is outstanding on the connection, so
// no request times out; the block must still be freed within the request
// timeout, not held until the connection idles out.
func TestChokedMidBlockFreed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newStallBed(t, 256<<10, 32<<10, func(tp *testPeer) { tp.chokeMidBlock, tp.noFast = true, true })
		time.Sleep(time.Second)
		if b.stall.served.Load() == 0 {
			t.Fatal("the stalling peer got no request")
		}
		start := time.Now()
		b.finish(t)
		// The stalling peer itself hangs up after 30 s (its deadline).
		if took, limit := time.Since(start), requestTimeout+2*tickEvery; took > limit {
			t.Errorf("the download took %v of virtual time after the stall, want at most the request timeout and a tick, %v", took, limit)
		}
	})
}

// gatedHost is a pipeNet host whose dials wait until gate is closed.
type gatedHost struct {
	*pipeHost
	gate chan struct{}
}

func (h gatedHost) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	select {
	case <-h.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.pipeHost.Dial(ctx, addr)
}

// dialWhileFull starts a peer with room for one connection that dials
// dialed (holding content: the data, or nil), and while the dial is on
// its way has a peer with nothing dial it and take the place; then it
// lets the dial through. It returns the peer, its file, a channel that
// receives once the connection that dialed in is closed, and ctx and a
// stop function for both swarms. Run it in a synctest bubble.
func dialWhileFull(t *testing.T, mi *metainfo.MetaInfo, content []byte) (p *Swarm, path string, closed chan error, ctx context.Context, stop func()) {
	t.Helper()
	pn := newPipeNet()
	gate := make(chan struct{})
	dialed, _ := newNodeWith(t, mi, content, Config{Network: pn.host()})
	p, path = newNode(t, mi, nil, false, Config{Network: gatedHost{pn.host(), gate}, MaxConns: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	wait := runAll(t, ctx, dialed, p)
	stop = sync.OnceFunc(func() { cancel(); wait() })
	p.AddPeer(addrOf(t, dialed))
	synctest.Wait()

	other, err := pn.host().Dial(ctx, addrOf(t, p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	sendHandshake(t, other, mi.InfoHash(), 1)
	closed = make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, other); closed <- err }()
	synctest.Wait()
	if n := p.Stats().Peers; n != 1 {
		t.Fatalf("%d connections before the dial completed, want the one that dialed in", n)
	}
	close(gate)
	return p, path, closed, ctx, stop
}

// TestDialedSeedKept: once the seeder has taken in the connection of a
// full peer's dial and said it has every piece, the peer keeps that one,
// closes the one that dialed in, and completes. Had it closed its
// connection to the seeder, it would never have completed.
func TestDialedSeedKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mi, data := makeTorrent(t, 256<<10, 32<<10, nil)
		p, path, closed, ctx, stop := dialWhileFull(t, mi, data)
		defer stop()
		waitComplete(t, ctx, p)
		select {
		case <-closed:
		default:
			t.Error("the connection that dialed in is still open")
		}
		stop()
		checkFile(t, path, data)
	})
}

// TestDialedPeerTurnedAway: the same with a dialed peer that is not a
// seed: the peer that dialed in keeps its place, and the dialed
// connection is closed.
func TestDialedPeerTurnedAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mi, _ := makeTorrent(t, 256<<10, 32<<10, nil)
		p, _, closed, _, stop := dialWhileFull(t, mi, nil)
		defer stop()
		synctest.Wait()
		select {
		case <-closed:
			t.Error("the connection that dialed in was closed for one to a peer that is not a seed")
		default:
		}
		if n := p.Stats().Peers; n != 1 {
			t.Errorf("%d connections, want the one that dialed in", n)
		}
	})
}
