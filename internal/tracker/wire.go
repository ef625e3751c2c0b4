package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Announce events (BEP 3). The empty event is a regular periodic announce.
const (
	EventNone      = ""
	EventStarted   = "started"
	EventCompleted = "completed"
	EventStopped   = "stopped"
)

// DefaultInterval is the announce interval the server asks for by default,
// Murder's 15 seconds.
const DefaultInterval = 15 * time.Second

// ErrFailure is matched (with errors.Is) by every [FailureError].
var ErrFailure = errors.New("tracker: failure reason")

// FailureError is a tracker's refusal: the reply carried a "failure reason".
type FailureError struct {
	Reason string
}

func (e *FailureError) Error() string { return "tracker: failure reason: " + e.Reason }

// Is reports whether target is ErrFailure.
func (e *FailureError) Is(target error) bool { return target == ErrFailure }

// AnnounceRequest is one announce of a peer to a tracker.
type AnnounceRequest struct {
	InfoHash [20]byte
	PeerID   [20]byte
	// IP, when set, is sent as the ip parameter: the address other peers
	// should connect to. Empty lets the tracker use the connection's source.
	IP   string
	Port int
	// Uploaded, Downloaded and Left are byte counts since the started event.
	Uploaded, Downloaded, Left int64
	// Event is "", "started", "completed" or "stopped".
	Event string
	// NumWant is how many peers to ask for; 0 or less leaves it to the
	// tracker (the stopped event always asks for none).
	NumWant int
	// Key identifies the peer across IP changes (sent as 8 hex digits).
	Key uint32
	// Name is the torrent's name, sent as murder's own name parameter so
	// that murder's tracker can label the swarm; other trackers ignore it.
	// It is sent as CleanName leaves it.
	Name string
	// Place, when known, is sent as the datacenter and rack parameters;
	// murder's tracker takes it over what its topology says.
	Place Place
}

// MaxNameLen bounds a swarm's name in bytes, on the wire and on the
// tracker.
const MaxNameLen = 200

// CleanName returns name as the tracker keeps it: at most MaxNameLen bytes
// of valid UTF-8 without control characters (which could move a terminal's
// cursor in murder status). Cleaning a clean name changes nothing.
func CleanName(name string) string {
	clean := true
	for _, r := range name {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if !clean {
		name = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return -1
			}
			return r
		}, strings.ToValidUTF8(name, ""))
	}
	if len(name) <= MaxNameLen {
		return name
	}
	cut := MaxNameLen
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut]
}

// AnnounceResponse is a tracker's answer to an announce.
type AnnounceResponse struct {
	Interval    time.Duration
	MinInterval time.Duration
	Complete    int // seeders
	Incomplete  int // leechers
	// Peers holds the IPv4 and IPv6 peers, in the tracker's order.
	Peers []netip.AddrPort
	// Places, from murder's tracker only, holds the place of each of
	// Peers (Places[i] is where Peers[i] runs); nil when the tracker sent
	// none.
	Places []Place
	// Place is where murder's tracker puts the announcing peer; the zero
	// Place when unknown or not sent.
	Place Place
	// Warning is the tracker's "warning message", if any.
	Warning string
	// TrackerID is the reply's "tracker id"; the Client sends it back on
	// later announces to the same tracker.
	TrackerID string
}

// ScrapeStats are the counts a tracker keeps for one torrent (BEP 48).
type ScrapeStats struct {
	Complete   int // seeders
	Incomplete int // leechers
	Downloaded int // completed events seen
}

// appendEscaped percent-escapes b byte by byte, leaving only RFC 3986
// unreserved characters as they are. url.Values would turn a space into '+',
// which trackers read as a literal plus.
func appendEscaped(dst []byte, b []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range b {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}

// appendQuery appends req as an announce query string (without '?').
func appendQuery(dst []byte, req *AnnounceRequest) []byte {
	dst = append(dst, "info_hash="...)
	dst = appendEscaped(dst, req.InfoHash[:])
	dst = append(dst, "&peer_id="...)
	dst = appendEscaped(dst, req.PeerID[:])
	dst = append(dst, "&port="...)
	dst = strconv.AppendInt(dst, int64(req.Port), 10)
	dst = append(dst, "&uploaded="...)
	dst = strconv.AppendInt(dst, req.Uploaded, 10)
	dst = append(dst, "&downloaded="...)
	dst = strconv.AppendInt(dst, req.Downloaded, 10)
	dst = append(dst, "&left="...)
	dst = strconv.AppendInt(dst, req.Left, 10)
	dst = append(dst, "&compact=1"...)
	switch {
	case req.Event == EventStopped:
		dst = append(dst, "&numwant=0"...)
	case req.NumWant > 0:
		dst = append(dst, "&numwant="...)
		dst = strconv.AppendInt(dst, int64(req.NumWant), 10)
	}
	dst = fmt.Appendf(dst, "&key=%08X", req.Key)
	if req.Event != "" {
		dst = append(dst, "&event="...)
		dst = appendEscaped(dst, []byte(req.Event))
	}
	if req.IP != "" {
		dst = append(dst, "&ip="...)
		dst = appendEscaped(dst, []byte(req.IP))
	}
	if name := CleanName(req.Name); name != "" {
		dst = append(dst, "&name="...)
		dst = appendEscaped(dst, []byte(name))
	}
	if req.Place.Datacenter != "" {
		dst = append(dst, "&datacenter="...)
		dst = appendEscaped(dst, []byte(req.Place.Datacenter))
		if req.Place.Rack != "" {
			dst = append(dst, "&rack="...)
			dst = appendEscaped(dst, []byte(req.Place.Rack))
		}
	}
	if req.Event != EventStopped {
		dst = append(dst, "&places=1"...)
	}
	return dst
}

// decodeCompact4 decodes BEP 23 compact IPv4 peers (6 bytes each).
func decodeCompact4(dst []netip.AddrPort, b []byte) ([]netip.AddrPort, error) {
	if len(b)%6 != 0 {
		return dst, fmt.Errorf("tracker: compact peers length %d is not a multiple of 6", len(b))
	}
	for ; len(b) > 0; b = b[6:] {
		ip := netip.AddrFrom4([4]byte(b[:4]))
		dst = append(dst, netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[4:6])))
	}
	return dst, nil
}

// decodeCompact6 decodes BEP 7 compact IPv6 peers (18 bytes each).
func decodeCompact6(dst []netip.AddrPort, b []byte) ([]netip.AddrPort, error) {
	if len(b)%18 != 0 {
		return dst, fmt.Errorf("tracker: compact peers6 length %d is not a multiple of 18", len(b))
	}
	for ; len(b) > 0; b = b[18:] {
		ip := netip.AddrFrom16([16]byte(b[:16])).Unmap()
		dst = append(dst, netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[16:18])))
	}
	return dst, nil
}

// appendCompact appends addr in compact form: 6 bytes for IPv4, 18 for IPv6.
func appendCompact(dst []byte, addr netip.AddrPort) []byte {
	dst = append(dst, addr.Addr().AsSlice()...)
	return binary.BigEndian.AppendUint16(dst, addr.Port())
}

// appendBString appends s as a bencoded string.
func appendBString[T string | []byte](dst []byte, s T) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

// appendBInt appends n as a bencoded integer.
func appendBInt(dst []byte, n int64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, 'e')
}

// appendFailure appends a bencoded reply that carries only a failure reason.
func appendFailure(dst []byte, reason string) []byte {
	dst = append(dst, "d14:failure reason"...)
	dst = appendBString(dst, reason)
	return append(dst, 'e')
}
