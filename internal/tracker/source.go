package tracker

import (
	"crypto/sha256"
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/murder-deploy/murder/internal/cidr"
)

// broadcast4 is the IPv4 limited broadcast address.
var broadcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// usableIPParam reports whether an announce from src may give ip (its ip
// parameter) as the address other peers dial: src must lie in trusted
// (any source when trusted is empty), and ip must be a unicast address
// that other hosts can reach: not unspecified or in 0.0.0.0/8, not
// multicast, broadcast or link-local, and not loopback unless src is
// loopback too (a tracker and its peers on one host).
func usableIPParam(ip, src netip.Addr, trusted cidr.List) bool {
	if !ip.IsValid() || ip.Zone() != "" || !trusted.Allows(src) {
		return false
	}
	ip = ip.Unmap()
	switch {
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(),
		ip.IsInterfaceLocalMulticast(), ip == broadcast4, ip.Is4() && ip.As4()[0] == 0:
		return false
	case ip.IsLoopback():
		return src.Unmap().IsLoopback()
	}
	return true
}

// ownerOf returns the owner of an announce (see PeerAnnounce.Owner): a
// digest of its key when it has one, else its source address (an IPv4
// address itself, an IPv6 address by its SHA-256). The low bit tells
// which, so that no key can pass for an address.
func ownerOf(hasKey bool, keySum uint64, src netip.Addr) uint64 {
	if hasKey {
		return keySum | 1
	}
	src = src.Unmap()
	if src.Is4() {
		b := src.As4()
		return uint64(binary.BigEndian.Uint32(b[:])) << 1
	}
	b := src.As16()
	sum := sha256.Sum256(b[:])
	return binary.LittleEndian.Uint64(sum[:8])&^1 | 1<<63
}

// keyDigest is the digest of a BEP 7 key that ownerOf takes: FNV-1a, as
// a key is a secret between a peer and the tracker that no reply shows,
// so nobody can aim at its digest.
func keyDigest(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// rangeListener accepts only connections from its ranges, closing the
// others at once and passing each to refused.
type rangeListener struct {
	net.Listener
	ranges  cidr.List
	refused func(remote net.Addr)
}

// Accept implements net.Listener.
func (l *rangeListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if addrAllowed(l.ranges, c.RemoteAddr()) {
			return c, nil
		}
		c.Close()
		l.refused(c.RemoteAddr())
	}
}

// addrAllowed reports whether a connection from a lies in ranges.
func addrAllowed(ranges cidr.List, a net.Addr) bool {
	if ranges.Empty() {
		return true
	}
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ranges.Allows(ap.Addr())
}
