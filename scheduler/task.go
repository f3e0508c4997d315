package scheduler

import (
	"container/heap"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"
)

// task is the per-task state and its indexes. Every index is maintained
// incrementally so that a decision touches O(Candidates + MaxParents) peers:
//
//   - order: alive peers in join (rank) order, with nil holes for peers that
//     left, compacted when half of it is holes. It serves uniform sampling
//     (a random index) and sampling among earlier joiners (a random index
//     below the peer's position).
//   - sources: an indexed max-heap of usable sources (the seed and complete
//     peers) keyed by free upload capacity, so the best few are found in
//     O(k log k) without a scan.
//   - orphans: downloading peers without a backbone parent (they were told
//     to go back to source); re-attached when a source appears.
type task struct {
	s            *Scheduler
	id           TaskID
	pieces       int
	sourceFailed bool
	rng          *rand.Rand
	now          time.Time // the latest time passed in for this task

	// corrupt holds, per parent, the children whose FailCorrupt reports about it counted;
	// seeds, the IDs that joined as a seed (never blocked by reports, even after leaving).
	corrupt map[PeerID]map[PeerID]struct{}
	seeds   map[PeerID]bool

	peers    map[PeerID]*peer
	blocked  map[PeerID]bool
	order    []*peer
	dead     int
	nextRank uint64
	sources  srcHeap
	orphans  []*peer
	dirty    map[PeerID]struct{}

	epoch   uint64  // sampling de-duplication marker
	scratch []*peer // candidate buffer, reused
	cands   []cand  // scored candidate buffer, reused
}

type peer struct {
	id       PeerID
	up       float64
	seed     bool
	complete bool
	blocked  bool
	alive    bool
	have     int
	rank     uint64
	pos      int // index in task.order
	hidx     int // index in task.sources, -1 if not a usable source
	oidx     int // index in task.orphans, -1 if not an orphan
	backbone *peer
	parents  []*edge // parents[0].parent == backbone when backbone != nil
	children []*edge
	hist     map[PeerID]*stat // what this peer (as a child) measured from parents
	mark     uint64
	joined   time.Time
	seen     time.Time
	// slowest is the longest transfer this peer (as a child) reported: one piece's time from
	// the request, or with batched reports the busy time of a batch. See idleWindow.
	slowest time.Duration
	// sent is when a child last reported bytes from this peer (as a parent).
	sent time.Time
}

// edge is one parent→child assignment; ci is its index in parent.children.
type edge struct {
	child, parent *peer
	ci            int
	since         time.Time // when it was linked
}

// stat is what a child knows about one parent.
type stat struct {
	ewma     float64 // bytes/s, 0 = unknown
	failures int     // consecutive failures
	last     time.Time
	corrupt  bool      // the child reported the parent corrupt: never its parent again
	dropped  time.Time // when the parent was last taken out of the child's set
	idle     time.Time // when the parent was last taken out of the child's set as idle (dropIdle)
}

func newTask(s *Scheduler, id TaskID) *task {
	h := fnv.New64a()
	h.Write([]byte(id))
	return &task{
		s:       s,
		id:      id,
		rng:     rand.New(rand.NewPCG(s.cfg.Seed, h.Sum64())),
		peers:   make(map[PeerID]*peer),
		blocked: make(map[PeerID]bool),
		dirty:   make(map[PeerID]struct{}),
		corrupt: make(map[PeerID]map[PeerID]struct{}),
		seeds:   make(map[PeerID]bool),
	}
}

// at moves the task's clock to now (never backwards).
func (t *task) at(now time.Time) {
	if now.After(t.now) {
		t.now = now
	}
}

// scheduled reports whether parent is c's parent, or was taken out of c's set within the
// report window: only then do c's failure reports about it count.
func (t *task) scheduled(c *peer, parent PeerID) bool {
	for _, e := range c.parents {
		if e.parent.id == parent {
			return true
		}
	}
	st := c.hist[parent]
	return st != nil && !st.dropped.IsZero() && t.now.Sub(st.dropped) <= t.s.cfg.ReportWindow
}

func (t *task) alive() int { return len(t.order) - t.dead }

// ---- state predicates ----

// isSource: the peer holds (or is fetching from the origin as the seed) every
// piece and may serve anyone.
func (t *task) isSource(p *peer) bool {
	return p.alive && !p.blocked && (p.complete || (p.seed && !t.sourceFailed))
}

// downloading: the peer needs parents.
func (t *task) downloading(p *peer) bool {
	return p.alive && !p.complete && !p.seed
}

// usable reports whether q may be a parent of c at all.
func (t *task) usable(c, q *peer) bool {
	if q == c || !q.alive || q.blocked {
		return false
	}
	if q.seed && !q.complete && t.sourceFailed {
		return false // a seed that cannot reach the origin has nothing to give
	}
	if st := c.hist[q.id]; st != nil && (st.failures >= t.s.cfg.MaxFailures || st.corrupt) {
		return false
	}
	return true
}

// validBackbone reports whether q may be c's backbone (first) parent: a
// source, or a downloading peer that joined earlier. Ranks strictly decrease
// along a chain of non-source backbone parents, so the backbone graph is
// acyclic; and it ends at a source or at an orphan (which fetches from the
// origin).
func (t *task) validBackbone(c, q *peer) bool {
	if !t.usable(c, q) {
		return false
	}
	if t.isSource(q) {
		return true
	}
	return t.downloading(q) && q.pos < c.pos
}

func (t *task) isOrphan(p *peer) bool { return p.oidx >= 0 }

// ---- order index ----

func (t *task) addOrder(p *peer) {
	p.pos = len(t.order)
	t.order = append(t.order, p)
}

func (t *task) removeOrder(p *peer) {
	t.order[p.pos] = nil
	t.dead++
	if t.dead > 64 && 2*t.dead > len(t.order) {
		n := 0
		for _, q := range t.order {
			if q != nil {
				q.pos = n
				t.order[n] = q
				n++
			}
		}
		clear(t.order[n:])
		t.order = t.order[:n]
		t.dead = 0
	}
}

// ---- orphans ----

func (t *task) setOrphan(p *peer, on bool) {
	switch {
	case on && p.oidx < 0:
		p.oidx = len(t.orphans)
		t.orphans = append(t.orphans, p)
	case !on && p.oidx >= 0:
		last := len(t.orphans) - 1
		m := t.orphans[last]
		t.orphans[p.oidx] = m
		m.oidx = p.oidx
		t.orphans[last] = nil
		t.orphans = t.orphans[:last]
		p.oidx = -1
	}
}

// ---- source heap ----

// srcKey is the free upload capacity a new child would get.
func srcKey(p *peer) float64 { return p.up / float64(len(p.children)+1) }

type srcHeap []*peer

func (h srcHeap) Len() int { return len(h) }
func (h srcHeap) Less(i, j int) bool {
	ki, kj := srcKey(h[i]), srcKey(h[j])
	if ki != kj {
		return ki > kj
	}
	return h[i].rank < h[j].rank
}
func (h srcHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}
func (h *srcHeap) Push(x any) {
	p := x.(*peer)
	p.hidx = len(*h)
	*h = append(*h, p)
}
func (h *srcHeap) Pop() any {
	old := *h
	n := len(old) - 1
	p := old[n]
	old[n] = nil
	*h = old[:n]
	p.hidx = -1
	return p
}

// top visits the k best sources, best first, in O(k²) without modifying the
// heap: a best-first walk of the heap tree.
func (h srcHeap) top(k int, visit func(*peer)) {
	if len(h) == 0 || k <= 0 {
		return
	}
	var buf [32]int
	frontier := append(buf[:0], 0)
	for n := 0; n < k && len(frontier) > 0; n++ {
		bi := 0
		for i := 1; i < len(frontier); i++ {
			if h.Less(frontier[i], frontier[bi]) {
				bi = i
			}
		}
		x := frontier[bi]
		frontier[bi] = frontier[len(frontier)-1]
		frontier = frontier[:len(frontier)-1]
		visit(h[x])
		if l := 2*x + 1; l < len(h) {
			frontier = append(frontier, l)
		}
		if r := 2*x + 2; r < len(h) {
			frontier = append(frontier, r)
		}
	}
}

// syncSource puts p in or takes it out of the source heap to match isSource.
// It reports whether p became a source.
func (t *task) syncSource(p *peer) bool {
	want := t.isSource(p)
	switch {
	case want && p.hidx < 0:
		heap.Push(&t.sources, p)
		return true
	case !want && p.hidx >= 0:
		heap.Remove(&t.sources, p.hidx)
	}
	return false
}

func (t *task) fixSource(p *peer) {
	if p.hidx >= 0 {
		heap.Fix(&t.sources, p.hidx)
	}
}

// ---- edges ----

func (t *task) link(c, q *peer, front bool) *edge {
	e := &edge{child: c, parent: q, ci: len(q.children), since: t.now}
	q.children = append(q.children, e)
	if front {
		c.parents = slices.Insert(c.parents, 0, e)
	} else {
		c.parents = append(c.parents, e)
	}
	t.fixSource(q)
	return e
}

func (t *task) unlink(e *edge) {
	q, c := e.parent, e.child
	last := len(q.children) - 1
	if e.ci != last {
		m := q.children[last]
		q.children[e.ci] = m
		m.ci = e.ci
	}
	q.children[last] = nil
	q.children = q.children[:last]
	if i := slices.Index(c.parents, e); i >= 0 {
		c.parents = slices.Delete(c.parents, i, i+1)
	}
	if c.backbone == q {
		c.backbone = nil
	}
	if c.alive {
		c.stat(q.id).dropped = t.now
	}
	t.fixSource(q)
}

// dropParents removes all of p's parent edges (p became a source or left).
func (t *task) dropParents(p *peer) {
	for len(p.parents) > 0 {
		t.unlink(p.parents[len(p.parents)-1])
	}
	p.backbone = nil
}

// detachChildren removes every edge where p is the parent and returns the
// children, in p.children order.
func (t *task) detachChildren(p *peer) []*peer {
	if len(p.children) == 0 {
		return nil
	}
	kids := make([]*peer, 0, len(p.children))
	for len(p.children) > 0 {
		e := p.children[len(p.children)-1]
		kids = append(kids, e.child)
		t.unlink(e)
	}
	slices.Reverse(kids)
	return kids
}

func (c *peer) parentEdge(q *peer) *edge {
	for _, e := range c.parents {
		if e.parent == q {
			return e
		}
	}
	return nil
}

func (c *peer) stat(id PeerID) *stat {
	if c.hist == nil {
		c.hist = make(map[PeerID]*stat)
	}
	st := c.hist[id]
	if st == nil {
		st = &stat{}
		c.hist[id] = st
	}
	return st
}
