// Package peerwire implements the BitTorrent peer wire protocol: the
// handshake and the length-prefixed messages of BEP 3, the fast extension
// of BEP 6 and the extension protocol handshake of BEP 10.
//
// Messages are decoded by a Decoder that enforces a size limit and reuses
// its buffers, and encoded by appending to a byte slice, so a busy
// connection allocates nothing per message.
package peerwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Protocol is the protocol string sent at the start of every handshake.
const Protocol = "BitTorrent protocol"

// HandshakeLen is the length of a handshake on the wire.
const HandshakeLen = 1 + len(Protocol) + 8 + 20 + 20

// BlockSize is the size of the blocks murder requests (16 KiB). Larger
// requests are refused by common clients.
const BlockSize = 16 * 1024

// MaxRequest is the largest block a peer may request from us (128 KiB).
const MaxRequest = 128 * 1024

// DefaultMaxMessage is the default limit on a message's length: a piece
// message carrying a MaxRequest block plus its header.
const DefaultMaxMessage = MaxRequest + 9

// Reserved bits of the handshake.
const (
	reservedExtByte  = 5
	reservedExtBit   = 0x10 // BEP 10 extension protocol
	reservedFastByte = 7
	reservedFastBit  = 0x04 // BEP 6 fast extension
)

// Errors returned by the decoder.
var (
	ErrProtocol   = errors.New("peerwire: not a BitTorrent handshake")
	ErrTooLarge   = errors.New("peerwire: message too large")
	ErrBadMessage = errors.New("peerwire: malformed message")
)

// Handshake is the first thing each side sends.
type Handshake struct {
	Reserved [8]byte
	InfoHash [20]byte
	PeerID   [20]byte
}

// SetFast marks support for the fast extension (BEP 6).
func (h *Handshake) SetFast() { h.Reserved[reservedFastByte] |= reservedFastBit }

// SetExtended marks support for the extension protocol (BEP 10).
func (h *Handshake) SetExtended() { h.Reserved[reservedExtByte] |= reservedExtBit }

// Fast reports whether the sender supports the fast extension.
func (h Handshake) Fast() bool { return h.Reserved[reservedFastByte]&reservedFastBit != 0 }

// Extended reports whether the sender supports the extension protocol.
func (h Handshake) Extended() bool { return h.Reserved[reservedExtByte]&reservedExtBit != 0 }

// AppendHandshake appends h's wire form to b.
func AppendHandshake(b []byte, h Handshake) []byte {
	b = append(b, byte(len(Protocol)))
	b = append(b, Protocol...)
	b = append(b, h.Reserved[:]...)
	b = append(b, h.InfoHash[:]...)
	return append(b, h.PeerID[:]...)
}

// WriteHandshake writes h to w in one call.
func WriteHandshake(w io.Writer, h Handshake) error {
	if _, err := w.Write(AppendHandshake(make([]byte, 0, HandshakeLen), h)); err != nil {
		return fmt.Errorf("peerwire: write handshake: %w", err)
	}
	return nil
}

// ReadHandshake reads a complete handshake from r.
func ReadHandshake(r io.Reader) (Handshake, error) {
	var buf [HandshakeLen]byte
	var h Handshake
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return h, fmt.Errorf("peerwire: read handshake: %w", err)
	}
	return ParseHandshake(buf[:])
}

// ParseHandshake parses a handshake from exactly HandshakeLen bytes.
func ParseHandshake(b []byte) (Handshake, error) {
	var h Handshake
	if len(b) != HandshakeLen || int(b[0]) != len(Protocol) || string(b[1:1+len(Protocol)]) != Protocol {
		return h, ErrProtocol
	}
	b = b[1+len(Protocol):]
	copy(h.Reserved[:], b[:8])
	copy(h.InfoHash[:], b[8:28])
	copy(h.PeerID[:], b[28:48])
	return h, nil
}

// ID identifies a message type.
type ID uint8

// Message IDs of BEP 3, BEP 5 (port), BEP 6 and BEP 10.
const (
	Choke         ID = 0
	Unchoke       ID = 1
	Interested    ID = 2
	NotInterested ID = 3
	Have          ID = 4
	Bitfield      ID = 5
	Request       ID = 6
	Piece         ID = 7
	Cancel        ID = 8
	Port          ID = 9
	Suggest       ID = 0x0D
	HaveAll       ID = 0x0E
	HaveNone      ID = 0x0F
	Reject        ID = 0x10
	AllowedFast   ID = 0x11
	Extended      ID = 20
)

var idNames = map[ID]string{
	Choke: "choke", Unchoke: "unchoke", Interested: "interested", NotInterested: "not interested",
	Have: "have", Bitfield: "bitfield", Request: "request", Piece: "piece", Cancel: "cancel",
	Port: "port", Suggest: "suggest", HaveAll: "have all", HaveNone: "have none",
	Reject: "reject", AllowedFast: "allowed fast", Extended: "extended",
}

// String returns the message type's name.
func (id ID) String() string {
	if s, ok := idNames[id]; ok {
		return s
	}
	return fmt.Sprintf("message %d", uint8(id))
}

// Message is one decoded peer wire message. Which fields are set depends
// on ID: Index for have, suggest and allowed fast; Index, Begin and Length
// for request, cancel and reject; Index, Begin and Block for piece;
// Bitfield for bitfield; ExtID and Payload for extended; Port for port.
type Message struct {
	KeepAlive bool
	ID        ID
	Index     uint32
	Begin     uint32
	Length    uint32
	Port      uint16
	ExtID     uint8
	Bitfield  []byte
	Block     []byte
	Payload   []byte
}

// fixed payload lengths; -1 means variable.
func payloadLen(id ID) int {
	switch id {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		return 0
	case Have, Suggest, AllowedFast:
		return 4
	case Request, Cancel, Reject:
		return 12
	case Port:
		return 2
	}
	return -1
}

// AppendMessage appends m's wire form to b.
func AppendMessage(b []byte, m Message) []byte {
	if m.KeepAlive {
		return append(b, 0, 0, 0, 0)
	}
	switch m.ID {
	case Have, Suggest, AllowedFast:
		b = binary.BigEndian.AppendUint32(b, 5)
		b = append(b, byte(m.ID))
		return binary.BigEndian.AppendUint32(b, m.Index)
	case Request, Cancel, Reject:
		b = binary.BigEndian.AppendUint32(b, 13)
		b = append(b, byte(m.ID))
		b = binary.BigEndian.AppendUint32(b, m.Index)
		b = binary.BigEndian.AppendUint32(b, m.Begin)
		return binary.BigEndian.AppendUint32(b, m.Length)
	case Bitfield:
		b = binary.BigEndian.AppendUint32(b, uint32(1+len(m.Bitfield)))
		b = append(b, byte(m.ID))
		return append(b, m.Bitfield...)
	case Piece:
		b = AppendPieceHeader(b, m.Index, m.Begin, len(m.Block))
		return append(b, m.Block...)
	case Port:
		b = binary.BigEndian.AppendUint32(b, 3)
		b = append(b, byte(m.ID))
		return binary.BigEndian.AppendUint16(b, m.Port)
	case Extended:
		b = binary.BigEndian.AppendUint32(b, uint32(2+len(m.Payload)))
		b = append(b, byte(m.ID), m.ExtID)
		return append(b, m.Payload...)
	}
	// Messages without payload, and unknown ones with theirs.
	b = binary.BigEndian.AppendUint32(b, uint32(1+len(m.Payload)))
	b = append(b, byte(m.ID))
	return append(b, m.Payload...)
}

// PieceHeaderLen is the length of a piece message without its block.
const PieceHeaderLen = 13

// AppendPieceHeader appends the header of a piece message whose block of
// n bytes follows separately (read from storage straight after it).
func AppendPieceHeader(b []byte, index, begin uint32, n int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(9+n))
	b = append(b, byte(Piece))
	b = binary.BigEndian.AppendUint32(b, index)
	return binary.BigEndian.AppendUint32(b, begin)
}

// Decoder reads messages from a stream. It is not safe for concurrent use.
type Decoder struct {
	r   io.Reader
	max int
	hdr [17]byte
	buf []byte

	// BlockBuffer, when set, is asked for the destination of each piece
	// message's block before it is read, so the block can land in its
	// final place without a copy. It returns nil to let the decoder use
	// its own buffer.
	BlockBuffer func(index, begin uint32, n int) []byte
}

// NewDecoder returns a Decoder reading from r that refuses messages longer
// than maxLen bytes (0 means DefaultMaxMessage). r should be buffered.
func NewDecoder(r io.Reader, maxLen int) *Decoder {
	if maxLen <= 0 {
		maxLen = DefaultMaxMessage
	}
	return &Decoder{r: r, max: maxLen}
}

// Decode reads the next message. Slices in the returned message (Bitfield,
// Block, Payload) stay valid only until the next call, unless Block came
// from BlockBuffer.
func (d *Decoder) Decode() (Message, error) {
	var m Message
	if _, err := io.ReadFull(d.r, d.hdr[:4]); err != nil {
		return m, err
	}
	n := int(binary.BigEndian.Uint32(d.hdr[:4]))
	if n == 0 {
		m.KeepAlive = true
		return m, nil
	}
	if n > d.max {
		return m, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, d.max)
	}
	if _, err := io.ReadFull(d.r, d.hdr[4:5]); err != nil {
		return m, unexpected(err)
	}
	m.ID = ID(d.hdr[4])
	n--
	if want := payloadLen(m.ID); want >= 0 {
		if n != want {
			return m, fmt.Errorf("%w: %v with %d byte payload", ErrBadMessage, m.ID, n)
		}
		if _, err := io.ReadFull(d.r, d.hdr[5:5+n]); err != nil {
			return m, unexpected(err)
		}
		p := d.hdr[5:]
		switch n {
		case 2:
			m.Port = binary.BigEndian.Uint16(p)
		case 4:
			m.Index = binary.BigEndian.Uint32(p)
		case 12:
			m.Index = binary.BigEndian.Uint32(p)
			m.Begin = binary.BigEndian.Uint32(p[4:])
			m.Length = binary.BigEndian.Uint32(p[8:])
		}
		return m, nil
	}
	switch m.ID {
	case Piece:
		if n < 8 {
			return m, fmt.Errorf("%w: short piece message", ErrBadMessage)
		}
		if _, err := io.ReadFull(d.r, d.hdr[5:13]); err != nil {
			return m, unexpected(err)
		}
		m.Index = binary.BigEndian.Uint32(d.hdr[5:])
		m.Begin = binary.BigEndian.Uint32(d.hdr[9:])
		n -= 8
		var dst []byte
		if d.BlockBuffer != nil {
			dst = d.BlockBuffer(m.Index, m.Begin, n)
		}
		if len(dst) != n {
			dst = d.scratch(n)
		}
		if _, err := io.ReadFull(d.r, dst); err != nil {
			return m, unexpected(err)
		}
		m.Block = dst
		m.Length = uint32(n)
		return m, nil
	case Extended:
		if n < 1 {
			return m, fmt.Errorf("%w: empty extended message", ErrBadMessage)
		}
	}
	p := d.scratch(n)
	if _, err := io.ReadFull(d.r, p); err != nil {
		return m, unexpected(err)
	}
	switch m.ID {
	case Bitfield:
		m.Bitfield = p
	case Extended:
		m.ExtID = p[0]
		m.Payload = p[1:]
	default:
		// Unknown messages are kept as payload so callers can skip them.
		m.Payload = p
	}
	return m, nil
}

func (d *Decoder) scratch(n int) []byte {
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	return d.buf[:n]
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
