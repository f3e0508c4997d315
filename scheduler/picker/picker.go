// Package picker is Pouch's piece-selection policy: which piece a downloading peer asks a
// parent for next ([Pick]), and which pieces the seed offers a child when it super-seeds
// ([Offer], [Budget], [Once], [Expired]). The dfdaemon, the seed's upload server
// (internal/peer) and dfbench's simulator all call it, so the simulator validates the code the
// daemons run, not a copy of it.
//
// Like its parent package it is pure: no I/O, no goroutines, no clock and no randomness of its
// own. Time and random draws are passed in; the callers hold the state and move the messages.
package picker

const (
	// Window is how many pieces past a waiting reader's position are taken in order from any
	// parent but the seed, so a streaming client (the registry mirror) gets its next bytes first.
	Window = 8
	// Pipeline is how many piece requests a child keeps waiting at each parent besides the
	// piece arriving from it (the dfdaemon's default, and the simulator's): one, so the next
	// piece is asked for while the current one arrives, and no round trip is lost between
	// pieces. More bound pieces to a parent whose upload is shared with other children, while
	// another parent that holds them idled: with 3, 16 nodes at 2 MB/s spent 3.6–4 s each with
	// requests out and no byte arriving (docs/benchmarks.md, "Idle links at N = 16").
	Pipeline = 1
)

// Child is what the picker reads of one child's download, for one parent.
type Child interface {
	// Avail is how many of the child's parents hold (or, the seed, offered) piece i.
	Avail(i int) int
	// Usable says whether piece i can be asked of this parent now: the parent holds it (the
	// seed: offered it), the child lacks it, no other parent was asked for it, and its digest
	// is known.
	Usable(i int) bool
}

// Choice is one piece to choose for one parent.
type Choice struct {
	Pieces int // in the task
	// Cursor is the first piece a reader waits for, or -1 when none waits.
	Cursor int
	// FromSeed: the parent is the seed, which offers each child a few pieces it has sent least
	// (super-seeding); taking them in the reader's order instead would make every child ask it
	// for the same ones.
	FromSeed bool
	// Start draws where the scan for the rarest piece begins, in [0, n): at random, so that
	// children of one parent ask it for different pieces and then trade them. It is called
	// only when the rarest is looked for, so the caller's random sequence does not depend on
	// how often the window answered.
	Start func(n int) int
}

// Pick chooses the next piece to request from a parent, or -1 when it has nothing usable: the
// pieces a reader waits for first (the registry mirror streams in order, and its client gives
// up on a blob whose first byte is slow), then the rarest among the child's parents, ties
// broken by where the scan starts. From the seed only the rarest.
func Pick(c Choice, ch Child) int {
	n := c.Pieces
	if c.Cursor >= 0 && !c.FromSeed {
		for i := c.Cursor; i < min(n, c.Cursor+Window); i++ {
			if ch.Usable(i) {
				return i
			}
		}
	}
	if n <= 0 {
		return -1
	}
	best, bestAvail := -1, 0
	start := c.Start(n)
	for k := range n {
		i := (start + k) % n
		if a := ch.Avail(i); (best < 0 || a < bestAvail) && ch.Usable(i) {
			best, bestAvail = i, a
		}
	}
	return best
}
