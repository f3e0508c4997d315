package picker

import "time"

// The seed's super-seeding policy: it offers each child only a few pieces at a time, those sent
// least often, instead of everything it holds, so that it sends each piece about once and the
// children trade the rest (BitTorrent's super-seeding). internal/peer's upload server applies
// it stream by stream; dfbench's simulator applies the same functions to its model of the seed.
const (
	// SeedOffers is how many pieces a child may have pending at the seed (offered or requested,
	// not yet sent): enough to keep the seed busy, few enough that the seed does not queue
	// pieces the swarm will have spread by the time they would go out.
	SeedOffers = 2
	// SeedPending caps the pieces pending at the seed over all children and all tasks together
	// (an image is several tasks pulled at once): a few seconds of its upload. Without it, N
	// children each holding offers would make the seed queue 2N pieces, more than a small task
	// has, and send pieces twice from the start.
	SeedPending = 8
	// OfferExpiry is how long an offer the child has not asked for stays open (it got that
	// piece from a peer meanwhile): it is then replaced. It is also how long the seed goes on
	// offering each new piece once after it stopped growing (see Once).
	OfferExpiry = 2 * time.Second
	// IdleOfferExpiry is how long an idle child — one that let an offer expire without asking
	// for anything since it was made — keeps an offer. Such a stream holds one offer at a time,
	// and only out of the slots the other children leave: a stream that never asks (a broken or
	// hostile peer) must not hold a share of the seed.
	IdleOfferExpiry = 500 * time.Millisecond
)

// Stream is how the seed sees one child's stream when it decides on offers.
type Stream struct {
	// Offers is how many offers the stream may hold while it takes them: SeedOffers.
	Offers int
	Idle   bool // it let an offer expire without asking for anything since it was made
	// Background: it only warms a cache (a preheat) rather than serving a pull a client waits
	// for; Foreground says some other stream does serve one.
	Background, Foreground bool
	// Active is how many of the seed's streams, over every task, are not idle.
	Active int
}

// Budget says how many offers the stream may hold (quota) and up to how many pieces may be
// pending at the seed in all (limit) when it is given a new one. Background streams hold at
// most half the seed while a client's pull runs; an idle stream holds one offer, out of what the
// active streams leave.
func Budget(s Stream) (quota, limit int) {
	quota, limit = s.Offers, SeedPending
	if s.Background && s.Foreground {
		limit /= 2 // the other half is kept for the pulls clients wait for
	}
	if s.Idle {
		quota = 1
		limit -= s.Active * SeedOffers
	}
	return quota, limit
}

// Once says whether each piece goes out only once: while pieces keep arriving from the origin
// (the seed is incomplete and grew within OfferExpiry), the children trade a piece the seed
// sent, and its upload goes to the next new piece. Offering the few pieces it holds to every
// child instead sent each of them to all children whenever the origin was no faster than the
// seed's upload (measured: 8 children held 2 distinct pieces after 4 s at 4 MB/s). Once the
// seed stops growing (complete, or holding only what no peer holds), a piece may go out again,
// so a child whose only holder died still gets it.
func Once(complete bool, grew, now time.Time) bool {
	return !complete && now.Sub(grew) < OfferExpiry
}

// Expired says whether an offer made at `at` and not asked for lapses at now.
func Expired(at, now time.Time, asked, idle bool) bool {
	expiry := OfferExpiry
	if idle {
		expiry = IdleOfferExpiry
	}
	return !asked && now.Sub(at) > expiry
}

// Offer chooses the next piece to offer a child, or -1: of the pieces eligible (the seed holds
// it, it was never offered to this child, the child is not known to hold it) the one sent or
// offered least often so far (load), the lowest index on ties; with once, only pieces never
// sent or offered.
func Offer(pieces int, once bool, load func(i int) int, eligible func(i int) bool) int {
	best, bestLoad := -1, 0
	for i := range pieces {
		if !eligible(i) {
			continue
		}
		l := load(i)
		if once && l > 0 {
			continue
		}
		if best < 0 || l < bestLoad {
			best, bestLoad = i, l
		}
	}
	return best
}
