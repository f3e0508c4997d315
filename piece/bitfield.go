package piece

import (
	"fmt"
	"math/bits"
)

// Bitfield is a fixed-length set of piece indexes. Bytes() is its wire form:
// bit i is in byte i/8, most significant bit first, as in BitTorrent, and the
// spare bits of the last byte are zero.
//
// A Bitfield value shares its storage with its copies (like a slice); use Clone
// for an independent one. The zero value is an empty bitfield of length 0.
// A Bitfield is not safe for concurrent mutation; Task hands out clones.
type Bitfield struct {
	n int
	b []byte
}

// NewBitfield returns an empty bitfield of n pieces (0 if n is negative).
func NewBitfield(n int) Bitfield {
	n = max(n, 0)
	return Bitfield{n: n, b: make([]byte, (n+7)/8)}
}

// BitfieldFromBytes decodes the wire form of a bitfield of n pieces. It
// rejects input of the wrong length or with spare bits set, since it
// typically comes from another peer. b is copied.
func BitfieldFromBytes(n int, b []byte) (Bitfield, error) {
	if n < 0 {
		return Bitfield{}, fmt.Errorf("%w: negative length %d", ErrBadBitfield, n)
	}
	if want := (n + 7) / 8; len(b) != want {
		return Bitfield{}, fmt.Errorf("%w: %d bytes for %d pieces, want %d", ErrBadBitfield, len(b), n, want)
	}
	if spare := n % 8; spare != 0 && b[len(b)-1]&(0xff>>spare) != 0 {
		return Bitfield{}, fmt.Errorf("%w: spare bits set after piece %d", ErrBadBitfield, n-1)
	}
	return Bitfield{n: n, b: append([]byte(nil), b...)}, nil
}

// Len is the number of pieces the bitfield covers.
func (b Bitfield) Len() int { return b.n }

// Has reports whether piece i is in the set; false when i is out of range.
func (b Bitfield) Has(i int) bool {
	if i < 0 || i >= b.n {
		return false
	}
	return b.b[i>>3]&(0x80>>(i&7)) != 0
}

// Set adds piece i to the set; an out-of-range i is ignored.
func (b *Bitfield) Set(i int) {
	if i < 0 || i >= b.n {
		return
	}
	b.b[i>>3] |= 0x80 >> (i & 7)
}

// Clear removes piece i from the set; an out-of-range i is ignored.
func (b *Bitfield) Clear(i int) {
	if i < 0 || i >= b.n {
		return
	}
	b.b[i>>3] &^= 0x80 >> (i & 7)
}

// Count is the number of pieces in the set.
func (b Bitfield) Count() int {
	c := 0
	for _, x := range b.b {
		c += bits.OnesCount8(x)
	}
	return c
}

// Full reports whether every piece is in the set (true for length 0).
func (b Bitfield) Full() bool { return b.Count() == b.n }

// Bytes returns a copy of the wire form.
func (b Bitfield) Bytes() []byte { return append([]byte{}, b.b...) }

// Clone returns an independent copy.
func (b Bitfield) Clone() Bitfield { return Bitfield{n: b.n, b: b.Bytes()} }
