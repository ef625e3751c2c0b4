package swarm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/storage"
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
	dir := t.TempDir()
	if seed {
		if err := os.WriteFile(filepath.Join(dir, mi.Info.Name), data, 0o644); err != nil {
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
	if seed != have.Full() {
		t.Fatalf("verify: %d of %d pieces, seed %v", have.Count(), have.Len(), seed)
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
			seeder, _ := newNode(t, mi, data, true, tt.cfg)
			peer, path := newNode(t, mi, data, false, tt.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			wait := runAll(t, ctx, seeder, peer)
			peer.AddPeer(addrOf(t, seeder))
			waitComplete(t, ctx, peer)
			cancel()
			wait()
			checkFile(t, path, data)
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
}

// badPeer is a minimal peer that claims every piece and answers requests
// with wrong bytes.
type badPeer struct {
	ln     net.Listener
	mi     *metainfo.MetaInfo
	served atomic.Int64
	wg     sync.WaitGroup
}

func startBadPeer(t *testing.T, mi *metainfo.MetaInfo) *badPeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &badPeer{ln: ln, mi: mi}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Go(func() { b.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

func (b *badPeer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var h peerwire.Handshake
	h.SetFast()
	h.InfoHash = b.mi.InfoHash()
	copy(h.PeerID[:], "-XX0001-corruptpeer!")
	if peerwire.WriteHandshake(c, h) != nil {
		return
	}
	br := bufio.NewReader(c)
	if _, err := peerwire.ReadHandshake(br); err != nil {
		return
	}
	w := bufio.NewWriter(c)
	w.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.HaveAll}))
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
			block := bytes.Repeat([]byte{0xAB}, int(m.Length))
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

func TestCorruptPeerBanned(t *testing.T) {
	tests := []struct {
		name  string
		first bool // the bad peer alone first, so whole pieces come from it
	}{
		{"alone first", true},
		{"together", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mi, data := makeTorrent(t, 2<<20, 64<<10, nil)
			bad := startBadPeer(t, mi)
			badAddr := netip.MustParseAddrPort(bad.ln.Addr().String())
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
			var badID [20]byte
			copy(badID[:], "-XX0001-corruptpeer!")
			for i, p := range []*Swarm{p1, p2, seeder} {
				p.mu.Lock()
				for id := range p.bannedIDs {
					if id != badID {
						t.Errorf("swarm %d banned honest peer %q", i, id[:])
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
