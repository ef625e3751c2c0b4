package swarm

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
)

// pipeNet is an in-memory Network of net.Pipe connections, for tests that
// run in a testing/synctest bubble: there the engine's timeouts pass in
// virtual time, so a test waits out a 20 s request timeout at once. Each
// swarm gets a host of its own (host), whose address its peers see.
type pipeNet struct {
	mu    sync.Mutex
	ls    map[netip.AddrPort]*pipeListener
	next  int
	ports int
}

func newPipeNet() *pipeNet { return &pipeNet{ls: make(map[netip.AddrPort]*pipeListener)} }

// host returns a Network whose connections come from a new address.
func (n *pipeNet) host() *pipeHost {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.next++
	return &pipeHost{n: n, addr: netip.AddrFrom4([4]byte{127, 0, 1, byte(n.next)})}
}

type pipeHost struct {
	n    *pipeNet
	addr netip.Addr
}

func (h *pipeHost) Listen(string) (net.Listener, error) {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	h.n.ports++
	l := &pipeListener{n: h.n, addr: netip.AddrPortFrom(h.addr, uint16(7000+h.n.ports)), ch: make(chan net.Conn), done: make(chan struct{})}
	h.n.ls[l.addr] = l
	return l, nil
}

func (h *pipeHost) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	h.n.mu.Lock()
	l := h.n.ls[addr]
	from := netip.AddrPortFrom(h.addr, uint16(40000+h.n.ports))
	h.n.ports++
	h.n.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("pipenet: dial %s: connection refused", addr)
	}
	a, b := bufferedPipe()
	select {
	case l.ch <- &pipeConn{Conn: b, local: addr, remote: from}:
		return &pipeConn{Conn: a, local: from, remote: addr}, nil
	case <-l.done:
		return nil, fmt.Errorf("pipenet: dial %s: connection refused", addr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeListener struct {
	n    *pipeNet
	addr netip.AddrPort
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.n.mu.Lock()
		delete(l.n.ls, l.addr)
		l.n.mu.Unlock()
	})
	return nil
}

func (l *pipeListener) Addr() net.Addr { return net.TCPAddrFromAddrPort(l.addr) }

// bufferedPipe is net.Pipe with a buffer each way, as a socket has: both
// ends may write their handshake before either reads.
func bufferedPipe() (net.Conn, net.Conn) {
	a, a2 := net.Pipe()
	b, b2 := net.Pipe()
	go func() { io.Copy(b2, a2); b2.Close() }()
	go func() { io.Copy(a2, b2); a2.Close() }()
	return a, b
}

// pipeConn is a pipe end with TCP addresses.
type pipeConn struct {
	net.Conn
	local, remote netip.AddrPort
}

func (c *pipeConn) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(c.local) }
func (c *pipeConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }
