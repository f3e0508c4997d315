package picker

// FirstPieces is how many pieces a parent sends a child ahead of its other children: a child
// to which the parent has sent fewer pieces on its connection is starting, and the oldest
// send to a starting child takes the parent's whole upload until it ends. At a burst's start
// a parent that had just got piece 0 sent it to its three new children at once, a third of
// its upload each, so all three had it three piece times later; one after the other, the
// first has it after one piece time and forwards it while the parent sends the next, so the
// piece reaches every node's upload sooner (docs/benchmarks.md, "The start of a burst").
const FirstPieces = 1

// Lead chooses which of a parent's sends in progress get its upload: the index of the one that
// goes alone, or -1 when they all share it. sent(k) is how many pieces the parent had sent
// the child of the k-th send on its connection before it, the sends numbered in the order they
// started (n of them). The oldest send to a starting child (sent(k) < FirstPieces) goes alone;
// with none, every send shares the upload.
func Lead(n int, sent func(k int) int) int {
	for k := range n {
		if sent(k) < FirstPieces {
			return k
		}
	}
	return -1
}
