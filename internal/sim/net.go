package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Link is one host's network link.
type Link struct {
	// Up and Down cap what the host sends and receives, in bytes per
	// second; 0 means no limit.
	Up, Down int64
	// Latency delays every segment that arrives at the host, so the round
	// trip between two hosts with the same Latency is twice this value.
	Latency time.Duration
}

// Segments and windows of the simulated connections.
const (
	// segmentSize is the most one segment carries: the unit in which
	// links are paced.
	segmentSize = 16 << 10
	// minWindow is the least a connection may have in flight each way,
	// sent but not yet read by the other end. Real sockets hold about
	// this much unsent (the engine sets TCP_NOTSENT_LOWAT to 64 KiB)
	// plus what the congestion window lets through.
	minWindow = 64 << 10
)

var (
	errRefused = errors.New("sim: connection refused")
	errReset   = errors.New("sim: connection reset by peer")
	errNoHost  = errors.New("sim: no route to host")
)

// Network is an in-memory network of hosts. Every byte a connection
// carries is paced through the sending host's uplink, the links between
// datacenters when the hosts are in different ones, and the receiving
// host's downlink, each a first-in first-out queue served at its rate,
// and is delayed by the receiver's latency. Under testing/synctest the
// time is the bubble's, so a transfer of an hour takes as long as the CPU
// work it causes.
type Network struct {
	ctx   context.Context
	wg    sync.WaitGroup // the links' goroutines
	mu    sync.Mutex
	hosts map[netip.Addr]*Host
	dcs   []*Datacenter
	pool  sync.Pool // segment buffers
	segs  sync.Pool // segments
	// reads and writes count the connections' Read and Write calls, the
	// system calls a host would make on a real network.
	reads, writes atomic.Int64
}

// Calls returns how many reads and writes the connections took so far.
func (n *Network) Calls() (reads, writes int64) { return n.reads.Load(), n.writes.Load() }

// NewNetwork returns an empty network whose links serve until ctx ends.
func NewNetwork(ctx context.Context) *Network {
	n := &Network{ctx: ctx, hosts: make(map[netip.Addr]*Host)}
	n.pool.New = func() any { b := make([]byte, segmentSize); return &b }
	n.segs.New = func() any { return new(segment) }
	return n
}

// Wait waits for the links to stop once the network's context is done.
func (n *Network) Wait() { n.wg.Wait() }

// Datacenter is a group of hosts joined to the other datacenters by a WAN
// link of its own, each way.
type Datacenter struct {
	Name    string
	in, out *link
}

// AddDatacenter adds a datacenter whose WAN link carries wan bytes per
// second each way (0: no limit).
func (n *Network) AddDatacenter(name string, wan int64) *Datacenter {
	d := &Datacenter{Name: name, in: n.newLink(wan), out: n.newLink(wan)}
	n.mu.Lock()
	n.dcs = append(n.dcs, d)
	n.mu.Unlock()
	return d
}

// BytesIn returns the bytes that entered d over its WAN link.
func (d *Datacenter) BytesIn() int64 { return d.in.bytes.Load() }

// BytesOut returns the bytes that left d over its WAN link.
func (d *Datacenter) BytesOut() int64 { return d.out.bytes.Load() }

// Host is one host of a Network. It implements swarm.Network.
type Host struct {
	n        *Network
	addr     netip.Addr
	dc       *Datacenter
	link     Link
	up, down *link

	mu        sync.Mutex
	listeners map[uint16]*listener
	nextPort  uint16
}

// AddHost adds a host with address addr in datacenter dc (nil: none).
func (n *Network) AddHost(addr netip.Addr, dc *Datacenter, l Link) (*Host, error) {
	h := &Host{n: n, addr: addr, dc: dc, link: l, up: n.newLink(l.Up), down: n.newLink(l.Down),
		listeners: make(map[uint16]*listener), nextPort: 6881}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.hosts[addr]; ok {
		return nil, fmt.Errorf("sim: host %s added twice", addr)
	}
	n.hosts[addr] = h
	return h, nil
}

// Addr returns h's address.
func (h *Host) Addr() netip.Addr { return h.addr }

// BytesSent and BytesReceived return what h's link carried.
func (h *Host) BytesSent() int64     { return h.up.bytes.Load() }
func (h *Host) BytesReceived() int64 { return h.down.bytes.Load() }

// Listen listens on addr's port (0 picks one) at h's address.
func (h *Host) Listen(addr string) (net.Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		if _, p, err2 := net.SplitHostPort(addr); err2 == nil && p == "0" {
			ap = netip.AddrPortFrom(h.addr, 0)
		} else {
			return nil, fmt.Errorf("sim: listen %q: %w", addr, err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	port := ap.Port()
	if port == 0 {
		for h.listeners[h.nextPort] != nil {
			h.nextPort++
		}
		port = h.nextPort
	}
	if h.listeners[port] != nil {
		return nil, fmt.Errorf("sim: listen %s:%d: address in use", h.addr, port)
	}
	l := &listener{h: h, addr: netip.AddrPortFrom(h.addr, port), accept: make(chan net.Conn, 256), done: make(chan struct{})}
	h.listeners[port] = l
	return l, nil
}

// Dial connects from h to addr after a round trip, as TCP's handshake.
func (h *Host) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	h.n.mu.Lock()
	dst := h.n.hosts[addr.Addr()]
	h.n.mu.Unlock()
	if dst == nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: errNoHost}
	}
	t := time.NewTimer(h.link.Latency + dst.link.Latency)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	dst.mu.Lock()
	l := dst.listeners[addr.Port()]
	dst.mu.Unlock()
	if l == nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: errRefused}
	}
	h.mu.Lock()
	local := netip.AddrPortFrom(h.addr, 40000+h.nextPort%20000)
	h.nextPort++
	h.mu.Unlock()
	out, in := h.n.newPipe(h, dst), h.n.newPipe(dst, h)
	c := &conn{local: local, remote: addr, r: in, w: out}
	s := &conn{local: addr, remote: local, r: out, w: in}
	select {
	case l.accept <- s:
		return c, nil
	case <-l.done:
	default:
	}
	return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: errRefused}
}

type listener struct {
	h      *Host
	addr   netip.AddrPort
	accept chan net.Conn
	once   sync.Once
	done   chan struct{}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.h.mu.Lock()
		delete(l.h.listeners, l.addr.Port())
		l.h.mu.Unlock()
	})
	return nil
}

func (l *listener) Addr() net.Addr { return net.TCPAddrFromAddrPort(l.addr) }

// link is a first-in first-out queue of segments served at a rate.
type link struct {
	n     *Network
	rate  int64
	bytes atomic.Int64
	mu    sync.Mutex
	q     []*segment
	wake  chan struct{}
	free  time.Time // when what was sent or booked ends, exactly; guarded by mu
}

func (n *Network) newLink(rate int64) *link {
	l := &link{n: n, rate: rate, wake: make(chan struct{}, 1)}
	n.wg.Go(func() { l.serve(n.ctx) })
	return l
}

func (l *link) push(s *segment) {
	s.at = time.Now()
	l.mu.Lock()
	l.q = append(l.q, s)
	first := len(l.q) == 1
	l.mu.Unlock()
	if first {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

func (l *link) serve(ctx context.Context) {
	for {
		l.mu.Lock()
		var s *segment
		if len(l.q) > 0 {
			s = l.q[0]
			l.q[0] = nil
			l.q = l.q[1:]
		}
		l.mu.Unlock()
		if s == nil {
			select {
			case <-ctx.Done():
				return
			case <-l.wake:
			}
			continue
		}
		if s.p.dead() {
			s.p.drop(s)
			continue
		}
		if l.rate > 0 {
			// The segment goes when the link is free or when it came,
			// from the exact times: the wake-up is on the grid.
			l.mu.Lock()
			l.free = later(l.free, s.at).Add(l.time(s.wire()))
			end := l.free
			l.mu.Unlock()
			time.Sleep(untilGrid(time.Now(), end))
			if ctx.Err() != nil {
				return
			}
		}
		l.bytes.Add(int64(len(s.b)))
		s.p.forward(s)
	}
}

func (l *link) time(wire int64) time.Duration {
	return time.Duration(wire * int64(time.Second) / l.rate)
}

// book takes wire bytes' time on l without a segment: an acknowledgement,
// which carries nothing to forward. The next segment goes after it.
func (l *link) book(wire int64) {
	if l.rate <= 0 {
		return
	}
	l.mu.Lock()
	l.free = later(l.free, time.Now()).Add(l.time(wire))
	l.mu.Unlock()
}

// TCP over Ethernet: a link carries headers with every MSS of payload,
// and the receiver sends an acknowledgement of headers alone for every two
// (delayed ACK), which takes time on its own uplink. Links are paced on
// these wire bytes, as the test bed's tbf paces them, and count payload.
const (
	mss         = 1448
	headerBytes = 14 + 20 + 32 // Ethernet, IPv4, TCP with timestamps
)

// wire returns the bytes s takes on a link.
func (s *segment) wire() int64 {
	n := int64(len(s.b))
	return n + (n+mss-1)/mss*headerBytes
}

// ackWire returns the bytes of the acknowledgements of n bytes of payload:
// one for every two MSS.
func ackWire(n int) int64 {
	return int64(((n+mss-1)/mss + 1) / 2 * headerBytes)
}

// segment is a piece of one direction of a connection on its way.
type segment struct {
	p   *pipe
	b   []byte
	buf *[]byte   // from the pool, or nil
	hop int       // index in p.path of the link it is on
	at  time.Time // when it reached that link
	due time.Time // when its delay ends
}

// pipe is one direction of a connection: what one end writes and the
// other reads. Its segments cross path, with delay before the last link.
type pipe struct {
	n       *Network
	path    []*link
	ackLink *link // the receiver's uplink, which carries the acknowledgements
	delay   time.Duration
	window  int

	mu       sync.Mutex
	cond     sync.Cond
	rq       []*segment // arrived, in order; rq[0] read from roff
	roff     int
	inflight int         // bytes written and not yet read
	delayQ   []*segment  // waiting out delay, in order
	armed    bool        // delayT is set to serve delayQ
	delayT   *time.Timer // serves delayQ; reused, as there are millions of segments
	wclosed  bool        // the writer closed: EOF once all is read
	rclosed  bool        // the reader closed: writes fail
	rdead    bool        // read deadline passed
	wdead    bool        // write deadline passed
	rtimer   *time.Timer // read deadline
	wtimer   *time.Timer // write deadline
}

func (n *Network) newPipe(src, dst *Host) *pipe {
	p := &pipe{n: n, path: []*link{src.up}, ackLink: dst.up, delay: dst.link.Latency}
	if src.dc != dst.dc && src.dc != nil && dst.dc != nil {
		p.path = append(p.path, src.dc.out, dst.dc.in)
	}
	p.path = append(p.path, dst.down)
	p.cond.L = &p.mu
	rate := min(nonZero(src.link.Up), nonZero(dst.link.Down))
	rtt := src.link.Latency + dst.link.Latency
	p.window = max(minWindow, int(2*float64(rate)*rtt.Seconds()))
	return p
}

func nonZero(r int64) int64 {
	if r <= 0 {
		return 1 << 40
	}
	return r
}

func (p *pipe) dead() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rclosed
}

// drop discards a segment of a connection that was reset.
func (p *pipe) drop(s *segment) { p.n.free(s) }

// free returns s's buffer to the pool.
func (n *Network) free(s *segment) {
	if s.buf != nil {
		n.pool.Put(s.buf)
	}
	*s = segment{}
	n.segs.Put(s)
}

// newSegment returns an empty segment, from the pool.
func (n *Network) newSegment() *segment { return n.segs.Get().(*segment) }

// forward moves s past the link it just crossed.
func (p *pipe) forward(s *segment) {
	s.hop++
	switch {
	case s.hop == len(p.path):
		ack := ackWire(len(s.b))
		p.mu.Lock()
		if p.rclosed {
			p.mu.Unlock()
			p.drop(s)
			return
		}
		p.rq = append(p.rq, s) // the reader may free s from now on
		p.mu.Unlock()
		p.cond.Broadcast()
		p.ackLink.book(ack)
	case s.hop == len(p.path)-1 && p.delay > 0:
		p.mu.Lock()
		now := time.Now()
		s.due = now.Add(p.delay)
		p.delayQ = append(p.delayQ, s)
		if !p.armed {
			p.armed = true
			if p.delayT == nil {
				p.delayT = time.AfterFunc(untilGrid(now, s.due), p.release)
			} else {
				p.delayT.Reset(untilGrid(now, s.due))
			}
		}
		p.mu.Unlock()
	default:
		p.path[s.hop].push(s)
	}
}

// release passes on the delayed segments that are due, in order.
func (p *pipe) release() {
	p.mu.Lock()
	now := time.Now()
	var buf [8]*segment
	out := buf[:0]
	for len(p.delayQ) > 0 && !p.delayQ[0].due.After(now) {
		out = append(out, p.delayQ[0])
		p.delayQ[0] = nil
		p.delayQ = p.delayQ[1:]
	}
	if len(p.delayQ) > 0 {
		p.delayT.Reset(untilGrid(now, p.delayQ[0].due))
	} else {
		p.armed = false
	}
	p.mu.Unlock()
	for _, s := range out {
		p.path[s.hop].push(s)
	}
}

func (p *pipe) write(b []byte) (int, error) {
	p.n.writes.Add(1)
	n := 0
	for len(b) > 0 {
		p.mu.Lock()
		for p.inflight >= p.window && !p.rclosed && !p.wclosed && !p.wdead {
			p.cond.Wait()
		}
		switch {
		case p.wclosed:
			p.mu.Unlock()
			return n, net.ErrClosed
		case p.rclosed:
			p.mu.Unlock()
			return n, errReset
		case p.wdead:
			p.mu.Unlock()
			return n, os.ErrDeadlineExceeded
		}
		k := min(len(b), segmentSize)
		p.inflight += k
		p.mu.Unlock()
		s := p.n.newSegment()
		s.p = p
		if k < segmentSize/4 {
			// Small writes (haves, requests) take only their size.
			s.b = make([]byte, k)
		} else {
			s.buf = p.n.pool.Get().(*[]byte)
			s.b = (*s.buf)[:k]
		}
		copy(s.b, b[:k])
		b = b[k:]
		n += k
		p.path[0].push(s)
	}
	return n, nil
}

func (p *pipe) read(b []byte) (int, error) { return p.readv(b, nil) }

// readv reads into b, then into c once b is full.
func (p *pipe) readv(b, c []byte) (int, error) {
	if len(b)+len(c) == 0 {
		return 0, nil
	}
	p.n.reads.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.rq) == 0 {
		switch {
		case p.rclosed:
			return 0, net.ErrClosed
		case p.wclosed && p.inflight == 0:
			return 0, io.EOF
		case p.rdead:
			return 0, os.ErrDeadlineExceeded
		}
		p.cond.Wait()
	}
	n := 0
	for len(p.rq) > 0 && (len(b) > 0 || len(c) > 0) {
		if len(b) == 0 {
			b, c = c, nil
		}
		s := p.rq[0]
		k := copy(b, s.b[p.roff:])
		b = b[k:]
		n += k
		p.roff += k
		if p.roff == len(s.b) {
			p.inflight -= len(s.b)
			p.rq[0] = nil
			p.rq = p.rq[1:]
			p.roff = 0
			p.n.free(s)
		}
	}
	p.cond.Broadcast()
	return n, nil
}

// closeRead is the reading end closing: what is queued is dropped.
func (p *pipe) closeRead() {
	p.mu.Lock()
	p.rclosed = true
	for _, s := range p.rq {
		p.n.free(s)
	}
	p.rq = nil
	p.mu.Unlock()
	p.cond.Broadcast()
}

// closeWrite is the writing end closing: the reader gets EOF after the
// rest.
func (p *pipe) closeWrite() {
	p.mu.Lock()
	p.wclosed = true
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *pipe) setDeadline(t time.Time, read bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	timer, dead := &p.wtimer, &p.wdead
	if read {
		timer, dead = &p.rtimer, &p.rdead
	}
	if *timer != nil {
		(*timer).Stop()
		*timer = nil
	}
	*dead = false
	if t.IsZero() {
		return
	}
	d := time.Until(t)
	if d <= 0 {
		*dead = true
		p.cond.Broadcast()
		return
	}
	*timer = time.AfterFunc(d, func() {
		p.mu.Lock()
		*dead = true
		p.mu.Unlock()
		p.cond.Broadcast()
	})
}

// conn is one end of a simulated TCP connection.
type conn struct {
	local, remote netip.AddrPort
	r, w          *pipe
	once          sync.Once
}

func (c *conn) Read(b []byte) (int, error) { return c.r.read(b) }

// ReadScatter reads into p, then q, in one call (swarm.ScatterReader).
func (c *conn) ReadScatter(p, q []byte) (int, error) { return c.r.readv(p, q) }

func (c *conn) Write(b []byte) (int, error) { return c.w.write(b) }

func (c *conn) Close() error {
	c.once.Do(func() {
		c.r.closeRead()
		c.w.closeWrite()
	})
	return nil
}

func (c *conn) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(c.local) }
func (c *conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }

func (c *conn) SetDeadline(t time.Time) error {
	c.r.setDeadline(t, true)
	c.w.setDeadline(t, false)
	return nil
}

func (c *conn) SetReadDeadline(t time.Time) error  { c.r.setDeadline(t, true); return nil }
func (c *conn) SetWriteDeadline(t time.Time) error { c.w.setDeadline(t, false); return nil }
