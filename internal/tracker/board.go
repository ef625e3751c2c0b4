package tracker

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of a board: what a stranger announcing made-up torrents and peers
// can make the tracker keep for the live page.
const (
	// maxBoardSwarms bounds the swarms on the board; announces for more
	// torrents are tracked but not shown.
	maxBoardSwarms = 1024
	// maxBoardPeers bounds the peers on the board over all swarms: about
	// 400 bytes each, 40 MiB in all (bench/tracker at 100,000 peers).
	maxBoardPeers = 100_000
	// maxDeploys is how many finished deploys the board remembers.
	maxDeploys = 32
	// emptySwarmTTL is how long a swarm without peers stays on the board,
	// with its last deploy's chart.
	emptySwarmTTL = time.Hour
	// boardShards is the number of independently locked parts of the
	// board, so that announces of different torrents rarely wait for
	// each other.
	boardShards = 64
)

// board keeps what the live page, the JSON API and the per-torrent metrics
// show: each swarm's name and size, each peer's progress as its announces
// report it, and the deploys seen. A deploy of a swarm starts with the
// first announce of a peer that lacks something and ends when no such peer
// is left; its hosts are the peers that completed meanwhile. The board
// sees only the announces that reach this tracker process.
//
// Swarms are spread over shards by info hash; a peer is kept by value and
// times as integers, so that 100,000 peers give the garbage collector
// little to scan.
type board struct {
	peerTTL time.Duration // a peer that re-announces as asked stays this long

	npeers  atomic.Int64 // peers over all swarms, <= maxBoardPeers
	nswarms atomic.Int64 // swarms over all shards, <= maxBoardSwarms
	shards  [boardShards]boardShard

	dmu     sync.Mutex
	deploys []Deploy // finished deploys, oldest first, <= maxDeploys
}

type boardShard struct {
	mu     sync.Mutex
	swarms map[[20]byte]*boardSwarm
}

// boardSwarm is one swarm; its shard's mutex guards it.
type boardSwarm struct {
	name     string // from the allow directory, else the last name announced
	size     int64  // from the allow directory, else the largest left seen
	sizeKnow bool   // size comes from the torrent itself
	// peers holds the peers announcing, and those that stopped (gone),
	// which stay with their last progress until the swarm is dropped.
	peers    map[[20]byte]boardPeer
	leechers int   // peers not gone with left > 0
	gone     int   // peers gone
	last     int64 // unix nanoseconds of the last announce

	// The current deploy, or the last one when finished is set (unix
	// nanoseconds, 0 for none).
	started, finished int64
	done              []int64 // completions since started, <= maxBoardPeers
}

type boardPeer struct {
	addr                       netip.AddrPort
	left, uploaded, downloaded int64
	downRate, upRate           float64 // bytes/s between its last two announces
	first, last                int64   // unix nanoseconds
	gap                        int64   // longest regular re-announce gap, ns
	place                      Place
	gone                       bool // stopped, or missed two intervals
}

func newBoard(peerTTL time.Duration) *board {
	b := &board{peerTTL: peerTTL}
	for i := range b.shards {
		b.shards[i].swarms = make(map[[20]byte]*boardSwarm)
	}
	return b
}

func (b *board) shard(ih *[20]byte) *boardShard {
	return &b.shards[binary.LittleEndian.Uint32(ih[:4])%boardShards]
}

// record notes an announce that the store accepted, from addr in place at
// now. info, when ok, is the torrent's name and size from the allow
// directory.
func (b *board) record(a *AnnounceRequest, addr netip.AddrPort, place Place, info torrentInfo, now time.Time) {
	t := now.UnixNano()
	sh := b.shard(&a.InfoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sw := sh.swarms[a.InfoHash]
	if sw == nil {
		if a.Event == EventStopped || !b.makeRoomLocked(sh) {
			return
		}
		sw = &boardSwarm{peers: make(map[[20]byte]boardPeer)}
		sh.swarms[a.InfoHash] = sw
	}
	sw.last = t
	switch {
	case info.ok:
		sw.name, sw.size, sw.sizeKnow = info.name, info.size, true
	case a.Name != "":
		sw.name = a.Name
	}
	if !sw.sizeKnow {
		sw.size = max(sw.size, a.Left)
	}
	p, exists := sw.peers[a.PeerID]
	if a.Event == EventStopped {
		if exists && !p.gone {
			p.left, p.uploaded, p.downloaded, p.last = a.Left, a.Uploaded, a.Downloaded, t
			b.leaveLocked(a.InfoHash, sw, a.PeerID, p)
		}
		return
	}
	if exists && p.gone {
		// Back after it stopped: a new peer of the swarm.
		delete(sw.peers, a.PeerID)
		sw.gone--
		b.npeers.Add(-1)
		exists = false
	}
	if !exists {
		if b.npeers.Add(1) > maxBoardPeers {
			b.npeers.Add(-1)
			return
		}
		p = boardPeer{first: t}
		if a.Left > 0 {
			sw.leechers++
			sw.startLocked(t)
		}
		if a.Left == 0 && a.Event == EventCompleted {
			sw.completeLocked(t)
		}
	} else {
		if dt := float64(t-p.last) / 1e9; dt > 0 {
			p.downRate = max(float64(a.Downloaded-p.downloaded), 0) / dt
			p.upRate = max(float64(a.Uploaded-p.uploaded), 0) / dt
		}
		if a.Event == EventNone {
			p.gap = max(p.gap, min(t-p.last, int64(30*time.Minute)))
		}
		switch {
		case p.left > 0 && a.Left == 0:
			sw.leechers--
			sw.completeLocked(t)
		case p.left == 0 && a.Left > 0:
			sw.leechers++
			sw.startLocked(t)
		}
	}
	p.addr, p.last, p.place = addr, t, place
	p.left, p.uploaded, p.downloaded = a.Left, a.Uploaded, a.Downloaded
	sw.peers[a.PeerID] = p
	b.finishLocked(a.InfoHash, sw)
}

// startLocked starts a deploy at t unless one is under way.
func (sw *boardSwarm) startLocked(t int64) {
	if sw.started == 0 || sw.finished != 0 {
		sw.started, sw.finished, sw.done = t, 0, nil
	}
}

// completeLocked counts a host done at t in the deploy under way.
func (sw *boardSwarm) completeLocked(t int64) {
	if sw.started != 0 && sw.finished == 0 && len(sw.done) < maxBoardPeers {
		sw.done = append(sw.done, t)
	}
}

// makeRoomLocked makes room for one more swarm in sh, dropping its swarm
// without live peers that was announced longest ago when the board is
// full; it reports whether there is room.
func (b *board) makeRoomLocked(sh *boardShard) bool {
	if b.nswarms.Add(1) <= maxBoardSwarms {
		return true
	}
	b.nswarms.Add(-1)
	var oldest [20]byte
	var found *boardSwarm
	for ih, sw := range sh.swarms {
		if len(sw.peers) == sw.gone && (found == nil || sw.last < found.last) {
			oldest, found = ih, sw
		}
	}
	if found == nil {
		return false
	}
	b.npeers.Add(-int64(len(found.peers)))
	delete(sh.swarms, oldest)
	return true
}

// leaveLocked marks a peer gone: it stopped, or missed two intervals.
func (b *board) leaveLocked(ih [20]byte, sw *boardSwarm, id [20]byte, p boardPeer) {
	p.gone = true
	p.downRate, p.upRate = 0, 0
	sw.peers[id] = p
	sw.gone++
	if p.left > 0 {
		sw.leechers--
	}
	b.finishLocked(ih, sw)
}

// finishLocked ends the swarm's deploy when no peer lacks anything any
// more, and remembers it when a host completed.
func (b *board) finishLocked(ih [20]byte, sw *boardSwarm) {
	if sw.started == 0 || sw.finished != 0 || sw.leechers > 0 {
		return
	}
	if len(sw.done) == 0 {
		sw.started = 0 // nobody finished: no deploy to show
		return
	}
	sw.finished = sw.done[len(sw.done)-1]
	d := sw.deploy(ih, 0)
	b.dmu.Lock()
	if len(b.deploys) == maxDeploys {
		b.deploys = slices.Delete(b.deploys, 0, 1)
	}
	b.deploys = append(b.deploys, d)
	b.dmu.Unlock()
}

// sweep marks gone the peers that missed two of their announce
// intervals, and drops the swarms without a live peer for emptySwarmTTL.
func (b *board) sweep(now time.Time) {
	t := now.UnixNano()
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		for ih, sw := range sh.swarms {
			for id, p := range sw.peers {
				if p.gone {
					continue
				}
				ttl := max(int64(b.peerTTL), 2*p.gap)
				if p.gap == 0 {
					ttl = max(ttl, int64(2*clientGap(id)))
				}
				if t-p.last > ttl {
					b.leaveLocked(ih, sw, id, p)
				}
			}
			if len(sw.peers) == sw.gone && t-sw.last > int64(emptySwarmTTL) {
				b.npeers.Add(-int64(len(sw.peers)))
				b.nswarms.Add(-1)
				delete(sh.swarms, ih)
			}
		}
		sh.mu.Unlock()
	}
}

// deploy describes the swarm's current or last deploy; now (unix
// nanoseconds) ends one under way.
func (sw *boardSwarm) deploy(ih [20]byte, now int64) Deploy {
	d := Deploy{InfoHash: hex.EncodeToString(ih[:]), Name: sw.name, Size: sw.size, Started: time.Unix(0, sw.started).UTC(), Hosts: len(sw.done)}
	end := now
	if sw.finished != 0 {
		f := time.Unix(0, sw.finished).UTC()
		d.Finished, end = &f, sw.finished
	}
	d.Seconds = float64(end-sw.started) / 1e9
	return d
}

// summaryLocked describes the swarm; counts come from the board's peers.
func (sw *boardSwarm) summaryLocked(ih [20]byte, now int64) SwarmSummary {
	s := SwarmSummary{
		InfoHash:     hex.EncodeToString(ih[:]),
		Name:         sw.name,
		Size:         sw.size,
		Seeders:      len(sw.peers) - sw.gone - sw.leechers,
		Leechers:     sw.leechers,
		LastAnnounce: time.Unix(0, sw.last).UTC(),
	}
	var sum float64
	for _, p := range sw.peers {
		sum += p.progress(sw.size)
		s.DownloadRate += p.downRate // 0 for peers gone
		s.UploadRate += p.upRate
	}
	if len(sw.peers) > 0 {
		s.Progress = sum / float64(len(sw.peers))
	}
	if sw.started != 0 {
		d := sw.deploy(ih, now)
		s.Deploy = &d
	}
	return s
}

// progress is the share of the torrent the peer has, from 0 to 1.
func (p *boardPeer) progress(size int64) float64 {
	switch {
	case p.left == 0:
		return 1
	case size <= 0 || p.left >= size:
		return 0
	}
	return float64(size-p.left) / float64(size)
}

// list returns every swarm on the board, most recently announced first,
// and the deploys: those under way, then the finished ones, newest first.
func (b *board) list(now time.Time) ([]SwarmSummary, []Deploy) {
	t := now.UnixNano()
	var swarms []SwarmSummary
	var deploys []Deploy
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		for ih, sw := range sh.swarms {
			s := sw.summaryLocked(ih, t)
			swarms = append(swarms, s)
			if s.Deploy != nil && s.Deploy.Finished == nil {
				deploys = append(deploys, *s.Deploy)
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(swarms, func(x, y SwarmSummary) int {
		return cmp.Or(y.LastAnnounce.Compare(x.LastAnnounce), cmp.Compare(x.InfoHash, y.InfoHash))
	})
	slices.SortFunc(deploys, func(x, y Deploy) int { return y.Started.Compare(x.Started) })
	b.dmu.Lock()
	for i := len(b.deploys) - 1; i >= 0; i-- {
		deploys = append(deploys, b.deploys[i])
	}
	b.dmu.Unlock()
	return orEmpty(swarms), deploys
}

// swarm returns one swarm with its peers (sorted by place and address)
// and its deploy's completions over time, or false when it is not on the
// board.
func (b *board) swarm(ih [20]byte, now time.Time) (SwarmDetail, bool) {
	sh := b.shard(&ih)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sw := sh.swarms[ih]
	if sw == nil {
		return SwarmDetail{}, false
	}
	d := SwarmDetail{SwarmSummary: sw.summaryLocked(ih, now.UnixNano()), Peers: make([]PeerStatus, 0, len(sw.peers))}
	for id, p := range sw.peers {
		state := "downloading"
		switch {
		case p.gone:
			state = "stopped"
		case p.left == 0:
			state = "seeding"
		}
		d.Peers = append(d.Peers, PeerStatus{
			State:         state,
			PeerID:        hex.EncodeToString(id[:]),
			Address:       p.addr.String(),
			Datacenter:    p.place.Datacenter,
			Rack:          p.place.Rack,
			Seeder:        p.left == 0,
			Progress:      p.progress(sw.size),
			Left:          max(p.left, 0),
			Downloaded:    p.downloaded,
			Uploaded:      p.uploaded,
			DownloadRate:  p.downRate,
			UploadRate:    p.upRate,
			FirstAnnounce: time.Unix(0, p.first).UTC(),
			LastAnnounce:  time.Unix(0, p.last).UTC(),
		})
	}
	slices.SortFunc(d.Peers, func(x, y PeerStatus) int {
		return cmp.Or(cmp.Compare(x.Datacenter, y.Datacenter), cmp.Compare(x.Rack, y.Rack), cmp.Compare(x.Address, y.Address), cmp.Compare(x.PeerID, y.PeerID))
	})
	d.Done = make([]DonePoint, len(sw.done))
	for i, t := range sw.done {
		d.Done[i] = DonePoint{Seconds: float64(t-sw.started) / 1e9, Hosts: i + 1}
	}
	return d, true
}
