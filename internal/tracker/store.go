package tracker

import (
	"context"
	"encoding/binary"
	"errors"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the caps of a store whose config leaves them zero.
const (
	// DefaultMaxTorrents caps the torrents a store holds.
	DefaultMaxTorrents = 100_000
	// DefaultMaxPeers caps the peers of one torrent.
	DefaultMaxPeers = 100_000
)

// Errors a Store returns for an announce it refuses; the server answers
// each with a failure reason and counts it.
var (
	// ErrStoreFull refuses a new torrent when the store holds as many as
	// it may.
	ErrStoreFull = errors.New("tracker: store holds too many torrents")
	// ErrSwarmFull refuses a new peer of a torrent that has as many as it
	// may.
	ErrSwarmFull = errors.New("tracker: torrent has too many peers")
	// ErrNotOwner refuses an announce that would change or remove a peer
	// listed by another client (see PeerAnnounce.Owner).
	ErrNotOwner = errors.New("tracker: peer id is held by another client")
)

// Peer is one peer of a swarm as the store hands it out.
type Peer struct {
	ID   [20]byte
	Addr netip.AddrPort
	// Place is where the peer runs; the zero Place when it is unknown.
	Place Place
}

// PeerAnnounce is one announce as the server passes it to a Store.
type PeerAnnounce struct {
	InfoHash [20]byte
	// Peer.Place is the announcing peer's place: the one it announced,
	// else the one the tracker's topology gives its address, else unknown.
	Peer Peer
	// Seeder is true when the peer has the whole torrent (left=0).
	Seeder bool
	// Event is "", "started", "completed" or "stopped".
	Event string
	// NumWant is how many other peers to return.
	NumWant int
	// Owner names who may change or remove the peer's entry while it is
	// listed: an announce for the same peer id with another Owner is
	// refused with ErrNotOwner. The server derives it from the announce's
	// key (BEP 7) or, without a key, from its source address (see
	// ownerOf).
	Owner uint64
}

// Store keeps the swarms of a tracker. Announce records a's peer with its
// place (or removes it on the stopped event) and appends to dst up to
// a.NumWant other peers of the swarm, chosen by place as described under
// "Choosing peers by place" in place.go: never the announcing peer, no
// seeders when the announcing peer is a seeder, and a uniform random sample
// when the announcing peer's place is unknown. Scrape returns the counts
// of the given torrents, or of every torrent when none is given; a torrent
// the store does not know is left out. A download counts as completed when
// a known leecher announces that it has everything, whatever the event, or
// when an unknown peer announces the completed event to a known torrent.
//
// A store never creates a torrent for the completed or stopped event of
// a peer it does not list (it answers with no peers and zero counts); it
// refuses a new torrent beyond its cap with ErrStoreFull, a new peer of a
// full torrent with ErrSwarmFull, and an announce for a listed peer whose
// Owner differs with ErrNotOwner, leaving the peer as it was. An entry
// whose time ran out may be taken over.
type Store interface {
	Announce(ctx context.Context, a *PeerAnnounce, dst []Peer) ([]Peer, ScrapeStats, error)
	Scrape(ctx context.Context, infoHashes [][20]byte) (map[[20]byte]ScrapeStats, error)
}

// MemStoreConfig configures a MemStore. The zero value works.
type MemStoreConfig struct {
	// Shards is the number of independently locked shards, rounded up to a
	// power of two; 0 means 64.
	Shards int
	// PeerTTL is how long a peer stays without announcing again when it
	// re-announces at least as often as the tracker asks: two intervals;
	// 0 means two default intervals (30 s). A peer known to re-announce at
	// a longer gap stays twice that gap instead (see MemStore).
	PeerTTL time.Duration
	// MaxGap caps the re-announce gap the store learns for a peer, and is
	// how long it remembers a dropped peer's last announce; 0 means 30
	// minutes. No peer stays longer than 2 MaxGap without announcing.
	MaxGap time.Duration
	// TorrentTTL is how long a torrent without peers keeps its count of
	// completed downloads; 0 means 24 hours.
	TorrentTTL time.Duration
	// MaxTorrents caps the torrents the store holds: an announce for a new
	// torrent beyond it fails with ErrStoreFull. 0 means
	// DefaultMaxTorrents.
	MaxTorrents int
	// MaxPeers caps the peers of one torrent: a new peer beyond it fails
	// with ErrSwarmFull. 0 means DefaultMaxPeers.
	MaxPeers int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// MemStore is the in-memory Store. Torrents are spread over shards by info
// hash, so announces for different torrents rarely contend.
//
// A peer is dropped (by Sweep, which Run calls periodically) when it misses
// two of its announce intervals: when it has not announced for
// max(PeerTTL, 2 G), where G is the longest gap between its regular
// announces (those without an event) that the store has seen. A peer that
// honours the tracker's interval re-announces within it, so G changes
// nothing for it; a client that re-announces less often than asked (such as
// libtorrent, which waits at least 300 s whatever the interval) stays listed
// between its announces instead of vanishing for most of each gap.
// Announces with an event come off the client's schedule (a completed
// download, a restart), so they never set G, and a gap never makes G
// smaller: a client's occasional early announce does not get it dropped
// before its next regular one.
//
// Until a peer's second announce G is unknown and the peer stays PeerTTL,
// except when its peer id names a client known to re-announce no more
// often than every 300 s (libtorrent and the clients built on it, see
// clientGap): those stay 600 s. A dropped peer's last announce is kept for
// MaxGap, so a peer that was dropped because it re-announces late is
// recognised when it does, and its gap is learned from then on.
type MemStore struct {
	shards []memShard
	mask   uint32
	ttl    int64 // nanoseconds
	maxGap int64 // nanoseconds
	keep   time.Duration
	now    func() time.Time

	maxTorrents, maxPeers int
	torrents              atomic.Int64 // swarms in all shards
}

type memShard struct {
	mu     sync.Mutex
	swarms map[[20]byte]*swarm
	gone   map[peerKey]gonePeer // dropped peers, for MaxGap
	_      [32]byte             // keep shards' locks on separate cache lines
}

// peerKey names a peer of a torrent.
type peerKey struct{ infoHash, id [20]byte }

// gonePeer is what the store remembers of a peer it dropped.
type gonePeer struct{ last, gap int64 }

// maxGone bounds the dropped peers a shard remembers, so that announces
// under ever new peer ids cannot grow the store for MaxGap.
const maxGone = 4096

// swarm is one torrent's peers: seeders and leechers in separate slices so
// that sampling for a seeder touches only leechers. index maps a peer id to
// its slot: i >= 0 is leechers[i], i < 0 is seeders[-i-1].
type swarm struct {
	seeders    []entry
	leechers   []entry
	index      map[[20]byte]int32
	downloaded int
	lastSeen   int64 // unix nanoseconds of the last announce
	// dcs lists the peers of known place by datacenter, and seeded those
	// datacenters that hold a seeder; gatewayList lists every datacenter's
	// gateways, and gateways maps each to its index there (see
	// placestore.go).
	dcs, seeded map[string]*dcIndex
	gateways    map[[20]byte]int32
	gatewayList [][20]byte
}

type entry struct {
	Peer
	last int64    // unix nanoseconds of its last announce
	gap  int64    // longest gap between its regular announces, ns; 0 when unknown
	pos  [2]int32 // where it is in its datacenter's and rack's lists
	// owner is the Owner of the announce that listed the peer.
	owner uint64
}

// NewMemStore returns an empty MemStore.
func NewMemStore(cfg MemStoreConfig) *MemStore {
	n := cfg.Shards
	if n <= 0 {
		n = 64
	}
	n = 1 << bits.Len(uint(n-1))
	s := &MemStore{shards: make([]memShard, n), mask: uint32(n - 1), ttl: int64(cfg.PeerTTL), maxGap: int64(cfg.MaxGap), now: cfg.Now}
	if s.ttl <= 0 {
		s.ttl = int64(2 * DefaultInterval)
	}
	if s.maxGap <= 0 {
		s.maxGap = int64(30 * time.Minute)
	}
	s.keep = cfg.TorrentTTL
	if s.keep <= 0 {
		s.keep = 24 * time.Hour
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.maxTorrents, s.maxPeers = cfg.MaxTorrents, cfg.MaxPeers
	if s.maxTorrents <= 0 {
		s.maxTorrents = DefaultMaxTorrents
	}
	if s.maxPeers <= 0 {
		s.maxPeers = DefaultMaxPeers
	}
	for i := range s.shards {
		s.shards[i].swarms = make(map[[20]byte]*swarm)
		s.shards[i].gone = make(map[peerKey]gonePeer)
	}
	return s
}

func (s *MemStore) shard(ih *[20]byte) *memShard {
	return &s.shards[binary.LittleEndian.Uint32(ih[:4])&s.mask]
}

// Announce implements Store.
func (s *MemStore) Announce(_ context.Context, a *PeerAnnounce, dst []Peer) ([]Peer, ScrapeStats, error) {
	now := s.now().UnixNano()
	sh := s.shard(&a.InfoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var gone gonePeer
	var wasGone bool
	if len(sh.gone) > 0 {
		key := peerKey{a.InfoHash, a.Peer.ID}
		if gone, wasGone = sh.gone[key]; wasGone {
			delete(sh.gone, key)
			wasGone = now-gone.last <= s.maxGap
		}
	}
	sw := sh.swarms[a.InfoHash]
	if sw == nil {
		if a.Event == EventStopped || a.Event == EventCompleted {
			return dst, ScrapeStats{}, nil
		}
		if s.torrents.Add(1) > int64(s.maxTorrents) {
			s.torrents.Add(-1)
			return dst, ScrapeStats{}, ErrStoreFull
		}
		sw = &swarm{index: make(map[[20]byte]int32)}
		sh.swarms[a.InfoHash] = sw
	}
	slot, exists := sw.index[a.Peer.ID]
	if exists {
		if e := sw.at(slot); e.owner != a.Owner {
			if now-e.last <= s.lifetime(e) {
				return dst, sw.stats(), ErrNotOwner
			}
			sw.remove(slot) // its time ran out: the id is free
			exists = false
		}
	}
	if !exists && a.Event != EventStopped && len(sw.seeders)+len(sw.leechers) >= s.maxPeers {
		return dst, sw.stats(), ErrSwarmFull
	}
	sw.lastSeen = now
	if a.Event == EventStopped {
		if exists {
			if slot >= 0 && a.Seeder {
				sw.downloaded++ // finished and left at once, as aria2c does
			}
			sw.remove(slot)
		}
		st := sw.stats()
		if sw.empty() && sw.downloaded == 0 {
			delete(sh.swarms, a.InfoHash)
			s.torrents.Add(-1)
		}
		return dst, st, nil
	}
	gateway := false
	if a.Peer.Place.Known() {
		dst, gateway = sw.pickByPlace(dst, a.NumWant, a.Peer.Place, a.Peer.ID, a.Seeder)
	} else {
		self := -1
		if exists {
			self = sw.poolIndex(slot)
		}
		dst = sw.sample(dst, a.NumWant, a.Seeder, self)
	}

	wasSeeder := exists && slot < 0
	e := entry{Peer: a.Peer, last: now, owner: a.Owner}
	switch {
	case exists:
		old := sw.at(slot)
		e.gap = s.learn(old.gap, old.last, now, a.Event)
	case wasGone:
		e.gap = s.learn(gone.gap, gone.last, now, a.Event)
	}
	switch {
	case !exists:
		sw.add(e, a.Seeder)
	case wasSeeder == a.Seeder && sw.at(slot).Place == e.Place:
		e.pos = sw.at(slot).pos
		*sw.at(slot) = e
	default:
		sw.remove(slot)
		sw.add(e, a.Seeder)
	}
	if gateway {
		sw.setGateway(a.Peer.ID)
	}
	if a.Seeder && (exists && !wasSeeder || !exists && a.Event == EventCompleted) {
		sw.downloaded++
	}
	return dst, sw.stats(), nil
}

// Scrape implements Store.
func (s *MemStore) Scrape(_ context.Context, infoHashes [][20]byte) (map[[20]byte]ScrapeStats, error) {
	out := make(map[[20]byte]ScrapeStats, len(infoHashes))
	if len(infoHashes) > 0 {
		for i := range infoHashes {
			ih := &infoHashes[i]
			sh := s.shard(ih)
			sh.mu.Lock()
			if sw := sh.swarms[*ih]; sw != nil {
				out[*ih] = sw.stats()
			}
			sh.mu.Unlock()
		}
		return out, nil
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for ih, sw := range sh.swarms {
			out[ih] = sw.stats()
		}
		sh.mu.Unlock()
	}
	return out, nil
}

// learn returns a peer's gap after a regular announce at now, given its
// gap and last announce before: the longer of the two gaps, capped at
// MaxGap. Announces with an event leave the gap as it was.
func (s *MemStore) learn(gap, last, now int64, event string) int64 {
	if event != EventNone {
		return gap
	}
	return max(gap, min(now-last, s.maxGap))
}

// lifetime is how long e stays without announcing: two of its intervals.
func (s *MemStore) lifetime(e *entry) int64 {
	gap := e.gap
	if gap == 0 {
		gap = min(int64(clientGap(e.ID)), s.maxGap)
	}
	return max(s.ttl, 2*gap)
}

// Sweep drops the peers whose time ran out before now (remembering their
// last announce for MaxGap), and the torrents left without peers, except
// those with completed downloads, which are kept for TorrentTTL after their
// last announce so that scrape still counts them.
func (s *MemStore) Sweep(now time.Time) {
	t := now.UnixNano()
	forget := now.Add(-s.keep).UnixNano()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, g := range sh.gone {
			if t-g.last > s.maxGap {
				delete(sh.gone, k)
			}
		}
		for ih, sw := range sh.swarms {
			sw.expire(t, s.lifetime, func(e *entry) {
				if len(sh.gone) < maxGone {
					sh.gone[peerKey{ih, e.ID}] = gonePeer{last: e.last, gap: e.gap}
				}
			})
			if sw.empty() && (sw.downloaded == 0 || sw.lastSeen < forget) {
				delete(sh.swarms, ih)
				s.torrents.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
}

// Run sweeps every quarter of PeerTTL until ctx is done, so a peer is gone
// at most a quarter of PeerTTL after its time ran out. It returns nil.
func (s *MemStore) Run(ctx context.Context) error {
	t := time.NewTicker(max(time.Duration(s.ttl)/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.Sweep(s.now())
		}
	}
}

// Counts is how much a store holds.
type Counts struct {
	// Torrents counts the torrents the store knows: those with peers, and
	// those kept for their count of completed downloads.
	Torrents int
	// Peers counts every peer of every torrent; Seeders those of them that
	// have the whole torrent.
	Peers, Seeders int
}

// Counts returns how many torrents, peers and seeders the store holds,
// without copying them.
func (s *MemStore) Counts() Counts {
	var c Counts
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		c.Torrents += len(sh.swarms)
		for _, sw := range sh.swarms {
			c.Peers += len(sw.seeders) + len(sw.leechers)
			c.Seeders += len(sw.seeders)
		}
		sh.mu.Unlock()
	}
	return c
}

func (sw *swarm) stats() ScrapeStats {
	return ScrapeStats{Complete: len(sw.seeders), Incomplete: len(sw.leechers), Downloaded: sw.downloaded}
}

func (sw *swarm) empty() bool { return len(sw.seeders) == 0 && len(sw.leechers) == 0 }

func (sw *swarm) at(slot int32) *entry {
	if slot < 0 {
		return &sw.seeders[-slot-1]
	}
	return &sw.leechers[slot]
}

// poolIndex maps a slot to its place in the virtual list seeders ++ leechers.
func (sw *swarm) poolIndex(slot int32) int {
	if slot < 0 {
		return int(-slot - 1)
	}
	return len(sw.seeders) + int(slot)
}

func (sw *swarm) add(e entry, seeder bool) {
	if seeder {
		sw.seeders = append(sw.seeders, e)
		sw.index[e.ID] = -int32(len(sw.seeders))
		sw.placeAdd(&sw.seeders[len(sw.seeders)-1], true)
		return
	}
	sw.leechers = append(sw.leechers, e)
	sw.index[e.ID] = int32(len(sw.leechers) - 1)
	sw.placeAdd(&sw.leechers[len(sw.leechers)-1], false)
}

// remove deletes the peer at slot, moving the last peer of its list into
// the hole.
func (sw *swarm) remove(slot int32) {
	list := &sw.leechers
	i := int(slot)
	if slot < 0 {
		list, i = &sw.seeders, int(-slot-1)
	}
	l := *list
	sw.placeRemove(&l[i], slot < 0)
	delete(sw.index, l[i].ID)
	last := len(l) - 1
	if i != last {
		l[i] = l[last]
		sw.index[l[i].ID] = slot
	}
	l[last] = entry{}
	*list = l[:last]
}

// expire removes the peers whose lifetime ran out before now, passing each
// to dropped first.
func (sw *swarm) expire(now int64, lifetime func(*entry) int64, dropped func(*entry)) {
	for i := len(sw.seeders) - 1; i >= 0; i-- {
		if e := &sw.seeders[i]; now-e.last > lifetime(e) {
			dropped(e)
			sw.remove(-int32(i) - 1)
		}
	}
	for i := len(sw.leechers) - 1; i >= 0; i-- {
		if e := &sw.leechers[i]; now-e.last > lifetime(e) {
			dropped(e)
			sw.remove(int32(i))
		}
	}
}

// sample appends up to k random peers to dst: leechers only for a seeder,
// seeders and leechers otherwise, never the peer at pool index self.
func (sw *swarm) sample(dst []Peer, k int, forSeeder bool, self int) []Peer {
	base, n := 0, len(sw.seeders)+len(sw.leechers)
	if forSeeder {
		base = len(sw.seeders)
	}
	if self < base {
		self = -1 // not in the pool
	}
	m := n - base
	if self >= 0 {
		m--
	}
	k = min(k, m)
	if k <= 0 {
		return dst
	}
	peerAt := func(i int) Peer {
		j := base + i
		if self >= 0 && j >= self {
			j++
		}
		if j < len(sw.seeders) {
			return sw.seeders[j].Peer
		}
		return sw.leechers[j-len(sw.seeders)].Peer
	}
	start := len(dst)
	switch {
	case k == m:
		for i := range m {
			dst = append(dst, peerAt(i))
		}
		out := dst[start:]
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	case 2*k >= m:
		// Partial Fisher-Yates over the pool's indices.
		var small [1024]int32
		var idx []int32
		if m <= len(small) {
			idx = small[:m]
		} else {
			idx = make([]int32, m)
		}
		for i := range idx {
			idx[i] = int32(i)
		}
		for i := range k {
			j := i + rand.IntN(m-i)
			idx[i], idx[j] = idx[j], idx[i]
			dst = append(dst, peerAt(int(idx[i])))
		}
	default:
		// Floyd's algorithm: k distinct indices out of m in O(k).
		var small [64]int32
		var chosen []int32
		var seen map[int32]struct{}
		if k <= len(small) {
			chosen = small[:0]
		} else {
			seen = make(map[int32]struct{}, k)
		}
		has := func(t int32) bool {
			if seen != nil {
				_, ok := seen[t]
				return ok
			}
			for _, c := range chosen {
				if c == t {
					return true
				}
			}
			return false
		}
		for j := m - k; j < m; j++ {
			t := int32(rand.IntN(j + 1))
			if has(t) {
				t = int32(j)
			}
			if seen != nil {
				seen[t] = struct{}{}
			} else {
				chosen = append(chosen, t)
			}
			dst = append(dst, peerAt(int(t)))
		}
	}
	return dst
}

// slowClientGap is the re-announce gap of libtorrent (rasterbar): its
// min_announce_interval setting defaults to 300 s, and it waits that long
// between announces whatever interval the tracker sends.
const slowClientGap = 300 * time.Second

// clientGap returns the re-announce gap that the client named by a peer
// id (the Azureus style of BEP 20) is known to keep, or 0 when the id says
// nothing about it: libtorrent ("-LT") and qBittorrent ("-qB") and Deluge
// ("-DE"), which are built on it, wait slowClientGap.
func clientGap(id [20]byte) time.Duration {
	switch string(id[:3]) {
	case "-LT", "-qB", "-DE":
		return slowClientGap
	}
	return 0
}
