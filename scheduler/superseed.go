package scheduler

// The seed's super-seeding policy. The seed (internal/peer, on the supernode) applies it piece
// by piece, which is no part of [Scheduler]'s decisions; it lives here because it is a policy
// of the same kind and dfbench's simulator must model exactly what the seed runs: both read
// these constants, and neither has to import the other.
const (
	// SuperSeedOffers is how many pieces a child may have pending at the seed (offered or
	// requested, not yet sent): enough to keep the seed busy, few enough that the seed does not
	// queue pieces the swarm will have spread by the time they would go out.
	SuperSeedOffers = 2
	// SuperSeedPending caps the pieces pending at the seed over all children and all tasks
	// together (an image is several tasks pulled at once): a few seconds of its upload. Without
	// it, N children each holding offers would make the seed queue 2N pieces, more than a small
	// task has, and send pieces twice from the start.
	SuperSeedPending = 8
)
