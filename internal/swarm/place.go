package swarm

import (
	"bytes"
	"encoding/binary"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"

	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/storage"
	"github.com/murder-deploy/murder/internal/tracker"
)

// Where a peer is, seen from this host: the bucket its received bytes are
// counted in, and whether the picker treats it as local. The zero value
// is nearUnknown: this host's own place is unknown, or the peer's (no
// tracker reply listed it yet), or the peer is not registered yet.
const (
	nearUnknown    = int32(0)
	nearRack       = int32(tracker.SameRack) + 1
	nearDatacenter = int32(tracker.SameDatacenter) + 1
	nearRemote     = int32(tracker.Remote) + 1
	nearKinds      = nearRemote + 1
)

// Prefer local peers across datacenters
//
// When this host knows its place (Config.Datacenter, or the place murder's
// tracker gives it) and the places of its peers (from the tracker's
// replies), a peer the tracker put in another datacenter or in an unknown
// place is remote, and a remote peer is asked only for pieces that no
// local peer (same datacenter) has: those the local peers have come from
// them, so a piece crosses the link into a datacenter about once. A peer
// no reply has listed yet (one that connected first) is not held back: in
// a datacenter most such peers are local ones that announced after this
// host, and murder's tracker lists remote peers only to the first peer
// of a datacenter, which dials them. Murder's peers also tell their
// place in their extension handshake, which places a peer that dialed in
// before any reply listed it (placeFirst). localAvail and localSeeds count the pieces
// of local peers as avail and seeds count those of all peers.

// nearLocked returns the nearness of a peer at addr.
func (s *Swarm) nearLocked(addr netip.Addr) int32 {
	p, listed := s.placeOf[addr]
	if !s.place.Known() || !listed {
		return nearUnknown
	}
	return int32(s.place.Near(p)) + 1
}

// maxPlaces bounds the peers' places a swarm remembers.
const maxPlaces = 100000

func isLocal(near int32) bool { return near == nearRack || near == nearDatacenter }

// setNearLocked moves c to nearness n, moving its pieces in or out of the
// local counts.
func (s *Swarm) setNearLocked(c *conn, n int32) {
	old := c.near.Swap(n)
	if isLocal(old) == isLocal(n) || c.bits == nil {
		return
	}
	d := int32(1)
	if !isLocal(n) {
		d = -1
	}
	if c.seed {
		s.localSeeds += int(d)
		return
	}
	for k := range s.numPieces {
		if c.bits.Has(k) {
			s.localAvail[k] += d
		}
	}
}

// addAvailLocked counts piece k of non-seed c (d is 1 or -1).
func (s *Swarm) addAvailLocked(c *conn, k int, d int32) {
	s.avail[k] += d
	if isLocal(c.near.Load()) {
		s.localAvail[k] += d
	}
}

// addSeedLocked counts seed c (d is 1 or -1).
func (s *Swarm) addSeedLocked(c *conn, d int) {
	s.seeds += d
	if isLocal(c.near.Load()) {
		s.localSeeds += d
	}
}

// roomForLocked reports whether a connection to a peer at nearness near
// fits beside the connections there are and those being dialed, while
// this host knows its place:
//   - remote peers take at most half of MaxConns, and those this host
//     dials half less an eighth (remoteIn): a gateway fills its remote
//     half with the seeder's datacenter at once, and the gateways of
//     other datacenters, which come later, dial it;
//   - the others take at most MaxConns less a fifth (remoteShare), and
//     leave free the slots of remoteIn that remote peers have not taken:
//     a datacenter's gateway is dialed by many of its own peers, and
//     without the share they took every connection before it reached a
//     remote one (simulated: 60 hosts per datacenter, 50 connections
//     each, the last peer at 4.4x F/W), and without the free slots the
//     gateway of another datacenter found none (3 datacenters of 100
//     hosts: in some runs the gateways never exchanged).
func (s *Swarm) roomForLocked(near int32, incoming bool) bool {
	if !s.place.Known() || s.cfg.MaxConns < 2*remoteShare {
		return true
	}
	remote, remoteIn, other := 0, 0, 0
	for c := range s.conns {
		switch {
		case c.near.Load() != nearRemote:
			other++
		case c.outgoing:
			remote++
		default:
			remote++
			remoteIn++
		}
	}
	for a := range s.dialing {
		if s.nearLocked(a.Addr()) == nearRemote {
			remote++
		} else {
			other++
		}
	}
	half, reserve := s.cfg.MaxConns/2, max(s.cfg.MaxConns/8, 1)
	if near == nearRemote && incoming {
		return remote < half
	}
	if remote+other+max(reserve-remoteIn, 0) >= s.cfg.MaxConns {
		return false
	}
	if near == nearRemote {
		return remote < half-reserve
	}
	return other < s.cfg.MaxConns-s.cfg.MaxConns/remoteShare
}

// toldPlaceLocked records the place peer c gave in its extension
// handshake, unless a tracker reply placed it.
func (s *Swarm) toldPlaceLocked(c *conn, p tracker.Place) {
	addr := c.addr.Addr()
	if _, listed := s.placeOf[addr]; listed || !p.Known() {
		return
	}
	if len(s.placeOf) > maxPlaces {
		clear(s.placeOf)
	}
	s.placeOf[addr] = p
	if c.bits != nil {
		s.setNearLocked(c, s.nearLocked(addr))
	}
}

// placeFirst reports whether serveConn should read the first messages of
// c, a peer that dialed in, before admitting it: this host knows its
// place but not the peer's, and the peer may tell it in its extension
// handshake. Without it a gateway could not tell the gateway of another
// datacenter (which dials it having found it in a tracker reply) from
// the peers of its own datacenter, which dial it at the same moment and
// fill its connections (simulated, 3 datacenters of 100 hosts: in some
// runs a datacenter got nothing for 5 s, until its next announce).
func (s *Swarm) placeFirst(c *conn) bool {
	if c.outgoing || !c.ext {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, listed := s.placeOf[c.addr.Addr()]
	return s.place.Known() && !listed
}

// readFirst reads c's first message, or with untilPlace its messages up
// to its extension handshake, at most maxFirst of them (a peer sends its
// bitfield, or have all or have none, and then its extension handshake),
// and records the place it tells. It returns the messages read, for the
// caller to handle once c is registered.
func (s *Swarm) readFirst(c *conn, dec *peerwire.Decoder, untilPlace bool) ([]peerwire.Message, error) {
	var first []peerwire.Message
	for range maxFirst {
		m, err := dec.Decode()
		if err != nil {
			return nil, err
		}
		if m.KeepAlive {
			continue
		}
		m.Bitfield = bytes.Clone(m.Bitfield)
		m.Payload = bytes.Clone(m.Payload)
		m.Block = bytes.Clone(m.Block)
		first = append(first, m)
		if !untilPlace {
			break
		}
		if m.ID == peerwire.Extended && m.ExtID == peerwire.ExtHandshakeID {
			if h, err := peerwire.ParseExtHandshake(m.Payload); err == nil {
				if p, err := tracker.ParsePlace(h.Place); err == nil {
					s.mu.Lock()
					s.toldPlaceLocked(c, p)
					s.mu.Unlock()
				}
			}
			break
		}
		switch m.ID {
		case peerwire.Bitfield, peerwire.HaveAll, peerwire.HaveNone, peerwire.AllowedFast, peerwire.Extended:
		default:
			return first, nil // another client's order: no place to wait for
		}
	}
	return first, nil
}

// maxFirst bounds the messages readFirst reads.
const maxFirst = 4

// Shares of the pieces between datacenters
//
// The gateways of two datacenters that fetch from the seeder's datacenter
// at once pick, at random, among the same pieces nobody near them has,
// and both fetch some of them (simulated, 3 x 6 hosts at W = L/4: 81 of
// 512 pieces, so the seeder's datacenter sent 1.23 copies). So a host asks
// a remote peer first for the pieces its own datacenter owns: each piece
// is owned by one of the datacenters this host and its remote peers that
// are not seeds are in, by rendezvous hashing of the piece and the
// datacenter's name, which every gateway computes alike. The rest of
// each gateway's copy comes from the other gateways.

// ownsLocked reports whether this host's datacenter owns piece k among
// the datacenters of its remote peers that are not seeds (see above); it
// owns every piece while it knows no such peer.
func (s *Swarm) ownsLocked(k int) bool {
	if s.shareDCs == "" {
		return true
	}
	return s.owned.Has(k)
}

// updateSharesLocked recomputes the pieces this host's datacenter owns
// when the datacenters of its remote peers that are not seeds change.
func (s *Swarm) updateSharesLocked() {
	if !s.place.Known() {
		s.shareDCs = ""
		return
	}
	dcs := []string{s.place.Datacenter}
	for c := range s.conns {
		if c.near.Load() != nearRemote || c.seed {
			continue
		}
		if p, ok := s.placeOf[c.addr.Addr()]; ok && !slices.Contains(dcs, p.Datacenter) {
			dcs = append(dcs, p.Datacenter)
		}
	}
	if len(dcs) == 1 {
		s.shareDCs = ""
		return
	}
	slices.Sort(dcs)
	key := strings.Join(dcs, "\x00")
	if key == s.shareDCs {
		return
	}
	s.shareDCs = key
	if s.owned == nil {
		s.owned = storage.NewBitfield(s.numPieces)
	}
	for k := range s.numPieces {
		best, owner := uint64(0), ""
		for _, dc := range dcs {
			if w := shareWeight(k, dc); owner == "" || w > best {
				best, owner = w, dc
			}
		}
		if owner == s.place.Datacenter {
			s.owned.Set(k)
		} else {
			s.owned.Clear(k)
		}
	}
}

// shareWeight is piece k's rendezvous weight for datacenter dc (FNV-1a).
func shareWeight(k int, dc string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(k))
	h.Write(b[:])
	h.Write([]byte(dc))
	return h.Sum64()
}

// remoteShare: 1/remoteShare of MaxConns is kept for remote peers.
const remoteShare = 5

// heldLocally reports whether a local peer has piece k.
func (s *Swarm) heldLocally(k int) bool { return s.localSeeds > 0 || s.localAvail[k] > 0 }

// spareRemote reports whether c may be asked for piece k: any peer may,
// except a remote one when a local peer has k.
func (s *Swarm) spareRemote(c *conn, k int) bool {
	return c.near.Load() != nearRemote || !s.heldLocally(k)
}

// learnPlaces records the places of a tracker reply: the peers' (places[i]
// is where peers[i] runs) and, unless Config set it, this host's own.
func (s *Swarm) learnPlaces(self tracker.Place, peers []netip.AddrPort, places []tracker.Place) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cfgPlace.Known() && self != s.place {
		s.place = self
	}
	if len(s.placeOf) > maxPlaces {
		clear(s.placeOf)
	}
	for i, p := range places {
		if i < len(peers) {
			s.placeOf[peers[i].Addr()] = p
		}
	}
	for c := range s.conns {
		s.setNearLocked(c, s.nearLocked(c.addr.Addr()))
	}
}

// Place returns where this host runs, as far as it knows.
func (s *Swarm) Place() tracker.Place {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.place
}
