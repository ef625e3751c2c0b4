package swarmtest

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/testbed"
)

// TestAllowFrom runs the seeder and two peers with --allow-from listing
// the tracker, the seeder and themselves, and a third peer outside the
// list. The two finish; the outsider's connections are refused at accept
// (the seeder logs it, and a raw handshake from its host gets no byte
// back), nobody dials it, and it gets nothing.
func TestAllowFrom(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	s := newSwarm(t, ctx, options{peers: 3, size: 4 << 20, link: capped, pieceSize: "256KiB"})
	inside, outsider := s.hosts[:2], s.hosts[2]
	var allow []string
	for _, h := range append([]*testbed.Host{s.tracker, s.seeder}, inside...) {
		allow = append(allow, "--allow-from", h.Addr().String()+"/32")
	}
	seed := s.startSeeder(append([]string{"--log-level", "debug"}, allow...)...)
	var peers []*peer
	for _, h := range inside {
		peers = append(peers, s.startPeer(h, nil, allow...))
	}
	out := s.startPeer(outsider, nil)
	s.waitPlaced(peers...)

	// The outsider dials the seeder as soon as the tracker lists it.
	refusedLine := func() bool {
		for l := range strings.Lines(seed.stderr.String()) {
			if strings.Contains(l, "refused: not in allow-from") && strings.Contains(l, "peer="+outsider.Addr().String()+":") {
				return true
			}
		}
		return false
	}
	for !refusedLine() {
		select {
		case <-ctx.Done():
			t.Fatalf("the seeder logged no refused connection from %s:\n%s", outsider.Addr(), tail(seed.stderr.String()))
		case <-time.After(100 * time.Millisecond):
		}
	}
	c, err := outsider.DialContext(ctx, "tcp", net.JoinHostPort(s.seeder.Addr().String(), peerPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var h peerwire.Handshake
	mi, err := metainfo.Load(s.seeder.Path(s.torrent))
	if err != nil {
		t.Fatal(err)
	}
	h.InfoHash = mi.InfoHash()
	copy(h.PeerID[:], "-XX0001-outsider0000")
	if err := peerwire.WriteHandshake(c, h); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	// The seeder closes without reading, so the kernel may answer the
	// unread handshake with a reset instead of an orderly close: both
	// are a closed connection.
	if got, err := io.ReadAll(c); len(got) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("a raw handshake from outside allow-from got %d bytes back (%v), want none and the connection closed", len(got), err)
	}
	if ev := out.progress(); ev.BytesDone != 0 || ev.Peers != 0 {
		t.Errorf("the outsider has %d bytes and %d peers, want none", ev.BytesDone, ev.Peers)
	}
	stopAll(append(peers, out)...)
}
