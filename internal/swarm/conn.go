package swarm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/murder-deploy/murder/internal/peerwire"
	"github.com/murder-deploy/murder/internal/storage"
)

type blockKey struct {
	index uint32
	begin uint32
}

type upload struct {
	index, begin, length uint32
}

// conn is one peer connection. Fields below mu are guarded by Swarm.mu;
// the write queue by wmu.
type conn struct {
	s        *Swarm
	nc       net.Conn
	addr     netip.AddrPort
	listen   netip.AddrPort // where the peer listens (BEP 10 "p"), when known
	id       [20]byte
	fast     bool
	ext      bool
	outgoing bool
	lastRecv atomic.Int64 // unix nanos
	// near is where the peer is seen from here (nearRack ... nearUnknown);
	// changed under Swarm.mu, read without it when counting bytes.
	near atomic.Int32

	// guarded by Swarm.mu
	bits           *storage.Bitfield
	seed           bool
	gotFirst       bool
	amChoking      bool
	amInterested   bool
	peerChoking    bool
	peerInterested bool
	reqs           map[blockKey]time.Time
	maxReqs        int
	depth          int
	rate           float64
	gotBytes       int64
	lastBlock      time.Time
	minRTT         time.Duration
	snubbed        bool
	rejected       map[uint32]bool   // pieces the peer refused; cleared now and then
	steered        time.Time         // when a seed last refused a piece (see fill)
	suggested      []int             // pieces the peer suggested (BEP 6)
	assigned       *storage.Bitfield // super-seeding: pieces we sent or are sending it
	closed         bool
	joined         uint64 // register's count when it took the connection in
	bumped         bool   // closed to make room (bumpLocked)
	claim          *piece // block being read straight into a piece buffer
	claimBlock     int
	claimAt        time.Time // when the claimed block started to arrive

	// write queue
	wmu     sync.Mutex
	ctrl    []byte
	uploads []upload // pending from uhead on
	uhead   int
	hdr     [peerwire.PieceHeaderLen]byte
	reqBuf  []byte // scratch for request batches, guarded by Swarm.mu
	wclosed bool
	wsig    chan struct{}
}

// serveConn runs a connection to ip, for which admit or dialPending
// took a slot (perIP, and halfOpen for an accepted one), until it ends.
func (s *Swarm) serveConn(ctx context.Context, nc net.Conn, ip netip.Addr, outgoing bool) {
	defer nc.Close()
	defer s.dropIP(ip)
	ap := remoteAddrPort(nc)
	c := s.newConn(nc, ap, outgoing)
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		setNotSentLowat(tc, notSentLowat)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()

	br := newReadBuffer(nc, s.cfg.ReadBuffer)
	ph, err := s.handshake(nc, br, outgoing)
	if !outgoing {
		s.handshaken()
	}
	if err != nil {
		s.log.Debug("handshake", "peer", ap, "err", err)
		return
	}
	c.id = ph.PeerID
	c.fast = ph.Fast()
	c.ext = ph.Extended()
	if ph.PeerID == s.peerID {
		s.mu.Lock()
		if outgoing {
			s.self[ap] = true
		}
		s.mu.Unlock()
		return
	}
	c.lastRecv.Store(s.clock.Now().UnixNano())
	dec := peerwire.NewDecoder(br, 0)
	var first []peerwire.Message
	if place := s.placeFirst(c); place || s.seedFirst(c) {
		nc.SetReadDeadline(s.clock.Now().Add(handshakeTimeout))
		if first, err = s.readFirst(c, dec, place); err != nil {
			s.log.Debug("first messages", "peer", ap, "err", err)
			return
		}
		nc.SetReadDeadline(time.Time{})
	}
	if !s.register(c, first) {
		return
	}
	s.log.Debug("connected", "peer", ap, "outgoing", outgoing, "fast", c.fast, "ext", c.ext)

	var wg sync.WaitGroup
	wg.Go(func() { c.writeLoop(ctx) })
	err = c.readLoop(ctx, dec, first)
	s.unregister(c)
	c.closeWriter()
	nc.Close()
	wg.Wait()
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("peer closed", "peer", ap, "err", err)
	}
}

// newConn returns the state of a connection with a peer at ap, before
// its handshake.
func (s *Swarm) newConn(nc net.Conn, ap netip.AddrPort, outgoing bool) *conn {
	return &conn{
		s: s, nc: nc, addr: ap, outgoing: outgoing,
		amChoking: true, peerChoking: true,
		reqs:     make(map[blockKey]time.Time),
		maxReqs:  defaultReqq,
		depth:    64,
		rejected: make(map[uint32]bool),
		wsig:     make(chan struct{}, 1),
	}
}

// register adds c to the swarm and queues its first messages; first
// are the messages serveConn read from it before.
func (s *Swarm) register(c *conn, first []peerwire.Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.outgoing {
		delete(s.dialing, c.addr) // its place among the connections is c's now
	}
	if s.closing || s.bannedAddrs[c.addr.Addr()] || !s.roomForLocked(s.nearLocked(c.addr.Addr()), !c.outgoing) {
		return false
	}
	replaced := false
	for o := range s.conns {
		if o.id != c.id {
			continue
		}
		// Two peers that dialed each other at once: both keep the
		// connection dialed by the lower peer id.
		lowerDials := bytes.Compare(s.peerID[:], c.id[:]) < 0
		if c.outgoing == lowerDials && o.outgoing != lowerDials {
			o.nc.Close()
			replaced = true
			break
		}
		return false
	}
	if !replaced && len(s.conns) >= s.cfg.MaxConns && !(c.outgoing && s.seedSays(first) && s.bumpLocked()) {
		return false
	}
	s.joins++
	c.joined = s.joins
	c.bits = storage.NewBitfield(s.numPieces)
	c.assigned = storage.NewBitfield(s.numPieces)
	c.near.Store(s.nearLocked(c.addr.Addr()))
	c.lastBlock = s.clock.Now()
	s.conns[c] = struct{}{}
	var b []byte
	switch {
	case c.fast && s.have.Full():
		b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.HaveAll})
	case c.fast && s.have.Count() == 0:
		b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.HaveNone})
	case s.have.Count() > 0:
		b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.Bitfield, Bitfield: s.have.Bytes()})
	}
	if c.ext {
		if p, err := (peerwire.ExtHandshake{V: s.cfg.ClientName, Reqq: ourReqq, P: s.listenPort(), Place: s.place.String()}).Marshal(); err == nil {
			b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.Extended, ExtID: peerwire.ExtHandshakeID, Payload: p})
		}
	}
	c.send(b)
	return true
}

// seedFirst reports whether serveConn should read the first message of
// c before taking it in: this host dialed it, and its places are full,
// but a seed takes one anyway (register, bumpLocked). A peer with the
// fast extension must send its bitfield, have all or have none at once.
func (s *Swarm) seedFirst(c *conn) bool {
	if !c.outgoing || !c.fast {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) >= s.cfg.MaxConns
}

// seedSays reports whether a peer's first messages say it is a seed.
func (s *Swarm) seedSays(first []peerwire.Message) bool {
	if len(first) == 0 {
		return false
	}
	switch m := first[0]; m.ID {
	case peerwire.HaveAll:
		return true
	case peerwire.Bitfield:
		bf, err := storage.ParseBitfield(m.Bitfield, s.numPieces)
		return err == nil && bf.Full()
	}
	return false
}

// bumpLocked closes the connection that dialed in last, not a seed nor
// already bumped, to make room for a seed this host dialed, and reports
// whether there was one. A dial holds a place among the connections when
// it starts, but peers that dial in meanwhile may take it. The seed has
// taken in the connection the dial made, and its places are few: at a
// deploy's start every peer dials at once, and when peers whose places
// had filled closed their connections to the seeder, the seeder's places
// went to connections that closed at once while it turned away peers
// that would have stayed; 100 simulated hosts with 8 MiB ran on 7 of its
// 16 connections (its limit then; DefaultSeedConns now), at 2.1x the bound
// instead of 1.4x (bench/sim/README.md, step 14). Only a seed bumps: making room for every dialed connection
// left a late peer in 1,000 simulated hosts with 64 MiB, the last at
// 1.26x the bound instead of 1.20x.
func (s *Swarm) bumpLocked() bool {
	var last *conn
	for o := range s.conns {
		if !o.outgoing && !o.seed && !o.bumped && (last == nil || o.joined > last.joined) {
			last = o
		}
	}
	if last == nil {
		return false
	}
	last.bumped = true
	last.nc.Close()
	return true
}

func (s *Swarm) unregister(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	s.dropClaim(c)
	delete(s.conns, c)
	for k := range s.numPieces {
		if !c.seed && c.bits.Has(k) {
			s.addAvailLocked(c, k, -1)
		}
		if s.assignedTo != nil && c.assigned.Has(k) {
			s.assignedTo[k]--
		}
		if s.offers != nil && s.offers[k].c == c {
			s.offers[k] = offer{}
		}
	}
	if c.seed {
		s.addSeedLocked(c, -1)
	}
	s.releaseAll(c, false)
	if !s.closing {
		for o := range s.conns {
			s.fill(o)
		}
		if len(s.deferred) > 0 {
			s.pending = append(s.pending, s.deferred...)
			s.deferred = s.deferred[:0]
			s.poke()
		}
	}
}

// send queues encoded messages.
func (c *conn) send(b []byte) {
	if len(b) == 0 {
		return
	}
	c.wmu.Lock()
	if !c.wclosed {
		c.ctrl = append(c.ctrl, b...)
	}
	c.wmu.Unlock()
	c.signal()
}

// sendLater queues encoded messages that can wait a little: they go out
// with the connection's next write, or at the swarm's next flush
// (flushLater). Haves are sent this way. A peer tells every connection of
// every piece it gets, so haves outnumber blocks many times over (16 to 1
// in a swarm of 32); sent at once, each was a write, a packet through both
// hosts' stacks and a wakeup of the reader, and in a swarm of 16 peers on
// two cores that took a fifth of the CPU time. Each flush still wakes the
// writers, and then the readers at the other end: flushing every 40 ms
// instead of every 10 ms cut the CPU time of such a swarm by a sixth, with
// the same transfer times (requests are pipelined for 250 ms ahead).
func (c *conn) sendLater(b []byte) {
	c.wmu.Lock()
	if !c.wclosed {
		c.ctrl = append(c.ctrl, b...)
	}
	c.wmu.Unlock()
}

// flushLater has the writers of connections with messages from sendLater
// write them out after a while: the time haveBatch pieces take to arrive
// at the recent rate, between minHaveDelay and haveDelay. A have waits
// for the next few, not for a fixed time: at 64 Mbit/s and 32 KiB pieces
// that is about 30 ms, as the 40 ms that was measured to save CPU; at
// 1 Gbit/s it is 2 ms, where 40 ms, a hop of every piece through the swarm
// waiting that long for its haves, put a simulated swarm of 300 hosts and
// 8 MiB at 3.5 times its bound (bench/sim/README.md). Called with Swarm.mu
// held.
func (s *Swarm) flushLater() {
	if s.flushArmed {
		return
	}
	s.flushArmed = true
	wait := min(max(haveBatch*s.pieceGap, minHaveDelay), haveDelay)
	s.clock.AfterFunc(wait, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.flushArmed = false
		for c := range s.conns {
			c.wmu.Lock()
			pending := len(c.ctrl) > 0
			c.wmu.Unlock()
			if pending {
				c.signal()
			}
		}
	})
}

func (c *conn) sendMsg(m peerwire.Message) {
	var buf [32]byte
	c.send(peerwire.AppendMessage(buf[:0], m))
}

func (c *conn) signal() {
	select {
	case c.wsig <- struct{}{}:
	default:
	}
}

func (c *conn) closeWriter() {
	c.wmu.Lock()
	c.wclosed = true
	c.wmu.Unlock()
	c.signal()
}

// queueUpload queues a block for sending; false when the queue is full.
func (c *conn) queueUpload(u upload) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	pending := len(c.uploads) - c.uhead
	if c.wclosed || pending >= ourReqq+64 {
		return false
	}
	if c.uhead > 0 && len(c.uploads) == cap(c.uploads) {
		n := copy(c.uploads, c.uploads[c.uhead:])
		c.uploads, c.uhead = c.uploads[:n], 0
	}
	c.uploads = append(c.uploads, u)
	if pending == 0 {
		c.signal()
	}
	return true
}

// cancelUpload removes a queued block; false when it was not queued.
func (c *conn) cancelUpload(u upload) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for i := c.uhead; i < len(c.uploads); i++ {
		if c.uploads[i] == u {
			c.uploads = append(c.uploads[:i], c.uploads[i+1:]...)
			return true
		}
	}
	return false
}

// writeLoop drains the write queue: control messages first, then one
// block at a time, flushing when the queue is empty.
func (c *conn) writeLoop(ctx context.Context) {
	s := c.s
	bw := bufio.NewWriterSize(c.nc, s.cfg.WriteBuffer)
	tcp, _ := c.nc.(*net.TCPConn)
	var spare []byte
	var blockBuf []byte
	keepAlive := s.clock.NewTimer(keepAliveEvery)
	defer keepAlive.Stop()
	corked := false
	fail := func() { c.nc.Close() }
	for {
		c.wmu.Lock()
		closed := c.wclosed
		ctrl := c.ctrl
		c.ctrl = spare[:0]
		var u upload
		hasUp := false
		if c.uhead < len(c.uploads) && !closed {
			u = c.uploads[c.uhead]
			c.uhead++
			if c.uhead == len(c.uploads) {
				c.uploads, c.uhead = c.uploads[:0], 0
			}
			hasUp = true
		}
		c.wmu.Unlock()
		if closed {
			return
		}
		if len(ctrl) > 0 {
			if _, err := bw.Write(ctrl); err != nil {
				fail()
				return
			}
		}
		spare = ctrl
		if hasUp && s.pace != nil {
			if t := s.pace.enter(int(u.length)); t != nil {
				// The block waits for its turn with nothing held back,
				// so that what is written meanwhile goes out at once.
				ok := bw.Flush() == nil
				if corked {
					setCork(tcp, false)
					corked = false
				}
				if !ok || !c.waitTurn(ctx, bw, t) {
					s.pace.leave(t)
					fail()
					return
				}
			}
		}
		if hasUp {
			if tcp != nil && !corked && bw.Available() < peerwire.PieceHeaderLen+int(u.length) {
				// The batch outgrows the buffer: hold back partial
				// segments until it is written.
				setCork(tcp, true)
				corked = true
			}
			if err := c.writeBlock(bw, &blockBuf, u); err != nil {
				s.log.Debug("upload", "peer", c.addr, "err", err)
				fail()
				return
			}
			continue
		}
		if len(ctrl) > 0 {
			continue
		}
		if bw.Buffered() > 0 {
			if err := bw.Flush(); err != nil {
				fail()
				return
			}
		}
		if corked {
			setCork(tcp, false)
			corked = false
		}
		if !keepAlive.Stop() {
			select {
			case <-keepAlive.C():
			default:
			}
		}
		keepAlive.Reset(keepAliveEvery)
		select {
		case <-c.wsig:
		case <-keepAlive.C():
			if _, err := bw.Write([]byte{0, 0, 0, 0}); err != nil {
				fail()
				return
			}
		}
	}
}

// waitTurn waits for a block's turn t on the host's link (pacer),
// writing the control messages queued meanwhile; false when the
// connection or the swarm closed first.
func (c *conn) waitTurn(ctx context.Context, bw *bufio.Writer, t *turn) bool {
	var ctrl []byte
	for {
		select {
		case <-t.ch:
			return true
		case <-ctx.Done():
			return false
		case <-c.wsig:
		}
		c.wmu.Lock()
		closed := c.wclosed
		ctrl, c.ctrl = c.ctrl, ctrl[:0]
		c.wmu.Unlock()
		if closed {
			return false
		}
		if len(ctrl) == 0 {
			continue
		}
		if _, err := bw.Write(ctrl); err != nil {
			return false
		}
		if err := bw.Flush(); err != nil {
			return false
		}
	}
}

// writeBlock appends a piece message to bw, reading the block from storage
// straight into bw's free space when it fits there. Uploads are copied
// through user space on purpose: on loopback and veth links a 16 KiB
// sendfile(2) per block, with a write for its 13-byte header, cost the
// seeder 40% more CPU than 128 KiB writes of header and block together,
// and the receiver paid for the page-sized fragments too (1 GiB moved at
// 1040 against 1150 MiB/s).
func (c *conn) writeBlock(bw *bufio.Writer, blockBuf *[]byte, u upload) error {
	s := c.s
	n := int(u.length)
	off := int64(u.index)*s.info.PieceLength + int64(u.begin)
	msgLen := peerwire.PieceHeaderLen + n
	if bw.Available() < msgLen && msgLen <= bw.Size() {
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	if b := bw.AvailableBuffer(); cap(b) >= msgLen {
		b = peerwire.AppendPieceHeader(b, u.index, u.begin, n)[:msgLen]
		if _, err := s.st.ReadAt(b[peerwire.PieceHeaderLen:], off); err != nil {
			return err
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
	} else {
		if cap(*blockBuf) < n {
			*blockBuf = make([]byte, n)
		}
		b := (*blockBuf)[:n]
		if _, err := s.st.ReadAt(b, off); err != nil {
			return err
		}
		if _, err := bw.Write(peerwire.AppendPieceHeader(c.hdr[:0], u.index, u.begin, n)); err != nil {
			return err
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	s.uploaded.Add(int64(n))
	return nil
}

// readLoop handles first, the messages read before c was registered, then
// decodes messages until the connection fails.
func (c *conn) readLoop(ctx context.Context, dec *peerwire.Decoder, first []peerwire.Message) error {
	s := c.s
	for i := range first {
		if err := s.handle(c, &first[i]); err != nil {
			return err
		}
	}
	dec.BlockBuffer = func(index, begin uint32, n int) []byte { return s.blockBuffer(c, index, begin, n) }
	for {
		m, err := dec.Decode()
		if err != nil {
			return err
		}
		c.lastRecv.Store(s.clock.Now().UnixNano())
		if m.KeepAlive {
			continue
		}
		if m.ID == peerwire.Piece {
			s.downloaded.Add(int64(len(m.Block)))
			s.received[c.near.Load()].Add(int64(len(m.Block)))
			if s.downLimit != nil {
				if err := s.downLimit.WaitN(ctx, len(m.Block)); err != nil {
					return err
				}
			}
		}
		if err := s.handle(c, &m); err != nil {
			return err
		}
	}
}
