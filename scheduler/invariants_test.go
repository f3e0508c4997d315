package scheduler

import "fmt"

// checkInvariants verifies the indexes and every rule a decision must obey,
// for every task. It is O(peers · MaxParents).
func checkInvariants(s *Scheduler) error {
	for id, t := range s.tasks {
		if err := t.check(); err != nil {
			return fmt.Errorf("task %s: %w", id, err)
		}
	}
	return nil
}

func (t *task) check() error {
	cfg := t.s.cfg
	alive := 0
	var lastRank uint64
	for i, p := range t.order {
		if p == nil {
			continue
		}
		alive++
		if p.pos != i {
			return fmt.Errorf("%s: pos %d, at %d", p.id, p.pos, i)
		}
		if !p.alive || t.peers[p.id] != p {
			return fmt.Errorf("%s: in order but not alive/registered", p.id)
		}
		if alive > 1 && p.rank <= lastRank {
			return fmt.Errorf("%s: order not by rank", p.id)
		}
		lastRank = p.rank
	}
	if alive != len(t.peers) || alive != t.alive() {
		return fmt.Errorf("alive %d, peers %d, order says %d", alive, len(t.peers), t.alive())
	}
	// source heap
	for i, p := range t.sources {
		if p.hidx != i {
			return fmt.Errorf("%s: hidx %d at %d", p.id, p.hidx, i)
		}
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < len(t.sources) && t.sources.Less(c, i) {
				return fmt.Errorf("source heap order broken at %d", i)
			}
		}
	}
	for i, p := range t.orphans {
		if p.oidx != i {
			return fmt.Errorf("%s: oidx %d at %d", p.id, p.oidx, i)
		}
	}
	const (
		reachUnknown = iota
		reachWalking
		reachOK
	)
	reach := make([]int8, len(t.order))
	for _, p := range t.order {
		if p == nil {
			continue
		}
		if t.isSource(p) != (p.hidx >= 0) {
			return fmt.Errorf("%s: source %v but in heap %v", p.id, t.isSource(p), p.hidx >= 0)
		}
		if t.isOrphan(p) != (t.downloading(p) && p.backbone == nil) {
			return fmt.Errorf("%s: orphan %v, downloading %v, backbone %v", p.id, t.isOrphan(p), t.downloading(p), p.backbone != nil)
		}
		for i, e := range p.children {
			if e.parent != p || e.ci != i || !e.child.alive || e.child.parentEdge(p) != e {
				return fmt.Errorf("%s: bad child edge %d", p.id, i)
			}
		}
		for _, e := range p.parents {
			if e.child != p || e.ci >= len(e.parent.children) || e.parent.children[e.ci] != e {
				return fmt.Errorf("%s: bad parent edge to %s", p.id, e.parent.id)
			}
		}
		if p.blocked != t.blocked[p.id] {
			return fmt.Errorf("%s: blocked flag %v out of sync", p.id, p.blocked)
		}
		d := t.decision(p)
		if len(d.Parents) > cfg.MaxParents {
			return fmt.Errorf("%s: %d parents > %d", p.id, len(d.Parents), cfg.MaxParents)
		}
		for i, e := range p.parents {
			q := e.parent
			if d.Parents[i] != q.id {
				return fmt.Errorf("%s: decision %v does not match its edges", p.id, d.Parents)
			}
			if q == p {
				return fmt.Errorf("%s: is its own parent", p.id)
			}
			for _, f := range p.parents[:i] {
				if f.parent == q {
					return fmt.Errorf("%s: parent %s twice", p.id, q.id)
				}
			}
			if !q.alive {
				return fmt.Errorf("%s: dead parent %s", p.id, q.id)
			}
			if q.blocked {
				return fmt.Errorf("%s: blocked parent %s", p.id, q.id)
			}
			if !t.usable(p, q) {
				return fmt.Errorf("%s: unusable parent %s", p.id, q.id)
			}
		}
		if !t.downloading(p) && len(d.Parents) > 0 {
			return fmt.Errorf("%s: source/complete with parents", p.id)
		}
		if t.sourceFailed && !d.BackToSource {
			return fmt.Errorf("%s: source failed but not back to source", p.id)
		}
		if !t.downloading(p) {
			continue
		}
		if t.isOrphan(p) {
			if !d.BackToSource {
				return fmt.Errorf("%s: orphan not back to source", p.id)
			}
			continue
		}
		if d.Parents[0] != p.backbone.id {
			return fmt.Errorf("%s: first parent %s is not the backbone %s", p.id, d.Parents[0], p.backbone.id)
		}
		if !t.validBackbone(p, p.backbone) {
			return fmt.Errorf("%s: invalid backbone %s", p.id, p.backbone.id)
		}
		// The backbone chain is acyclic and ends at a source or an orphan
		// (which fetches from the origin). Memoised: O(peers) in all.
		var stack []*peer
		q := p
		for reach[q.pos] != reachOK && !t.isSource(q) && !t.isOrphan(q) {
			if reach[q.pos] == reachWalking {
				return fmt.Errorf("%s: backbone cycle through %s", p.id, q.id)
			}
			reach[q.pos] = reachWalking
			stack = append(stack, q)
			if q = q.backbone; q == nil {
				return fmt.Errorf("%s: backbone chain ends at a peer without backbone", p.id)
			}
		}
		for _, w := range stack {
			reach[w.pos] = reachOK
		}
	}
	return nil
}
