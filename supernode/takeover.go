package supernode

import (
	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/scheduler"
)

// announce records what a registering peer holds of t (see snapi.Holding): the seed then skips
// the pieces live peers hold, and never offers the peer what it has. Digests agreed on by
// takeoverQuorum peers, none disagreeing, are adopted for a task with a content digest and
// published to peers; they are kept in memory only, never in the seed's store, whose digests
// are the origin's (after a restart the peers announce them again). An announcement for other
// content (another length or piece size) is ignored. The caller holds s.mu; t's meta is known.
func (s *Supernode) announce(t *task, peerID string, h *snapi.Holding) {
	log := s.log.With(zapTask(t.id), zap.String("peer", peerID))
	n := t.ptask.PieceCount()
	if h.ContentLength != t.meta.ContentLength || h.PieceSize != t.meta.PieceSize || len(h.Bitfield) != (n+7)/8 {
		log.Warn("ignoring an announcement of other content",
			zapInt64("contentLength", h.ContentLength), zapInt64("pieceSize", h.PieceSize), zap.Int("bitfieldBytes", len(h.Bitfield)))
		return
	}
	if h.Access != string(t.meta.Access) {
		// The task's access is what this supernode's own request to the origin found.
		log.Debug("the peer recorded another access", zap.String("announced", h.Access), zap.String("task", string(t.meta.Access)))
	}
	digests := make([]string, len(h.Digests))
	for k, d := range h.Digests {
		digests[k] = d.String()
	}
	adopted, conflicts := t.holdings.Announce(scheduler.PeerID(peerID), h.Held(), digests)
	if conflicts > 0 {
		log.Warn("a peer announced piece digests that disagree with the trusted ones or with other peers': those pieces are fetched from the origin",
			zap.Int("pieces", conflicts))
	}
	log.Debug("peer announced what it holds", zap.Int("held", len(h.Digests)), zap.Ints("adopted", adopted))
	if len(adopted) > 0 {
		s.extendDigests(t)
	}
	t.notify()
}

// announcesMore says whether a registration announces pieces the seed lacks, so that the seed,
// if this registration starts it, first waits for the other holders' announcements: the task is
// new to this supernode (its home died) or the seed lost what it stored. The peers of a
// restarted supernode hold only what its seed held, and the seed resumes at once. The caller
// holds s.mu.
func (s *Supernode) announcesMore(id digest.Digest, h *snapi.Holding) bool {
	if h == nil || len(h.Digests) == 0 {
		return false
	}
	t, ok := s.tasks[id]
	if !ok || t.ptask == nil {
		return true
	}
	for _, i := range h.Held() {
		if !t.ptask.Has(i) {
			return true
		}
	}
	return false
}
