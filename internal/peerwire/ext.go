package peerwire

import (
	"fmt"

	"github.com/murder-deploy/murder/internal/bencode"
)

// ExtHandshakeID is the extended message ID of the BEP 10 handshake.
const ExtHandshakeID = 0

// ExtHandshake is the payload of the BEP 10 extension handshake. Murder
// sends it to advertise its request queue depth (reqq), name (v),
// listening port (p) and, when it knows it, where it runs (murder_place,
// "datacenter" or "datacenter/rack", a key other clients ignore); it
// supports no extension messages, so M is empty.
type ExtHandshake struct {
	M     map[string]int `bencode:"m"`
	V     string         `bencode:"v,omitempty"`
	Reqq  int            `bencode:"reqq,omitempty"`
	P     int            `bencode:"p,omitempty"`
	Place string         `bencode:"murder_place,omitempty"`
}

// Marshal returns the handshake's bencoded form.
func (h ExtHandshake) Marshal() ([]byte, error) {
	if h.M == nil {
		h.M = map[string]int{}
	}
	b, err := bencode.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("peerwire: extension handshake: %w", err)
	}
	return b, nil
}

// ParseExtHandshake decodes a BEP 10 handshake payload. Unknown keys are
// ignored.
func ParseExtHandshake(b []byte) (ExtHandshake, error) {
	var h ExtHandshake
	if err := bencode.Unmarshal(b, &h); err != nil {
		return ExtHandshake{}, fmt.Errorf("peerwire: extension handshake: %w", err)
	}
	return h, nil
}
