package tracker

import (
	"fmt"
	"strings"
)

// Place is where a peer runs: its datacenter and, optionally, its rack
// within that datacenter. The zero Place is an unknown place: a peer there
// is in an unnamed place of its own, near no other peer.
type Place struct {
	Datacenter string
	Rack       string
}

// MaxPlaceName bounds the length of a datacenter or rack name.
const MaxPlaceName = 64

// Nearness says how close two places are, from the point of view of the
// first.
type Nearness int

// Nearness values, nearest first.
const (
	SameRack Nearness = iota
	SameDatacenter
	Remote
)

// Near returns how close q is to p. Two unknown places are Remote: a peer
// of unknown place is near nobody.
func (p Place) Near(q Place) Nearness {
	switch {
	case p.Datacenter == "" || p.Datacenter != q.Datacenter:
		return Remote
	case p.Rack != "" && p.Rack == q.Rack:
		return SameRack
	}
	return SameDatacenter
}

// Known reports whether p names a datacenter.
func (p Place) Known() bool { return p.Datacenter != "" }

// String returns "DC/RACK", "DC", or "" for an unknown place: the form of
// a place in murder's announce reply.
func (p Place) String() string {
	if p.Rack == "" {
		return p.Datacenter
	}
	return p.Datacenter + "/" + p.Rack
}

// ParsePlace parses the form String returns. The empty string is the
// unknown place; a rack needs a datacenter.
func ParsePlace(s string) (Place, error) {
	if s == "" {
		return Place{}, nil
	}
	dc, rack, hasRack := strings.Cut(s, "/")
	if err := CheckPlaceName("datacenter", dc); err != nil {
		return Place{}, err
	}
	if hasRack {
		if err := CheckPlaceName("rack", rack); err != nil {
			return Place{}, err
		}
	}
	return Place{Datacenter: dc, Rack: rack}, nil
}

// CheckPlaceName returns an error unless name may name a datacenter or a
// rack (what says which, for the message): 1 to MaxPlaceName bytes of ASCII
// letters, digits, '-', '_' and '.'.
func CheckPlaceName(what, name string) error {
	if name == "" {
		return fmt.Errorf("tracker: empty %s name", what)
	}
	if len(name) > MaxPlaceName {
		return fmt.Errorf("tracker: %s name longer than %d bytes", what, MaxPlaceName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			continue
		}
		return fmt.Errorf("tracker: %s name %q: only letters, digits, '-', '_' and '.' are allowed", what, name)
	}
	return nil
}

// Choosing peers by place
//
// Every Store picks the peers of an announce the same way, so that about
// one copy of a torrent crosses the link into each datacenter. For an
// announcing peer of unknown place it returns a uniform random sample of
// the swarm. For a peer in datacenter D (and perhaps rack R), wanting k
// peers, it returns, in this order:
//
//  1. peers of rack R, at random, then other peers of D, at random, up to k
//     in all (up to half of k for a gateway, below);
//  2. then r = RemoteWant(room, gateway) remote peers, room being what is
//     left of k.
//
// A gateway is a peer through which its datacenter gets the data. A
// leecher becomes one when its datacenter holds no seeder (other than
// itself) and has fewer than FirstPeers gateways; it stays one until it
// leaves the swarm (or becomes a seeder, or moves). A gateway gets as many
// remote peers as it wants: the seeders, then the gateways of the other
// datacenters, then the peers of the datacenters that hold a seeder, at
// random within each group; and only when there are none of these, any
// remote leechers (of other datacenters or of unknown place). Peers dial
// the peers of a reply in order, up to their connection limit, so the
// few gateways come before the many peers of the seeders' datacenters. Other peers
// get RemotePeers remote peers (0: none), and seeders none: the gateways
// find them.
//
// So each datacenter without a seeder takes the data in through its
// gateways, from the seeders' datacenters and from each other's gateways,
// and its other peers get it inside the datacenter. A store keeps, per
// swarm, a set of peers per datacenter and per rack, the set of
// datacenters that hold a seeder, and per datacenter its gateways (a Redis
// set each, say); each step is then a few random draws from one set, and
// nothing looks at every peer of the swarm.

// Defaults of the rule above.
const (
	// FirstPeers is how many gateways a datacenter without a seeder has.
	FirstPeers = 1
	// RemotePeers is how many remote peers a peer that is not a gateway
	// gets.
	RemotePeers = 0
)

// RemoteWant returns how many remote peers an announce of a peer of known
// place gets (see "Choosing peers by place"): room is how many more peers
// it may get after those of its own datacenter, gateway whether the peer
// is (or now becomes) a gateway of its datacenter.
func RemoteWant(room int, gateway bool) int {
	switch {
	case room <= 0:
		return 0
	case gateway:
		return room
	}
	return min(room, RemotePeers)
}
