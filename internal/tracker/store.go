package tracker

import (
	"context"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// Peer is one peer of a swarm as the store hands it out.
type Peer struct {
	ID   [20]byte
	Addr netip.AddrPort
}

// PeerAnnounce is one announce as the server passes it to a Store.
type PeerAnnounce struct {
	InfoHash [20]byte
	Peer     Peer
	// Seeder is true when the peer has the whole torrent (left=0).
	Seeder bool
	// Event is "", "started", "completed" or "stopped".
	Event string
	// NumWant is how many other peers to return.
	NumWant int
}

// Store keeps the swarms of a tracker. Announce records a's peer (or removes
// it on the stopped event) and appends to dst up to a.NumWant other peers of
// the swarm, a random sample that never holds the announcing peer and holds
// no seeders when the announcing peer is a seeder. Scrape returns the counts
// of the given torrents, or of every torrent when none is given; a torrent
// the store does not know is left out. A download counts as completed when
// a known leecher announces that it has everything, whatever the event, or
// when an unknown peer announces the completed event.
type Store interface {
	Announce(ctx context.Context, a *PeerAnnounce, dst []Peer) ([]Peer, ScrapeStats, error)
	Scrape(ctx context.Context, infoHashes [][20]byte) (map[[20]byte]ScrapeStats, error)
}

// MemStoreConfig configures a MemStore. The zero value works.
type MemStoreConfig struct {
	// Shards is the number of independently locked shards, rounded up to a
	// power of two; 0 means 64.
	Shards int
	// PeerTTL is how long a peer stays without announcing again; 0 means
	// two default intervals (30 s).
	PeerTTL time.Duration
	// TorrentTTL is how long a torrent without peers keeps its count of
	// completed downloads; 0 means 24 hours.
	TorrentTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// MemStore is the in-memory Store. Torrents are spread over shards by info
// hash, so announces for different torrents rarely contend. Peers that do
// not announce again within PeerTTL are dropped by Sweep (which Run calls
// periodically).
type MemStore struct {
	shards []memShard
	mask   uint32
	ttl    time.Duration
	keep   time.Duration
	now    func() time.Time
}

type memShard struct {
	mu     sync.Mutex
	swarms map[[20]byte]*swarm
	_      [40]byte // keep shards' locks on separate cache lines
}

// swarm is one torrent's peers: seeders and leechers in separate slices so
// that sampling for a seeder touches only leechers. index maps a peer id to
// its slot: i >= 0 is leechers[i], i < 0 is seeders[-i-1].
type swarm struct {
	seeders    []entry
	leechers   []entry
	index      map[[20]byte]int32
	downloaded int
	lastSeen   int64 // unix nanoseconds of the last announce
}

type entry struct {
	Peer
	expires int64 // unix nanoseconds
}

// NewMemStore returns an empty MemStore.
func NewMemStore(cfg MemStoreConfig) *MemStore {
	n := cfg.Shards
	if n <= 0 {
		n = 64
	}
	n = 1 << bits.Len(uint(n-1))
	s := &MemStore{shards: make([]memShard, n), mask: uint32(n - 1), ttl: cfg.PeerTTL, now: cfg.Now}
	if s.ttl <= 0 {
		s.ttl = 2 * DefaultInterval
	}
	s.keep = cfg.TorrentTTL
	if s.keep <= 0 {
		s.keep = 24 * time.Hour
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i := range s.shards {
		s.shards[i].swarms = make(map[[20]byte]*swarm)
	}
	return s
}

func (s *MemStore) shard(ih *[20]byte) *memShard {
	return &s.shards[binary.LittleEndian.Uint32(ih[:4])&s.mask]
}

// Announce implements Store.
func (s *MemStore) Announce(_ context.Context, a *PeerAnnounce, dst []Peer) ([]Peer, ScrapeStats, error) {
	now := s.now()
	expires := now.Add(s.ttl).UnixNano()
	sh := s.shard(&a.InfoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sw := sh.swarms[a.InfoHash]
	if sw == nil {
		if a.Event == EventStopped {
			return dst, ScrapeStats{}, nil
		}
		sw = &swarm{index: make(map[[20]byte]int32)}
		sh.swarms[a.InfoHash] = sw
	}
	sw.lastSeen = now.UnixNano()
	slot, exists := sw.index[a.Peer.ID]
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
		}
		return dst, st, nil
	}
	self := -1
	if exists {
		self = sw.poolIndex(slot)
	}
	dst = sw.sample(dst, a.NumWant, a.Seeder, self)

	wasSeeder := exists && slot < 0
	e := entry{Peer: a.Peer, expires: expires}
	switch {
	case !exists:
		sw.add(e, a.Seeder)
	case wasSeeder == a.Seeder:
		*sw.at(slot) = e
	default:
		sw.remove(slot)
		sw.add(e, a.Seeder)
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

// Sweep drops the peers whose time ran out before now, and the torrents left
// without peers, except those with completed downloads, which are kept for
// TorrentTTL after their last announce so that scrape still counts them.
func (s *MemStore) Sweep(now time.Time) {
	t := now.UnixNano()
	forget := now.Add(-s.keep).UnixNano()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for ih, sw := range sh.swarms {
			sw.expire(t)
			if sw.empty() && (sw.downloaded == 0 || sw.lastSeen < forget) {
				delete(sh.swarms, ih)
			}
		}
		sh.mu.Unlock()
	}
}

// Run sweeps every quarter of PeerTTL until ctx is done, so a peer is gone
// at most 1.25 PeerTTL after its last announce. It returns nil.
func (s *MemStore) Run(ctx context.Context) error {
	t := time.NewTicker(max(s.ttl/4, 10*time.Millisecond))
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

// Len returns the number of torrents and peers the store holds.
func (s *MemStore) Len() (torrents, peers int) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		torrents += len(sh.swarms)
		for _, sw := range sh.swarms {
			peers += len(sw.seeders) + len(sw.leechers)
		}
		sh.mu.Unlock()
	}
	return torrents, peers
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
		return
	}
	sw.leechers = append(sw.leechers, e)
	sw.index[e.ID] = int32(len(sw.leechers) - 1)
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
	delete(sw.index, l[i].ID)
	last := len(l) - 1
	if i != last {
		l[i] = l[last]
		sw.index[l[i].ID] = slot
	}
	l[last] = entry{}
	*list = l[:last]
}

func (sw *swarm) expire(now int64) {
	for i := len(sw.seeders) - 1; i >= 0; i-- {
		if sw.seeders[i].expires < now {
			sw.remove(-int32(i) - 1)
		}
	}
	for i := len(sw.leechers) - 1; i >= 0; i-- {
		if sw.leechers[i].expires < now {
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
