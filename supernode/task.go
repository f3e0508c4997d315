package supernode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/httprange"
	"github.com/pouch-p2p/pouch/internal/lifecycle"
	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/source"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/scheduler"
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
	running bool            // a seed fetch (or the refetch of a dropped piece) is in progress
	ready   chan struct{}   // closed when meta is known or the seed failed
	changed chan struct{}   // closed and replaced at every new digest or state change
	peers   map[string]bool
	created time.Time
	// checking holds the seed's pieces being re-hashed after a corrupt report.
	checking map[int]bool
	// Bytes by source, for the status page: fetched by the seed from the origin (atomic: the
	// seed adds to it without s.mu), and received by peers from the seed or from other peers,
	// as they report it.
	originBytes          atomic.Int64
	seedBytes, peerBytes int64
	// holdings is what the peers announced they hold, and which of their digests are trusted;
	// nil until meta is known. The seed skips the pieces live peers hold (see seedSkips).
	holdings *scheduler.Holdings
	// grace: the seed was started by a registration announcing held pieces (a takeover, a
	// restart): it waits Config.TakeoverGrace for the other holders before fetching.
	grace bool
	// wantAll: a preheat needs the seed to hold every piece, so it skips none.
	wantAll bool
	// lazy, when set, is all the task's peers want of it (lazy reads, see wants): the seed
	// fetches only the pieces that cover it. Nil: the whole content.
	lazy *wantSet
	// idle are the registered peers that hold all they want (snapi.SyncRequest.Idle): the
	// seed does not wait for them.
	idle map[string]bool
	// refused: the seed refused the content for good (it passed the spool cap); registrations
	// get that error at once until the task is forgotten, rather than each spooling it again.
	refused bool
}

func newTask(id digest.Digest, req snapi.TaskRequest) *task {
	return &task{id: id, req: req, ready: make(chan struct{}), changed: make(chan struct{}), peers: map[string]bool{},
		created: time.Now(), checking: map[int]bool{}, idle: map[string]bool{}}
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
		Digests: append([]digest.Digest(nil), t.digests[from:]...), DigestsFrom: from, Ahead: t.ahead(), SeedDone: t.allKnown(),
		Access: string(t.meta.Access), Origin: t.meta.Origin,
	}
}

// allKnown says whether every piece digest is known.
func (t *task) allKnown() bool { return t.ptask != nil && len(t.digests) == t.ptask.PieceCount() }

// taskFor returns task id, created from req if it is new, with its seed started unless it is
// running or done (a failed seed is retried with req). announced says that the registration
// announces held pieces; want is the part of the content it wants (nil: all of it). The caller
// holds s.mu.
func (s *Supernode) taskFor(id digest.Digest, req snapi.TaskRequest, announced bool, want *snapi.Span) *task {
	t, ok := s.tasks[id]
	if !ok {
		t = newTask(id, req)
		if want != nil {
			t.lazy = &wantSet{}
		}
		s.tasks[id] = t
	}
	s.wants(t, want)
	s.startSeed(t, req, announced)
	return t
}

// startSeed begins the single fetch of a task from its origin unless it runs or is done. A seed
// that failed, an incomplete task left by a restart, and a seed parked while peers held the
// rest, are (re)started by the next registration with that request's URL and headers. grace:
// the registration announces held pieces, so the seed waits for the other holders' before it
// fetches. The caller holds s.mu.
func (s *Supernode) startSeed(t *task, req snapi.TaskRequest, grace bool) {
	if t.running || t.done || t.refused {
		return
	}
	t.grace = grace
	if t.err != nil {
		t.err = nil
		t.ready = make(chan struct{})
	}
	// The seed fetches with the request that starts it: a task reloaded after a restart knows
	// only its redacted URL and no headers, so it resumes with the next registration's.
	t.req = req
	t.running = true
	s.failed.Remove(t.id) // forgetFailed keeps it: it is running
	started := s.life.Go(func(ctx context.Context) {
		err := s.seed(ctx, t)
		s.metrics.seedEnded(err)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.seedEnded(t, err)
	})
	if !started {
		s.seedEnded(t, lifecycle.ErrClosed)
	}
}

// seedEnded records how the seed of t ended; the caller holds s.mu. The request's headers
// (credentials) are dropped either way: a retry brings its own.
func (s *Supernode) seedEnded(t *task, err error) {
	t.running = false
	t.req.Header = nil
	if errors.Is(err, errParked) {
		s.log.Info("seed parked: the peers hold the rest or nobody wants it, and none is downloading; the next registration resumes it",
			zapTask(t.id), zap.Int("have", t.ptask.Bitfield().Count()), zap.Int("of", t.ptask.PieceCount()))
		err = nil
	}
	if err != nil {
		t.refused = errors.Is(err, source.ErrSpoolFull)
		t.err = originError(err)
		s.log.Warn("seed failed", zapTask(t.id), zapErr(err))
		s.sched.SourceFailed(schedTask(t.id))
		select {
		case <-t.ready:
		default:
			close(t.ready)
		}
		if t.ptask == nil {
			s.failed.Add(t.id, time.Now())
		}
	}
	t.notify()
}

// forgetFailed drops a task whose seed failed before storing anything, when it leaves the
// failed list (expired, or pushed out by newer failures), unless it is in use again. The
// caller holds s.mu.
func (s *Supernode) forgetFailed(id digest.Digest, _ time.Time) {
	t, ok := s.tasks[id]
	if !ok || t.err == nil || t.running || t.ptask != nil || len(t.peers) > 0 {
		return
	}
	delete(s.tasks, id)
	s.sched.RemoveTask(schedTask(id))
	s.log.Debug("failed task forgotten", zapTask(id))
}

// seed fetches the task from the origin into the seed's store, publishing each piece. It skips
// the pieces live peers hold (seedSkips): it then waits for a change while peers still download,
// and parks (errParked) once none does.
func (s *Supernode) seed(ctx context.Context, t *task) error {
	s.mu.Lock()
	req, grace, lazy := t.req, t.grace, t.lazy != nil
	var want *snapi.Span
	if lazy && len(t.lazy.spans) > 0 {
		sp := t.lazy.spans[0] // the span of the registration that started the seed
		want = &sp
	}
	s.mu.Unlock()
	origin := source.Origin{Client: s.origin, URL: req.URL, Header: req.Header, Filter: s.cfg.QueryFilter,
		Skip: func(i int) bool { return s.seedSkips(t, i) }}
	shown := taskid.Redact(req.URL, s.cfg.QueryFilter)
	private := taskid.Credentialed(req.URL, req.Header, s.cfg.QueryFilter)
	var first io.ReadCloser
	var firstAt int64
	pt, err := s.store.Task(t.id)
	if errors.Is(err, piece.ErrNotFound) {
		// Peers that announce what they hold are taking the task over from a supernode that
		// died: ask the origin for one byte, which says the length, and fetch nothing more
		// until they have announced. A lazy read asks for the bytes it wants, widened to
		// piece boundaries of any length (lazyFirst), and that answer says the length.
		var resp *http.Response
		var ranged *httprange.Range
		if lazy && !grace && want != nil {
			resp, ranged, err = lazyFirst(ctx, origin, *want)
		} else {
			end := int64(-1)
			if grace || lazy {
				end = 0
			}
			resp, err = origin.Get(ctx, 0, end)
		}
		if err != nil {
			return err
		}
		length, err := s.spool.LengthOrSpool(resp)
		if errors.Is(err, source.ErrSpoolFull) {
			err = fmt.Errorf("%w (--spool-max)", err)
		}
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
		switch {
		case resp.StatusCode != http.StatusPartialContent:
			first, grace = resp.Body, false // the origin ignored the range: take what it sends
		case ranged != nil:
			// The pieces that cover the wanted bytes, from their answer and what lies around it.
			m := pt.Meta()
			from, to := coveringBytes(*want, m)
			first, firstAt = origin.Around(ctx, resp.Body, ranged.Start, ranged.End, from, to, m.ContentLength), from
		default:
			resp.Body.Close()
		}
	} else if err != nil {
		return err
	} else if private {
		// Resuming with credentials: what comes now may be private, and the task is served as
		// a whole, so all of it becomes private.
		if err := pt.MakePrivate(shown); err != nil {
			return err
		}
	} else if m := pt.Meta(); m.Rebuilt {
		// The index was rebuilt and who may read this was lost with it: the origin's answer
		// to a request without credentials for one byte says it is public there.
		resp, err := origin.Get(ctx, 0, 0)
		if err != nil {
			return err
		}
		resp.Body.Close()
		total, err := source.Length(resp)
		if err != nil {
			return fmt.Errorf("origin %s: %w", shown, err)
		}
		if total != m.ContentLength {
			return fmt.Errorf("origin %s: content length changed from %d to %d", shown, m.ContentLength, total)
		}
		m.URL, m.Access, m.Origin = shown, piece.AccessPublic, shown
		if pt, err = s.store.Create(m); err != nil {
			return err
		}
	}
	s.publishMeta(t, pt)
	if grace && !pt.Complete() {
		timer := time.NewTimer(s.cfg.TakeoverGrace)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
	for {
		last := time.Now() // pieces stream in order: each one's time is since the previous one
		err = origin.FillFrom(ctx, pt, first, firstAt, func(i int, d digest.Digest) {
			s.publishDigest(t, i, d) // first: peers wait for it
			_, n := piece.Bounds(i, pt.Meta().ContentLength, pt.Meta().PieceSize)
			now := time.Now()
			s.fetchedFromOrigin(t, n, now.Sub(last))
			last = now
			s.log.Debug("seed fetched a piece", zapTask(t.id), zap.Int("piece", i))
		})
		first = nil
		if err != nil || pt.Complete() {
			break
		}
		// Every missing piece was held by a live peer when Fill passed it.
		changed, parked := s.seedIdle(t)
		if parked != nil {
			return parked
		}
		if changed == nil {
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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

// errParked ends a seed that holds what no live peer holds while no peer downloads the task:
// it keeps no goroutine or credentials for them. The next registration resumes it.
var errParked = errors.New("seed parked")

// seedSkips is skips for the seed's Fill, which does not hold s.mu.
func (s *Supernode) seedSkips(t *task, i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skips(t, i)
}

// seedIdle decides what a seed does when every piece it lacks is held by a live peer or wanted
// by none: fill again at once (nil, nil: a piece was left uncovered, or wanted, meanwhile),
// wait for the next change of the task (a holder leaving or reported, a preheat, a peer
// completing, a lazy read wanting more), or park when no peer downloads the task any more.
func (s *Supernode) seedIdle(t *task) (<-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range t.ptask.PieceCount() {
		if !t.ptask.Has(i) && !s.skips(t, i) {
			return nil, nil
		}
	}
	if !s.downloading(t) {
		return nil, errParked
	}
	return t.changed, nil
}

// downloading says whether a peer registered for t still downloads it; the caller holds s.mu.
func (s *Supernode) downloading(t *task) bool {
	for p := range t.peers {
		if !t.idle[p] && (t.holdings == nil || !t.holdings.Complete(scheduler.PeerID(p))) {
			return true
		}
	}
	return false
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
	s.setMeta(t, pt)
	// The origin answered: a retried seed takes the task out of "back to source".
	s.sched.SourceRecovered(schedTask(t.id))
	s.sched.Join(time.Now(), schedTask(t.id), s.seedInfo(), pt.Bitfield().Count())
	s.extendDigests(t)
	select {
	case <-t.ready:
	default:
		close(t.ready)
	}
	t.notify()
}

// setMeta records the seed's piece task of t: its meta, the scheduler's piece count and what
// is trusted of the peers' announcements. The caller holds s.mu.
func (s *Supernode) setMeta(t *task, pt *piece.Task) {
	t.ptask, t.meta = pt, s.metaOf(pt)
	s.sched.SetTask(schedTask(t.id), pt.PieceCount())
	if t.holdings == nil || t.holdings.Pieces() != pt.PieceCount() {
		// Digests announced by peers are adopted only for a task whose content digest checks
		// the result at the end (see scheduler.Holdings and docs/architecture.md).
		quorum := 0
		if t.meta.Digest != "" {
			quorum = takeoverQuorum
		}
		t.holdings = scheduler.NewHoldings(pt.PieceCount(), quorum)
	}
	for i := range pt.PieceCount() {
		if d := pt.Digest(i); d != "" {
			t.holdings.Trust(i, d.String())
		}
	}
}

// takeoverQuorum is how many distinct peers must announce the same digest for a piece, none
// another, before a supernode taking a task over adopts it. One: early in a burst most pieces
// are held by a single peer, and the content digest checks the result (docs/architecture.md,
// "Several supernodes", says what a lie can and cannot do).
const takeoverQuorum = 1

// publishDigest records the digest of piece i the seed just hashed, appends newly known digests
// to the published prefix and wakes waiting syncs. The seed's hash wins over a digest adopted
// from peers: those that announced another one are blocked for the task.
func (s *Supernode) publishDigest(t *task, i int, d digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if liars := t.holdings.Trust(i, d.String()); len(liars) > 0 {
		s.log.Error("peers announced a piece digest that the origin's content does not have: they are blocked for this task",
			zapTask(t.id), zap.Int("piece", i), zap.Stringer("origin", d), zap.Any("peers", liars))
		for _, p := range liars {
			s.sched.Block(time.Now(), schedTask(t.id), p)
		}
	}
	if i < len(t.digests) {
		t.digests[i] = d // it may replace an adopted digest
	}
	s.extendDigests(t)
	t.notify() // in order or ahead of the prefix (a lazy read), waiting syncs learn it

}

// extendDigests appends to t.digests the trusted digests known past its end: the seed's own,
// and those adopted from peers' announcements. The caller holds s.mu.
func (s *Supernode) extendDigests(t *task) bool {
	grew := false
	for len(t.digests) < t.ptask.PieceCount() {
		d := t.holdings.Trusted(len(t.digests))
		if d == "" {
			break
		}
		t.digests = append(t.digests, digest.Digest(d))
		grew = true
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
	case errors.Is(err, source.ErrSpoolFull):
		return &apierr.Error{Message: err.Error(), Code: apierr.CodeLocal}
	default:
		return &apierr.Error{Message: err.Error(), Code: apierr.CodeOriginUnreachable}
	}
}

// checkSeedPiece re-hashes piece i of the seed's own copy after a peer scheduled to the seed
// reported it corrupt. The seed is never blocked by reports; a piece that really rotted on the
// seed's disk is dropped, so it is never served again, and fetched anew from the origin when
// the origin needs no credentials (the request's headers are gone once the seed is done). The
// caller holds s.mu.
func (s *Supernode) checkSeedPiece(t *task, i int, reporter string) {
	pt := t.ptask
	if pt == nil || t.checking[i] {
		return
	}
	t.checking[i] = true
	s.life.Go(func(ctx context.Context) {
		err := pt.Verify(i)
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(t.checking, i)
		switch {
		case err == nil:
			s.log.Warn("a peer reported a piece of the seed corrupt, but the seed's copy is intact",
				zapTask(t.id), zap.Int("piece", i), zap.String("reporter", reporter))
		case errors.Is(err, piece.ErrDigestMismatch):
			s.metrics.seedPiecesDropped.Inc()
			s.log.Error("SEED PIECE CORRUPT: the seed's own stored copy fails its digest (disk damage?); the piece was dropped and is no longer served",
				zapTask(t.id), zap.Int("piece", i), zap.String("reporter", reporter), zapErr(err))
			s.refetch(t, pt)
		case !errors.Is(err, piece.ErrNotFound):
			s.log.Error("cannot re-hash a piece of the seed", zapTask(t.id), zap.Int("piece", i), zapErr(err))
		}
	})
}

// refetch fetches the pieces the seed lost back from the origin. A running seed does it: it
// fills again when woken, once it is waiting for peers (a seed still on its first pass does not
// revisit pieces behind it: the task then lacks the piece until the next registration after the
// seed ends). The caller holds s.mu.
func (s *Supernode) refetch(t *task, pt *piece.Task) {
	if t.running {
		s.log.Warn("the seed is still running: it fetches the dropped piece when it next fills the task", zapTask(t.id))
		t.notify()
		return
	}
	t.running = true
	origin := source.Origin{Client: s.origin, URL: t.req.URL, Filter: s.cfg.QueryFilter}
	started := s.life.Go(func(ctx context.Context) {
		last := time.Now()
		err := origin.Fill(ctx, pt, nil, func(i int, _ digest.Digest) {
			_, n := piece.Bounds(i, pt.Meta().ContentLength, pt.Meta().PieceSize)
			now := time.Now()
			s.fetchedFromOrigin(t, n, now.Sub(last))
			last = now
		})
		s.mu.Lock()
		defer s.mu.Unlock()
		t.running = false
		if err != nil {
			s.log.Warn("cannot refetch the seed's dropped pieces from the origin; peers fetch them from others or the origin",
				zapTask(t.id), zapErr(err))
			return
		}
		s.log.Info("seed refetched its dropped pieces", zapTask(t.id))
	})
	if !started {
		t.running = false
	}
}

// failureReport applies one failure report of a sync from reporter; the caller holds s.mu.
func (s *Supernode) failureReport(now time.Time, t *task, reporter string, f snapi.Failure) {
	why, ok := failureReasons[f.Reason]
	if !ok {
		return
	}
	verdict := scheduler.Ignored
	if why != scheduler.FailCorrupt || validPiece(t, f.Piece) {
		_, verdict = s.sched.Failure(now, schedTask(t.id), scheduler.PeerID(reporter), scheduler.PeerID(f.Parent), why)
	}
	s.metrics.failureReports.WithLabelValues(string(f.Reason), verdict.String()).Inc()
	if verdict != scheduler.Ignored {
		if p, ok := s.peers[f.Parent]; ok {
			p.failures++
			p.lastFailure = now
		}
	}
	if verdict != scheduler.Ignored && t.holdings != nil && s.dropHolder(t, reporter, f.Parent, why) {
		s.log.Info("children could not get pieces from a parent: what it announced no longer counts as held",
			zapTask(t.id), zap.String("parent", f.Parent), zap.String("child", reporter), zap.String("reason", string(f.Reason)))
		t.notify() // a waiting seed fetches what nobody else holds
	}
	if why != scheduler.FailCorrupt || verdict == scheduler.Ignored {
		return
	}
	s.metrics.corruptReports.Inc()
	s.log.Warn("peer reported a corrupt piece", zap.String("child", reporter), zap.String("parent", f.Parent),
		zapTask(t.id), zap.Int("piece", *f.Piece), zap.Stringer("verdict", verdict))
	if f.Parent == string(s.seedID()) {
		s.checkSeedPiece(t, *f.Piece, reporter)
	}
}

// dropHolder applies a counted failure report about parent to what it announced it holds: a
// corrupt piece drops it at once, unreachable reports once enough children agree, a timeout
// never (a slow parent still holds its pieces). The caller holds s.mu.
func (s *Supernode) dropHolder(t *task, reporter, parent string, why scheduler.FailureReason) bool {
	switch why {
	case scheduler.FailCorrupt:
		return t.holdings.Forget(scheduler.PeerID(parent))
	case scheduler.FailUnreachable:
		return t.holdings.Unreachable(scheduler.PeerID(parent), scheduler.PeerID(reporter))
	}
	return false
}

func validPiece(t *task, i *int) bool {
	return i != nil && t.ptask != nil && *i >= 0 && *i < t.ptask.PieceCount()
}
