// Package scheduler makes Pouch's scheduling decisions: which parents a peer
// gets, when a peer is reassigned, and when a peer must go back to the
// origin itself.
//
// It is pure decision logic in the style of etcd's raft RawNode: no I/O, no
// goroutines, no wall clock (time is passed in), and deterministic — the
// only randomness is a PCG generator per task seeded from Config.Seed and
// the task ID, so the same sequence of calls yields the same decisions. The
// caller (the supernode, or the discrete-event simulator) moves the
// messages. A [Scheduler] is not safe for concurrent use; the supernode
// calls it under its own lock.
//
// Peers trade bitfields with their parents and choose pieces themselves
// (rarest first); the scheduler is off the per-piece path and only hands out
// parent sets and updates them on events (Join, Report, Transfer, Failure,
// Leave).
//
// # Scale
//
// A decision never scans the peers of a task. It evaluates a bounded
// candidate set: the Config.SourceSamples best sources by free upload
// capacity (an indexed max-heap), plus a uniform sample of Config.Candidates
// alive peers (a join-ordered slice with holes, compacted when half empty),
// plus the peer's current parents. Join and Report cost
// O(Candidates + SourceSamples + MaxParents); Leave, Failure and blocking
// cost that per affected child. Only [Scheduler.Stats] scans.
//
// # Policy
//
// Parent score. For a child c and a candidate parent q:
//
//	share    = q.UploadRate / (q's children + 1)   — free upload capacity
//	progress = 1 for a source (the seed, a complete peer),
//	           0.2 + 0.7·have/pieces for a downloading peer (more pieces is better)
//	rate     = EWMA throughput q→c ÷ mean over c's measured parents, clamped to [0.25, 2];
//	           1 when unmeasured
//	penalty  = 1 / (1 + consecutive failures q→c)
//	score    = share · progress · rate · penalty
//
// After Config.MaxFailures consecutive failures (any bytes received reset
// the count) c drops q and does not take it again in the task. Ties go to
// a peer that is not the seed, then to the earlier joiner.
//
// Failure reports are claims by peers, so they steer only what the
// reporter itself was given. A report counts only when q is c's parent or
// was within Config.ReportWindow (reports travel in batches); any other is
// ignored. A FailCorrupt report takes q out of c's set for good; q is
// blocked for the whole task — removed from every parent set at once,
// never anyone's parent again — only when Config.CorruptReporters (default
// 2) distinct children it served agree, so one liar cannot cut a parent
// off. The seed is never blocked by reports: its pieces come from the
// origin, and the supernode re-hashes a reported piece itself.
//
// Backbone and lateral parents. Every downloading peer gets up to
// Config.MaxParents parents. The first is its backbone parent: the seed, a
// complete peer, or a downloading peer that joined earlier (lower rank).
// Ranks strictly decrease along backbone edges between downloading peers,
// so the backbone relation is a forest without cycles whose roots are
// sources; no group of peers can cut itself off from the data by feeding
// only each other. The other parents are lateral: any usable peer,
// mutual exchange between downloading peers included — that is how the
// swarm trades pieces and approaches the Kumar–Ross bound, with the seed
// sending each piece about once. When a backbone parent leaves, fails or
// is blocked, the child takes a new backbone parent by the same rule, so
// never one of its own backbone descendants (they all joined later).
//
// Seed load. The seed's free capacity falls with each child, so at large N
// later peers get earlier peers rather than the seed; a peer that completes
// drops its own parents and becomes a source, at the top of the source
// heap, and gets children: through Join, and through Report, which swaps at
// most one parent per call for a candidate scoring at least
// Config.SwapRatio (default 2) times the replaced parent — the worst
// lateral parent, or the backbone parent for a better valid backbone.
// Reports also refill vacant slots. Parent sets improve without churn.
//
// Idle parents. A Report first drops the reporter's lateral parents that
// are downloading peers linked for at least its idle window and that no
// child reported bytes from within it: all their children already hold, or
// have asked elsewhere for, what they hold, so their upload is lost (only a
// child's reports about parents it was given count). The
// window is two sync intervals (2 s), or twice the longest transfer the
// reporter ever reported when longer (large pieces on slow links); a peer
// that reported no transfer yet drops nothing. Sources and the backbone
// parent are never dropped so. The dropped parent has a child fewer, so it
// scores higher for the peers that sample it next, and the reporter does
// not take it back within the window. A parent slow to the reporter but
// uploading to others stays: dropping it would leave the reporter's queued
// requests draining there while the scheduler sent it more children.
//
// Back to source. A decision has BackToSource=true when:
//   - SourceFailed was called for the task (every peer, until a retried
//     seed reaches the origin and SourceRecovered is called);
//   - the peer is the seed (fetching from the origin is its job);
//   - the peer is an orphan: a downloading peer for which no valid backbone
//     parent exists — no seed alive, no complete peer, and no earlier
//     joiner that can progress (or all of them unusable to it). In a task
//     with no source at all this is exactly one peer, the earliest
//     joiner: it fetches from the origin and every later peer hangs off it
//     through backbone parents, so the origin still serves the blob once.
//     It keeps lateral parents, which may supply pieces. When a source
//     appears (the seed joins, a peer completes), orphans are re-attached
//     and their BackToSource is cleared (reported by TakeChanged).
//
// Deviation from the brief: an orphan goes back to source even if some
// peers hold pieces; otherwise a swarm whose pieces do not cover the blob
// would wait forever, and a pull must never fail because of P2P.
//
// Taking a task over. [Holdings] is the pure part of a supernode taking a task over from its
// peers (its home died, or it restarted): which piece digests announced by peers it adopts (every
// announcer agrees; the seed's own hash always wins) and which pieces its seed need not fetch
// from the origin because a live peer holds them.
//
// Reassignment. A peer whose parent left ([Scheduler.Leave] returns it), or
// failed past MaxFailures or was blocked ([Scheduler.Failure] returns the
// reporting child; the other children come from [Scheduler.TakeChanged]) gets
// a replacement at once.
package scheduler
