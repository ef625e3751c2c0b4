package tracker

import (
	"math/rand/v2"
	"slices"
)

// placeList lists the peers of one datacenter or rack of a swarm by id,
// leechers in ids[0] and seeders in ids[1]. An entry's pos says where it is
// in its datacenter's list (pos[0]) and its rack's (pos[1]).
type placeList struct {
	ids [2][][20]byte
}

func (l *placeList) len() int { return len(l.ids[0]) + len(l.ids[1]) }

// dcIndex is one datacenter's peers, and its racks'; gateways are those
// of its peers that get remote peers (see "Choosing peers by place").
type dcIndex struct {
	placeList
	racks    map[string]*placeList
	gateways [][20]byte
}

func seederSide(seeder bool) int {
	if seeder {
		return 1
	}
	return 0
}

// entryOf returns the entry of the peer with id, which must be listed.
func (sw *swarm) entryOf(id [20]byte) *entry { return sw.at(sw.index[id]) }

// placeAdd lists e (just stored in the swarm) under its place.
func (sw *swarm) placeAdd(e *entry, seeder bool) {
	if !e.Place.Known() {
		return
	}
	s := seederSide(seeder)
	if sw.dcs == nil {
		sw.dcs = make(map[string]*dcIndex)
		sw.seeded = make(map[string]*dcIndex)
	}
	d := sw.dcs[e.Place.Datacenter]
	if d == nil {
		d = &dcIndex{}
		sw.dcs[e.Place.Datacenter] = d
	}
	e.pos[0] = int32(len(d.ids[s]))
	d.ids[s] = append(d.ids[s], e.ID)
	if seeder && len(d.ids[1]) == 1 {
		sw.seeded[e.Place.Datacenter] = d
	}
	if e.Place.Rack == "" {
		return
	}
	if d.racks == nil {
		d.racks = make(map[string]*placeList)
	}
	r := d.racks[e.Place.Rack]
	if r == nil {
		r = &placeList{}
		d.racks[e.Place.Rack] = r
	}
	e.pos[1] = int32(len(r.ids[s]))
	r.ids[s] = append(r.ids[s], e.ID)
}

// placeRemove takes e (still stored in the swarm) off the lists of its
// place.
func (sw *swarm) placeRemove(e *entry, seeder bool) {
	if !e.Place.Known() {
		return
	}
	s := seederSide(seeder)
	d := sw.dcs[e.Place.Datacenter]
	if i, ok := sw.gateways[e.ID]; ok {
		delete(sw.gateways, e.ID)
		last := int32(len(sw.gatewayList) - 1)
		if i != last {
			sw.gatewayList[i] = sw.gatewayList[last]
			sw.gateways[sw.gatewayList[i]] = i
		}
		sw.gatewayList = sw.gatewayList[:last]
		d.gateways = slices.DeleteFunc(d.gateways, func(id [20]byte) bool { return id == e.ID })
	}
	sw.cut(&d.ids[s], e.pos[0], 0)
	if seeder && len(d.ids[1]) == 0 {
		delete(sw.seeded, e.Place.Datacenter)
	}
	if e.Place.Rack != "" {
		r := d.racks[e.Place.Rack]
		sw.cut(&r.ids[s], e.pos[1], 1)
		if r.len() == 0 {
			delete(d.racks, e.Place.Rack)
		}
	}
	if d.len() == 0 {
		delete(sw.dcs, e.Place.Datacenter)
	}
}

// cut removes the id at i of *list, moving the last id into the hole and
// updating that peer's pos[level].
func (sw *swarm) cut(list *[][20]byte, i int32, level int) {
	l := *list
	last := int32(len(l) - 1)
	if i != last {
		l[i] = l[last]
		sw.entryOf(l[i]).pos[level] = i
	}
	*list = l[:last]
}

// pickByPlace appends to dst up to k peers for the peer self at p, a
// known place, as "Choosing peers by place" says: its rack, its
// datacenter, then RemoteWant remote peers. forSeeder leaves seeders out.
// It reports whether self becomes a gateway of its datacenter (the caller
// records it with setGateway once self is stored).
func (sw *swarm) pickByPlace(dst []Peer, k int, p Place, self [20]byte, forSeeder bool) ([]Peer, bool) {
	start := len(dst)
	d := sw.dcs[p.Datacenter]
	gateways, seeded := 0, false
	if d != nil {
		gateways, seeded = len(d.gateways), len(d.ids[1]) > 0
		if slot, ok := sw.index[self]; ok && slot < 0 && sw.at(slot).Place.Datacenter == p.Datacenter {
			seeded = len(d.ids[1]) > 1 // self does not count
		}
	}
	_, isGateway := sw.gateways[self]
	isGateway = isGateway && sw.entryOf(self).Place.Datacenter == p.Datacenter
	gateway := !forSeeder && !seeded && (isGateway || gateways < FirstPeers)
	becomes := gateway && !isGateway
	if d != nil {
		local := k
		if gateway {
			local = k - k/2 // the rest is for remote peers
		}
		if p.Rack != "" {
			if r := d.racks[p.Rack]; r != nil {
				dst = sw.pickList(dst, local, r, forSeeder, func(e *entry) bool { return e.ID != self })
			}
		}
		dst = sw.pickList(dst, local-(len(dst)-start), &d.placeList, forSeeder, func(e *entry) bool {
			return e.ID != self && (p.Rack == "" || e.Place.Rack != p.Rack)
		})
	}
	r := RemoteWant(k-(len(dst)-start), gateway)
	if r <= 0 {
		return dst, becomes
	}
	remote := func(e *entry) bool { return e.ID != self && e.Place.Datacenter != p.Datacenter }
	mark := len(dst)
	if !forSeeder {
		dst = pickRandom(dst, r, len(sw.seeders), func(i int) (Peer, bool) {
			e := &sw.seeders[i]
			return e.Peer, remote(e)
		})
	}
	dst = pickRandom(dst, r-(len(dst)-mark), len(sw.gatewayList), func(i int) (Peer, bool) {
		e := sw.entryOf(sw.gatewayList[i])
		return e.Peer, e.Place.Datacenter != p.Datacenter && sw.seeded[e.Place.Datacenter] == nil
	})
	for dc, d := range sw.seeded {
		if dc != p.Datacenter {
			dst = sw.pickList(dst, r-(len(dst)-mark), &d.placeList, true, remote)
		}
	}
	if len(dst) == mark {
		// No seeder and no gateway elsewhere: any remote peer.
		dst = pickRandom(dst, r, len(sw.leechers), func(i int) (Peer, bool) {
			e := &sw.leechers[i]
			return e.Peer, remote(e)
		})
	}
	return dst, becomes
}

// setGateway makes the stored peer id (of known place) a gateway of its
// datacenter.
func (sw *swarm) setGateway(id [20]byte) {
	e := sw.entryOf(id)
	d := sw.dcs[e.Place.Datacenter]
	d.gateways = append(d.gateways, id)
	if sw.gateways == nil {
		sw.gateways = make(map[[20]byte]int32)
	}
	sw.gateways[id] = int32(len(sw.gatewayList))
	sw.gatewayList = append(sw.gatewayList, id)
}

// pickList appends to dst up to k random peers of l that ok accepts,
// leechers only when leechersOnly is set.
func (sw *swarm) pickList(dst []Peer, k int, l *placeList, leechersOnly bool, ok func(*entry) bool) []Peer {
	n0, n := len(l.ids[0]), l.len()
	if leechersOnly {
		n = n0
	}
	return pickRandom(dst, k, n, func(i int) (Peer, bool) {
		var e *entry
		if i < n0 {
			e = sw.entryOf(l.ids[0][i])
		} else {
			e = sw.entryOf(l.ids[1][i-n0])
		}
		return e.Peer, ok(e)
	})
}

// pickRandom appends to dst up to k distinct items of the n that at
// gives, chosen at random among those it accepts. It draws at random while
// that finds accepted items, and scans the rest only when it does not, so
// a pick of k out of many takes about k draws.
func pickRandom(dst []Peer, k, n int, at func(i int) (Peer, bool)) []Peer {
	if k <= 0 || n <= 0 {
		return dst
	}
	start := len(dst)
	if n <= 2*k+8 {
		for i := range n {
			if p, ok := at(i); ok {
				dst = append(dst, p)
			}
		}
		out := dst[start:]
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return dst[:start+min(k, len(out))]
	}
	seen := make(map[int]struct{}, 2*k)
	for tries := 0; len(dst)-start < k && tries < 4*k+16; tries++ {
		i := rand.IntN(n)
		if _, dup := seen[i]; dup {
			continue
		}
		seen[i] = struct{}{}
		if p, ok := at(i); ok {
			dst = append(dst, p)
		}
	}
	if len(dst)-start == k || len(seen) == n {
		return dst
	}
	// Few accepted items: scan for the rest.
	mark := len(dst)
	for i := range n {
		if _, dup := seen[i]; !dup {
			if p, ok := at(i); ok {
				dst = append(dst, p)
			}
		}
	}
	out := dst[mark:]
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return dst[:mark+min(k-(mark-start), len(out))]
}
