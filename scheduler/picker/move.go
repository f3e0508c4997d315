package picker

import "time"

const (
	// MoveAfter is how long a request waits at a parent that has not started it before a
	// parent that holds the piece and was asked for nothing takes it over, when the first
	// parent can be told to drop it (a cancel, /pouch/pieces/1.2.0): about one 512 KiB piece at
	// 2 MB/s. At N = 16 nodes spent 0.6–0.9 s each with a request waiting at a busy parent
	// while another parent that held the piece idled (docs/benchmarks.md, "Idle links at
	// N = 16").
	MoveAfter = 250 * time.Millisecond
	// StealAfter is the same when the first parent cannot be told (an older release): it still
	// sends its copy, which the child drains, so the move waits for the endgame, where a slow
	// parent must not hold the last pieces.
	StealAfter = time.Second
)

// Waiting is a request that a child's other parent has not started to send.
type Waiting struct {
	Piece int
	Age   time.Duration // since it was asked for
	// Cancel says whether that parent can be told to drop it.
	Cancel bool
}

// Move chooses which waiting request a parent that holds and was asked for nothing else
// should take over, or -1: the one asked for longest ago among those that waited MoveAfter (the
// first parent drops it) or StealAfter (it cannot), and that the parent holds. The caller
// cancels the piece at the first parent when it can, and asks the idle one.
func Move(waiting []Waiting, holds func(piece int) bool) int {
	best := -1
	var oldest time.Duration
	for _, w := range waiting {
		after := StealAfter
		if w.Cancel {
			after = MoveAfter
		}
		if w.Age < after || (best >= 0 && w.Age <= oldest) || !holds(w.Piece) {
			continue
		}
		best, oldest = w.Piece, w.Age
	}
	return best
}
