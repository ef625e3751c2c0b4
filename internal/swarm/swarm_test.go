package swarm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/storage"
	"github.com/murder-deploy/murder/internal/testenv"
	"github.com/murder-deploy/murder/internal/tracker"
)

// makeTorrent returns a single-file torrent over n random bytes.
func makeTorrent(t testing.TB, n int, pieceLen int64, trackers []string) (*metainfo.MetaInfo, []byte) {
	t.Helper()
	data := make([]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	info := metainfo.Info{Name: "artifact.tgz", PieceLength: pieceLen, Length: int64(n)}
	for off := 0; off < n; off += int(pieceLen) {
		sum := sha1.Sum(data[off:min(off+int(pieceLen), n)])
		info.Pieces = append(info.Pieces, sum[:]...)
	}
	mi, err := metainfo.New(info, trackers)
	if err != nil {
		t.Fatal(err)
	}
	return mi, data
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// newNode opens storage in a fresh directory (with the data when seed)
// and returns a listening swarm.
func newNode(t testing.TB, mi *metainfo.MetaInfo, data []byte, seed bool, cfg Config) (*Swarm, string) {
	t.Helper()
	var content []byte
	if seed {
		content = data
	}
	s, path := newNodeWith(t, mi, content, cfg)
	if seed != s.have.Full() {
		t.Fatalf("verify: %d of %d pieces, seed %v", s.have.Count(), s.have.Len(), seed)
	}
	return s, path
}

// newNodeWith returns a listening swarm whose storage, in a fresh
// directory, starts with content (nil: no file); it has the pieces whose
// bytes are right there.
func newNodeWith(t testing.TB, mi *metainfo.MetaInfo, content []byte, cfg Config) (*Swarm, string) {
	t.Helper()
	dir := t.TempDir()
	if content != nil {
		if err := os.WriteFile(filepath.Join(dir, mi.Info.Name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := storage.Open(&mi.Info, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	have, err := st.Verify(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg, mi, st, have)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	return s, filepath.Join(dir, mi.Info.Name)
}

func addrOf(t testing.TB, s *Swarm) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// runAll runs the swarms until ctx ends and returns a wait function that
// reports their errors.
func runAll(t testing.TB, ctx context.Context, swarms ...*Swarm) func() {
	var wg sync.WaitGroup
	errs := make([]error, len(swarms))
	for i, s := range swarms {
		wg.Go(func() { errs[i] = s.Run(ctx) })
	}
	return func() {
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("swarm %d: Run: %v", i, err)
			}
		}
	}
}

func waitComplete(t testing.TB, ctx context.Context, s *Swarm) {
	t.Helper()
	select {
	case <-s.Complete():
	case <-ctx.Done():
		st := s.Stats()
		t.Fatalf("not complete: %d of %d bytes, %d peers", st.BytesDone, st.BytesTotal, st.Peers)
	}
}

func checkFile(t testing.TB, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d bytes seeded", path, len(got), len(want))
	}
}

// seedOnePeer runs a seeder of data and a peer, configured by seedCfg and
// peerCfg, until the peer holds the exact bytes, and returns both stopped.
func seedOnePeer(t *testing.T, mi *metainfo.MetaInfo, data []byte, seedCfg, peerCfg Config) (seeder, peer *Swarm) {
	t.Helper()
	seeder, _ = newNode(t, mi, data, true, seedCfg)
	peer, path := newNode(t, mi, data, false, peerCfg)
	transfer(t, seeder, peer)
	checkFile(t, path, data)
	return seeder, peer
}

// transfer runs seeder and peer until the peer completes, then stops both.
func transfer(t *testing.T, seeder, peer *Swarm) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := runAll(t, ctx, seeder, peer)
	peer.AddPeer(addrOf(t, seeder))
	waitComplete(t, ctx, peer)
	cancel()
	wait()
}

func TestSeederToPeer(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		pieceLen int64
		cfg      Config
	}{
		{"aligned", 4 << 20, 256 << 10, Config{}},
		{"short last piece and block", 3<<20 + 12345, 64 << 10, Config{}},
		{"one small piece", 1000, 16 << 10, Config{}},
		{"ipv6", 1 << 20, 32 << 10, Config{ListenAddr: "[::1]:0"}},
		{"rate limited", 512 << 10, 32 << 10, Config{UploadRate: 4 << 20, DownloadRate: 4 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.ListenAddr == "[::1]:0" {
				if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
					t.Skip("no IPv6 loopback")
				} else {
					ln.Close()
				}
			}
			mi, data := makeTorrent(t, tt.size, tt.pieceLen, nil)
			seeder, peer := seedOnePeer(t, mi, data, tt.cfg, tt.cfg)
			if st := peer.Stats(); st.BytesDone != int64(tt.size) || st.Downloaded < int64(tt.size) {
				t.Errorf("peer stats %+v, want %d bytes done and downloaded", st, tt.size)
			}
			if st := seeder.Stats(); st.Uploaded < int64(tt.size) {
				t.Errorf("seeder uploaded %d, want at least %d", st.Uploaded, tt.size)
			}
		})
	}
}

func TestSwarmOfPeers(t *testing.T) {
	mi, data := makeTorrent(t, 6<<20+777, 128<<10, nil)
	seeder, _ := newNode(t, mi, data, true, Config{UploadRate: 8 << 20})
	const n = 5
	var peers []*Swarm
	var paths []string
	for range n {
		p, path := newNode(t, mi, data, false, Config{})
		peers = append(peers, p)
		paths = append(paths, path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := runAll(t, ctx, append([]*Swarm{seeder}, peers...)...)
	for i, p := range peers {
		p.AddPeer(addrOf(t, seeder))
		for _, o := range peers[:i] {
			p.AddPeer(addrOf(t, o))
		}
	}
	for _, p := range peers {
		waitComplete(t, ctx, p)
	}
	var fromPeers int64
	for _, p := range peers {
		fromPeers += p.Stats().Uploaded
	}
	cancel()
	wait()
	for _, path := range paths {
		checkFile(t, path, data)
	}
	// The seeder is rate limited, so peers must have copied from each other.
	if fromPeers == 0 {
		t.Errorf("peers uploaded nothing to each other")
	}
	seeder.mu.Lock()
	hist := map[int32]int{}
	for _, n := range seeder.sentTo {
		hist[n]++
	}
	early := seeder.earlyDups
	seeder.mu.Unlock()
	t.Logf("pieces by times sent: %v", hist)
	if early != 0 || hist[0] != 0 {
		t.Errorf("seeder sent %d pieces twice before every piece once (%d never sent)", early, hist[0])
	}
	t.Logf("seeder sent %.2f copies, peers %.2f", float64(seeder.Stats().Uploaded)/float64(len(data)), float64(fromPeers)/float64(len(data)))
}

// testPeer is a minimal seeding peer written against peerwire alone. It
// sends its BEP 10 handshake before have all (as aria2 and libtorrent
// do) and answers requests with the right bytes, or with wrong ones when
// data is nil.
type testPeer struct {
	ln    net.Listener
	mi    *metainfo.MetaInfo
	data  []byte
	stall bool // accept requests, never answer
	// stallMidBlock answers the first request with half a block, then
	// nothing more
	stallMidBlock bool
	// chokeMidBlock, for a peer without the fast extension, answers the
	// first request with a choke (which takes every request back) and
	// then half of the block, then nothing more
	chokeMidBlock bool
	noFast        bool // no fast extension: a bitfield instead of have all
	accepts       atomic.Int64
	// badBlock, with data, corrupts only the block at this offset of
	// every piece
	badBlock int
	id       [20]byte
	net      Network // where it listens
	host     string  // the address it listens on; "" is 127.0.0.1
	served   atomic.Int64
	wg       sync.WaitGroup
}

func startTestPeer(t *testing.T, mi *metainfo.MetaInfo, data []byte, opts ...func(*testPeer)) *testPeer {
	b := &testPeer{mi: mi, data: data, badBlock: -1, net: tcpNetwork{}}
	copy(b.id[:], "-XX0001-goodtestpeer")
	if data == nil {
		copy(b.id[:], "-XX0001-corruptpeer!")
	}
	for _, o := range opts {
		o(b)
	}
	if b.host == "" {
		b.host = "127.0.0.1"
	}
	ln, err := b.net.Listen(net.JoinHostPort(b.host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	b.ln = ln
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepts.Add(1)
			b.wg.Go(func() { b.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

func (b *testPeer) addr() netip.AddrPort { return netip.MustParseAddrPort(b.ln.Addr().String()) }

func (b *testPeer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var h peerwire.Handshake
	if !b.noFast {
		h.SetFast()
	}
	h.SetExtended()
	h.InfoHash = b.mi.InfoHash()
	h.PeerID = b.id
	if peerwire.WriteHandshake(c, h) != nil {
		return
	}
	br := bufio.NewReader(c)
	if _, err := peerwire.ReadHandshake(br); err != nil {
		return
	}
	w := bufio.NewWriter(c)
	ext, _ := peerwire.ExtHandshake{V: "test", Reqq: 500}.Marshal()
	w.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Extended, Payload: ext}))
	if b.noFast {
		all := storage.NewBitfield(b.mi.Info.NumPieces())
		all.SetAll()
		w.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Bitfield, Bitfield: all.Bytes()}))
	} else {
		w.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.HaveAll}))
		w.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.AllowedFast, Index: 0}))
	}
	w.Flush()
	dec := peerwire.NewDecoder(br, 0)
	for {
		m, err := dec.Decode()
		if err != nil {
			return
		}
		switch m.ID {
		case peerwire.Interested:
			w.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Unchoke}))
		case peerwire.Request:
			if b.stall {
				b.served.Add(1)
				continue
			}
			if b.chokeMidBlock {
				msg := peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Block: make([]byte, m.Length)})
				w.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Choke}))
				w.Write(msg[:len(msg)-int(m.Length)/2])
				w.Flush()
				b.served.Add(1)
				b.stall = true
				continue
			}
			if b.stallMidBlock {
				msg := peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Block: make([]byte, m.Length)})
				w.Write(msg[:len(msg)-int(m.Length)/2])
				w.Flush()
				b.served.Add(1)
				b.stall = true
				continue
			}
			var block []byte
			if b.data == nil {
				block = bytes.Repeat([]byte{0xAB}, int(m.Length))
			} else {
				off := int(m.Index)*int(b.mi.Info.PieceLength) + int(m.Begin)
				block = b.data[off : off+int(m.Length)]
				if b.badBlock >= 0 && int(m.Begin) == b.badBlock {
					block = bytes.Repeat([]byte{0xCD}, int(m.Length))
				}
			}
			w.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Block: block}))
			b.served.Add(1)
		}
		if br.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}

func TestDownloadFromExtFirstPeer(t *testing.T) {
	mi, data := makeTorrent(t, 1<<20+100, 64<<10, nil)
	good := startTestPeer(t, mi, data)
	p, path := newNode(t, mi, nil, false, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := runAll(t, ctx, p)
	p.AddPeer(good.addr())
	waitComplete(t, ctx, p)
	cancel()
	wait()
	checkFile(t, path, data)
}

// TestServeMessageOrders talks to a seeder with a raw connection, in the
// message orders other clients use, and checks that it serves a block.
func TestServeMessageOrders(t *testing.T) {
	mi, data := makeTorrent(t, 256<<10, 64<<10, nil)
	ext, _ := peerwire.ExtHandshake{V: "x"}.Marshal()
	msg := func(m peerwire.Message) []byte { return peerwire.AppendMessage(nil, m) }
	tests := []struct {
		name   string
		before [][]byte
		after  [][]byte // sent after the block arrived
	}{
		{"extended then have none (aria2)", [][]byte{msg(peerwire.Message{ID: peerwire.Extended, Payload: ext}), msg(peerwire.Message{ID: peerwire.HaveNone}), msg(peerwire.Message{ID: peerwire.AllowedFast, Index: 1})}, nil},
		{"bitfield later as update (aria2)", [][]byte{msg(peerwire.Message{ID: peerwire.HaveNone})}, [][]byte{msg(peerwire.Message{ID: peerwire.Bitfield, Bitfield: []byte{0x80}})}},
		{"bitfield with spare bits", [][]byte{msg(peerwire.Message{ID: peerwire.Bitfield, Bitfield: []byte{0x0f}})}, nil},
		{"nothing first", nil, [][]byte{msg(peerwire.Message{ID: peerwire.Have, Index: 2})}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh seeder each time: one that saw earlier clients would
			// steer this one to other pieces (super-seeding).
			seeder, _ := newNode(t, mi, data, true, Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			wait := runAll(t, ctx, seeder)
			defer func() { cancel(); wait() }()
			c, err := net.Dial("tcp", seeder.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			var h peerwire.Handshake
			h.SetFast()
			h.SetExtended()
			h.InfoHash = mi.InfoHash()
			copy(h.PeerID[:], "-XX0001-rawclient000")
			h.PeerID[19] = byte(i)
			if err := peerwire.WriteHandshake(c, h); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			if _, err := peerwire.ReadHandshake(br); err != nil {
				t.Fatal(err)
			}
			for _, b := range tt.before {
				c.Write(b)
			}
			c.Write(msg(peerwire.Message{ID: peerwire.Interested}))
			dec := peerwire.NewDecoder(br, 0)
			requested := false
			for range 100 {
				m, err := dec.Decode()
				if err != nil {
					t.Fatalf("seeder closed the connection: %v", err)
				}
				switch m.ID {
				case peerwire.Unchoke:
					if !requested {
						c.Write(msg(peerwire.Message{ID: peerwire.Request, Index: 1, Begin: 16384, Length: 16384}))
						requested = true
					}
				case peerwire.Piece:
					if m.Index != 1 || m.Begin != 16384 || !bytes.Equal(m.Block, data[64<<10+16384:64<<10+32768]) {
						t.Fatalf("got piece %d+%d with wrong bytes", m.Index, m.Begin)
					}
					for _, b := range tt.after {
						c.Write(b)
					}
					// The connection must stay up: a keep-alive and a
					// second request are still answered.
					c.Write([]byte{0, 0, 0, 0})
					c.Write(msg(peerwire.Message{ID: peerwire.Request, Index: 3, Begin: 0, Length: 100}))
					for range 10 {
						m, err := dec.Decode()
						if err != nil {
							t.Fatalf("seeder closed the connection after the block: %v", err)
						}
						if m.ID == peerwire.Piece {
							if !bytes.Equal(m.Block, data[3*64<<10:3*64<<10+100]) {
								t.Fatal("second block has wrong bytes")
							}
							return
						}
					}
					t.Fatal("no second block")
				}
			}
			t.Fatal("no block after 100 messages")
		})
	}
}

func TestCorruptPeerBanned(t *testing.T) {
	tests := []struct {
		name  string
		first bool // the bad peer alone first, so whole pieces come from it
		one   bool // the bad peer corrupts one block per piece only
	}{
		{"alone first", true, false},
		{"together", false, false},
		{"one bad block per piece", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mi, data := makeTorrent(t, 2<<20, 64<<10, nil)
			var bad *testPeer
			// The bad peer has an address of its own: bans hold per
			// address, and the honest swarms all listen on 127.0.0.1.
			if tt.one {
				bad = startTestPeer(t, mi, data, func(b *testPeer) {
					b.badBlock = 16384
					b.host = "127.0.0.2"
					copy(b.id[:], "-XX0001-corruptpeer!")
				})
			} else {
				bad = startTestPeer(t, mi, nil, func(b *testPeer) { b.host = "127.0.0.2" })
			}
			badAddr := bad.addr()
			seeder, _ := newNode(t, mi, data, true, Config{})
			p1, path1 := newNode(t, mi, data, false, Config{})
			p2, path2 := newNode(t, mi, data, false, Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			wait := runAll(t, ctx, seeder, p1, p2)
			p1.AddPeer(badAddr)
			p2.AddPeer(badAddr)
			if tt.first {
				for i := 0; p1.Stats().Banned == 0 && i < 1000; i++ {
					time.Sleep(10 * time.Millisecond)
				}
				if p1.Stats().Banned != 1 {
					t.Fatalf("peer alone with the bad peer: banned %d, want 1", p1.Stats().Banned)
				}
			}
			for _, p := range []*Swarm{p1, p2} {
				p.AddPeer(addrOf(t, seeder))
			}
			p2.AddPeer(addrOf(t, p1))
			waitComplete(t, ctx, p1)
			waitComplete(t, ctx, p2)
			// Retrying the bad peer must not reconnect it.
			p1.AddPeer(badAddr)
			cancel()
			wait()
			checkFile(t, path1, data)
			checkFile(t, path2, data)
			for i, p := range []*Swarm{p1, p2, seeder} {
				p.mu.Lock()
				for ip := range p.bannedAddrs {
					if ip != badAddr.Addr() {
						t.Errorf("swarm %d banned honest address %s", i, ip)
					}
				}
				p.mu.Unlock()
			}
			if bad.served.Load() > 0 {
				b1, b2 := p1.Stats().Banned, p2.Stats().Banned
				if b1+b2 == 0 {
					t.Errorf("bad peer served %d blocks but was not banned", bad.served.Load())
				}
			}
		})
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	mi, data := makeTorrent(t, 64<<10, 16<<10, nil)
	s, _ := newNode(t, mi, data, true, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Error("still listening after Run returned")
	}
}

func TestTrackerSwarm(t *testing.T) {
	srv, err := tracker.NewServer(tracker.Config{Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	mi, data := makeTorrent(t, 3<<20+5, 64<<10, []string{ts.URL + "/announce"})
	seeder, _ := newNode(t, mi, data, true, Config{UploadRate: 6 << 20})
	var nodes []*Swarm
	var paths []string
	for range 3 {
		p, path := newNode(t, mi, nil, false, Config{})
		nodes = append(nodes, p)
		paths = append(paths, path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := runAll(t, ctx, append([]*Swarm{seeder}, nodes...)...)
	for _, p := range nodes {
		waitComplete(t, ctx, p)
	}
	cancel()
	wait()
	for _, path := range paths {
		checkFile(t, path, data)
	}
}

// stallBed is a peer, a seeder and a stalling test peer on a pipe network,
// in a synctest bubble, with the peer connected to the stalling one only.
type stallBed struct {
	data         []byte
	p, seeder    *Swarm
	path         string
	stall        *testPeer
	ctx          context.Context
	cancel, wait func()
}

func newStallBed(t *testing.T, size int, pieceLen int64, stall func(*testPeer)) *stallBed {
	mi, data := makeTorrent(t, size, pieceLen, nil)
	pn := newPipeNet()
	b := &stallBed{data: data}
	b.stall = startTestPeer(t, mi, data, func(tp *testPeer) { stall(tp); tp.net = pn.host() })
	b.p, b.path = newNode(t, mi, nil, false, Config{Network: pn.host()})
	b.seeder, _ = newNode(t, mi, data, true, Config{Network: pn.host()})
	b.ctx, b.cancel = context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(b.cancel)
	b.wait = runAll(t, b.ctx, b.p, b.seeder)
	b.p.AddPeer(b.stall.addr())
	return b
}

// finish has the peer dial the seeder, waits for it to complete, stops
// both and checks the peer's file; it returns what the peer downloaded.
func (b *stallBed) finish(t *testing.T) int64 {
	t.Helper()
	b.p.AddPeer(addrOf(t, b.seeder))
	waitComplete(t, b.ctx, b.p)
	got := b.p.downloaded.Load()
	b.cancel()
	b.wait()
	checkFile(t, b.path, b.data)
	return got
}

// TestStalledPeerRequestsMoveOn runs in virtual time over pipes: the
// request timeout passes at once.
func TestStalledPeerRequestsMoveOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newStallBed(t, 1<<20, 64<<10, func(tp *testPeer) { tp.stall = true })
		synctest.Wait()
		time.Sleep(time.Second)
		if b.stall.served.Load() == 0 {
			t.Fatal("the stalling peer got no requests")
		}
		// Its requests time out and return to the picker.
		time.Sleep(requestTimeout + 2*tickEvery)
		released := false
		b.p.mu.Lock()
		for c := range b.p.conns {
			if c.addr == b.stall.addr() && c.snubbed && len(c.reqs) <= 2 {
				released = true
			}
		}
		b.p.mu.Unlock()
		if !released {
			t.Fatal("requests to the stalling peer were not released")
		}
		b.finish(t)
	})
}

// TestPeerStalledMidBlock has a peer stop in the middle of a block, which
// the connection's reader is receiving straight into the piece. The
// other copies of that block must not be fetched and thrown away over and
// over while it waits, and once the request times out the stalled
// connection is dropped so the block can come from elsewhere.
func TestPeerStalledMidBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newStallBed(t, 256<<10, 32<<10, func(tp *testPeer) { tp.stallMidBlock = true })
		time.Sleep(time.Second)
		claimed := false
		b.p.mu.Lock()
		for c := range b.p.conns {
			claimed = claimed || c.claim != nil
		}
		b.p.mu.Unlock()
		if !claimed {
			t.Fatal("no block was being received from the stalling peer")
		}
		if got, limit := b.finish(t), int64(len(b.data))+8*peerwire.BlockSize; got > limit {
			t.Errorf("downloaded %d bytes for a %d-byte torrent", got, len(b.data))
		}
	})
}

func TestSimultaneousDialsKeepOneConnection(t *testing.T) {
	mi, data := makeTorrent(t, 2<<20, 32<<10, nil)
	for round := range 5 {
		// A slow seeder keeps the transfer going while the connections
		// settle.
		p1, _ := newNode(t, mi, data, true, Config{UploadRate: 64 << 10})
		p2, _ := newNode(t, mi, nil, false, Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		wait := runAll(t, ctx, p1, p2)
		p1.AddPeer(addrOf(t, p2))
		p2.AddPeer(addrOf(t, p1))
		var dirs []bool
		for i := 0; i < 500; i++ {
			time.Sleep(10 * time.Millisecond)
			dirs = dirs[:0]
			for _, s := range []*Swarm{p1, p2} {
				s.mu.Lock()
				for c := range s.conns {
					dirs = append(dirs, c.outgoing)
				}
				s.mu.Unlock()
			}
			if len(dirs) == 2 && dirs[0] != dirs[1] {
				break
			}
		}
		cancel()
		wait()
		// Both ends agree on the one surviving connection.
		if len(dirs) != 2 || dirs[0] == dirs[1] {
			t.Errorf("round %d: connection directions seen by the two ends: %v, want one outgoing and one incoming", round, dirs)
		}
	}
}

func TestMultiFileWithPadFiles(t *testing.T) {
	// Blocks cross file boundaries and pad files, so uploads take the
	// read-and-copy path as well as sendfile.
	files := []struct {
		path []string
		n    int
		pad  bool
	}{
		{[]string{"a.bin"}, 100_000, false},
		{[]string{".pad", "31072"}, 31072, true},
		{[]string{"dir", "b.bin"}, 300_000, false},
		{[]string{"dir", "empty"}, 0, false},
		{[]string{"c.bin"}, 5, false},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var all []byte
	info := metainfo.Info{Name: "tree", PieceLength: 32 << 10}
	for _, f := range files {
		b := make([]byte, f.n)
		if !f.pad {
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
		}
		all = append(all, b...)
		fl := metainfo.File{Length: int64(f.n), Path: f.path}
		if f.pad {
			fl.Attr = "p"
		}
		info.Files = append(info.Files, fl)
	}
	for off := 0; off < len(all); off += int(info.PieceLength) {
		sum := sha1.Sum(all[off:min(off+int(info.PieceLength), len(all))])
		info.Pieces = append(info.Pieces, sum[:]...)
	}
	mi, err := metainfo.New(info, nil)
	if err != nil {
		t.Fatal(err)
	}
	seedDir, peerDir := t.TempDir(), t.TempDir()
	off := 0
	for _, f := range files {
		if !f.pad {
			p := filepath.Join(append([]string{seedDir, "tree"}, f.path...)...)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, all[off:off+f.n], 0o644); err != nil {
				t.Fatal(err)
			}
		}
		off += f.n
	}
	open := func(dir string, full bool) *Swarm {
		st, err := storage.Open(&mi.Info, dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		have, err := st.Verify(context.Background(), nil)
		if err != nil || have.Full() != full {
			t.Fatalf("verify: %d pieces, %v", have.Count(), err)
		}
		s, err := New(Config{ListenAddr: "127.0.0.1:0", Logger: testLogger(t)}, mi, st, have)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	transfer(t, open(seedDir, true), open(peerDir, false))
	off = 0
	for _, f := range files {
		p := filepath.Join(append([]string{peerDir, "tree"}, f.path...)...)
		if f.pad {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("pad file %s written", p)
			}
		} else {
			checkFile(t, p, all[off:off+f.n])
		}
		off += f.n
	}
}

func TestSeederServesPeersThatCannotSeeEachOther(t *testing.T) {
	// Peers that are not connected to each other still finish: once
	// every piece went out once, the seeder serves what others hold.
	mi, data := makeTorrent(t, 2<<20, 32<<10, nil)
	seeder, _ := newNode(t, mi, data, true, Config{})
	a, pathA := newNode(t, mi, nil, false, Config{})
	b, pathB := newNode(t, mi, nil, false, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := runAll(t, ctx, seeder, a, b)
	a.AddPeer(addrOf(t, seeder))
	b.AddPeer(addrOf(t, seeder))
	waitComplete(t, ctx, a)
	waitComplete(t, ctx, b)
	cancel()
	wait()
	checkFile(t, pathA, data)
	checkFile(t, pathB, data)
}

// TestRedialAfterFailure: a peer whose dial fails (nothing listens there
// yet) dials again by itself, without the address being handed to it
// again, and completes once a seeder listens there.
func TestRedialAfterFailure(t *testing.T) {
	mi, data := makeTorrent(t, 256<<10, 32<<10, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	peer, _ := newNode(t, mi, nil, false, Config{ListenAddr: "127.0.0.1:0"})
	stopPeer := runAll(t, ctx, peer)
	defer func() { cancel(); stopPeer() }()
	peer.AddPeer(netip.MustParseAddrPort(addr))
	time.Sleep(500 * time.Millisecond) // the first dial is refused

	seeder, _ := newNode(t, mi, data, true, Config{ListenAddr: addr})
	stopSeeder := runAll(t, ctx, seeder)
	defer func() { cancel(); stopSeeder() }()
	waitComplete(t, ctx, peer)
}

// TestPieceSpreadLogged checks the debug lines bench/fleet -trace reads:
// the seeder names the peer each piece first went to, and the peer
// names, for each piece, where it came from and how long it took.
func TestPieceSpreadLogged(t *testing.T) {
	mi, data := makeTorrent(t, 1<<20, 32<<10, nil)
	var seedLog, peerLog testenv.Buffer
	debug := func(b *testenv.Buffer) *slog.Logger {
		return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	seeder, _ := seedOnePeer(t, mi, data, Config{Logger: debug(&seedLog)}, Config{Logger: debug(&peerLog)})

	n := mi.Info.NumPieces()
	from := regexp.MustCompile(`msg="piece verified" piece=(\d+) from=(\S+) sources=1 wait=\d+(\.\d+)?m?s\b`)
	got := map[string]bool{}
	for _, m := range from.FindAllStringSubmatch(peerLog.String(), -1) {
		if m[2] != addrOf(t, seeder).String() {
			t.Errorf("piece %s from %s, want the seeder %s", m[1], m[2], addrOf(t, seeder))
		}
		got[m[1]] = true
	}
	if len(got) != n {
		t.Errorf("peer logged %d of %d pieces verified:\n%s", len(got), n, peerLog.String())
	}
	sent := regexp.MustCompile(`msg="piece sent first" piece=(\d+) to=127\.0\.0\.1:\d+`)
	if m := sent.FindAllString(seedLog.String(), -1); len(m) != n {
		t.Errorf("seeder logged %d first sends, want %d:\n%s", len(m), n, seedLog.String())
	}
}

// TestSeederConns: a swarm that starts with every piece (the seeder)
// takes DefaultSeedConns connections unless told otherwise; others
// DefaultMaxConns.
func TestSeederConns(t *testing.T) {
	mi, _ := makeTorrent(t, 4<<14, 1<<14, nil)
	full := storage.NewBitfield(4)
	full.SetAll()
	for _, tt := range []struct {
		name string
		max  int
		have *storage.Bitfield
		want int
	}{
		{"seeder", 0, full, DefaultSeedConns},
		{"peer", 0, storage.NewBitfield(4), DefaultMaxConns},
		{"seeder told", 5, full, 5},
	} {
		s, err := New(Config{MaxConns: tt.max}, mi, nil, tt.have)
		if err != nil {
			t.Fatal(err)
		}
		if s.cfg.MaxConns != tt.want {
			t.Errorf("%s: %d connections, want %d", tt.name, s.cfg.MaxConns, tt.want)
		}
	}
}
