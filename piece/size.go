package piece

import "math/bits"

const (
	// MinSize is the smallest piece: below it the per-piece costs (a request,
	// a digest, a bit, a `have` to each child) dominate the transfer itself.
	// Smaller pieces spread faster (each hop through the mesh waits for a whole
	// piece); 512 KiB measured as fast as 1 MiB at N = 8 and faster at N = 16
	// once durability left the hop path, and 256 KiB cost the supernode more
	// CPU for no gain (docs/benchmarks.md, "Toward 1.10"). Every peer must use
	// the same value: a peer of another minimum computes another piece size
	// for content under 256 × 1 MiB, and its announcements are refused.
	MinSize int64 = 512 << 10 // 512 KiB
	// MaxSize is the largest piece: it bounds how much a peer must download
	// before it can serve anything, and how much is lost to one bad piece.
	MaxSize int64 = 64 << 20 // 64 MiB
	// TargetCount is the number of pieces the policy aims not to exceed, so that
	// a bitfield is at most 32 bytes for content up to 16 GiB.
	TargetCount = 256
	// MaxPieces bounds the piece count of any task the store accepts (whatever
	// piece size the metadata names), because bitfields and digests of a task
	// are held in memory and metadata may come from the network.
	MaxPieces = 1 << 20
)

// SizeFor returns the piece size for content of the given length: the smallest
// power of two >= ceil(contentLength/TargetCount), clamped to [MinSize, MaxSize].
// Empty or negative lengths get MinSize.
func SizeFor(contentLength int64) int64 {
	if contentLength <= MinSize*TargetCount {
		return MinSize
	}
	target := contentLength / TargetCount
	if contentLength%TargetCount != 0 {
		target++
	}
	if target >= MaxSize {
		return MaxSize
	}
	return int64(1) << bits.Len64(uint64(target-1))
}

// Count is the number of pieces of size pieceSize needed for contentLength
// bytes (rounded up); 0 when contentLength is 0 or either argument is not
// positive.
func Count(contentLength, pieceSize int64) int {
	if contentLength <= 0 || pieceSize <= 0 {
		return 0
	}
	// Divide first: contentLength+pieceSize-1 could overflow near MaxInt64.
	n := contentLength / pieceSize
	if contentLength%pieceSize != 0 {
		n++
	}
	return int(n)
}

// Bounds returns the offset and length of piece i. Every piece is pieceSize
// long except possibly the last, which holds what is left. It returns (0, 0)
// when i is not a piece of the content.
func Bounds(i int, contentLength, pieceSize int64) (off, n int64) {
	if i < 0 || i >= Count(contentLength, pieceSize) {
		return 0, 0
	}
	off = int64(i) * pieceSize
	return off, min(pieceSize, contentLength-off)
}

// validPieceSize reports whether size is a power of two in [MinSize, MaxSize].
func validPieceSize(size int64) bool {
	return size >= MinSize && size <= MaxSize && size&(size-1) == 0
}
