package supernode

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/lifecycle"
	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/source"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/piece"
)

// task is one piece of content the seed fetches and the peers share. Its fields are guarded by
// the supernode's mutex, except ptask, which is safe for concurrent use.
type task struct {
	id      digest.Digest
	req     snapi.TaskRequest
	ptask   *piece.Task
	meta    piece.Meta
	digests []digest.Digest // known piece digests; the seed fetches in order, so a prefix
	done    bool            // the seed holds every piece
	err     *apierr.Error   // why the seed failed; a later registration retries
	running bool            // a seed fetch is in progress
	ready   chan struct{}   // closed when meta is known or the seed failed
	changed chan struct{}   // closed and replaced at every new digest or state change
	peers   map[string]bool
	created time.Time
}

func newTask(id digest.Digest, req snapi.TaskRequest) *task {
	return &task{id: id, req: req, ready: make(chan struct{}), changed: make(chan struct{}), peers: map[string]bool{}, created: time.Now()}
}

// notify wakes long-polling syncs; the caller holds the supernode's mutex.
func (t *task) notify() {
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *task) info(from int) snapi.TaskInfo {
	from = min(max(from, 0), len(t.digests))
	return snapi.TaskInfo{
		ID: t.id, ContentLength: t.meta.ContentLength, PieceSize: t.meta.PieceSize, Digest: t.meta.Digest,
		Digests: append([]digest.Digest(nil), t.digests[from:]...), DigestsFrom: from, SeedDone: t.done,
		Access: string(t.meta.Access), Origin: t.meta.Origin,
	}
}

// startSeed begins the single fetch of a task from its origin unless it runs or is done.
// The caller holds s.mu.
func (s *Supernode) startSeed(t *task, req snapi.TaskRequest) {
	if t.running || t.done {
		return
	}
	if t.err != nil {
		// A failed task is retried by the next registration, with that request's headers.
		t.err = nil
		t.ready = make(chan struct{})
	}
	// The seed fetches with the request that starts it: a task reloaded after a restart knows
	// only its redacted URL and no headers, so it resumes with the next registration's.
	t.req = req
	t.running = true
	started := s.life.Go(func(ctx context.Context) {
		err := s.seed(ctx, t)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.seedEnded(t, err)
	})
	if !started {
		s.seedEnded(t, lifecycle.ErrClosed)
	}
}

// seedEnded records how the seed of t ended; the caller holds s.mu.
func (s *Supernode) seedEnded(t *task, err error) {
	t.running = false
	if err != nil {
		t.err = originError(err)
		s.log.Warn("seed failed", zapTask(t.id), zapErr(err))
		s.sched.SourceFailed(schedTask(t.id))
		select {
		case <-t.ready:
		default:
			close(t.ready)
		}
	}
	t.notify()
}

// seed fetches the task from the origin into the seed's store, publishing each piece.
func (s *Supernode) seed(ctx context.Context, t *task) error {
	s.mu.Lock()
	req := t.req
	s.mu.Unlock()
	origin := source.Origin{Client: s.origin, URL: req.URL, Header: req.Header, Filter: s.cfg.QueryFilter}
	shown := taskid.Redact(req.URL, s.cfg.QueryFilter)
	private := taskid.Credentialed(req.URL, req.Header, s.cfg.QueryFilter)
	var first *http.Response
	pt, err := s.store.Task(t.id)
	if errors.Is(err, piece.ErrNotFound) {
		resp, err := origin.Get(ctx, 0, -1)
		if err != nil {
			return err
		}
		length, err := source.LengthOrSpool(resp, s.cfg.DataDir)
		if err != nil {
			resp.Body.Close()
			return fmt.Errorf("%s: %w", shown, err)
		}
		meta := piece.Meta{ID: t.id, URL: shown, ContentLength: length, PieceSize: piece.SizeFor(length), Digest: req.Digest,
			Access: piece.AccessPublic, Origin: shown}
		if private {
			meta.Access = piece.AccessPrivate
		}
		if pt, err = s.store.Create(meta); err != nil {
			resp.Body.Close()
			return err
		}
		first = resp
	} else if err != nil {
		return err
	} else if private {
		// Resuming with credentials: what comes now may be private, and the task is served as
		// a whole, so all of it becomes private.
		if err := pt.MakePrivate(shown); err != nil {
			return err
		}
	}
	s.publishMeta(t, pt)
	err = origin.Fill(ctx, pt, first, func(i int, d digest.Digest) {
		_, n := piece.Bounds(i, pt.Meta().ContentLength, pt.Meta().PieceSize)
		s.metrics.originBytes.Add(float64(n))
		s.publishDigests(t)
	})
	if err != nil {
		return err
	}
	if want := pt.Meta().Digest; want != "" {
		got, err := pt.Sum()
		if err != nil {
			return err
		}
		if got != want {
			_ = s.store.Delete(t.id)
			return fmt.Errorf("%w: origin content of %s hashes to %s, want %s", errDigest, shown, got, want)
		}
	}
	s.mu.Lock()
	t.done = true
	s.sched.Report(time.Now(), schedTask(t.id), s.seedID(), pt.PieceCount(), true)
	s.mu.Unlock()
	s.log.Info("seed complete", zapTask(t.id), zapInt64("bytes", pt.Meta().ContentLength))
	return nil
}

var errDigest = errors.New("content digest mismatch")

// metaOf is pt's metadata as peers are told it. A task stored before access was recorded was
// fetched by this seed from its URL, so that URL's origin is the one that authorized it; with no
// record of the credentials the fetch carried, it is taken as private.
func (s *Supernode) metaOf(pt *piece.Task) piece.Meta {
	m := pt.Meta()
	if m.Access == "" {
		m.Access, m.Origin = piece.AccessPrivate, taskid.Redact(m.URL, s.cfg.QueryFilter)
	}
	return m
}

// publishMeta makes the task schedulable once its length is known.
func (s *Supernode) publishMeta(t *task, pt *piece.Task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.ptask, t.meta = pt, s.metaOf(pt)
	s.sched.SetTask(schedTask(t.id), pt.PieceCount())
	s.sched.Join(time.Now(), schedTask(t.id), s.seedInfo(), pt.Bitfield().Count())
	s.extendDigests(t)
	select {
	case <-t.ready:
	default:
		close(t.ready)
	}
	t.notify()
}

// publishDigests appends newly hashed pieces to the known prefix and wakes waiting syncs.
func (s *Supernode) publishDigests(t *task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.extendDigests(t) {
		t.notify()
	}
}

func (s *Supernode) extendDigests(t *task) bool {
	grew := false
	for len(t.digests) < t.ptask.PieceCount() {
		d := t.ptask.Digest(len(t.digests))
		if d == "" || !t.ptask.Has(len(t.digests)) {
			break
		}
		t.digests = append(t.digests, d)
		grew = true
	}
	if len(t.digests) == t.ptask.PieceCount() && !t.running {
		t.done = true
	}
	return grew
}

// originError turns a seed failure into the API error peers and dfget report.
func originError(err error) *apierr.Error {
	var se *source.StatusError
	switch {
	case errors.As(err, &se):
		return &apierr.Error{Message: err.Error(), Code: apierr.CodeOriginStatus, OriginStatus: se.Status}
	case errors.Is(err, netguard.ErrForbidden):
		return &apierr.Error{Message: err.Error(), Code: apierr.CodeForbidden}
	case errors.Is(err, errDigest):
		return &apierr.Error{Message: err.Error(), Code: apierr.CodeDigestMismatch}
	default:
		return &apierr.Error{Message: err.Error(), Code: apierr.CodeOriginUnreachable}
	}
}
