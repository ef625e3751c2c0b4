package tracker

import (
	"cmp"
	"encoding/hex"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Bounds of a board: what a stranger announcing made-up torrents and peers
// can make the tracker keep for the live page.
const (
	// maxBoardSwarms bounds the swarms on the board; announces for more
	// torrents are tracked but not shown.
	maxBoardSwarms = 1024
	// maxBoardPeers bounds the peers on the board over all swarms (about
	// 200 bytes each).
	maxBoardPeers = 100_000
	// maxDeploys is how many finished deploys the board remembers.
	maxDeploys = 32
	// emptySwarmTTL is how long a swarm without peers stays on the board,
	// with its last deploy's chart.
	emptySwarmTTL = time.Hour
)

// board keeps what the live page, the JSON API and the per-torrent metrics
// show: each swarm's name and size, each peer's progress as its announces
// report it, and the deploys seen. A deploy of a swarm starts with the
// first announce of a peer that lacks something and ends when no such peer
// is left; its hosts are the peers that completed meanwhile. The board
// sees only the announces that reach this tracker process.
type board struct {
	peerTTL time.Duration // a peer that re-announces as asked stays this long

	mu      sync.Mutex
	swarms  map[[20]byte]*boardSwarm
	npeers  int      // peers over all swarms, <= maxBoardPeers
	deploys []Deploy // finished deploys, oldest first, <= maxDeploys
}

type boardSwarm struct {
	name     string // from the allow directory, else the last name announced
	size     int64  // from the allow directory, else the largest left seen
	sizeKnow bool   // size comes from the torrent itself
	// peers holds the peers announcing, and those that stopped (gone),
	// which stay with their last progress until the swarm is dropped.
	peers    map[[20]byte]*boardPeer
	leechers int // peers not gone with left > 0
	gone     int // peers gone
	last     time.Time

	// The current deploy, or the last one when finished is set.
	started  time.Time
	finished time.Time
	done     []time.Time // completions since started, <= maxBoardPeers
}

type boardPeer struct {
	addr                       netip.AddrPort
	left, uploaded, downloaded int64
	downRate, upRate           float64 // bytes/s between its last two announces
	first, last                time.Time
	gap                        time.Duration // longest regular re-announce gap
	place                      Place
	gone                       bool // stopped, or missed two intervals
}

func newBoard(peerTTL time.Duration) *board {
	return &board{peerTTL: peerTTL, swarms: make(map[[20]byte]*boardSwarm)}
}

// record notes an announce that the store accepted, from addr in place at
// now.
// info, when ok, is the torrent's name and size from the allow directory.
func (b *board) record(a *AnnounceRequest, addr netip.AddrPort, place Place, info torrentInfo, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sw := b.swarms[a.InfoHash]
	if sw == nil {
		if a.Event == EventStopped || !b.makeRoomLocked(now) {
			return
		}
		sw = &boardSwarm{peers: make(map[[20]byte]*boardPeer)}
		b.swarms[a.InfoHash] = sw
	}
	sw.last = now
	switch {
	case info.ok:
		sw.name, sw.size, sw.sizeKnow = info.name, info.size, true
	case a.Name != "":
		sw.name = a.Name
	}
	if !sw.sizeKnow {
		sw.size = max(sw.size, a.Left)
	}
	p := sw.peers[a.PeerID]
	if a.Event == EventStopped {
		if p != nil && !p.gone {
			p.left, p.uploaded, p.downloaded, p.last = a.Left, a.Uploaded, a.Downloaded, now
			b.leaveLocked(a.InfoHash, sw, p, now)
		}
		return
	}
	if p != nil && p.gone {
		// Back after it stopped: a new peer of the swarm.
		delete(sw.peers, a.PeerID)
		sw.gone--
		b.npeers--
		p = nil
	}
	if p == nil {
		if b.npeers >= maxBoardPeers {
			return
		}
		p = &boardPeer{first: now, left: -1}
		sw.peers[a.PeerID] = p
		b.npeers++
		if a.Left > 0 {
			sw.leechers++
			if sw.started.IsZero() || !sw.finished.IsZero() {
				sw.started, sw.finished, sw.done = now, time.Time{}, nil
			}
		}
		if a.Left == 0 && a.Event == EventCompleted && !sw.started.IsZero() && sw.finished.IsZero() {
			sw.done = appendDone(sw.done, now)
		}
	} else {
		if dt := now.Sub(p.last).Seconds(); dt > 0 {
			p.downRate = max(float64(a.Downloaded-p.downloaded), 0) / dt
			p.upRate = max(float64(a.Uploaded-p.uploaded), 0) / dt
		}
		if a.Event == EventNone {
			p.gap = max(p.gap, min(now.Sub(p.last), 30*time.Minute))
		}
		switch {
		case p.left > 0 && a.Left == 0:
			sw.leechers--
			if !sw.started.IsZero() && sw.finished.IsZero() {
				sw.done = appendDone(sw.done, now)
			}
		case p.left == 0 && a.Left > 0:
			sw.leechers++
			if sw.started.IsZero() || !sw.finished.IsZero() {
				sw.started, sw.finished, sw.done = now, time.Time{}, nil
			}
		}
	}
	p.addr, p.last, p.place = addr, now, place
	p.left, p.uploaded, p.downloaded = a.Left, a.Uploaded, a.Downloaded
	b.finishLocked(a.InfoHash, sw, now)
}

func appendDone(done []time.Time, now time.Time) []time.Time {
	if len(done) >= maxBoardPeers {
		return done
	}
	return append(done, now)
}

// makeRoomLocked makes room for one more swarm, dropping the swarm without
// peers that was announced longest ago; it reports whether there is room.
func (b *board) makeRoomLocked(now time.Time) bool {
	if len(b.swarms) < maxBoardSwarms {
		return true
	}
	var oldest [20]byte
	var found *boardSwarm
	for ih, sw := range b.swarms {
		if len(sw.peers) == sw.gone && (found == nil || sw.last.Before(found.last)) {
			oldest, found = ih, sw
		}
	}
	if found == nil {
		return false
	}
	b.npeers -= len(found.peers)
	delete(b.swarms, oldest)
	return true
}

// leaveLocked marks a peer gone: it stopped, or missed two intervals.
func (b *board) leaveLocked(ih [20]byte, sw *boardSwarm, p *boardPeer, now time.Time) {
	p.gone = true
	p.downRate, p.upRate = 0, 0
	sw.gone++
	if p.left > 0 {
		sw.leechers--
	}
	b.finishLocked(ih, sw, now)
}

// finishLocked ends the swarm's deploy when no peer lacks anything any
// more, and remembers it when a host completed.
func (b *board) finishLocked(ih [20]byte, sw *boardSwarm, now time.Time) {
	if sw.started.IsZero() || !sw.finished.IsZero() || sw.leechers > 0 {
		return
	}
	if len(sw.done) == 0 {
		sw.started = time.Time{} // nobody finished: no deploy to show
		return
	}
	sw.finished = sw.done[len(sw.done)-1]
	if len(b.deploys) == maxDeploys {
		b.deploys = slices.Delete(b.deploys, 0, 1)
	}
	b.deploys = append(b.deploys, sw.deploy(ih, now))
}

// sweep marks gone the peers that missed two of their announce
// intervals, and drops the swarms without a live peer for emptySwarmTTL.
func (b *board) sweep(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ih, sw := range b.swarms {
		for id, p := range sw.peers {
			if p.gone {
				continue
			}
			ttl := max(b.peerTTL, 2*p.gap)
			if p.gap == 0 {
				ttl = max(ttl, 2*clientGap(id))
			}
			if now.Sub(p.last) > ttl {
				b.leaveLocked(ih, sw, p, now)
			}
		}
		if len(sw.peers) == sw.gone && now.Sub(sw.last) > emptySwarmTTL {
			b.npeers -= len(sw.peers)
			delete(b.swarms, ih)
		}
	}
}

// deploy describes the swarm's current or last deploy.
func (sw *boardSwarm) deploy(ih [20]byte, now time.Time) Deploy {
	d := Deploy{InfoHash: hex.EncodeToString(ih[:]), Name: sw.name, Size: sw.size, Started: sw.started, Hosts: len(sw.done)}
	end := now
	if !sw.finished.IsZero() {
		f := sw.finished
		d.Finished, end = &f, f
	}
	d.Seconds = end.Sub(sw.started).Seconds()
	return d
}

// summaryLocked describes the swarm; counts come from the board's peers.
func (sw *boardSwarm) summaryLocked(ih [20]byte, now time.Time) SwarmSummary {
	s := SwarmSummary{
		InfoHash:     hex.EncodeToString(ih[:]),
		Name:         sw.name,
		Size:         sw.size,
		Seeders:      len(sw.peers) - sw.gone - sw.leechers,
		Leechers:     sw.leechers,
		LastAnnounce: sw.last,
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
	if !sw.started.IsZero() {
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
	b.mu.Lock()
	defer b.mu.Unlock()
	swarms := make([]SwarmSummary, 0, len(b.swarms))
	var deploys []Deploy
	for ih, sw := range b.swarms {
		s := sw.summaryLocked(ih, now)
		swarms = append(swarms, s)
		if s.Deploy != nil && s.Deploy.Finished == nil {
			deploys = append(deploys, *s.Deploy)
		}
	}
	slices.SortFunc(swarms, func(x, y SwarmSummary) int {
		return cmp.Or(y.LastAnnounce.Compare(x.LastAnnounce), cmp.Compare(x.InfoHash, y.InfoHash))
	})
	slices.SortFunc(deploys, func(x, y Deploy) int { return y.Started.Compare(x.Started) })
	for i := len(b.deploys) - 1; i >= 0; i-- {
		deploys = append(deploys, b.deploys[i])
	}
	return swarms, deploys
}

// swarm returns one swarm with its peers (sorted by address) and its
// deploy's completions over time, or false when it is not on the board.
func (b *board) swarm(ih [20]byte, now time.Time) (SwarmDetail, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sw := b.swarms[ih]
	if sw == nil {
		return SwarmDetail{}, false
	}
	d := SwarmDetail{SwarmSummary: sw.summaryLocked(ih, now), Peers: make([]PeerStatus, 0, len(sw.peers))}
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
			FirstAnnounce: p.first,
			LastAnnounce:  p.last,
		})
	}
	slices.SortFunc(d.Peers, func(x, y PeerStatus) int {
		return cmp.Or(cmp.Compare(x.Datacenter, y.Datacenter), cmp.Compare(x.Rack, y.Rack), cmp.Compare(x.Address, y.Address), cmp.Compare(x.PeerID, y.PeerID))
	})
	d.Done = make([]DonePoint, len(sw.done))
	for i, t := range sw.done {
		d.Done[i] = DonePoint{Seconds: t.Sub(sw.started).Seconds(), Hosts: i + 1}
	}
	return d, true
}
