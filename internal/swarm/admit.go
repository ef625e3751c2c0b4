package swarm

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/murder-deploy/murder/internal/peerwire"
)

// Who may connect, and how many at once
//
// A host on the same network must not be able to fill a swarm's
// connection slots, learn what it transfers, or hold blocks it never
// meant to send. So:
//   - a connection from outside Config.AllowFrom, or from a banned
//     address, is closed as soon as it is accepted, before a byte is
//     sent; peers outside AllowFrom are not dialed;
//   - one remote IP address holds at most Config.MaxConnsPerIP
//     connections, counting those in their handshake and those dialed;
//   - at most maxHalfOpen accepted connections are in their handshake at
//     once (a client that connects and says nothing holds one for
//     handshakeTimeout);
//   - the listening side reads the dialer's handshake and checks its
//     info hash before it sends its own, so a stranger learns nothing of
//     the torrent;
//   - a ban holds for the peer's IP address, whatever peer id or port it
//     comes back with.

// DefaultMaxConnsPerIP is Config.MaxConnsPerIP left zero.
const DefaultMaxConnsPerIP = 8

// errWrongTorrent is returned by handshake for a dialer that asks for
// another torrent.
var errWrongTorrent = errors.New("swarm: handshake for another torrent")

// maxHalfOpen is the most accepted connections in their handshake.
func (s *Swarm) maxHalfOpen() int { return s.cfg.MaxConns }

// remoteAddrPort is nc's remote address, IPv4 unmapped.
func remoteAddrPort(nc net.Conn) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// admit decides at accept whether nc may go on to its handshake; when it
// may, it takes nc's slots (perIP and halfOpen), which serveConn gives
// back.
func (s *Swarm) admit(nc net.Conn) (netip.Addr, bool) {
	ip := remoteAddrPort(nc).Addr()
	if !s.cfg.AllowFrom.Allows(ip) {
		s.log.Debug("refused: not in allow-from", "peer", nc.RemoteAddr())
		return ip, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing || len(s.conns) >= s.cfg.MaxConns:
		return ip, false
	case s.bannedAddrs[ip]:
		s.log.Debug("refused: banned", "peer", nc.RemoteAddr())
		return ip, false
	case s.fullIPLocked(ip):
		s.log.Debug("refused: too many connections from the address", "peer", nc.RemoteAddr(), "conns", s.perIP[ip])
		return ip, false
	case s.halfOpen >= s.maxHalfOpen():
		s.log.Debug("refused: too many connections in their handshake", "peer", nc.RemoteAddr())
		return ip, false
	}
	s.perIP[ip]++
	s.halfOpen++
	return ip, true
}

// mayDialLocked reports whether a peer at ip may be dialed: allowed, not
// banned and under its connection limit.
func (s *Swarm) mayDialLocked(ip netip.Addr) bool {
	return s.cfg.AllowFrom.Allows(ip) && !s.bannedAddrs[ip] && !s.fullIPLocked(ip)
}

func (s *Swarm) fullIPLocked(ip netip.Addr) bool {
	return s.cfg.MaxConnsPerIP > 0 && s.perIP[ip] >= s.cfg.MaxConnsPerIP
}

// dropIP gives back a connection's slot of ip.
func (s *Swarm) dropIP(ip netip.Addr) {
	s.mu.Lock()
	s.dropIPLocked(ip)
	s.mu.Unlock()
}

func (s *Swarm) dropIPLocked(ip netip.Addr) {
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// handshaken gives back an accepted connection's half-open slot.
func (s *Swarm) handshaken() {
	s.mu.Lock()
	s.halfOpen--
	s.mu.Unlock()
}

// handshake exchanges BitTorrent handshakes on nc within handshakeTimeout.
// The dialer sends first; the listener answers only a handshake for this
// swarm's torrent, so a stranger that does not know the info hash learns
// nothing.
func (s *Swarm) handshake(nc net.Conn, br io.Reader, outgoing bool) (peerwire.Handshake, error) {
	nc.SetDeadline(s.clock.Now().Add(handshakeTimeout))
	var h peerwire.Handshake
	h.SetFast()
	h.SetExtended()
	h.InfoHash = s.infoHash
	h.PeerID = s.peerID
	if outgoing {
		if err := peerwire.WriteHandshake(nc, h); err != nil {
			return peerwire.Handshake{}, err
		}
	}
	ph, err := peerwire.ReadHandshake(br)
	if err != nil {
		return peerwire.Handshake{}, err
	}
	if ph.InfoHash != s.infoHash {
		return peerwire.Handshake{}, errWrongTorrent
	}
	if !outgoing {
		if err := peerwire.WriteHandshake(nc, h); err != nil {
			return peerwire.Handshake{}, err
		}
	}
	nc.SetDeadline(time.Time{})
	return ph, nil
}

// requested reports whether the block at index and begin is requested
// from c. Called with Swarm.mu held.
func (c *conn) requested(index, begin uint32) bool {
	_, ok := c.reqs[blockKey{index, begin}]
	return ok
}

// dropUnrequested drops a block c sent that was not, or is no longer,
// requested from it (a cancel crossed it, or a peer pushes data nobody
// asked for), and counts it. Called with Swarm.mu held.
func (s *Swarm) dropUnrequested(c *conn, m *peerwire.Message) {
	s.unrequested.Add(1)
	s.dropClaim(c)
	s.log.Debug("unrequested block dropped", "peer", c.addr, "piece", m.Index, "begin", m.Begin, "bytes", len(m.Block))
}
