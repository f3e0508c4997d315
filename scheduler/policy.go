package scheduler

import (
	"cmp"
	"slices"
	"time"
)

// Score weights. See the package documentation for the policy.
const (
	progressFloor   = 0.2  // a downloading peer with no piece yet
	progressSpan    = 0.7  // added in proportion to its progress (so < a source's 1)
	progressUnknown = 0.5  // a peer with pieces when the piece count is unknown
	rateFactorMin   = 0.25 // measured throughput factor bounds
	rateFactorMax   = 2.0
	maxLowerScan    = 1024 // linear fallback when looking for an earlier joiner

	// idleAfter is how long a lateral parent that is itself downloading may upload nothing, to
	// any child, before a child's next Report drops it (see dropIdle): two of a peer's sync
	// intervals (snapi.SyncInterval, 1 s), so that one late report does not count as silence.
	idleAfter = 2 * time.Second
)

type cand struct {
	p     *peer
	score float64
}

// progress is how useful q's content is: 1 for a source, less for a
// downloading peer, more the more pieces it holds.
func (t *task) progress(q *peer) float64 {
	if t.isSource(q) {
		return 1
	}
	if t.pieces > 0 {
		f := float64(q.have) / float64(t.pieces)
		f = min(max(f, 0), 1)
		return progressFloor + progressSpan*f
	}
	if q.have > 0 {
		return progressUnknown
	}
	return progressFloor
}

// meanRate is the mean measured throughput over c's current parents
// (0 when none is measured).
func meanRate(c *peer) float64 {
	var sum float64
	n := 0
	for _, e := range c.parents {
		if st := c.hist[e.parent.id]; st != nil && st.ewma > 0 {
			sum += st.ewma
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// score is how good q is as a parent for c:
//
//	share    = upload / (children + 1)   (children includes c if q is already its parent)
//	progress = 1 for a source, 0.2..0.9 for a downloading peer by pieces held
//	rate     = measured throughput q→c relative to c's other parents, in [0.25, 2] (1 if unknown)
//	penalty  = 1 / (1 + consecutive failures q→c)
//	score    = share · progress · rate · penalty
//
// The throughput enters relative to the child's mean so that a child whose
// own download link is the bottleneck (all parents look slow) does not
// swap measured parents for unmeasured ones forever.
func (t *task) score(c, q *peer, isParent bool, mean float64) float64 {
	n := len(q.children)
	if !isParent {
		n++
	}
	n = max(n, 1)
	s := q.up / float64(n) * t.progress(q)
	if st := c.hist[q.id]; st != nil {
		if st.ewma > 0 && mean > 0 {
			s *= min(max(st.ewma/mean, rateFactorMin), rateFactorMax)
		}
		s /= float64(1 + st.failures)
	}
	return s
}

// better orders candidates: higher score, then not a seed (spare the
// seed among equals), then earlier joiner.
func better(a, b cand) int {
	if c := cmp.Compare(b.score, a.score); c != 0 {
		return c
	}
	if a.p.seed != b.p.seed {
		if b.p.seed {
			return -1
		}
		return 1
	}
	return cmp.Compare(a.p.rank, b.p.rank)
}

// gather returns the candidate parents for c: the best SourceSamples
// sources by free capacity plus a uniform sample of Candidates alive peers
// (every alive peer when there are few). Current parents, c itself and
// unusable peers are left out. The result aliases t.scratch.
func (t *task) gather(c *peer) []*peer {
	cfg := &t.s.cfg
	t.epoch++
	ep := t.epoch
	c.mark = ep
	for _, e := range c.parents {
		e.parent.mark = ep
	}
	out := t.scratch[:0]
	add := func(q *peer) {
		if q == nil || q.mark == ep {
			return
		}
		q.mark = ep
		if t.usable(c, q) && !t.recentlyIdle(c, q) {
			out = append(out, q)
		}
	}
	t.sources.top(cfg.SourceSamples, add)
	if t.alive() <= cfg.Candidates+1 {
		for _, q := range t.order {
			add(q)
		}
	} else {
		sampled := 0
		for tries := 0; tries < 3*cfg.Candidates && sampled < cfg.Candidates; tries++ {
			q := t.order[t.rng.IntN(len(t.order))]
			if q == nil || q.mark == ep {
				continue
			}
			sampled++
			add(q)
		}
	}
	t.scratch = out
	return out
}

// idleWindow is how long c's parent may send c nothing before it counts as idle: idleAfter, or
// twice the longest transfer c ever reported when that is longer (large pieces on slow links
// take longer than idleAfter to arrive, and a parent sending one is not idle). Zero while c has
// reported no transfer: nothing is known yet of how long a piece takes to reach it.
func idleWindow(c *peer) time.Duration {
	if c.slowest <= 0 {
		return 0
	}
	return max(idleAfter, 2*c.slowest)
}

// idle reports whether e's parent, c's parent for at least the idle window, uploaded nothing
// within it: no child, c or another, reported bytes from it.
func (t *task) idle(e *edge, window time.Duration) bool {
	return window > 0 && t.now.Sub(e.since) >= window && t.now.Sub(e.parent.sent) >= window
}

// dropIdle takes out of c's set the lateral parents that are downloading peers and uploaded
// nothing to anyone for the idle window: each of their children already holds, or has asked
// another parent for, everything they hold, so their upload is lost to the swarm. Dropped by
// its children, such a parent has fewer children and scores higher for the peers that sample
// it next, and c's slot goes to a peer with other pieces. Only a parent idle for all its
// children: one that is slow to c but busy with others (a 1 MiB piece at 4 MB/s shared by many
// children takes seconds) keeps c, since c's queued requests would drain there anyway while
// the scheduler, counting one child fewer, sent it more (simulated at N = 10,000 this made the
// slowest nodes 1.5× slower; docs/benchmarks.md). Sources and the backbone parent stay: a
// source holds everything c lacks, and the backbone keeps c attached to one. A parent dropped
// so is not taken back for the window (recentlyIdle), or fill would pick it again at once.
func (t *task) dropIdle(c *peer) {
	window := idleWindow(c)
	if window <= 0 {
		return
	}
	for i := len(c.parents) - 1; i >= 0; i-- {
		e := c.parents[i]
		if e.parent == c.backbone || t.isSource(e.parent) || !t.idle(e, window) {
			continue
		}
		t.unlink(e)
		c.stat(e.parent.id).idle = t.now
		t.s.counters.IdleDrops++
	}
}

// recentlyIdle reports whether dropIdle took q out of c's set within the idle window.
func (t *task) recentlyIdle(c, q *peer) bool {
	st := c.hist[q.id]
	return st != nil && !st.idle.IsZero() && t.now.Sub(st.idle) < idleWindow(c)
}

// lowerRank looks for a backbone parent among peers that joined before c
// (sampled; then a bounded scan backwards) when the candidate set had none.
func (t *task) lowerRank(c *peer, mean float64) *peer {
	if c.pos == 0 {
		return nil
	}
	var best cand
	for i := 0; i < t.s.cfg.Candidates; i++ {
		q := t.order[t.rng.IntN(c.pos)]
		if q == nil || !t.validBackbone(c, q) || c.parentEdge(q) != nil {
			continue
		}
		k := cand{q, t.score(c, q, false, mean)}
		if best.p == nil || better(k, best) < 0 {
			best = k
		}
	}
	if best.p != nil {
		return best.p
	}
	for i, n := c.pos-1, 0; i >= 0 && n < maxLowerScan; i, n = i-1, n+1 {
		if q := t.order[i]; q != nil && t.validBackbone(c, q) && c.parentEdge(q) == nil {
			return q
		}
	}
	return nil
}

// snapshot of a decision, to tell whether an operation changed it.
type snap struct {
	parents []*peer
	orphan  bool
}

func (t *task) snap(c *peer) snap {
	ps := make([]*peer, len(c.parents))
	for i, e := range c.parents {
		ps[i] = e.parent
	}
	return snap{ps, t.isOrphan(c)}
}

func (t *task) changed(c *peer, before snap) bool {
	if before.orphan != t.isOrphan(c) || len(before.parents) != len(c.parents) {
		return true
	}
	for i, e := range c.parents {
		if before.parents[i] != e.parent {
			return true
		}
	}
	return false
}

// fill repairs c's parent set: drops parents it may no longer use, makes
// sure it has a valid backbone parent (first), fills vacant lateral slots
// with the best candidates and orders the laterals best first. A downloading
// peer for which no backbone parent exists becomes an orphan: it is told to
// go back to source, and feeds its own backbone descendants.
func (t *task) fill(c *peer) {
	if !t.downloading(c) {
		t.dropParents(c)
		t.setOrphan(c, false)
		return
	}
	cfg := &t.s.cfg
	for i := len(c.parents) - 1; i >= 0; i-- {
		if e := c.parents[i]; !t.usable(c, e.parent) {
			t.unlink(e)
		}
	}
	if c.backbone != nil && !t.validBackbone(c, c.backbone) {
		c.backbone = nil // still usable: stays as a lateral parent
	}
	var cands []*peer
	gathered := false
	mean := meanRate(c)
	if c.backbone == nil {
		cands, gathered = t.gather(c), true
		var best cand
		consider := func(q *peer, isParent bool) {
			if !t.validBackbone(c, q) {
				return
			}
			k := cand{q, t.score(c, q, isParent, mean)}
			if best.p == nil || better(k, best) < 0 {
				best = k
			}
		}
		for _, e := range c.parents {
			consider(e.parent, true)
		}
		for _, q := range cands {
			consider(q, false)
		}
		if best.p == nil {
			best.p = t.lowerRank(c, mean)
		}
		if q := best.p; q != nil {
			if e := c.parentEdge(q); e != nil {
				i := slices.Index(c.parents, e)
				c.parents = slices.Delete(c.parents, i, i+1)
				c.parents = slices.Insert(c.parents, 0, e)
			} else {
				if len(c.parents) >= cfg.MaxParents {
					t.unlink(t.worstLateral(c, mean))
				}
				t.link(c, q, true)
			}
			c.backbone = q
		}
	}
	if len(c.parents) < cfg.MaxParents {
		if !gathered {
			cands = t.gather(c)
		}
		sc := t.cands[:0]
		for _, q := range cands {
			if c.parentEdge(q) == nil {
				sc = append(sc, cand{q, t.score(c, q, false, mean)})
			}
		}
		slices.SortFunc(sc, better)
		for _, k := range sc {
			if len(c.parents) >= cfg.MaxParents {
				break
			}
			t.link(c, k.p, false)
		}
		clear(sc)
		t.cands = sc[:0]
	}
	t.sortLaterals(c, mean)
	t.setOrphan(c, c.backbone == nil)
}

func (t *task) laterals(c *peer) []*edge {
	if c.backbone != nil {
		return c.parents[1:]
	}
	return c.parents
}

func (t *task) worstLateral(c *peer, mean float64) *edge {
	var worst *edge
	var ws cand
	for _, e := range t.laterals(c) {
		k := cand{e.parent, t.score(c, e.parent, true, mean)}
		if worst == nil || better(k, ws) > 0 {
			worst, ws = e, k
		}
	}
	return worst
}

func (t *task) sortLaterals(c *peer, mean float64) {
	lat := t.laterals(c)
	if len(lat) < 2 {
		return
	}
	slices.SortStableFunc(lat, func(a, b *edge) int {
		return better(cand{a.parent, t.score(c, a.parent, true, mean)}, cand{b.parent, t.score(c, b.parent, true, mean)})
	})
}

// improve swaps at most one of c's parents for a clearly better candidate
// (score ≥ SwapRatio × the replaced parent's): either the worst lateral
// parent for the best candidate, or the backbone parent for the best
// candidate that may be a backbone (possibly promoting a lateral parent).
// A source parent is never swapped for a downloading peer. It reports
// whether it swapped.
func (t *task) improve(c *peer) bool {
	if !t.downloading(c) || c.backbone == nil {
		return false
	}
	cfg := &t.s.cfg
	mean := meanRate(c)
	cands := t.gather(c)

	var bestNew, bestNewBB, bestPromote cand
	for _, q := range cands {
		k := cand{q, t.score(c, q, false, mean)}
		if bestNew.p == nil || better(k, bestNew) < 0 {
			bestNew = k
		}
		if t.validBackbone(c, q) && (bestNewBB.p == nil || better(k, bestNewBB) < 0) {
			bestNewBB = k
		}
	}
	for _, e := range t.laterals(c) {
		if t.validBackbone(c, e.parent) {
			k := cand{e.parent, t.score(c, e.parent, true, mean)}
			if bestPromote.p == nil || better(k, bestPromote) < 0 {
				bestPromote = k
			}
		}
	}
	bbScore := t.score(c, c.backbone, true, mean)
	ratio := func(a, b float64) float64 {
		if b <= 0 {
			if a > 0 {
				return cfg.SwapRatio * 2
			}
			return 0
		}
		return a / b
	}

	const (
		none = iota
		swapLateral
		swapBackbone
		promote
	)
	choice, best := none, 0.0
	consider := func(ch int, r float64) {
		if r >= cfg.SwapRatio && r > best {
			choice, best = ch, r
		}
	}
	// A source's content is certain, a downloading peer's is a promise:
	// never trade a source for a downloading peer.
	keeps := func(old, repl *peer) bool { return t.isSource(old) && !t.isSource(repl) }
	var worst *edge
	if bestNew.p != nil && len(t.laterals(c)) > 0 && len(c.parents) >= cfg.MaxParents {
		worst = t.worstLateral(c, mean)
		if !keeps(worst.parent, bestNew.p) {
			consider(swapLateral, ratio(bestNew.score, t.score(c, worst.parent, true, mean)))
		}
	}
	if bestNewBB.p != nil && !keeps(c.backbone, bestNewBB.p) {
		consider(swapBackbone, ratio(bestNewBB.score, bbScore))
	}
	if bestPromote.p != nil && !keeps(c.backbone, bestPromote.p) {
		consider(promote, ratio(bestPromote.score, bbScore))
	}
	switch choice {
	case swapLateral:
		t.unlink(worst)
		t.link(c, bestNew.p, false)
	case swapBackbone:
		t.unlink(c.parents[0])
		t.link(c, bestNewBB.p, true)
		c.backbone = bestNewBB.p
	case promote:
		e := c.parentEdge(bestPromote.p)
		i := slices.Index(c.parents, e)
		c.parents = slices.Delete(c.parents, i, i+1)
		c.parents = slices.Insert(c.parents, 0, e)
		c.backbone = bestPromote.p
	default:
		return false
	}
	t.sortLaterals(c, meanRate(c))
	return true
}

// repair runs fill on each peer and returns (and counts) those whose
// decision changed. lost says the peers already lost a parent (their
// decision changed whatever fill does).
func (t *task) repair(kids []*peer, skip *peer, lost bool) []PeerID {
	var out []PeerID
	for _, c := range kids {
		if !c.alive {
			continue
		}
		before := t.snap(c)
		t.fill(c)
		if lost || t.changed(c, before) {
			t.s.counters.Reassignments++
			if c != skip {
				out = append(out, c.id)
			}
		}
	}
	return out
}

// reattachOrphans gives orphans a backbone parent once a source appears.
// Their changed decisions go to the dirty set.
func (t *task) reattachOrphans(skip *peer) {
	if len(t.orphans) == 0 {
		return
	}
	kids := slices.Clone(t.orphans)
	slices.SortFunc(kids, func(a, b *peer) int { return cmp.Compare(a.rank, b.rank) })
	t.markDirty(t.repair(kids, skip, false))
}

func (t *task) markDirty(ids []PeerID) {
	for _, id := range ids {
		t.dirty[id] = struct{}{}
	}
}
