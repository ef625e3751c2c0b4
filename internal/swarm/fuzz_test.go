package swarm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/storage"
)

// fuzzRoles are the swarms FuzzHandle feeds: bit 0 of its role picks a
// seeder over a peer that has nothing, bit 1 a connection with the fast
// extension.
const (
	roleSeed = 1 << iota
	roleFast
)

// FuzzHandle feeds arbitrary peer-wire streams to a connection's reader
// (decoder, direct block reads, message handler), as a remote peer would
// send them after the handshake. The engine must never panic, must stop
// at the first protocol error (readLoop returns it and serveConn closes
// the connection), and once the connection is gone every count it kept
// of the peer's pieces and requests must be back to zero.
func FuzzHandle(f *testing.F) {
	for _, b := range handleSeeds() {
		for role := range byte(4) {
			f.Add(role, b)
		}
	}
	// 5 pieces of one 1 KiB block, the last one 100 bytes: the fuzzer
	// slows to a crawl on inputs of 16 KiB blocks.
	mi, _ := makeTorrent(f, 4*fuzzPiece+100, fuzzPiece, nil)
	f.Fuzz(func(t *testing.T, role byte, in []byte) {
		have := storage.NewBitfield(mi.Info.NumPieces())
		if role&roleSeed != 0 {
			have.SetAll()
		}
		s, err := New(Config{}, mi, discardStore{}, have)
		if err != nil {
			t.Fatal(err)
		}
		c := s.newConn(nopConn{}, fuzzPeer, true)
		c.id[0], c.fast, c.ext = 1, role&roleFast != 0, true
		if !s.register(c, nil) {
			t.Fatal("register refused the connection")
		}
		r := bytes.NewReader(in)
		err = c.readLoop(context.Background(), peerwire.NewDecoder(r, 0), nil)
		if err == nil {
			t.Fatal("readLoop returned nil")
		}
		if errors.Is(err, io.EOF) && r.Len() > 0 {
			t.Fatalf("readLoop stopped at EOF with %d bytes unread", r.Len())
		}
		s.unregister(c)
		s.mu.Lock()
		defer s.mu.Unlock()
		for k := range s.numPieces {
			if s.avail[k] != 0 || s.localAvail[k] != 0 {
				t.Fatalf("piece %d: availability %d (local %d) after the only peer left", k, s.avail[k], s.localAvail[k])
			}
			if s.assignedTo != nil && s.assignedTo[k] != 0 {
				t.Fatalf("piece %d: assigned to %d after the only peer left", k, s.assignedTo[k])
			}
		}
		if s.seeds != 0 || s.localSeeds != 0 || len(s.conns) != 0 {
			t.Fatalf("%d seeds, %d connections after the only peer left", s.seeds, len(s.conns))
		}
		for _, p := range s.active {
			for b, n := range p.reqCount {
				if n != 0 || p.writing[b] {
					t.Fatalf("piece %d block %d: %d requests, writing %v after the only peer left", p.index, b, n, p.writing[b])
				}
			}
		}
	})
}

var fuzzPeer = netip.MustParseAddrPort("198.18.0.9:6881")

// nopConn is a connection without a socket: the handler's writes are
// queued and never sent.
type nopConn struct{ net.Conn }

func (nopConn) Close() error                { return nil }
func (nopConn) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopConn) Write(b []byte) (int, error) { return len(b), nil }
func (nopConn) SetDeadline(time.Time) error { return nil }
func (nopConn) RemoteAddr() net.Addr        { return net.TCPAddrFromAddrPort(fuzzPeer) }

const fuzzPiece = 1 << 10

// handleSeeds are message streams for FuzzHandle's torrent of 5 pieces of
// 1 KiB (the last 100 bytes): the orders real clients send, and
// protocol errors. testdata/fuzz/FuzzHandle holds them too, each with
// every role.
func handleSeeds() [][]byte {
	msgs := func(ms ...peerwire.Message) []byte {
		var b []byte
		for _, m := range ms {
			b = peerwire.AppendMessage(b, m)
		}
		return b
	}
	block := make([]byte, fuzzPiece)
	ext, _ := peerwire.ExtHandshake{V: "x", Reqq: 3, P: 6881}.Marshal()
	var all []peerwire.Message
	for k := range 4 {
		all = append(all, peerwire.Message{ID: peerwire.Piece, Index: uint32(k), Begin: 0, Block: block})
	}
	all = append(all, peerwire.Message{ID: peerwire.Piece, Index: 4, Begin: 0, Block: make([]byte, 100)})
	return [][]byte{
		// A seed with the fast extension, then every block, then one twice.
		msgs(append(append([]peerwire.Message{{ID: peerwire.Extended, Payload: ext}, {ID: peerwire.HaveAll}, {ID: peerwire.Unchoke}}, all...), all[0])...),
		// A bitfield seed without the fast extension that chokes mid-way.
		msgs(append([]peerwire.Message{{ID: peerwire.Bitfield, Bitfield: []byte{0xf8}}, {ID: peerwire.Unchoke}, all[0], {ID: peerwire.Choke}}, all[1:4]...)...),
		// A peer that asks: interested, requests, a cancel, a keep-alive.
		append(msgs(peerwire.Message{ID: peerwire.HaveNone}, peerwire.Message{ID: peerwire.Interested},
			peerwire.Message{ID: peerwire.Request, Index: 1, Begin: 0, Length: fuzzPiece},
			peerwire.Message{ID: peerwire.Request, Index: 4, Begin: 0, Length: 100},
			peerwire.Message{ID: peerwire.Cancel, Index: 1, Begin: 0, Length: fuzzPiece},
			peerwire.Message{ID: peerwire.NotInterested}), 0, 0, 0, 0),
		// Haves, a suggest, a reject, allowed fast, a late bitfield.
		msgs(peerwire.Message{ID: peerwire.Have, Index: 0}, peerwire.Message{ID: peerwire.Have, Index: 4},
			peerwire.Message{ID: peerwire.Unchoke}, peerwire.Message{ID: peerwire.Suggest, Index: 4},
			peerwire.Message{ID: peerwire.Reject, Index: 0, Begin: 0, Length: fuzzPiece},
			peerwire.Message{ID: peerwire.AllowedFast, Index: 2}, peerwire.Message{ID: peerwire.Bitfield, Bitfield: []byte{0xf8}}),
		// Protocol errors.
		msgs(peerwire.Message{ID: peerwire.Have, Index: 5}),
		msgs(peerwire.Message{ID: peerwire.Bitfield, Bitfield: []byte{0xff}}),
		msgs(peerwire.Message{ID: peerwire.Request, Index: 0, Begin: 0, Length: 1 << 20}),
		msgs(peerwire.Message{ID: peerwire.Request, Index: 4, Begin: 0, Length: 200}),
		msgs(peerwire.Message{ID: peerwire.HaveAll}, peerwire.Message{ID: peerwire.Unchoke},
			peerwire.Message{ID: peerwire.Piece, Index: 9, Begin: 0, Block: block}),
		{0, 0, 0, 5, byte(peerwire.Have), 0},
	}
}
