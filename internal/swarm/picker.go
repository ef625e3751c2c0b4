package swarm

import (
	"context"
	"crypto/sha1"
	"log/slog"
	"net/netip"
	"time"

	"github.com/murder-deploy/murder/internal/peerwire"
)

// peerKey names a peer for bad-data bookkeeping.
type peerKey struct {
	addr netip.AddrPort
	id   [20]byte
}

func (c *conn) key() peerKey { return peerKey{c.addr, c.id} }

// attempt is a failed download of a piece: each block's hash and source.
type attempt struct {
	hashes [][20]byte
	src    []peerKey
}

// piece is a piece being downloaded. Guarded by Swarm.mu.
type piece struct {
	index     int
	size      int
	nblocks   int
	buf       []byte // nil until its first block arrives (see buffer)
	bufp      *[]byte
	reqCount  []uint8 // outstanding requests per block
	got       []bool
	writing   []bool // a connection is reading this block straight into buf
	ngot      int
	src       []peerKey
	hint      int // no free block before this index
	verifying bool
	owner     *conn // after a failure the piece comes whole from one peer
	attempts  []attempt
	started   time.Time // first requested
}

// buffer returns p's buffer, taking one when its first block arrives: a
// piece that is only asked for holds no memory. At the start of a swarm a
// peer asks for far more pieces than arrive at once (every connection's
// whole pipeline), and buffers taken when asked for held the whole
// artifact of a small torrent on every host (bench/sim).
func (s *Swarm) buffer(p *piece) []byte {
	if p.bufp == nil {
		p.bufp = s.bufPool.Get().(*[]byte)
		p.buf = (*p.bufp)[:p.size]
	}
	return p.buf
}

func (p *piece) blockLen(b int) int {
	return min(peerwire.BlockSize, p.size-b*peerwire.BlockSize)
}

func (s *Swarm) startPiece(k int) *piece {
	size := int(s.info.PieceSize(k))
	nb := (size + peerwire.BlockSize - 1) / peerwire.BlockSize
	p := &piece{
		index: k, size: size, nblocks: nb,
		reqCount: make([]uint8, nb),
		got:      make([]bool, nb),
		writing:  make([]bool, nb),
		src:      make([]peerKey, nb),
		started:  s.clock.Now(),
	}
	s.pieces[k] = p
	s.active = append(s.active, p)
	s.want.Clear(k)
	return p
}

// downloading returns piece i if it is being downloaded, else nil; i
// comes from the wire and may be out of range.
func (s *Swarm) downloading(i uint32) *piece {
	if int64(i) < int64(len(s.pieces)) {
		return s.pieces[i]
	}
	return nil
}

// dropActive ends p's download; p is wanted again unless it was verified.
func (s *Swarm) dropActive(p *piece) {
	s.pieces[p.index] = nil
	if !s.have.Has(p.index) {
		s.want.Set(p.index)
	}
	for i, q := range s.active {
		if q == p {
			s.active = append(s.active[:i], s.active[i+1:]...)
			break
		}
	}
	if p.bufp != nil {
		s.bufPool.Put(p.bufp)
	}
	p.buf, p.bufp = nil, nil
}

// fill tops up c's request pipeline: first blocks of pieces in progress,
// then new pieces (random at first, then rarest-first with random
// tie-break), then in endgame blocks already requested from others.
//
// A connection keeps up to minHeadroom blocks out whatever else is out,
// and more only while the host's requests in flight on all its
// connections are within inFlightBudget (not in endgame, and not toward
// another datacenter, whose round trips are long). Every request a host
// keeps out waits in some uploader's queue: sixteen connections each
// keeping their pipeline full (two blocks, and 50 ms of their rate once
// rates are measured) queued 4 ms to 50 ms of blocks on every uploader,
// so each hop of a piece through the swarm took that long. With the
// budget, 100 simulated hosts with 64 MiB finish at 1.16x the bound
// instead of 1.18-1.23x (bench/sim/README.md).
//
// A seed that refused a piece within steerMemory is taken to be
// super-seeding (as murder's seeder does): it sends only pieces that no
// other peer has, so it is asked for nothing else meanwhile. Asked for
// anything, it refuses whatever another peer holds, and each refusal holds
// a slot of the pipeline to the seeder for a round trip: in a swarm of 32
// peers they numbered three for every block the seeder sent, and its link
// sent the artifact's last unique piece 0.4-0.6 s later than with this
// rule.
func (s *Swarm) fill(c *conn) {
	if c.closed || c.peerChoking || !c.amInterested || s.have.Full() {
		return
	}
	need := c.depth - len(c.reqs)
	if s.want.Count() > 0 && c.near.Load() != nearRemote {
		need = min(need, max(minHeadroom-len(c.reqs), s.inFlightBudget()-s.inFlight))
	}
	if need <= 0 {
		return
	}
	out := c.reqBuf[:0]
	now := s.clock.Now()
	steered := c.seed && now.Sub(c.steered) < steerMemory
	request := func(p *piece, b int) {
		k := blockKey{uint32(p.index), uint32(b * peerwire.BlockSize)}
		c.reqs[k] = now
		s.inFlight++
		p.reqCount[b]++
		out = peerwire.AppendMessage(out, peerwire.Message{ID: peerwire.Request, Index: k.index, Begin: k.begin, Length: uint32(p.blockLen(b))})
		need--
	}
	take := func(p *piece) {
		for b := p.hint; b < p.nblocks && need > 0; b++ {
			// A block another connection is receiving is not asked for
			// again: its copy would be thrown away.
			free := !p.got[b] && p.reqCount[b] == 0 && !p.writing[b]
			if b == p.hint {
				p.hint++
			}
			if free {
				request(p, b)
			}
		}
	}
	usable := func(p *piece) bool {
		if p.verifying || !c.bits.Has(p.index) || c.rejected[uint32(p.index)] || steered && s.avail[p.index] > 0 || !s.spareRemote(c, p.index) {
			return false
		}
		if p.attempts != nil {
			if p.owner == nil && p.ngot == 0 && !p.anyRequested() {
				p.owner = c
			}
			return p.owner == c
		}
		return true
	}
	for _, p := range s.active {
		if need <= 0 {
			break
		}
		if p.hint < p.nblocks && usable(p) {
			take(p)
		}
	}
	for need > 0 && len(s.active) < s.maxActive {
		k := s.pickNew(c, steered)
		if k < 0 {
			break
		}
		take(s.startPiece(k))
	}
	if need > 0 && s.want.Count() == 0 {
		// Endgame: every missing piece is in progress. Ask for blocks
		// others were asked for too; the first copy wins, the rest are
		// cancelled. Seeds are spared, their upload being the scarce one,
		// unless only a snubbed peer was asked. A connection holds at most
		// endgameDups such duplicates at a time, oldest pieces first: the
		// pipelines are deep, and duplicating every outstanding block
		// would spend a large share of the last seconds' bandwidth on
		// copies.
		need = min(need, endgameDups-s.dupsOf(c))
		for _, p := range s.active {
			if need <= 0 {
				break
			}
			if !usable(p) || p.owner != nil {
				continue
			}
			for b := 0; b < p.nblocks && need > 0; b++ {
				k := blockKey{uint32(p.index), uint32(b * peerwire.BlockSize)}
				if _, mine := c.reqs[k]; p.got[b] || p.writing[b] || mine || p.reqCount[b] >= 2 {
					continue
				}
				if c.seed && p.reqCount[b] > 0 && s.askedUnsnubbed(k) {
					continue
				}
				request(p, b)
			}
		}
	}
	c.send(out)
	c.reqBuf = out
}

// inFlightBudget is how many block requests the host keeps out on all
// its connections, beyond minHeadroom on each: the blocks inFlightWindow
// of its highest download rate holds, at least minInFlight.
func (s *Swarm) inFlightBudget() int {
	return max(minInFlight, int(s.peakDown*inFlightWindow.Seconds()/peerwire.BlockSize))
}

// dupsOf counts c's outstanding requests for blocks that were asked of
// another connection too.
func (s *Swarm) dupsOf(c *conn) int {
	n := 0
	for k := range c.reqs {
		if p := s.pieces[int(k.index)]; p != nil && p.reqCount[int(k.begin)/peerwire.BlockSize] >= 2 {
			n++
		}
	}
	return n
}

// askedUnsnubbed reports whether a peer that is not snubbed was asked for
// block k.
func (s *Swarm) askedUnsnubbed(k blockKey) bool {
	for o := range s.conns {
		if _, ok := o.reqs[k]; ok && !o.snubbed {
			return true
		}
	}
	return false
}

func (p *piece) anyRequested() bool {
	for _, n := range p.reqCount {
		if n > 0 {
			return true
		}
	}
	return false
}

// pickNew chooses a piece c has that nobody is fetching: at random for the
// first few pieces, rarest-first with random tie-break after. With
// unheld, only a piece no connected peer has.
func (s *Swarm) pickNew(c *conn, unheld bool) int {
	for len(c.suggested) > 0 {
		k := c.suggested[0]
		c.suggested = c.suggested[1:]
		if s.want.Has(k) && c.bits.Has(k) && (!unheld || s.avail[k] == 0) && s.spareRemote(c, k) {
			return k
		}
	}
	best, ties := -1, 0
	var bestAvail int32
	random := s.have.Count() < randomFirst
	remote := c.near.Load() == nearRemote
	if remote {
		s.updateSharesLocked()
	}
	for k := s.want.NextAnd(c.bits, 0); k >= 0; k = s.want.NextAnd(c.bits, k+1) {
		if len(c.rejected) > 0 && c.rejected[uint32(k)] || unheld && s.avail[k] > 0 || !s.spareRemote(c, k) {
			continue
		}
		a := s.avail[k]
		if random {
			a = 0
		}
		// Of a remote peer, this datacenter's share first (place.go).
		a *= 2
		if remote && !s.ownsLocked(k) {
			a++
		}
		switch {
		case best < 0 || a < bestAvail:
			best, bestAvail, ties = k, a, 1
		case a == bestAvail:
			ties++
			if s.rng.IntN(ties) == 0 {
				best = k
			}
		}
	}
	return best
}

// release forgets c's request for block k. With cancel, a cancel message
// is sent.
func (s *Swarm) release(c *conn, k blockKey, cancel bool) {
	t, ok := c.reqs[k]
	if !ok {
		return
	}
	delete(c.reqs, k)
	s.inFlight--
	if p := s.pieces[int(k.index)]; p != nil {
		b := int(k.begin) / peerwire.BlockSize
		if p.reqCount[b] > 0 {
			p.reqCount[b]--
		}
		if p.reqCount[b] == 0 && !p.got[b] && b < p.hint {
			p.hint = b
		}
		if cancel {
			c.sendMsg(peerwire.Message{ID: peerwire.Cancel, Index: k.index, Begin: k.begin, Length: uint32(p.blockLen(b))})
		}
	}
	_ = t
}

// releaseAll returns every outstanding request of c to the picker. A
// piece c was to deliver whole starts over with another peer.
func (s *Swarm) releaseAll(c *conn, cancel bool) {
	for k := range c.reqs {
		s.release(c, k, cancel)
	}
	for _, p := range s.active {
		if p.owner == c && !p.verifying {
			p.owner = nil
			s.resetPiece(p)
		}
	}
}

// resetPiece forgets the blocks received for p and cancels every request
// for it.
func (s *Swarm) resetPiece(p *piece) {
	for c := range s.conns {
		for b := range p.nblocks {
			k := blockKey{uint32(p.index), uint32(b * peerwire.BlockSize)}
			if _, ok := c.reqs[k]; ok {
				s.release(c, k, true)
			}
		}
	}
	clear(p.got)
	clear(p.src)
	clear(p.reqCount)
	p.ngot, p.hint = 0, 0
}

// blockBuffer is the decoder's BlockBuffer for c: it lets a block c is
// about to receive be read straight into its piece's buffer, claiming it
// so no other connection writes there meanwhile.
func (s *Swarm) blockBuffer(c *conn, index, begin uint32, n int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.downloading(index)
	if p == nil || p.verifying || begin%peerwire.BlockSize != 0 {
		return nil
	}
	b := int(begin) / peerwire.BlockSize
	if b >= p.nblocks || n != p.blockLen(b) || p.got[b] || p.writing[b] || (p.attempts != nil && p.owner != c) || !c.requested(index, begin) {
		return nil
	}
	p.writing[b] = true
	c.claim, c.claimBlock, c.claimAt = p, b, s.clock.Now()
	return s.buffer(p)[begin : int(begin)+n]
}

// dropClaim ends c's claim on a block (after it arrived or the
// connection failed).
func (s *Swarm) dropClaim(c *conn) {
	if c.claim == nil {
		return
	}
	p, b := c.claim, c.claimBlock
	c.claim = nil
	p.writing[b] = false
	if !p.got[b] && p.reqCount[b] == 0 && b < p.hint {
		p.hint = b
	}
}

// onPiece stores a received block and hands a completed piece to the
// verifiers.
func (s *Swarm) onPiece(c *conn, m *peerwire.Message) {
	k := blockKey{m.Index, m.Begin}
	now := s.clock.Now()
	_, requested := c.reqs[k]
	if !requested {
		s.dropUnrequested(c, m)
		return
	}
	rtt := now.Sub(c.reqs[k])
	if c.minRTT == 0 || rtt < c.minRTT {
		c.minRTT = rtt
	}
	// The request is answered even when the block is no good (a wrong
	// length): it must not hold the block as asked for.
	s.release(c, k, false)
	c.lastBlock = now
	if c.snubbed {
		c.snubbed = false
		c.updateDepth()
	}
	c.gotBytes += int64(len(m.Block))
	claim, claimBlock := c.claim, c.claimBlock
	c.claim = nil
	if claim != nil {
		claim.writing[claimBlock] = false
	}
	p := s.downloading(m.Index)
	b := int(m.Begin) / peerwire.BlockSize
	valid := p != nil && !p.verifying && m.Begin%peerwire.BlockSize == 0 && b < p.nblocks && len(m.Block) == p.blockLen(b)
	direct := valid && claim == p && claimBlock == b
	if !valid || p.got[b] || (p.attempts != nil && p.owner != c) || (!direct && p.writing[b]) {
		if valid && !p.got[b] && p.reqCount[b] == 0 && b < p.hint {
			p.hint = b
		}
		s.fill(c)
		return
	}
	if !direct {
		copy(s.buffer(p)[m.Begin:], m.Block)
	}
	p.got[b] = true
	p.ngot++
	p.src[b] = c.key()
	if p.reqCount[b] > 0 {
		// Endgame duplicates: cancel them.
		for o := range s.conns {
			if _, ok := o.reqs[k]; ok && o != c {
				s.release(o, k, true)
			}
		}
	}
	if p.ngot == p.nblocks {
		p.verifying = true
		s.verifyCh <- verifyJob{p: p, buf: p.buf, suspect: p.attempts != nil}
	}
	s.fill(c)
}

// verifier hashes completed pieces and writes the good ones.
func (s *Swarm) verifier(ctx context.Context, fail func(error)) {
	for {
		var j verifyJob
		select {
		case <-ctx.Done():
			return
		case j = <-s.verifyCh:
		}
		ok := s.checkPiece(j.p.index, j.buf)
		var err error
		if ok {
			err = s.st.WritePiece(j.p.index, j.buf)
			if err == nil && s.cfg.Verified != nil {
				s.cfg.Verified(j.p.index)
			}
		}
		var hashes [][20]byte
		if !ok || j.suspect {
			hashes = blockHashes(j.buf)
		}
		if err != nil {
			fail(err)
			return
		}
		s.pieceDone(j.p, ok, hashes)
	}
}

// checkPiece reports whether data is piece k: the engine hashes every
// piece itself, whatever its Store.
func (s *Swarm) checkPiece(k int, data []byte) bool {
	sum := sha1.Sum(data)
	return int64(len(data)) == s.info.PieceSize(k) && sum == s.info.PieceHash(k)
}

func blockHashes(b []byte) [][20]byte {
	var out [][20]byte
	for off := 0; off < len(b); off += peerwire.BlockSize {
		out = append(out, sha1.Sum(b[off:min(off+peerwire.BlockSize, len(b))]))
	}
	return out
}

// sources counts the peers p's blocks came from.
func (p *piece) sources() int {
	srcs := map[peerKey]bool{}
	for _, k := range p.src {
		srcs[k] = true
	}
	return len(srcs)
}

// pieceDone records a verified piece, or bookkeeps a failed one.
func (s *Swarm) pieceDone(p *piece, ok bool, hashes [][20]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		s.log.Warn("piece failed verification", "piece", p.index)
		if p.sources() == 1 {
			s.ban(p.src[0], p.index)
		} else {
			p.attempts = append(p.attempts, attempt{hashes: hashes, src: append([]peerKey(nil), p.src...)})
		}
		p.verifying, p.owner = false, nil
		s.resetPiece(p)
		for c := range s.conns {
			s.fill(c)
		}
		return
	}
	for _, a := range p.attempts {
		for b, h := range a.hashes {
			if b < len(hashes) && h != hashes[b] {
				s.ban(a.src[b], p.index)
			}
		}
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		// How long pieces take to spread: bench/fleet -trace reads these
		// lines and the seeder's "piece sent first".
		s.log.Debug("piece verified", "piece", p.index, "from", p.src[0].addr, "sources", p.sources(),
			"wait", s.clock.Now().Sub(p.started).Round(time.Millisecond))
	}
	s.have.Set(p.index)
	s.dropActive(p)
	now := s.clock.Now()
	if !s.lastPiece.IsZero() {
		s.pieceGap = (3*s.pieceGap + now.Sub(s.lastPiece)) / 4
	}
	s.lastPiece = now
	s.bytesDone += int64(p.size)
	full := s.have.Full()
	have := peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Have, Index: uint32(p.index)})
	for c := range s.conns {
		// A peer that has the piece does not need to hear of it, except
		// a seed: a super-seeding one learns from haves which of its
		// pieces spread. In a swarm whose peers all hold about the same
		// pieces this halves the haves.
		if !c.bits.Has(p.index) || c.seed {
			c.sendLater(have)
		}
		if full {
			s.setInterested(c, false)
		}
	}
	s.flushLater()
	if full {
		s.log.Info("download complete", "bytes", s.total)
		s.completedAt = s.clock.Now()
		close(s.complete)
		s.poke()
		return
	}
	// A verified piece makes nothing new to ask for, unless it frees a
	// place among the pieces in flight or, in endgame, lets connections
	// ask for duplicates again. Filling every connection after every
	// piece cost a swarm CPU in proportion to its connections: in a
	// simulated swarm of 40 hosts a fifth of the engine's time.
	if len(s.active)+1 >= s.maxActive || s.want.Count() == 0 {
		for c := range s.conns {
			s.fill(c)
		}
	}
}

// ban drops every connection with the peer's IP address and refuses the
// address from now on, whatever port or peer id it comes back with.
func (s *Swarm) ban(k peerKey, piece int) {
	ip := k.addr.Addr()
	if s.bannedAddrs[ip] {
		return
	}
	s.log.Warn("banning peer address for bad data", "peer", k.addr, "piece", piece)
	s.bannedAddrs[ip] = true
	s.nbanned++
	for c := range s.conns {
		if c.addr.Addr() == ip {
			c.nc.Close()
		}
	}
}
