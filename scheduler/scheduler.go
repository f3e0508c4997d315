package scheduler

import (
	"math"
	"slices"
	"time"
)

// PeerID identifies a peer (for example its libp2p peer ID).
type PeerID string

// TaskID identifies a task (an OCI blob digest, or a URL's task ID).
type TaskID string

// PeerInfo describes a peer when it joins a task.
type PeerInfo struct {
	ID         PeerID
	UploadRate float64 // bytes/s the peer may upload; 0 = unknown (use Config.DefaultUpload)
	Seed       bool    // the supernode's seed: it gets every piece from the origin, so it is a source from the start
}

// FailureReason says why a child could not use a parent.
type FailureReason int

const (
	FailUnreachable FailureReason = iota // could not connect / stream reset
	FailTimeout                          // no data within the child's deadline
	FailCorrupt                          // the parent sent a piece that failed its SHA-256: blocked for the reporter; for everyone once Config.CorruptReporters children agree
)

func (r FailureReason) String() string {
	switch r {
	case FailUnreachable:
		return "unreachable"
	case FailTimeout:
		return "timeout"
	case FailCorrupt:
		return "corrupt"
	}
	return "FailureReason(?)"
}

// Verdict says what [Scheduler.Failure] made of a report.
type Verdict int

const (
	// Ignored: the reporter is unknown, reported itself, was never (or not recently)
	// scheduled to that parent, or had already reported it corrupt.
	Ignored Verdict = iota
	// Counted: the report was recorded against the parent for this reporter (a failure
	// count, or for FailCorrupt the parent blocked for the reporter alone).
	Counted
	// BlockedForAll: Config.CorruptReporters distinct children have now reported the parent
	// corrupt: it is blocked for the whole task.
	BlockedForAll
)

func (v Verdict) String() string {
	switch v {
	case Ignored:
		return "ignored"
	case Counted:
		return "counted"
	case BlockedForAll:
		return "blocked"
	}
	return "Verdict(?)"
}

// Decision is what a peer is told.
type Decision struct {
	// Parents to pull from, best first; never the peer itself, a dead peer,
	// or a blocked one. For a downloading peer the first one is its backbone
	// parent (see the package documentation). Empty for the seed and for
	// complete peers.
	Parents []PeerID
	// BackToSource: no source can serve this peer, it must fetch from the
	// origin itself (Parents, if any, may still supply some pieces). Always
	// true for the seed (fetching from the origin is its job) and for every
	// peer of a task whose source failed.
	BackToSource bool
}

// Scheduler makes every scheduling decision for any number of tasks.
//
// It is not safe for concurrent use: the supernode calls it under its own
// lock. It never blocks, does no I/O, starts no goroutine and never reads
// the clock; time is passed in.
type Scheduler struct {
	cfg      Config
	tasks    map[TaskID]*task
	counters Counters
}

// New returns a scheduler. It applies [Config.WithDefaults] and replaces any
// field [Config.Validate] would reject by its default, so it never fails;
// call Validate first to reject a bad configuration.
func New(cfg Config) *Scheduler {
	return &Scheduler{cfg: cfg.sanitized(), tasks: make(map[TaskID]*task)}
}

// Config returns the configuration in effect (defaults applied).
func (s *Scheduler) Config() Config { return s.cfg }

func (s *Scheduler) task(id TaskID) *task {
	t := s.tasks[id]
	if t == nil {
		t = newTask(s, id)
		s.tasks[id] = t
	}
	return t
}

// SetTask declares a task and its piece count (idempotent; a later call
// updates the count). Peers may join a task that was not declared; its
// piece count is then unknown and progress is judged on pieces held only.
func (s *Scheduler) SetTask(task TaskID, pieces int) {
	t := s.task(task)
	if pieces >= 0 {
		t.pieces = pieces
	}
}

// SourceRecovered undoes [Scheduler.SourceFailed]: a retried seed reached the origin again. The
// seed is a source again, orphans are re-attached, and every peer of the task is reported by
// [Scheduler.TakeChanged] (their BackToSource is cleared unless they are orphans).
func (s *Scheduler) SourceRecovered(task TaskID) {
	t := s.tasks[task]
	if t == nil || !t.sourceFailed {
		return
	}
	t.sourceFailed = false
	for _, p := range t.order {
		if p != nil && p.seed {
			t.syncSource(p)
		}
	}
	t.reattachOrphans(nil)
	for _, p := range t.order {
		if p != nil {
			t.dirty[p.id] = struct{}{}
		}
	}
}

// SourceFailed marks that the seed cannot fetch the task from the origin:
// until [Scheduler.SourceRecovered], every Decision for the task has BackToSource=true. A seed that
// is not complete stops being a parent; its children are reassigned. Every
// peer of the task is reported by [Scheduler.TakeChanged].
func (s *Scheduler) SourceFailed(task TaskID) {
	t := s.task(task)
	if t.sourceFailed {
		return
	}
	t.sourceFailed = true
	var kids []*peer
	for _, p := range t.order {
		if p != nil && p.seed && !p.complete {
			t.syncSource(p)
			kids = append(kids, t.detachChildren(p)...)
		}
	}
	t.repair(kids, nil, true)
	for _, p := range t.order {
		if p != nil {
			t.dirty[p.id] = struct{}{}
		}
	}
}

// Join registers a peer (or re-registers it after a supernode move, with the
// count of pieces it already holds) and returns its decision. A peer that
// holds every piece (have ≥ the task's piece count) joins as a source.
// Joining again with the same role refreshes the peer (upload rate, pieces)
// and keeps its parents; joining again with another role (seed flag, or no
// longer complete) replaces it, as Leave then Join would.
func (s *Scheduler) Join(now time.Time, task TaskID, info PeerInfo, have int) Decision {
	s.counters.Joins++
	t := s.task(task)
	t.at(now)
	p := t.join(now, info, have)
	return t.decision(p)
}

func (t *task) join(now time.Time, info PeerInfo, have int) *peer {
	up := info.UploadRate
	if !(up > 0) || math.IsInf(up, 0) {
		up = t.s.cfg.DefaultUpload
	}
	if info.Seed {
		t.seeds[info.ID] = true
	}
	have = max(have, 0)
	complete := t.pieces > 0 && have >= t.pieces
	if p := t.peers[info.ID]; p != nil {
		// With an unknown piece count a complete peer cannot prove it again
		// through Join; it stays complete.
		if p.seed == info.Seed && (!p.complete || complete || t.pieces == 0) {
			p.seen = now
			if p.up != up {
				p.up = up
				t.fixSource(p)
			}
			p.have = have
			if complete && !p.complete {
				t.becomeSource(p)
			} else {
				t.fill(p)
			}
			return p
		}
		t.markDirty(t.remove(p))
	}
	p := &peer{
		id:       info.ID,
		up:       up,
		seed:     info.Seed,
		complete: complete,
		blocked:  t.blocked[info.ID],
		alive:    true,
		have:     have,
		rank:     t.nextRank,
		hidx:     -1,
		oidx:     -1,
		joined:   now,
		seen:     now,
	}
	t.nextRank++
	t.peers[p.id] = p
	t.addOrder(p)
	if t.syncSource(p) {
		t.reattachOrphans(p)
	} else {
		t.fill(p)
	}
	return p
}

// becomeSource turns a downloading peer into a complete one: it drops its
// own parents (freeing their capacity) and may now be anyone's parent,
// including a backbone parent.
func (t *task) becomeSource(p *peer) {
	p.complete = true
	t.dropParents(p)
	t.setOrphan(p, false)
	if t.syncSource(p) {
		t.reattachOrphans(p)
	}
}

// Report records a peer's progress (pieces held, whether it is complete) and
// returns its current decision. It refills vacant parent slots, and may swap
// at most one parent for a clearly better candidate (score ≥ SwapRatio × the
// replaced parent's, e.g. a new complete peer with free upload), so parent
// sets improve without churn. A complete peer drops its parents and becomes
// a source; a complete peer never goes back to downloading through Report.
// A Report from an unknown peer registers it first, as Join with default
// PeerInfo would.
func (s *Scheduler) Report(now time.Time, task TaskID, peerID PeerID, have int, complete bool) Decision {
	s.counters.Reports++
	t := s.task(task)
	t.at(now)
	p := t.peers[peerID]
	if p == nil {
		p = t.join(now, PeerInfo{ID: peerID}, have)
	}
	p.seen = now
	p.have = max(have, 0)
	if (complete || (t.pieces > 0 && p.have >= t.pieces)) && !p.complete {
		t.becomeSource(p)
		return t.decision(p)
	}
	if t.downloading(p) {
		t.dropIdle(p)
		t.fill(p)
		if t.improve(p) {
			s.counters.Swaps++
		}
	}
	return t.decision(p)
}

// Transfer records bytes a child received from a parent over d (throughput
// estimate, EWMA with a 5 s time constant). Any bytes received reset the
// consecutive failure count of that parent for that child.
func (s *Scheduler) Transfer(now time.Time, task TaskID, child, parent PeerID, bytes int64, d time.Duration) {
	t := s.tasks[task]
	if t == nil {
		return
	}
	t.at(now)
	c, q := t.peers[child], t.peers[parent]
	if c == nil || q == nil || c == q {
		return
	}
	st := c.stat(parent)
	st.last = now
	if bytes > 0 {
		st.failures = 0
		// Only bytes from a parent the child was given keep that parent from counting as idle
		// for its other children (dropIdle): a report about any other peer steers nothing.
		if t.scheduled(c, parent) {
			q.sent = now
		}
	}
	if d <= 0 || bytes < 0 {
		return
	}
	c.slowest = max(c.slowest, d)
	rate := float64(bytes) / d.Seconds()
	if st.ewma == 0 {
		st.ewma = rate
		return
	}
	alpha := 1 - math.Exp(-d.Seconds()/ewmaTau.Seconds())
	alpha = min(max(alpha, 0.2), 1)
	st.ewma += alpha * (rate - st.ewma)
}

const ewmaTau = 5 * time.Second

// Failure records that child could not use parent, and says what it made of the report. A
// report counts only when parent is child's parent, or was within Config.ReportWindow; other
// reports are Ignored (a peer cannot steer the scheduler about parents it was never given).
//
// FailUnreachable and FailTimeout: after MaxFailures consecutive ones the parent is replaced
// in child's set. FailCorrupt: the parent is at once taken out of child's set and never given
// to child again in this task; once Config.CorruptReporters distinct children reported it, it
// is blocked for the whole task (BlockedForAll): taken out of every peer's set (those other
// peers are reported by [Scheduler.TakeChanged]) and never a parent again in this task. A seed
// is never blocked for all by reports: its pieces come from the origin, and the supernode
// checks them itself. Returns child's new decision.
func (s *Scheduler) Failure(now time.Time, task TaskID, child, parent PeerID, why FailureReason) (Decision, Verdict) {
	s.counters.Failures++
	t := s.tasks[task]
	if t == nil {
		return Decision{}, Ignored
	}
	t.at(now)
	c := t.peers[child]
	if c == nil {
		return Decision{}, Ignored
	}
	if child == parent || !t.scheduled(c, parent) {
		return t.decision(c), Ignored
	}
	if why == FailCorrupt {
		v := t.corruptReport(c, parent)
		return t.decision(c), v
	}
	q := t.peers[parent]
	if q == nil {
		return t.decision(c), Ignored // it left: Leave already took it out of every set
	}
	st := c.stat(parent)
	st.failures++
	st.last = now
	if st.failures >= s.cfg.MaxFailures && c.parentEdge(q) != nil {
		t.repair([]*peer{c}, nil, false)
	}
	return t.decision(c), Counted
}

// corruptReport records that c, scheduled to parent, received a piece from it that failed its
// digest.
func (t *task) corruptReport(c *peer, parent PeerID) Verdict {
	st := c.stat(parent)
	if st.corrupt {
		return Ignored
	}
	st.corrupt = true
	if q := t.peers[parent]; q != nil && c.parentEdge(q) != nil {
		t.repair([]*peer{c}, nil, false)
	}
	if t.seeds[parent] || t.blocked[parent] {
		return Counted
	}
	reporters := t.corrupt[parent]
	if reporters == nil {
		reporters = make(map[PeerID]struct{})
		t.corrupt[parent] = reporters
	}
	reporters[c.id] = struct{}{}
	if len(reporters) < t.s.cfg.CorruptReporters {
		return Counted
	}
	delete(t.corrupt, parent)
	for _, id := range t.block(parent) {
		if id != c.id {
			t.dirty[id] = struct{}{}
		}
	}
	return BlockedForAll
}

// Block blocks a peer for the whole task (as agreeing FailCorrupt reports do):
// it is never a parent again in this task, even if it leaves and joins again.
// It returns the peers whose parent sets changed. (Addition to the
// original API, for integrity failures detected outside a transfer.)
func (s *Scheduler) Block(now time.Time, task TaskID, peerID PeerID) []PeerID {
	t := s.task(task)
	t.at(now)
	return t.block(peerID)
}

func (t *task) block(id PeerID) []PeerID {
	t.blocked[id] = true
	p := t.peers[id]
	if p == nil || p.blocked {
		return nil
	}
	p.blocked = true
	t.syncSource(p)
	changed := t.repair(t.detachChildren(p), nil, true)
	slices.Sort(changed)
	return changed
}

// Leave removes a peer (it left or died); every child that had it as parent
// gets a replacement (a backbone child gets a new backbone parent that keeps
// the backbone relation acyclic). Returns the peers whose parent sets
// changed, sorted.
func (s *Scheduler) Leave(now time.Time, task TaskID, peerID PeerID) []PeerID {
	s.counters.Leaves++
	t := s.tasks[task]
	if t == nil {
		return nil
	}
	t.at(now)
	p := t.peers[peerID]
	if p == nil {
		return nil
	}
	return t.remove(p)
}

func (t *task) remove(p *peer) []PeerID {
	p.alive = false // first: what p measured of its parents goes with it
	t.dropParents(p)
	kids := t.detachChildren(p)
	t.syncSource(p)
	t.setOrphan(p, false)
	t.removeOrder(p)
	delete(t.peers, p.id)
	delete(t.dirty, p.id)
	changed := t.repair(kids, nil, true)
	slices.Sort(changed)
	return changed
}

// Decision returns the peer's current decision without changing anything.
// An unknown task or peer gets the zero Decision.
func (s *Scheduler) Decision(task TaskID, peerID PeerID) Decision {
	t := s.tasks[task]
	if t == nil {
		return Decision{}
	}
	p := t.peers[peerID]
	if p == nil {
		return Decision{}
	}
	return t.decision(p)
}

func (t *task) decision(p *peer) Decision {
	var d Decision
	if len(p.parents) > 0 {
		d.Parents = make([]PeerID, len(p.parents))
		for i, e := range p.parents {
			d.Parents[i] = e.parent.id
		}
	}
	d.BackToSource = t.sourceFailed || (p.seed && !p.complete) || t.isOrphan(p)
	return d
}

// TakeChanged returns, sorted, and forgets the peers of the task whose
// decision changed as a side effect of a call that did not return their
// decision: other children of a parent blocked for all by FailCorrupt, orphans
// re-attached when a source appeared, the children of a peer replaced by a
// re-Join, every peer after SourceFailed. The supernode pushes their new
// decisions (from [Scheduler.Decision]) to them. Leave and Block return
// their changed peers directly and do not add them here. (Addition to the
// original API.)
func (s *Scheduler) TakeChanged(task TaskID) []PeerID {
	t := s.tasks[task]
	if t == nil || len(t.dirty) == 0 {
		return nil
	}
	out := make([]PeerID, 0, len(t.dirty))
	for id := range t.dirty {
		out = append(out, id)
	}
	clear(t.dirty)
	slices.Sort(out)
	return out
}

// RemoveTask forgets a task.
func (s *Scheduler) RemoveTask(task TaskID) {
	delete(s.tasks, task)
}
