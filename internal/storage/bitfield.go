package storage

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Bitfield is a set of piece indexes in the wire layout of BEP 3: the
// high bit of the first byte is piece 0. It is not safe for concurrent use.
type Bitfield struct {
	n     int
	count int // pieces set
	b     []byte
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

// clearSpare zeroes the bits past the last piece and recounts.
func (bf *Bitfield) clearSpare() {
	if r := bf.n % 8; r != 0 {
		bf.b[len(bf.b)-1] &= byte(0xff << (8 - r))
	}
	bf.count = 0
	for _, x := range bf.b {
		bf.count += bits.OnesCount8(x)
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
	if i >= 0 && i < bf.n && !bf.Has(i) {
		bf.b[i>>3] |= 0x80 >> (i & 7)
		bf.count++
	}
}

// Clear unmarks piece i.
func (bf *Bitfield) Clear(i int) {
	if bf.Has(i) {
		bf.b[i>>3] &^= 0x80 >> (i & 7)
		bf.count--
	}
}

// SetAll marks every piece.
func (bf *Bitfield) SetAll() {
	for i := range bf.b {
		bf.b[i] = 0xff
	}
	bf.clearSpare()
}

// Count returns the number of pieces set.
func (bf *Bitfield) Count() int { return bf.count }

// Full reports whether every piece is set.
func (bf *Bitfield) Full() bool { return bf.count == bf.n }

// NextAnd returns the lowest index from i on that is set in both bf and
// o, or -1. It skips 64 pieces at a time where either is empty, so that
// walking the pieces a peer has and we want costs little when they are
// few.
func (bf *Bitfield) NextAnd(o *Bitfield, i int) int {
	n := min(bf.n, o.n)
	for i >= 0 && i < n {
		w := i >> 3 &^ 7 // first byte of the 64-bit word holding i
		var x uint64
		if w+8 <= len(bf.b) {
			x = binary.BigEndian.Uint64(bf.b[w:]) & binary.BigEndian.Uint64(o.b[w:])
		} else {
			for j := w; j < len(bf.b); j++ {
				x |= uint64(bf.b[j]&o.b[j]) << (56 - 8*(j-w))
			}
		}
		x &= ^uint64(0) >> (i & 63)
		if x != 0 {
			if k := w*8 + bits.LeadingZeros64(x); k < n {
				return k
			}
			return -1
		}
		i = w*8 + 64
	}
	return -1
}

// Bytes returns a copy in wire form with the spare bits zero.
func (bf *Bitfield) Bytes() []byte { return append([]byte(nil), bf.b...) }

// Clone returns an independent copy.
func (bf *Bitfield) Clone() *Bitfield { return &Bitfield{n: bf.n, count: bf.count, b: bf.Bytes()} }
