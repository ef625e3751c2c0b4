package swarm

import (
	"net/netip"

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
// of a datacenter, which dials them. localAvail and
// localSeeds count the pieces of local peers as avail and seeds count
// those of all peers.

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
// fits beside the connections there are and those being dialed:
// while this host knows its place, a share of MaxConns (remoteShare) is
// kept for peers the tracker put elsewhere. A datacenter's gateway is
// dialed by many of its own peers, and without the share they took every
// connection before it reached a remote one (simulated: 60 hosts per
// datacenter, 50 connections each, the last peer at 4.4x F/W).
//
// Of the remote half, an eighth of MaxConns is kept for remote peers that
// dial in: a gateway fills its half with the seeder's datacenter at once,
// and the gateways of other datacenters, which come later, dial it.
func (s *Swarm) roomForLocked(near int32, incoming bool) bool {
	if !s.place.Known() || s.cfg.MaxConns < 2*remoteShare {
		return true
	}
	remote, other := 0, 0
	for c := range s.conns {
		if c.near.Load() == nearRemote {
			remote++
		} else {
			other++
		}
	}
	for a := range s.dialing {
		if s.nearLocked(a.Addr()) == nearRemote {
			remote++
		} else {
			other++
		}
	}
	if near == nearRemote {
		// Remote peers take at most half: a gateway has many on its list
		// and must keep room for its own datacenter's peers.
		limit := s.cfg.MaxConns / 2
		if !incoming {
			limit -= max(s.cfg.MaxConns/8, 1)
		}
		return remote < limit
	}
	return other < s.cfg.MaxConns-s.cfg.MaxConns/remoteShare
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
