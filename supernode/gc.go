package supernode

import (
	"context"
	"time"

	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/piece"
)

// gcLoop bounds the seed's disk as the dfdaemon's GC bounds a node's: tasks not used for
// Config.GC.TTL are evicted, and above the high watermark the least recently used go until
// the store is under the low one; a task in use (inUse) is never evicted. An evicted task is
// forgotten: a later registration fetches it again.
func (s *Supernode) gcLoop(ctx context.Context) {
	p := piece.GCPolicy{HighWatermark: s.cfg.GC.High, LowWatermark: s.cfg.GC.Low, TTL: s.cfg.GC.TTL}
	if p.HighWatermark == 0 && p.TTL == 0 {
		return
	}
	every(ctx, s.cfg.GC.Interval, func(now time.Time) { s.collect(now, p) })
}

// collect runs one GC pass.
func (s *Supernode) collect(now time.Time, p piece.GCPolicy) {
	evicted, err := s.metrics.store.GC(now, p, s.inUse)
	if err != nil {
		s.log.Warn("gc failed", zapErr(err))
	}
	if len(evicted) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range evicted {
		if t, ok := s.tasks[id]; ok {
			s.dropTask(t)
		}
	}
	s.log.Info("gc evicted tasks", zap.Int("tasks", len(evicted)), zapInt64("usage", s.store.Usage()))
}

// inUse says whether GC must keep a task: its seed runs (or a preheat wants it), a peer
// registered for it is still downloading, or an unfinished preheat job names it. Complete peers
// do not keep a task: they serve it themselves.
func (s *Supernode) inUse(id digest.Digest) bool {
	s.mu.Lock()
	t, ok := s.tasks[id]
	busy := ok && (t.running || t.wantAll && !t.done || s.downloading(t))
	s.mu.Unlock()
	return busy || s.preheat.uses(id)
}
