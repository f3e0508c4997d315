package piece

import (
	"errors"
	"testing"
)

func TestSizeFor(t *testing.T) {
	t.Parallel()
	const (
		KiB = int64(1) << 10
		MiB = int64(1) << 20
		GiB = int64(1) << 30
		TiB = int64(1) << 40
	)
	tests := []struct {
		name   string
		length int64
		want   int64
	}{
		{"empty", 0, MinSize},
		{"negative", -1, MinSize},
		{"one byte", 1, MinSize},
		{"1 MiB", MiB, MinSize},
		{"128 MiB is 256 pieces of 512 KiB", 128 * MiB, MinSize},
		{"just over 128 MiB doubles", 128*MiB + 1, MiB},
		{"256 MiB is 256 pieces of 1 MiB", 256 * MiB, MiB},
		{"just over 256 MiB doubles", 256*MiB + 1, 2 * MiB},
		{"1 GiB", GiB, 4 * MiB},
		{"1 GiB plus 1 KiB rounds up", GiB + KiB, 8 * MiB},
		{"4 GiB", 4 * GiB, 16 * MiB},
		{"16 GiB is the last unclamped", 16 * GiB, MaxSize},
		{"1 TiB clamped", TiB, MaxSize},
		{"huge clamped", 1<<63 - 1, MaxSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := SizeFor(tt.length)
			if got != tt.want {
				t.Fatalf("SizeFor(%d) = %d, want %d", tt.length, got, tt.want)
			}
			if !validPieceSize(got) {
				t.Fatalf("SizeFor(%d) = %d is not a valid piece size", tt.length, got)
			}
			if tt.length > 0 && tt.length <= int64(TargetCount)*MaxSize && Count(tt.length, got) > TargetCount {
				t.Fatalf("SizeFor(%d) = %d gives %d pieces, more than %d", tt.length, got, Count(tt.length, got), TargetCount)
			}
		})
	}
}

func TestCountBounds(t *testing.T) {
	t.Parallel()
	const MiB = int64(1) << 20
	type piece struct{ off, n int64 }
	tests := []struct {
		name      string
		length    int64
		pieceSize int64
		count     int
		pieces    map[int]piece // index -> bounds; absent indexes are not checked
	}{
		{"empty", 0, MiB, 0, map[int]piece{0: {0, 0}, -1: {0, 0}}},
		{"one byte", 1, MiB, 1, map[int]piece{0: {0, 1}, 1: {0, 0}}},
		{"exact", 4 * MiB, MiB, 4, map[int]piece{0: {0, MiB}, 3: {3 * MiB, MiB}, 4: {0, 0}}},
		{"short last piece", 5*MiB + 123, MiB, 6, map[int]piece{4: {4 * MiB, MiB}, 5: {5 * MiB, 123}, 6: {0, 0}}},
		{"one short of a piece", 2*MiB - 1, MiB, 2, map[int]piece{1: {MiB, MiB - 1}}},
		{"bad piece size", 10, 0, 0, map[int]piece{0: {0, 0}}},
		{"near MaxInt64 does not overflow", 1<<63 - 1, MaxSize, 1 << 37, map[int]piece{1<<37 - 1: {(1<<37 - 1) * MaxSize, MaxSize - 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Count(tt.length, tt.pieceSize); got != tt.count {
				t.Fatalf("Count(%d, %d) = %d, want %d", tt.length, tt.pieceSize, got, tt.count)
			}
			for i, want := range tt.pieces {
				off, n := Bounds(i, tt.length, tt.pieceSize)
				if off != want.off || n != want.n {
					t.Errorf("Bounds(%d, %d, %d) = (%d, %d), want (%d, %d)", i, tt.length, tt.pieceSize, off, n, want.off, want.n)
				}
			}
			// The pieces tile the content exactly (checked where it is cheap).
			if tt.count > 0 && tt.count <= 1024 {
				var next int64
				for i := range tt.count {
					off, n := Bounds(i, tt.length, tt.pieceSize)
					if off != next || n <= 0 {
						t.Fatalf("piece %d = (%d, %d), want offset %d and a positive length", i, off, n, next)
					}
					next = off + n
				}
				if next != tt.length {
					t.Fatalf("pieces end at %d, want %d", next, tt.length)
				}
			}
		})
	}
}

func TestBitfieldRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		n     int
		set   []int
		bytes []byte
	}{
		{"empty", 0, nil, []byte{}},
		{"one piece", 1, []int{0}, []byte{0x80}},
		{"msb first", 8, []int{0, 7}, []byte{0x81}},
		{"spare bits", 10, []int{1, 8, 9}, []byte{0x40, 0xc0}},
		{"full", 9, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}, []byte{0xff, 0x80}},
		{"out of range ignored", 3, []int{-1, 3, 100, 2}, []byte{0x20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := NewBitfield(tt.n)
			for _, i := range tt.set {
				b.Set(i)
			}
			if got := b.Bytes(); string(got) != string(tt.bytes) {
				t.Fatalf("Bytes() = %x, want %x", got, tt.bytes)
			}
			back, err := BitfieldFromBytes(tt.n, b.Bytes())
			if err != nil {
				t.Fatalf("BitfieldFromBytes: %v", err)
			}
			count := 0
			for i := -1; i <= tt.n; i++ {
				if back.Has(i) != b.Has(i) {
					t.Fatalf("Has(%d) = %v after round trip, want %v", i, back.Has(i), b.Has(i))
				}
				if b.Has(i) {
					count++
				}
			}
			if back.Len() != tt.n || back.Count() != count || back.Full() != (count == tt.n) {
				t.Fatalf("Len, Count, Full = %d, %d, %v; want %d, %d, %v", back.Len(), back.Count(), back.Full(), tt.n, count, count == tt.n)
			}
			// Bytes and Clone are copies.
			c := b.Clone()
			raw := b.Bytes()
			for i := range raw {
				raw[i] = 0xff
			}
			for i := range tt.n {
				c.Set(i)
			}
			if got := b.Bytes(); string(got) != string(tt.bytes) {
				t.Fatalf("original changed through a copy: %x", got)
			}
		})
	}
}

func TestBitfieldFromBytesBad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int
		b    []byte
	}{
		{"too short", 9, []byte{0xff}},
		{"too long", 8, []byte{0xff, 0x00}},
		{"nil for one piece", 1, nil},
		{"spare bit set", 9, []byte{0xff, 0x40}},
		{"last spare bit set", 1, []byte{0x01}},
		{"negative length", -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := BitfieldFromBytes(tt.n, tt.b); !errors.Is(err, ErrBadBitfield) {
				t.Fatalf("BitfieldFromBytes(%d, %x) error = %v, want ErrBadBitfield", tt.n, tt.b, err)
			}
		})
	}
}
