package swarm

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/storage"
	"github.com/murder-deploy/murder/internal/tracker"
)

// handle applies one message from c. An error drops the connection.
func (s *Swarm) handle(c *conn, m *peerwire.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Bitfield, have all and have none must precede the other core
	// messages; extension messages (aria2 and libtorrent send their BEP 10
	// handshake first) do not count.
	first := !c.gotFirst
	switch m.ID {
	case peerwire.Extended, peerwire.AllowedFast, peerwire.Suggest, peerwire.Port:
	default:
		c.gotFirst = true
	}
	switch m.ID {
	case peerwire.Choke:
		c.peerChoking = true
		if !c.fast {
			s.releaseAll(c, false)
		}
	case peerwire.Unchoke:
		c.peerChoking = false
		s.fill(c)
	case peerwire.Interested:
		c.peerInterested = true
		if c.amChoking {
			c.amChoking = false
			c.sendMsg(peerwire.Message{ID: peerwire.Unchoke})
		}
	case peerwire.NotInterested:
		c.peerInterested = false
	case peerwire.Have:
		k := int(m.Index)
		if k >= s.numPieces {
			return fmt.Errorf("swarm: have %d of %d pieces", k, s.numPieces)
		}
		if !c.seed && !c.bits.Has(k) {
			c.bits.Set(k)
			s.addAvailLocked(c, k, 1)
			if c.bits.Full() {
				s.becameSeed(c)
			}
			if !s.have.Has(k) && !c.amInterested {
				s.setInterested(c, true)
			}
			// A have of a piece we hold gives nothing new to ask for. A
			// peer hears of every piece from each of its connections, so
			// in a large swarm most haves are of pieces it already holds,
			// and filling the pipeline on each was a fifth of its CPU
			// (bench/sim).
			if s.want.Has(k) || s.pieces[k] != nil {
				s.fill(c)
			}
		}
	case peerwire.Bitfield:
		bf, err := storage.ParseBitfield(m.Bitfield, s.numPieces)
		if err != nil {
			return fmt.Errorf("swarm: %w", err)
		}
		if first {
			c.bits = bf
			if bf.Full() {
				c.seed = true
				s.addSeedLocked(c, 1)
			} else {
				for k := range s.numPieces {
					if bf.Has(k) {
						s.addAvailLocked(c, k, 1)
					}
				}
			}
		} else if !c.seed {
			// aria2 batches its haves into a later bitfield: take it as
			// an update.
			for k := range s.numPieces {
				if bf.Has(k) && !c.bits.Has(k) {
					c.bits.Set(k)
					s.addAvailLocked(c, k, 1)
				}
			}
			if c.bits.Full() {
				s.becameSeed(c)
			}
		}
		s.updateInterest(c)
		s.fill(c)
	case peerwire.HaveAll:
		if !c.fast {
			return fmt.Errorf("swarm: have all without fast extension")
		}
		if !c.seed {
			// Late ones are taken as an update, like a late bitfield.
			for k := range s.numPieces {
				if c.bits.Has(k) {
					s.addAvailLocked(c, k, -1)
				}
			}
			c.bits.SetAll()
			c.seed = true
			s.addSeedLocked(c, 1)
		}
		s.updateInterest(c)
		s.fill(c)
	case peerwire.HaveNone:
		if !c.fast {
			return fmt.Errorf("swarm: have none without fast extension")
		}
	case peerwire.Request:
		return s.onRequest(c, m)
	case peerwire.Cancel:
		u := upload{m.Index, m.Begin, m.Length}
		if c.cancelUpload(u) && c.fast {
			c.sendMsg(peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length})
		}
	case peerwire.Piece:
		s.onPiece(c, m)
	case peerwire.Reject:
		if !c.fast {
			return fmt.Errorf("swarm: reject without fast extension")
		}
		k := blockKey{m.Index, m.Begin}
		if _, ok := c.reqs[k]; ok {
			s.release(c, k, false)
			if !c.peerChoking {
				c.rejected[m.Index] = true
				if c.seed {
					c.steered = s.clock.Now()
				}
			}
			s.fill(c)
		}
	case peerwire.Extended:
		if m.ExtID == peerwire.ExtHandshakeID {
			if h, err := peerwire.ParseExtHandshake(m.Payload); err == nil {
				if h.Reqq > 0 {
					c.maxReqs = min(h.Reqq, ourReqq)
					c.updateDepth()
				}
				if h.P > 0 && h.P < 65536 {
					c.listen = netip.AddrPortFrom(c.addr.Addr(), uint16(h.P))
				}
				if p, err := tracker.ParsePlace(h.Place); err == nil {
					s.toldPlaceLocked(c, p)
				}
			}
		}
	case peerwire.Suggest:
		if k := int(m.Index); k < s.numPieces && len(c.suggested) < maxSuggested {
			c.suggested = append(c.suggested, k)
			delete(c.rejected, m.Index)
			s.fill(c)
		}
	default:
		// Port, allowed fast and unknown messages are ignored.
	}
	return nil
}

func (s *Swarm) becameSeed(c *conn) {
	for k := range s.numPieces {
		s.addAvailLocked(c, k, -1)
	}
	c.seed = true
	s.addSeedLocked(c, 1)
}

func (s *Swarm) onRequest(c *conn, m *peerwire.Message) error {
	k := int(m.Index)
	reject := func() {
		if c.fast {
			c.sendMsg(peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length})
		}
	}
	if m.Length == 0 || m.Length > peerwire.MaxRequest {
		return fmt.Errorf("swarm: request of %d bytes", m.Length)
	}
	if k >= s.numPieces || int64(m.Begin)+int64(m.Length) > s.info.PieceSize(k) {
		return fmt.Errorf("swarm: request outside piece %d", k)
	}
	if c.amChoking || !s.have.Has(k) {
		reject()
		return nil
	}
	if s.superSeed && s.unsent > 0 && c.fast && !c.assigned.Has(k) && s.heldElsewhere(k, c) {
		// Another peer has this piece or is being sent it and can pass it
		// on: steer the requester to a piece nobody has while one is left.
		// After that the seeder serves every request: its link would
		// otherwise idle while the last pieces spread.
		if s.suggestUnsent(c) {
			reject()
			return nil
		}
	}
	if s.superSeed && !c.assigned.Has(k) {
		c.assigned.Set(k)
		s.assignedTo[k]++
		s.sentTo[k]++
		if s.sentTo[k] == 1 {
			s.log.Debug("piece sent first", "piece", k, "to", c.addr)
		}
		if s.sentTo[k] > 1 {
			if s.unsent > 0 {
				s.earlyDups++
			}
		} else if s.unsent--; s.unsent == 0 {
			s.log.Debug("every piece went out once", "uploaded", s.uploaded.Load(), "early_dups", s.earlyDups, "at", s.clock.Now())
		} else if c.fast {
			// Name the requester's next piece now, so that it takes one
			// at the front instead of one at random.
			s.suggestUnsent(c)
		}
	}
	if !c.queueUpload(upload{m.Index, m.Begin, m.Length}) {
		reject()
	}
	return nil
}

func (s *Swarm) setInterested(c *conn, on bool) {
	if c.amInterested == on {
		return
	}
	c.amInterested = on
	id := peerwire.NotInterested
	if on {
		id = peerwire.Interested
	}
	c.sendMsg(peerwire.Message{ID: id})
}

// updateInterest sends interested or not interested as c's pieces and
// ours demand.
func (s *Swarm) updateInterest(c *conn) {
	want := false
	if !s.have.Full() {
		if c.seed {
			want = true
		} else {
			ours, theirs := s.have.Bytes(), c.bits.Bytes()
			for i := range theirs {
				if theirs[i]&^ours[i] != 0 {
					want = true
					break
				}
			}
		}
	}
	s.setInterested(c, want)
}

// updateDepth sizes c's request pipeline from its rate and latency: the
// bytes it delivers in a few round trips (at least 50 ms worth), within
// the peer's reqq, plus headroom for the rate to grow. The headroom is
// headroomWindow of our highest download rate so far shared among the
// connections (between minHeadroom and maxHeadroom blocks each, more
// toward a peer in another datacenter, whose queues vary more): with many
// connections a fixed headroom per connection would have every uploader
// queue seconds of blocks (each of its peers keeping maxHeadroom requests
// there), so pieces picked now arrive late, and in endgame the same blocks
// wait in several queues.
//
// The highest rate, not the current one: an uploader's link is shared
// among the connections that have requests queued there, so a peer that
// fell behind and kept fewer requests out got a smaller share of every
// uploader and fell further behind. In a swarm of 32 peers and 256 MiB one
// such peer in most runs downloaded at 0.6-0.7 of its link for 15 s while
// uploading at full speed, and finished 5-9 s after the median.
func (c *conn) updateDepth() {
	window := max(4*c.minRTT, 50*time.Millisecond)
	most := maxHeadroom
	if c.near.Load() == nearRemote {
		most = maxRemoteHeadroom
	}
	headroom := most
	if n := len(c.s.conns); n > 0 && c.s.peakDown > 0 {
		h := int(c.s.peakDown * headroomWindow.Seconds() / peerwire.BlockSize / float64(n))
		headroom = min(max(h, minHeadroom), most)
	}
	d := int(c.rate*window.Seconds()/peerwire.BlockSize) + headroom
	if c.snubbed {
		d = 2
	}
	c.depth = min(max(d, 2), maxDepth, c.maxReqs)
}

// heldElsewhere reports whether a peer other than c has piece k or is
// being sent it by us (c may be nil). It counts instead of asking every
// connection: the seeder asks for each piece of its front window whenever
// it sends a piece, and a seeder may have hundreds of connections.
func (s *Swarm) heldElsewhere(k int, c *conn) bool {
	n := s.avail[k] + int32(s.seeds)
	if s.assignedTo != nil {
		n += s.assignedTo[k]
	}
	if c != nil {
		if c.seed || c.bits.Has(k) {
			n--
		}
		if c.assigned.Has(k) {
			n--
		}
	}
	return n > 0
}

// superWindow is the width of the seeder's front in pieces: room for
// every connection's pieces in flight with as many left to suggest.
//
// The seeder sends the pieces out roughly in order. It suggests to each
// peer it sends a new piece to the next one to ask for, at random among
// the lowest-indexed pieces nobody has been sent (the front window), so
// that peers steered at the same moment get different pieces; a piece
// suggested to one peer is not suggested to another for offerTTL. Peers
// take suggestions first and pass pieces on rarest-first, so the swarm
// holds a prefix of the torrent plus about the last window, and a peer's
// whole-file SHA-256, which must read the file in order, keeps up with
// the download instead of hashing half the file after the last piece.
func (s *Swarm) superWindow() int {
	return max(64, 8*len(s.conns))
}

// suggestUnsent suggests to c a piece nobody has (pickUnsent) and
// reports whether there was one.
func (s *Swarm) suggestUnsent(c *conn) bool {
	u := s.pickUnsent(c)
	if u < 0 {
		return false
	}
	s.offers[u] = offer{c, s.clock.Now()}
	c.sendMsg(peerwire.Message{ID: peerwire.Suggest, Index: uint32(u)})
	return true
}

// pickUnsent returns a piece that c lacks and that was not sent to and
// is not held by anyone: at random in the front window among those not
// just suggested to another peer, else the first such one past it, else
// one suggested to another; or -1. When no piece is left unsent and
// unheld, super-seeding ends.
func (s *Swarm) pickUnsent(c *conn) int {
	for s.front < s.numPieces && s.sentTo[s.front] != 0 {
		s.front++
	}
	now := s.clock.Now()
	end := s.front + s.superWindow()
	pick, n, offered, left := -1, 0, -1, false
	for k := s.front; k < s.numPieces && (k < end || pick < 0); k++ {
		if s.sentTo[k] != 0 || s.heldElsewhere(k, nil) {
			continue
		}
		left = true
		switch o := s.offers[k]; {
		case c.bits.Has(k):
		case o.c != nil && o.c != c && now.Sub(o.at) < offerTTL:
			if offered < 0 {
				offered = k
			}
		case k >= end:
			return k
		default:
			if n++; s.rng.IntN(n) == 0 {
				pick = k
			}
		}
	}
	if !left {
		s.unsent = 0
	}
	if pick < 0 {
		return offered
	}
	return pick
}
