package supernode

import (
	"testing"

	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/piece"
)

// TestWantSet: a span wants the pieces it overlaps, no more; a span inside a wanted one adds
// nothing; past maxWantSpans the set says it is full.
func TestWantSet(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	m := piece.Meta{ContentLength: 10*mib + 5, PieceSize: mib} // 11 pieces, the last of 5 bytes
	var w wantSet
	if grew, full := w.add(snapi.Span{Start: mib - 1, End: 2 * mib}); !grew || full {
		t.Fatalf("first span: grew %v, full %v", grew, full)
	}
	if grew, _ := w.add(snapi.Span{Start: mib, End: mib + 10}); grew {
		t.Error("a span inside a wanted one grew the set")
	}
	for i, want := range []bool{true, true, true, false, false, false, false, false, false, false, false} {
		if got := w.has(i, m); got != want {
			t.Errorf("piece %d wanted: %v, want %v", i, got, want)
		}
	}
	w.add(snapi.Span{Start: 10 * mib, End: 20 * mib}) // past the end: the last piece only
	if !w.has(10, m) || w.has(9, m) {
		t.Errorf("a span past the end: piece 10 %v, piece 9 %v", w.has(10, m), w.has(9, m))
	}
	var full wantSet
	for i := range maxWantSpans {
		full.add(snapi.Span{Start: int64(2 * i), End: int64(2 * i)})
	}
	if grew, isFull := full.add(snapi.Span{Start: 1, End: 1}); grew || !isFull {
		t.Errorf("span %d: grew %v, full %v", maxWantSpans+1, grew, isFull)
	}
}
