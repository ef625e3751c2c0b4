package peerwire

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestHandshakeRoundTrip(t *testing.T) {
	var h Handshake
	h.SetFast()
	h.SetExtended()
	copy(h.InfoHash[:], "0123456789abcdefghij")
	copy(h.PeerID[:], "-MU0001-xxxxxxxxxxxx")
	b := AppendHandshake(nil, h)
	if len(b) != HandshakeLen {
		t.Fatalf("len = %d, want %d", len(b), HandshakeLen)
	}
	if b[20+5] != 0x10 || b[20+7] != 0x04 {
		t.Fatalf("reserved bytes = %x, want extension bit in byte 5 and fast bit in byte 7", b[20:28])
	}
	got, err := ReadHandshake(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got != h || !got.Fast() || !got.Extended() {
		t.Fatalf("got %+v, want %+v", got, h)
	}
}

func TestHandshakeErrors(t *testing.T) {
	good := AppendHandshake(nil, Handshake{})
	tests := []struct {
		name string
		in   []byte
	}{
		{"short", good[:30]},
		{"wrong length byte", append([]byte{18}, good[1:]...)},
		{"wrong protocol", append(append([]byte{19}, "BitTorrent protocoX"...), good[20:]...)},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadHandshake(bytes.NewReader(tt.in)); err == nil {
				t.Fatal("got nil error, want one")
			}
		})
	}
}

func TestMessageRoundTrip(t *testing.T) {
	msgs := []Message{
		{KeepAlive: true},
		{ID: Choke}, {ID: Unchoke}, {ID: Interested}, {ID: NotInterested},
		{ID: HaveAll}, {ID: HaveNone},
		{ID: Have, Index: 7},
		{ID: Suggest, Index: 1 << 30},
		{ID: AllowedFast, Index: 3},
		{ID: Bitfield, Bitfield: []byte{0xff, 0x80}},
		{ID: Request, Index: 1, Begin: 16384, Length: 16384},
		{ID: Cancel, Index: 1, Begin: 0, Length: 16384},
		{ID: Reject, Index: 2, Begin: 32768, Length: 100},
		{ID: Piece, Index: 4, Begin: 16384, Block: []byte("hello"), Length: 5},
		{ID: Port, Port: 6881},
		{ID: Extended, ExtID: 0, Payload: []byte("d1:v3:fooe")},
	}
	var buf []byte
	for _, m := range msgs {
		buf = AppendMessage(buf, m)
	}
	d := NewDecoder(bytes.NewReader(buf), 0)
	for i, want := range msgs {
		got, err := d.Decode()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("message %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := d.Decode(); err != io.EOF {
		t.Fatalf("after last message: got %v, want io.EOF", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"too large", []byte{0, 0, 0x40, 0, 7}, 1000, ErrTooLarge},
		{"piece above default limit", []byte{0, 2, 0, 10, 7}, 0, ErrTooLarge},
		{"have with 3 bytes", []byte{0, 0, 0, 4, 4, 0, 0, 1}, 0, ErrBadMessage},
		{"request with 8 bytes", []byte{0, 0, 0, 9, 6, 0, 0, 0, 1, 0, 0, 0, 0}, 0, ErrBadMessage},
		{"choke with payload", []byte{0, 0, 0, 2, 0, 1}, 0, ErrBadMessage},
		{"short piece", []byte{0, 0, 0, 5, 7, 0, 0, 0, 1}, 0, ErrBadMessage},
		{"empty extended", []byte{0, 0, 0, 1, 20}, 0, ErrBadMessage},
		{"truncated body", []byte{0, 0, 0, 13, 6, 0, 0}, 0, io.ErrUnexpectedEOF},
		{"truncated length", []byte{0, 0}, 0, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDecoder(bytes.NewReader(tt.in), tt.max).Decode()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeAcceptsLargestRequestAndPiece(t *testing.T) {
	buf := AppendMessage(nil, Message{ID: Piece, Index: 1, Block: make([]byte, MaxRequest)})
	buf = AppendMessage(buf, Message{ID: Request, Length: MaxRequest})
	d := NewDecoder(bytes.NewReader(buf), 0)
	m, err := d.Decode()
	if err != nil || len(m.Block) != MaxRequest {
		t.Fatalf("piece: got %d bytes, %v; want %d bytes", len(m.Block), err, MaxRequest)
	}
	m, err = d.Decode()
	if err != nil || m.Length != MaxRequest {
		t.Fatalf("request: got %+v, %v", m, err)
	}
}

func TestBlockBuffer(t *testing.T) {
	dst := make([]byte, 32)
	buf := AppendMessage(nil, Message{ID: Piece, Index: 2, Begin: 8, Block: []byte("abcd")})
	d := NewDecoder(bytes.NewReader(buf), 0)
	d.BlockBuffer = func(index, begin uint32, n int) []byte {
		if index != 2 || begin != 8 || n != 4 {
			t.Errorf("BlockBuffer(%d, %d, %d), want (2, 8, 4)", index, begin, n)
			return nil
		}
		return dst[begin : int(begin)+n]
	}
	m, err := d.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if string(dst[8:12]) != "abcd" || &m.Block[0] != &dst[8] {
		t.Fatalf("block not decoded into the given buffer: %q", dst)
	}
}

func TestPieceHeader(t *testing.T) {
	h := AppendPieceHeader(nil, 3, 16384, 16384)
	full := AppendMessage(nil, Message{ID: Piece, Index: 3, Begin: 16384, Block: make([]byte, 16384)})
	if len(h) != PieceHeaderLen || !bytes.Equal(h, full[:PieceHeaderLen]) {
		t.Fatalf("header %x, want %x", h, full[:PieceHeaderLen])
	}
}

// FuzzDecode decodes arbitrary streams and checks that every decoded
// message re-encodes to the bytes it came from.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.bin")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		d := NewDecoder(r, 4096)
		start := 0
		for i := 0; i < 1000; i++ {
			m, err := d.Decode()
			if err != nil {
				return
			}
			end := len(in) - r.Len()
			if got := AppendMessage(nil, m); !bytes.Equal(got, in[start:end]) {
				t.Fatalf("re-encoded %x, want %x", got, in[start:end])
			}
			start = end
		}
	})
}

func TestExtHandshake(t *testing.T) {
	b, err := ExtHandshake{V: "murder dev", Reqq: 2000}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := "d1:mde4:reqqi2000e1:v10:murder deve"; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	tests := []struct {
		in      string
		reqq    int
		v       string
		wantErr bool
	}{
		{"d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei100e4:reqqi250e1:v12:Deluge 2.1.1e", 250, "Deluge 2.1.1", false},
		{"d1:mdee", 0, "", false},
		{"not bencode", 0, "", true},
		{"d4:reqq3:abce", 0, "", true},
	}
	for _, tt := range tests {
		h, err := ParseExtHandshake([]byte(tt.in))
		if (err != nil) != tt.wantErr || h.Reqq != tt.reqq || h.V != tt.v {
			t.Errorf("ParseExtHandshake(%q) = %+v, %v; want reqq %d v %q err %v", tt.in, h, err, tt.reqq, tt.v, tt.wantErr)
		}
	}
}

// FuzzParseExtHandshake parses arbitrary BEP 10 handshake payloads and
// checks that one that parses re-encodes to a payload that parses to the
// same handshake.
func FuzzParseExtHandshake(f *testing.F) {
	for _, s := range []string{
		"d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei100e4:reqqi250e1:v12:Deluge 2.1.1e",
		"d1:mde4:reqqi2000e1:v10:murder deve",
		"d1:mde1:pi6881e4:reqqi-1ee",
		"d1:pi99999999999e1:v0:e",
		"d4:reqq3:abce",
		"de",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseExtHandshake(in)
		if err != nil {
			return
		}
		b, err := h.Marshal()
		if err != nil {
			t.Fatalf("%q parsed to %+v, which does not marshal: %v", in, h, err)
		}
		h2, err := ParseExtHandshake(b)
		if err != nil {
			t.Fatalf("%q re-encoded as %q, which does not parse: %v", in, b, err)
		}
		if len(h.M) == 0 {
			h.M = map[string]int{}
		}
		if len(h2.M) == 0 {
			h2.M = map[string]int{}
		}
		if !reflect.DeepEqual(h, h2) {
			t.Fatalf("%q parsed to %+v, re-encoded %q parsed to %+v", in, h, b, h2)
		}
	})
}
