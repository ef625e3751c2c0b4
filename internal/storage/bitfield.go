package storage

import (
	"fmt"
	"math/bits"
)

// Bitfield is a set of piece indexes in the wire layout of BEP 3: the
// high bit of the first byte is piece 0. It is not safe for concurrent use.
type Bitfield struct {
	n int
	b []byte
}

// NewBitfield returns an empty bitfield for n pieces.
func NewBitfield(n int) *Bitfield {
	return &Bitfield{n: n, b: make([]byte, (n+7)/8)}
}

// ParseBitfield reads a bitfield for n pieces in wire form. It requires the
// exact length and ignores (clears) spare bits at the end, being lenient
// with peers that set them.
func ParseBitfield(b []byte, n int) (*Bitfield, error) {
	if len(b) != (n+7)/8 {
		return nil, fmt.Errorf("storage: bitfield of %d bytes for %d pieces, want %d bytes", len(b), n, (n+7)/8)
	}
	bf := &Bitfield{n: n, b: append([]byte(nil), b...)}
	bf.clearSpare()
	return bf, nil
}

func (bf *Bitfield) clearSpare() {
	if r := bf.n % 8; r != 0 {
		bf.b[len(bf.b)-1] &= byte(0xff << (8 - r))
	}
}

// Len returns the number of pieces the bitfield covers.
func (bf *Bitfield) Len() int { return bf.n }

// Has reports whether piece i is set; out-of-range indexes are not.
func (bf *Bitfield) Has(i int) bool {
	if i < 0 || i >= bf.n {
		return false
	}
	return bf.b[i>>3]&(0x80>>(i&7)) != 0
}

// Set marks piece i.
func (bf *Bitfield) Set(i int) {
	if i >= 0 && i < bf.n {
		bf.b[i>>3] |= 0x80 >> (i & 7)
	}
}

// Clear unmarks piece i.
func (bf *Bitfield) Clear(i int) {
	if i >= 0 && i < bf.n {
		bf.b[i>>3] &^= 0x80 >> (i & 7)
	}
}

// SetAll marks every piece.
func (bf *Bitfield) SetAll() {
	for i := range bf.b {
		bf.b[i] = 0xff
	}
	if bf.n > 0 {
		bf.clearSpare()
	}
}

// Count returns the number of pieces set.
func (bf *Bitfield) Count() int {
	c := 0
	for _, x := range bf.b {
		c += bits.OnesCount8(x)
	}
	return c
}

// Full reports whether every piece is set.
func (bf *Bitfield) Full() bool { return bf.Count() == bf.n }

// Bytes returns a copy in wire form with the spare bits zero.
func (bf *Bitfield) Bytes() []byte { return append([]byte(nil), bf.b...) }

// Clone returns an independent copy.
func (bf *Bitfield) Clone() *Bitfield { return &Bitfield{n: bf.n, b: bf.Bytes()} }
