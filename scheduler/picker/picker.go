// Package picker is Pouch's piece-selection policy: which piece a downloading peer asks a
// parent for next ([Pick]), and which pieces the seed offers a child when it super-seeds
// ([Offer], [Budget], [Once], [Expired]). The dfdaemon, the seed's upload server
// (internal/peer) and dfbench's simulator all call it, so the simulator validates the code the
// daemons run, not a copy of it.
//
// Like its parent package it is pure: no I/O, no goroutines, no clock and no randomness of its
// own. Time and random draws are passed in; the callers hold the state and move the messages.
package picker

import "hash/fnv"

const (
	// Window is how many pieces past a waiting reader's position are taken in order from any
	// parent but the seed, so a streaming client (the registry mirror) gets its next bytes first.
	Window = 8
	// Pipeline is how many piece requests a child keeps outstanding per parent by default (the
	// dfdaemon's --pipeline default, and the simulator's).
	Pipeline = 3
	// Stripes is how many stripes the pieces fall into: piece i is in stripe i mod Stripes, and
	// every peer has one stripe, StripeOf its peer ID, which every other peer and the scheduler
	// derive alike (no message carries it). A peer asks its parents first for its own stripe's
	// pieces (Pick), and the scheduler prefers parents of stripes a child lacks, so each peer
	// is one of the first holders of its stripe among its children's parents and has pieces
	// to forward that they lack: the mesh form of SplitStream's stripe trees, which keeps
	// uploads busy. Four, the scheduler's default parent count, so that a child's parents can
	// cover every stripe.
	Stripes = 4
)

// StripeOf is the stripe of the peer with this ID (the scheduler's PeerID, the libp2p peer ID
// in text): FNV-1a of the ID, mod Stripes.
func StripeOf(id string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % Stripes)
}

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
	// Striped: Own and Parent are the child's and the parent's stripes (StripeOf their IDs),
	// and the rarest is looked for first in Own's stripe, then in Parent's, then among all.
	Striped     bool
	Own, Parent int
}

// Pick chooses the next piece to request from a parent, or -1 when it has nothing usable: the
// pieces a reader waits for first (the registry mirror streams in order, and its client gives
// up on a blob whose first byte is slow), then the rarest among the child's parents, ties
// broken by where the scan starts. From the seed only the rarest.
//
// With Striped, the rarest of the child's own stripe comes first, then of the parent's, then
// any: a peer gets its own stripe early from all its parents, so that it holds pieces its
// children's other parents, of other stripes, went for later; a parent is asked for its own
// stripe next, which it got early. Simulated (docs/benchmarks.md, 2026-12-02 third session),
// own-first did better than parent's-first and than the parent's stripe alone.
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
	start := c.Start(n)
	if c.Striped && !c.FromSeed {
		if i := rarest(n, start, c.Own, ch); i >= 0 {
			return i
		}
		if c.Parent != c.Own {
			if i := rarest(n, start, c.Parent, ch); i >= 0 {
				return i
			}
		}
	}
	return rarest(n, start, -1, ch)
}

// rarest is the usable piece of stripe (any piece for -1) the fewest parents hold, scanning n
// pieces from start.
func rarest(n, start, stripe int, ch Child) int {
	best, bestAvail := -1, 0
	for k := range n {
		i := (start + k) % n
		if stripe >= 0 && i%Stripes != stripe {
			continue
		}
		if a := ch.Avail(i); (best < 0 || a < bestAvail) && ch.Usable(i) {
			best, bestAvail = i, a
		}
	}
	return best
}
