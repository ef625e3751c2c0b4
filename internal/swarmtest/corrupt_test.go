package swarmtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/testbed"
)

// corruptPeer claims every piece and answers every request with garbage.
// It announces itself as a seeder to the tracker, so murder peers find it.
type corruptPeer struct {
	host   *testbed.Host
	mi     *metainfo.MetaInfo
	peerID [20]byte
	ln     net.Listener

	mu     sync.Mutex
	served map[string]int // blocks served per remote IP
}

func startCorruptPeer(t *testing.T, ctx context.Context, h *testbed.Host, torrentPath, tracker string) *corruptPeer {
	t.Helper()
	mi, err := metainfo.Load(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := h.Listen("tcp", net.JoinHostPort(h.Addr().String(), "6881"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &corruptPeer{host: h, mi: mi, ln: ln, served: map[string]int{}}
	copy(c.peerID[:], "-XX0001-corruptpeer!")
	go c.accept(ctx)
	go c.announceLoop(t, ctx, tracker)
	return c
}

func (c *corruptPeer) servedTo(ip string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.served[ip]
}

func (c *corruptPeer) announceLoop(t *testing.T, ctx context.Context, tracker string) {
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DialContext: c.host.DialContext, DisableKeepAlives: true},
	}
	ih := c.mi.InfoHash()
	q := fmt.Sprintf("info_hash=%s&peer_id=%s&port=6881&uploaded=0&downloaded=0&left=0&compact=1&ip=%s",
		escape(ih[:]), escape(c.peerID[:]), c.host.Addr())
	for i := 0; ; i++ {
		u := "http://" + tracker + "/announce?" + q
		if i == 0 {
			u += "&event=started"
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func escape(b []byte) string {
	var sb strings.Builder
	for _, x := range b {
		fmt.Fprintf(&sb, "%%%02X", x)
	}
	return sb.String()
}

func (c *corruptPeer) accept(ctx context.Context) {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		go c.serve(ctx, conn)
	}
}

func (c *corruptPeer) handshake() []byte {
	ih := c.mi.InfoHash()
	hs := append([]byte{19}, "BitTorrent protocol"...)
	hs = append(hs, make([]byte, 8)...)
	hs = append(hs, ih[:]...)
	return append(hs, c.peerID[:]...)
}

func writeMsg(w io.Writer, id byte, payload []byte) error {
	msg := binary.BigEndian.AppendUint32(nil, uint32(1+len(payload)))
	msg = append(msg, id)
	_, err := w.Write(append(msg, payload...))
	return err
}

// readMsg reads one message; id -1 is a keep-alive.
func readMsg(r io.Reader) (int, []byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n == 0 {
		return -1, nil, nil
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("message of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return int(buf[0]), buf[1:], nil
}

func (c *corruptPeer) serve(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	hs := make([]byte, 68)
	if _, err := io.ReadFull(conn, hs); err != nil {
		return
	}
	if _, err := conn.Write(c.handshake()); err != nil {
		return
	}
	n := c.mi.Info.NumPieces()
	bf := make([]byte, (n+7)/8)
	for i := range n {
		bf[i/8] |= 0x80 >> (i % 8)
	}
	if writeMsg(conn, 5, bf) != nil || writeMsg(conn, 1, nil) != nil {
		return
	}
	ip := conn.RemoteAddr().(*net.TCPAddr).IP.String()
	for ctx.Err() == nil {
		id, payload, err := readMsg(conn)
		if err != nil {
			return
		}
		if id != 6 || len(payload) != 12 {
			continue
		}
		length := binary.BigEndian.Uint32(payload[8:12])
		if length > 128<<10 {
			return
		}
		block := append(append([]byte(nil), payload[:8]...), bytes.Repeat([]byte{0xA5}, int(length))...)
		if writeMsg(conn, 7, block) != nil {
			return
		}
		c.mu.Lock()
		c.served[ip]++
		c.mu.Unlock()
	}
}

// probe connects from host h to a murder peer as a leecher that has
// nothing and is interested, and reports whether the peer unchokes it.
func probe(ctx context.Context, h *testbed.Host, mi *metainfo.MetaInfo, peerID [20]byte, addr string) (bool, error) {
	conn, err := h.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	ih := mi.InfoHash()
	hs := append([]byte{19}, "BitTorrent protocol"...)
	hs = append(hs, make([]byte, 8)...)
	hs = append(hs, ih[:]...)
	hs = append(hs, peerID[:]...)
	if _, err := conn.Write(hs); err != nil {
		return false, nil
	}
	reply := make([]byte, 68)
	if _, err := io.ReadFull(conn, reply); err != nil {
		return false, nil
	}
	if writeMsg(conn, 2, nil) != nil { // interested
		return false, nil
	}
	for range 100 {
		id, _, err := readMsg(conn)
		if err != nil {
			return false, nil
		}
		if id == 1 {
			return true, nil
		}
	}
	return false, nil
}

// TestCorruptPeer: one host serves garbage for every piece; every other
// peer still ends with the exact tree, and bans the bad host: a fresh
// connection from it is refused while the same one from a clean host is
// served.
func TestCorruptPeer(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	// Hosts: tracker, seeder, 6 peers, the corrupt one, a clean prober.
	s := newSwarm(t, ctx, options{peers: 8, size: 8 << 20, link: capped, pieceSize: "256KiB"})
	bad, clean := s.hosts[6], s.hosts[7]
	peerHosts := s.hosts[:6]
	cp := startCorruptPeer(t, ctx, bad, s.seeder.Path(s.torrent), s.trackerAddr())
	// Give the tracker the corrupt peer before anyone else is there.
	time.Sleep(500 * time.Millisecond)
	s.startSeeder()
	var peers []*peer
	for _, h := range peerHosts {
		peers = append(peers, s.startPeer(h, nil))
	}
	s.waitPlaced(peers...)
	servedAny := false
	for _, h := range peerHosts {
		if cp.servedTo(h.Addr().String()) > 0 {
			servedAny = true
		}
	}
	if !servedAny {
		t.Fatal("no peer fetched anything from the corrupt peer; the test proves nothing")
	}
	// Ban: every peer that took garbage must refuse the bad host.
	for _, p := range peers {
		h := p.host
		if cp.servedTo(h.Addr().String()) == 0 {
			continue
		}
		t.Logf("%s took %d corrupt blocks", h.Name(), cp.servedTo(h.Addr().String()))
		addr := peerAddr(h)
		ok, err := probe(ctx, clean, cp.mi, [20]byte{'-', 'X', 'X'}, addr)
		if err != nil || !ok {
			t.Errorf("%s does not serve a clean leecher (err %v); cannot check the ban", h.Name(), err)
			continue
		}
		if ok, _ := probe(ctx, bad, cp.mi, cp.peerID, addr); ok {
			t.Errorf("%s took %d corrupt blocks from %s and still unchokes it", h.Name(), cp.servedTo(h.Addr().String()), bad.Addr())
		}
	}
	stopAll(peers...)
}

// peerAddr is where murder peer listens in host h (startPeer's --listen).
func peerAddr(h *testbed.Host) string {
	return net.JoinHostPort(h.Addr().String(), peerPort)
}
