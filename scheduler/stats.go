package scheduler

// Counters are cumulative event counts since New.
type Counters struct {
	Joins         uint64
	Reports       uint64
	Leaves        uint64
	Failures      uint64
	Swaps         uint64 // parents swapped by Report for a clearly better one
	Reassignments uint64 // decisions changed because a parent left, failed, was blocked, or a source appeared
	IdleDrops     uint64 // lateral parents dropped by Report for uploading nothing to anyone (dropIdle)
}

// ChildrenBuckets is the number of buckets of [Stats.Children].
const ChildrenBuckets = 8

// Stats describes the scheduler's state, for metrics. Gauges are computed
// by a scan of the peers (O(peers)): call it from a metrics scrape, not per
// decision.
type Stats struct {
	Tasks        int
	Peers        int // alive peers
	Seeds        int // alive seeds
	Sources      int // peers that may serve anyone: seeds that can reach the origin and complete peers, not blocked
	Complete     int
	Downloading  int
	BackToSource int // peers whose decision says BackToSource (the seed included)
	Orphans      int // downloading peers sent back to source because no backbone parent exists
	Blocked      int // peers blocked for corruption (known IDs, alive or not)
	Edges        int // parent→child assignments
	MaxChildren  int
	MeanChildren float64 // over peers with at least one child
	SeedChildren int     // children of the seeds, summed
	// Children[0] counts peers with no child; Children[i], i ≥ 1, peers
	// with 2^(i-1) .. 2^i - 1 children; the last bucket is open-ended.
	Children [ChildrenBuckets]int
	Counters Counters // scheduler-wide, also in per-task stats
}

// Stats returns the state over all tasks.
func (s *Scheduler) Stats() Stats {
	var st Stats
	for _, t := range s.tasks {
		t.stats(&st)
	}
	st.Tasks = len(s.tasks)
	s.finish(&st)
	return st
}

// TaskStats returns the state of one task (zero if unknown).
func (s *Scheduler) TaskStats(task TaskID) Stats {
	var st Stats
	if t := s.tasks[task]; t != nil {
		t.stats(&st)
		st.Tasks = 1
	}
	s.finish(&st)
	return st
}

func (s *Scheduler) finish(st *Stats) {
	if n := st.Peers - st.Children[0]; n > 0 {
		st.MeanChildren = float64(st.Edges) / float64(n)
	}
	st.Counters = s.counters
}

func (t *task) stats(st *Stats) {
	st.Blocked += len(t.blocked)
	for _, p := range t.order {
		if p == nil {
			continue
		}
		st.Peers++
		k := len(p.children)
		st.Edges += k
		st.MaxChildren = max(st.MaxChildren, k)
		b := 0
		for n := k; n > 0 && b < ChildrenBuckets-1; n >>= 1 {
			b++
		}
		st.Children[b]++
		if p.seed {
			st.Seeds++
			st.SeedChildren += k
		}
		if t.isSource(p) {
			st.Sources++
		}
		if p.complete {
			st.Complete++
		} else if !p.seed {
			st.Downloading++
		}
		if t.isOrphan(p) {
			st.Orphans++
		}
		if t.sourceFailed || (p.seed && !p.complete) || t.isOrphan(p) {
			st.BackToSource++
		}
	}
}
