package dfdaemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/httprange"
	"github.com/pouch-p2p/pouch/internal/lifecycle"
	p2p "github.com/pouch-p2p/pouch/internal/peer"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/source"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/scheduler/picker"
)

// Request names content to download.
type Request struct {
	URL    string
	Header http.Header   // sent to the origin (by the seed, or by this daemon going back to source)
	Digest digest.Digest // expected content digest; makes the task digest-based
	Tag    string
	// Want, when set, is the only part of the content the request reads: the download fetches
	// just the pieces that cover it (a lazy read, see lazy.go). Nil: the whole content.
	Want *httprange.Range
}

// download is one task being fetched by this daemon, shared by every concurrent request for it.
type download struct {
	d     *Daemon
	key   digest.Digest // local task ID (single-flight key)
	log   *zap.Logger
	ready chan struct{} // closed once meta is known (the gate can decide) or the download failed
	meta  piece.Meta    // written before ready closes
	// created is closed once task is set (after a requester was authorized, so the store holds
	// nothing for refused ones) or the download failed.
	created chan struct{}
	done    chan struct{} // closed when complete and verified, or failed
	err     error         // written before ready/created/done close
	task    *piece.Task
	// authorized is closed once a holder passed the gate (or the daemon fetches for itself):
	// only then does the download fetch content over P2P or from the origin.
	authorized chan struct{}
	released   chan struct{} // poked when the last holder lets go
	holders    int           // handles not yet closed; guarded by d.mu

	fromPeers  atomic.Int64
	fromOrigin atomic.Int64
	started    time.Time // for the download's duration

	mu           sync.Mutex
	req          Request // whose headers reach the origin: the starter's, then the first authorized one's
	wake         chan struct{}
	parents      map[peer.ID]*parentState
	dialing      map[peer.ID]bool
	lastDial     map[peer.ID]time.Time
	blocked      map[peer.ID]bool
	inflight     map[int]*flight
	avail        []int
	cursor       int
	schedule     snapi.Schedule
	seedDone     bool
	syncFailing  bool
	failures     []snapi.Failure
	transfers    []snapi.Transfer
	local        error // this daemon's store failed (disk full): the download stops, nobody else is to blame
	lastProgress time.Time
	rng          *rand.Rand
	homes        []*snapi.Client // the supernodes for this task, in rendezvous order
	home         int             // the one in use
	// detached is a download without a supernode: its parents are holders found through the
	// DHT (holderIDs), and nobody is told of its progress (dht.go).
	detached  bool
	holderIDs []peer.ID
	rescued   bool // holders were looked for once the supernodes stopped answering midway

	// want is the starter's Request.Want, fixed for the download's life (lazy.go).
	want *httprange.Range

	// hashing hashes the content in order while it downloads (hashAhead), so that verify has
	// only the last pieces left; nil when nothing will be verified or the task was complete.
	hashing *hashAhead

	// wait is what the download was doing since waitSince, and sending how many parents were
	// sending to it (see tally).
	wait      string
	sending   int
	waitSince time.Time
}

// hashAhead runs a piece.Hasher on its own goroutine, at each change of the task, until
// stopped.
type hashAhead struct {
	task  *piece.Task
	h     *piece.Hasher
	stop  chan struct{}
	ended chan struct{}
	err   error // the hasher's failure; read after ended closes
	once  sync.Once
}

func startHashAhead(t *piece.Task) *hashAhead {
	a := &hashAhead{task: t, h: t.NewHasher(), stop: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(a.ended)
		for {
			changed := t.Changed() // before Advance: a piece held meanwhile wakes the next turn
			if a.err = a.h.Advance(); a.err != nil || t.Complete() {
				return
			}
			select {
			case <-changed:
			case <-a.stop:
				return
			}
		}
	}()
	return a
}

// halt stops the goroutine and waits for it; the Hasher is then the caller's.
func (a *hashAhead) halt() error {
	a.once.Do(func() { close(a.stop) })
	<-a.ended
	return a.err
}

// client is the supernode this download talks to; the caller holds dl.mu or is the only user.
func (dl *download) client() *snapi.Client { return dl.homes[dl.home] }

// request is the request whose URL and headers the download sends to the supernode and the
// origin.
func (dl *download) request() Request {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return dl.req
}

// authorize lets the download fetch content: req passed the gate (or the daemon fetches for
// itself). The first authorized request's headers replace the starter's, which the gate may
// have refused.
func (dl *download) authorize(req Request) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if !dl.isAuthorized() {
		dl.req = req
		close(dl.authorized)
	}
}

func (dl *download) isAuthorized() bool {
	select {
	case <-dl.authorized:
		return true
	default:
		return false
	}
}

// errUnclaimed ends a download whose every requester left without passing the gate.
var errUnclaimed = errors.New("no requester was authorized")

// awaitAuthorized holds the download until a holder passed the gate; errUnclaimed when all of
// them left without (nothing is fetched for them).
func (dl *download) awaitAuthorized(ctx context.Context) error {
	for {
		select {
		case <-dl.authorized:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-dl.released:
			if dl.d.forget(dl) {
				return errUnclaimed
			}
		}
	}
}

// shown is the download's URL as logs and messages show it.
func (dl *download) shown() string {
	return taskid.Redact(dl.request().URL, dl.d.cfg.QueryFilter)
}

// register joins the task at the first supernode that answers, starting from the current one,
// announcing what this peer holds.
func (dl *download) register(ctx context.Context) (snapi.RegisterResponse, error) {
	r := dl.request()
	req := snapi.RegisterRequest{
		Task: snapi.TaskRequest{URL: r.URL, Header: r.Header, Digest: r.Digest, Tag: r.Tag},
		Peer: dl.d.self(), Want: dl.wantSpan(),
	}
	req.Have, req.Holding = dl.holding()
	var err error
	for range dl.homes {
		var resp snapi.RegisterResponse
		if resp, err = dl.client().Register(ctx, req); err == nil || !errors.Is(err, snapi.ErrUnavailable) {
			return resp, err
		}
		dl.log.Warn("supernode unavailable", zap.String("supernode", dl.client().Base), zap.Error(err))
		dl.mu.Lock()
		dl.home = (dl.home + 1) % len(dl.homes)
		dl.mu.Unlock()
	}
	return snapi.RegisterResponse{}, err
}

type parentState struct {
	info      snapi.Peer
	conn      *p2p.Conn
	bf        piece.Bitfield
	requested map[int]bool
	retired   bool // dropped by the scheduler: no new requests, closed when idle
	// out queues the requests for the parent's own writer (writeRequests): pump runs under
	// dl.mu, which every parent's reader needs, so it never writes to a stream itself.
	out chan int
	// cancels queues the cancels of requests moved to another parent, for the same writer
	// (only to a parent that CanCancel).
	cancels chan int
	gone    chan struct{} // closed when the parent is dropped: its writer ends
	// stalled: a request could not be written within the request timeout (the parent stopped
	// reading); its stream was closed and it is reported as timed out. Guarded by dl.mu.
	stalled bool
}

type flight struct {
	owner     peer.ID
	since     time.Time
	receiving bool // bytes are arriving: the piece can no longer be handed to another parent
}

func (dl *download) poke() {
	select {
	case dl.wake <- struct{}{}:
	default:
	}
}

// setMeta publishes what the gate decides on.
func (dl *download) setMeta(m piece.Meta) {
	dl.meta = m
	close(dl.ready)
}

// setTask publishes the local task; readers may start.
func (dl *download) setTask(t *piece.Task) {
	dl.mu.Lock()
	dl.task = t
	dl.avail = make([]int, t.PieceCount())
	if dl.req.Digest != "" && !t.Complete() && dl.hashing == nil {
		dl.hashing = startHashAhead(t)
	}
	dl.mu.Unlock()
	close(dl.created)
}

// run fetches the task and records the outcome.
func (dl *download) run(ctx context.Context) {
	err := dl.fetch(ctx)
	if err == nil {
		err = dl.verify()
	}
	if dl.hashing != nil {
		dl.hashing.halt() // a failed download: its goroutine is no longer needed
	}
	if errors.Is(err, errUnclaimed) {
		dl.log.Debug("every requester was refused: nothing fetched")
		dl.leave()
	} else if err == nil && !dl.task.Complete() {
		dl.log.Info("lazy read: the wanted pieces are held", zap.Int64("fromPeers", dl.fromPeers.Load()), zap.Int64("fromOrigin", dl.fromOrigin.Load()))
	} else if err != nil {
		err = classify(err)
		if errors.Is(err, ErrDiskFull) {
			dl.log.Error("disk full: download stopped, nobody else blamed; the daemon keeps serving what it holds",
				zap.String("dataDir", dl.d.cfg.DataDir), zap.Error(err))
		} else {
			dl.log.Warn("download failed", zap.Error(err))
		}
	} else {
		dl.log.Info("download complete", zap.Int64("fromPeers", dl.fromPeers.Load()), zap.Int64("fromOrigin", dl.fromOrigin.Load()))
		dl.d.provide(dl.key)
	}
	dl.d.metrics.downloadEnded(err, time.Since(dl.started))
	dl.err = err
	for _, c := range []chan struct{}{dl.ready, dl.created} {
		select {
		case <-c:
		default:
			close(c)
		}
	}
	close(dl.done)
}

// verify checks the whole content against the requested digest.
func (dl *download) verify() error {
	want := dl.request().Digest
	if want == "" || !dl.task.Complete() {
		return nil // a lazy read: its pieces were verified one by one
	}
	var got digest.Digest
	var err error
	if dl.hashing != nil && dl.hashing.task == dl.task && dl.hashing.halt() == nil {
		got, err = dl.hashing.h.Sum()
	} else {
		got, err = dl.task.Sum() // no hasher, or it failed on a read: the whole file once more
	}
	if err != nil {
		return err
	}
	if got != want {
		_ = dl.d.store.Delete(dl.task.Meta().ID)
		dl.distrustHolders()
		return &Error{Kind: ErrDigestMismatch, Msg: fmt.Sprintf("digest mismatch: content of %s hashes to %s, want %s", dl.shown(), got, want)}
	}
	return nil
}

func (dl *download) fetch(ctx context.Context) error {
	held, err := dl.d.store.Task(dl.key)
	if err != nil || !held.Complete() {
		held = nil
	}
	// A complete task is served as it is, unless its index was rebuilt: the supernode then
	// says who may read it (see piece.Meta.Rebuilt), which the registration below learns.
	if held != nil && (!held.Meta().Rebuilt || len(dl.homes) == 0) {
		return dl.serveHeld(held)
	}
	if len(dl.homes) == 0 {
		return dl.withoutSupernode(ctx, nil)
	}
	reg, err := dl.register(ctx)
	if err != nil {
		if errors.Is(err, snapi.ErrUnavailable) || ctx.Err() == nil && !isAnswer(err) {
			if held != nil {
				dl.log.Warn("no supernode answers: the held copy keeps its unknown access", zap.Error(err))
				return dl.serveHeld(held)
			}
			return dl.withoutSupernode(ctx, err)
		}
		return err
	}
	meta := dl.metaFor(reg.Task)
	dl.setMeta(meta)
	if e := reg.Schedule.Error; e != nil {
		return &snapi.StatusError{Status: http.StatusBadGateway, Err: *e}
	}
	if !reg.Schedule.BackToSource {
		defer dl.preconnect(ctx, reg.Schedule)()
	}
	t, err := dl.open(ctx, meta)
	if err != nil {
		return err
	}
	dl.applyTask(reg.Task)
	if reg.Schedule.BackToSource {
		dl.log.Info("supernode says back to source", zap.String("reason", reg.Schedule.Reason))
		return dl.backToSource(ctx, t)
	}
	return dl.p2p(ctx, reg.Schedule)
}

// serveHeld serves a task the store holds complete.
func (dl *download) serveHeld(t *piece.Task) error {
	t.Touch()
	dl.setMeta(t.Meta())
	dl.setTask(t)
	return nil
}

func isAnswer(err error) bool {
	var se *snapi.StatusError
	return errors.As(err, &se)
}

// holding is what this peer holds of the task: how many pieces, and which with the digests it
// verified them against. A supernode that takes the task over when its home died, or that
// restarted, schedules the holders and fetches from the origin only what no live peer holds.
func (dl *download) holding() (int, *snapi.Holding) {
	t, err := dl.d.store.Task(dl.key)
	if err != nil {
		return 0, nil
	}
	held := t.Bitfield()
	if held.Count() == 0 {
		return 0, nil
	}
	m := t.Meta()
	h := &snapi.Holding{ContentLength: m.ContentLength, PieceSize: m.PieceSize, Access: string(m.Access), Origin: m.Origin}
	announced := piece.NewBitfield(held.Len())
	for i := range held.Len() {
		if d := t.Digest(i); held.Has(i) && d != "" && len(h.Digests) < snapi.MaxHeldDigests {
			announced.Set(i)
			h.Digests = append(h.Digests, d)
		}
	}
	h.Bitfield = announced.Bytes()
	return held.Count(), h
}

// leave tells the supernode this peer is no longer part of the task.
func (dl *download) leave() {
	if len(dl.homes) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dl.mu.Lock()
	c := dl.client()
	dl.mu.Unlock()
	_ = c.Leave(ctx, snapi.LeaveRequest{Task: dl.key, Peer: dl.d.host.ID().String()})
}

// metaFor is the local task's metadata for info: the access the supernode recorded, or, for a
// task fetched from the origin by this daemon, its own (info then says so); but the access of a
// local task that already holds pieces, or knows its access, is kept (piece.Store.Create),
// unless its index was rebuilt (piece.Meta.Rebuilt: the access was lost, and info's is the one
// of the very bytes it holds).
func (dl *download) metaFor(info snapi.TaskInfo) piece.Meta {
	meta := piece.Meta{ID: info.ID, URL: dl.shown(), ContentLength: info.ContentLength, PieceSize: info.PieceSize, Digest: dl.request().Digest,
		Access: piece.Access(info.Access), Origin: info.Origin}
	if t, err := dl.d.store.Task(info.ID); err == nil {
		local := t.Meta()
		if local.ContentLength == meta.ContentLength && local.PieceSize == meta.PieceSize && !local.Rebuilt && (local.Access != "" || t.Bitfield().Count() > 0) {
			meta.Access, meta.Origin = local.Access, local.Origin
		}
	}
	return meta
}

// open waits until a holder passed the gate, then creates (or resumes) the local task and
// publishes it to readers.
func (dl *download) open(ctx context.Context, meta piece.Meta) (*piece.Task, error) {
	if err := dl.awaitAuthorized(ctx); err != nil {
		return nil, err
	}
	t, err := dl.createTask(meta)
	if err != nil {
		return nil, err
	}
	dl.setTask(t)
	return t, nil
}

// createTask creates (or resumes) the local task.
func (dl *download) createTask(meta piece.Meta) (*piece.Task, error) {
	t, err := dl.d.store.CreateLogged(meta, dl.log)
	if errors.Is(err, piece.ErrMetaConflict) {
		// The content changed at the origin since this daemon last held it: start afresh.
		if err := dl.d.store.Delete(meta.ID); err != nil {
			return nil, err
		}
		t, err = dl.d.store.CreateLogged(meta, dl.log)
	}
	return t, err
}

// applyTask records piece digests from the supernode.
func (dl *download) applyTask(info snapi.TaskInfo) {
	for k, d := range info.Digests {
		dl.setDigest(info.DigestsFrom+k, d)
	}
	dl.applyAhead(info.Ahead)
	dl.mu.Lock()
	dl.seedDone = info.SeedDone
	dl.mu.Unlock()
}

// setDigest records the digest of piece i from the supernode or its seed.
func (dl *download) setDigest(i int, d digest.Digest) {
	switch err := dl.task.SetDigest(i, d); {
	case errors.Is(err, piece.ErrDigestMismatch):
		dl.log.Warn("the supernode's digest conflicts with the local one", zap.Int("piece", i), zap.Error(err))
	case err != nil:
		dl.log.Warn("cannot record a piece digest", zap.Int("piece", i), zap.Error(err))
	}
}

// backToSource fetches every missing piece from the origin. t is nil when the supernode could not
// be asked: the first response then gives the length.
func (dl *download) backToSource(ctx context.Context, t *piece.Task) error {
	dl.d.metrics.backToSource.Inc()
	return fromOrigin(dl.fillFromOrigin(ctx, t))
}

func (dl *download) fillFromOrigin(ctx context.Context, t *piece.Task) error {
	req, filter := dl.request(), dl.d.cfg.QueryFilter
	o := source.Origin{Client: dl.d.origin, URL: req.URL, Header: req.Header, Limiter: dl.d.downLimit, Filter: filter, Skip: dl.unwanted()}
	shown := taskid.Redact(req.URL, filter)
	private := taskid.Credentialed(req.URL, req.Header, filter)
	var first *http.Response
	if t == nil {
		resp, err := o.Get(ctx, 0, -1)
		if err != nil {
			return err
		}
		length, err := source.LengthOrSpool(resp, dl.d.cfg.DataDir)
		if err != nil {
			resp.Body.Close()
			return fmt.Errorf("%s: %w", shown, err)
		}
		info := snapi.TaskInfo{ID: dl.key, ContentLength: length, PieceSize: piece.SizeFor(length), Access: string(piece.AccessPublic), Origin: shown}
		if private {
			info.Access = string(piece.AccessPrivate)
		}
		t, err = dl.createTask(dl.metaFor(info))
		if err == nil && private {
			err = t.MakePrivate(shown) // see below
		}
		if err != nil {
			resp.Body.Close()
			return err
		}
		dl.setMeta(t.Meta())
		dl.setTask(t)
		first = resp
	} else if private {
		// What comes now needed credentials, and the task is served as a whole.
		if err := t.MakePrivate(shown); err != nil {
			return err
		}
	}
	meta := t.Meta()
	last := time.Now() // pieces stream in order: each one's time is since the previous one
	return o.Fill(ctx, t, first, func(i int, _ digest.Digest) {
		_, n := piece.Bounds(i, meta.ContentLength, meta.PieceSize)
		dl.fromOrigin.Add(n)
		now := time.Now()
		dl.d.metrics.piece(srcOrigin, n, now.Sub(last))
		last = now
	})
}

// p2p downloads from parents until complete, or hands over to the origin when stuck.
func (dl *download) p2p(parent context.Context, sched snapi.Schedule) error {
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	stop := func() {
		cancel()
		dl.mu.Lock()
		for _, p := range dl.parents {
			p.conn.Close()
		}
		dl.untally(time.Now())
		dl.mu.Unlock()
		wg.Wait()
	}
	dl.mu.Lock()
	dl.lastProgress = time.Now()
	dl.applySchedule(ctx, &wg, sched)
	detached := dl.detached
	dl.mu.Unlock()
	if !detached {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dl.syncLoop(ctx, &wg)
		}()
	}

	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for !dl.satisfied() {
		dl.mu.Lock()
		dl.pump(time.Now())
		why := dl.stuck(time.Now())
		failed, local := dl.schedule.Error, dl.local
		dl.mu.Unlock()
		if local != nil {
			// Neither the origin nor another parent would help: the disk is ours.
			stop()
			return local
		}
		if failed != nil {
			stop()
			return &snapi.StatusError{Status: http.StatusBadGateway, Err: *failed}
		}
		if why != "" && dl.rescue(ctx, &wg, why) {
			continue
		}
		if why != "" {
			stop()
			dl.log.Info("going back to source", zap.String("reason", why), zap.Int("have", dl.task.Bitfield().Count()), zap.Int("of", dl.task.PieceCount()))
			return dl.backToSource(parent, dl.task)
		}
		select {
		case <-dl.wake:
		case <-tick.C:
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
	stop()
	if !detached {
		// Tell the supernode at once that this peer is now a complete source.
		sctx, scancel := context.WithTimeout(parent, 5*time.Second)
		req := dl.syncRequest(0)
		req.Idle = !req.Complete // a lazy read: the seed need not wait for this peer
		_, _ = dl.client().Sync(sctx, req)
		scancel()
	}
	return nil
}

// stuck says why P2P cannot finish, or "" while it can; the caller holds dl.mu.
func (dl *download) stuck(now time.Time) string {
	switch {
	case dl.schedule.BackToSource:
		return "supernode: " + dl.schedule.Reason
	case now.Sub(dl.lastProgress) > dl.d.cfg.StallTimeout && dl.detached:
		return fmt.Sprintf("no progress for %v from holders found in the DHT (parents: %d)", dl.d.cfg.StallTimeout, len(dl.parents))
	case now.Sub(dl.lastProgress) > dl.d.cfg.StallTimeout:
		return fmt.Sprintf("no progress for %v (supernode reachable: %v, parents: %d)", dl.d.cfg.StallTimeout, !dl.syncFailing, len(dl.parents))
	}
	return ""
}

// pump sends requests to parents with free pipeline slots; the caller holds dl.mu.
func (dl *download) pump(now time.Time) {
	for id, p := range dl.parents {
		if p.retired {
			// Closed once idle: not while a piece from it is still arriving (its request is
			// no longer in p.requested then), which would waste the piece and read as a
			// broken parent.
			if len(p.requested) == 0 && !dl.receivingFrom(id) {
				p.conn.Close()
			}
			continue
		}
		// A full queue: the parent's writer is behind (a write waits for it to read), and it
		// is asked for nothing more; its writer's deadline drops it.
		for len(p.requested) < dl.d.cfg.Pipeline && len(p.out) < cap(p.out) {
			i := dl.pick(p)
			if i < 0 {
				i = dl.move(p, now)
			}
			if i < 0 {
				break
			}
			p.out <- i // never blocks: only pump sends, under dl.mu, and the queue has room
			p.requested[i] = true
			dl.inflight[i] = &flight{owner: id, since: now}
		}
	}
	defer dl.tally(now)
	for i, f := range dl.inflight {
		if !f.receiving && now.Sub(f.since) > dl.d.cfg.RequestTimeout {
			if p, ok := dl.parents[f.owner]; ok {
				dl.log.Info("parent timed out", zap.Stringer("parent", f.owner), zap.Int("piece", i))
				dl.failures = append(dl.failures, snapi.Failure{Parent: f.owner.String(), Reason: snapi.FailTimeout})
				p.conn.Close()
			}
			delete(dl.inflight, i)
		}
	}
}

// What a P2P download was doing, for pouch_dfdaemon_download_wait_seconds_total: it tells a
// download below its cap because its parents hold nothing it lacks (nothing, undigested) from
// one whose parents' uploads went to other children (requested, or receiving from few).
const (
	waitReceiving  = "receiving"  // a piece is arriving from at least one parent
	waitRequested  = "requested"  // pieces asked for, none arriving yet
	waitUndigested = "undigested" // nothing asked: a parent holds a missing piece whose digest is not known yet
	waitNothing    = "nothing"    // nothing asked: no parent holds a piece this peer lacks
	waitNoParent   = "no_parent"  // no parent connected (yet)
)

// tally counts the time since the last tally in the state the download was in, and notes the
// state it is in now; the caller holds dl.mu.
func (dl *download) tally(now time.Time) {
	dl.untally(now)
	for _, f := range dl.inflight {
		if f.receiving {
			dl.sending++
		}
	}
	switch {
	case dl.sending > 0:
		dl.wait = waitReceiving
	case len(dl.inflight) > 0:
		dl.wait = waitRequested
	case len(dl.parents) == 0:
		dl.wait = waitNoParent
	default:
		dl.wait = waitNothing
	parents:
		for _, p := range dl.parents {
			for i := range p.bf.Len() {
				if p.bf.Has(i) && !dl.task.Has(i) && dl.wanted(i) && dl.task.Digest(i) == "" {
					dl.wait = waitUndigested
					break parents // one is enough; pump runs this at every event
				}
			}
		}
	}
}

// untally counts the time since the last tally and stops counting (P2P ended); the caller
// holds dl.mu or is the only user.
func (dl *download) untally(now time.Time) {
	if dl.wait != "" {
		dt := now.Sub(dl.waitSince).Seconds()
		dl.d.metrics.wait.WithLabelValues(dl.wait).Add(dt)
		dl.d.metrics.sending.Add(dt * float64(dl.sending))
	}
	dl.wait, dl.sending, dl.waitSince = "", 0, now
}

// writeRequests writes p's queued requests to its stream, each within the request timeout. A
// parent that stops reading fills its stream's window and a request write then waits: it is
// then closed (its reader reports it timed out), and only its own writer waited, not the
// download.
func (dl *download) writeRequests(ctx context.Context, p *parentState) {
	for {
		var err error
		var i int
		select {
		case i = <-p.out:
			_ = p.conn.SetWriteDeadline(time.Now().Add(dl.d.cfg.RequestTimeout))
			err = p.conn.Request(i)
		case i = <-p.cancels:
			_ = p.conn.SetWriteDeadline(time.Now().Add(dl.d.cfg.RequestTimeout))
			err = p.conn.Cancel(i)
		case <-p.gone:
			return
		case <-ctx.Done():
			return
		}
		if err != nil {
			// A deadline: the parent stopped reading. Anything else: the stream was closed,
			// and its reader says why.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				dl.log.Info("parent stopped reading requests: dropping it", zap.Stringer("parent", p.conn.Peer), zap.Int("piece", i), zap.Error(err))
				dl.mu.Lock()
				p.stalled = true
				dl.mu.Unlock()
			}
			p.conn.Close()
			return
		}
	}
}

// receivingFrom says whether a piece from parent id is arriving; the caller holds dl.mu.
func (dl *download) receivingFrom(id peer.ID) bool {
	for _, f := range dl.inflight {
		if f.owner == id && f.receiving {
			return true
		}
	}
	return false
}

// usable says whether piece i can be requested from p now; the caller holds dl.mu.
func (dl *download) usable(i int, p *parentState) bool {
	return dl.inflight[i] == nil && p.bf.Has(i) && !dl.task.Has(i) && dl.task.Digest(i) != "" && dl.wanted(i)
}

// pick chooses the next piece to request from p (picker.Pick: the reader's next pieces, then
// the rarest among this peer's parents; from the seed only the rarest); the caller holds dl.mu.
func (dl *download) pick(p *parentState) int {
	return picker.Pick(picker.Choice{Pieces: len(dl.avail), Cursor: dl.cursor, FromSeed: p.info.Seed, Start: dl.rng.IntN},
		parentView{dl, p})
}

// parentView is the download as the picker sees it for one parent; the caller holds dl.mu.
type parentView struct {
	dl *download
	p  *parentState
}

func (v parentView) Avail(i int) int   { return v.dl.avail[i] }
func (v parentView) Usable(i int) bool { return v.dl.usable(i, v.p) }

// move hands p, asked for nothing and holding nothing else usable, a piece that another
// parent was asked for and has not started sending (picker.Move): that parent is told to drop
// it when it can (ProtocolCancelID); otherwise only in the endgame, where a slow parent must not
// hold the last pieces, and it sends its copy all the same. The caller asks p for the piece.
func (dl *download) move(p *parentState, now time.Time) int {
	if len(p.requested) > 0 {
		return -1
	}
	var waiting []picker.Waiting
	for i, f := range dl.inflight {
		if old := dl.parents[f.owner]; !f.receiving && old != p {
			waiting = append(waiting, picker.Waiting{Piece: i, Age: now.Sub(f.since), Cancel: old != nil && old.conn.CanCancel()})
		}
	}
	best := picker.Move(waiting, p.bf.Has)
	if best < 0 {
		return -1
	}
	cancelled := dl.unask(best, dl.inflight[best].owner)
	delete(dl.inflight, best)
	dl.d.metrics.moved.WithLabelValues(strconv.FormatBool(cancelled)).Inc()
	return best
}

// unask takes piece i off what parent id was asked for and tells it to drop the request if
// it can; false: it will send the piece all the same (an older parent, or its writer is
// behind), and the copy is drained. The caller holds dl.mu.
func (dl *download) unask(i int, id peer.ID) bool {
	old, ok := dl.parents[id]
	if !ok {
		return false
	}
	delete(old.requested, i)
	if !old.conn.CanCancel() {
		return false
	}
	select {
	case old.cancels <- i:
		return true
	default:
		return false
	}
}

// applySchedule connects to new parents and retires dropped ones; the caller holds dl.mu.
func (dl *download) applySchedule(ctx context.Context, wg *sync.WaitGroup, s snapi.Schedule) {
	dl.schedule = s
	want := map[peer.ID]bool{}
	now := time.Now()
	for _, sp := range s.Parents {
		info, err := p2p.AddrInfo(sp.ID, sp.Addrs)
		if err != nil || info.ID == dl.d.host.ID() || dl.blocked[info.ID] {
			continue
		}
		dl.d.learn(sp)
		want[info.ID] = true
		if p, ok := dl.parents[info.ID]; ok {
			p.retired = false
			continue
		}
		if dl.dialing[info.ID] || now.Sub(dl.lastDial[info.ID]) < time.Second {
			continue
		}
		dl.dialing[info.ID], dl.lastDial[info.ID] = true, now
		wg.Add(1)
		go func() {
			defer wg.Done()
			dl.connect(ctx, wg, sp, info)
		}()
	}
	if len(want) > 0 {
		for id, p := range dl.parents {
			if !want[id] {
				p.retired = true
			}
		}
	}
}

func (dl *download) connect(ctx context.Context, wg *sync.WaitGroup, sp snapi.Peer, info peer.AddrInfo) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, bf, err := p2p.Dial(dctx, dl.d.host, info, dl.task.Meta().ID, dl.task.PieceCount(), sp.Seed)
	cancel()
	dl.mu.Lock()
	defer dl.mu.Unlock()
	delete(dl.dialing, info.ID)
	if err != nil {
		if ctx.Err() == nil {
			dl.log.Debug("cannot reach parent", zap.Stringer("parent", info.ID), zap.Error(err))
			dl.failures = append(dl.failures, snapi.Failure{Parent: sp.ID, Reason: snapi.FailUnreachable})
		}
		return
	}
	if ctx.Err() != nil {
		conn.Close()
		return
	}
	dl.log.Debug("connected", zap.String("parent", sp.ID), zap.Int("has", bf.Count()))
	p := &parentState{info: sp, conn: conn, bf: bf, requested: map[int]bool{},
		out: make(chan int, dl.d.cfg.Pipeline), cancels: make(chan int, 4), gone: make(chan struct{})}
	dl.parents[info.ID] = p
	for i := range bf.Len() {
		if bf.Has(i) {
			dl.avail[i]++
		}
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		dl.serve(ctx, info.ID, p)
	}()
	go func() {
		defer wg.Done()
		dl.writeRequests(ctx, p)
	}()
	dl.poke()
}

// serve reads one parent's messages until the stream ends.
func (dl *download) serve(ctx context.Context, id peer.ID, p *parentState) {
	var reason snapi.FailureReason
	bad := -1 // the piece that made the parent corrupt
	defer func() { dl.dropParent(id, p, reason, bad) }()
	meta := dl.task.Meta()
	for {
		ev, err := p.conn.Next()
		if err != nil {
			reason = dl.lost(ctx, p)
			return
		}
		switch ev.Kind {
		case p2p.EventHave:
			if ev.Digest != "" && p.info.Seed && ev.Index < len(dl.avail) {
				// The seed's own digest, as the supernode would publish it: the piece can be
				// asked for now (the supernode names the seed; libp2p authenticated it).
				dl.setDigest(ev.Index, ev.Digest)
			}
			dl.mu.Lock()
			if ev.Index < len(dl.avail) && !p.bf.Has(ev.Index) {
				p.bf.Set(ev.Index)
				dl.avail[ev.Index]++
			}
			dl.mu.Unlock()
			dl.poke()
		case p2p.EventReject:
			dl.mu.Lock()
			delete(p.requested, ev.Index)
			if f := dl.inflight[ev.Index]; f != nil && f.owner == id {
				delete(dl.inflight, ev.Index)
			}
			dl.mu.Unlock()
			dl.poke()
		case p2p.EventPiece:
			if ev.Index >= meta.PieceCount() {
				reason, bad = snapi.FailCorrupt, ev.Index
				return
			}
			if _, n := piece.Bounds(ev.Index, meta.ContentLength, meta.PieceSize); n != ev.Size {
				reason, bad = snapi.FailCorrupt, ev.Index
				return
			}
			dl.mu.Lock()
			f := dl.inflight[ev.Index]
			mine := f != nil && f.owner == id
			if f != nil && !mine && !f.receiving {
				// Moved to another parent, whose copy has not started, and this one's cancel
				// came too late: the first copy to start is taken, the other cancelled.
				dl.unask(ev.Index, f.owner)
				f.owner, mine = id, true
			}
			var requested time.Time
			if mine {
				f.receiving = true
				requested = f.since
			}
			delete(p.requested, ev.Index)
			dl.mu.Unlock()
			start := time.Now()
			body := p.conn.Body(ev)
			if !mine {
				// Stolen by another parent meanwhile: drain it, never write it.
				if _, err := io.CopyN(io.Discard, body, ev.Size); err != nil {
					reason = dl.lost(ctx, p)
					return
				}
				continue
			}
			err := dl.task.WritePiece(ev.Index, dl.d.downLimit.Reader(ctx, body))
			dl.mu.Lock()
			delete(dl.inflight, ev.Index)
			if err == nil {
				dl.lastProgress = time.Now()
				dl.transfers = append(dl.transfers, snapi.Transfer{Parent: id.String(), Bytes: ev.Size, Millis: time.Since(start).Milliseconds()})
			}
			dl.mu.Unlock()
			switch {
			case err == nil:
				dl.fromPeers.Add(ev.Size)
				from := srcPeer
				if p.info.Seed {
					from = srcSeed
				}
				dl.d.metrics.piece(from, ev.Size, time.Since(requested))
				dl.poke()
			case errors.Is(err, piece.ErrIO), errors.Is(err, piece.ErrNotFound), errors.Is(err, piece.ErrClosed):
				// This daemon's own store failed (disk full): the parent sent good bytes and is
				// not reported.
				dl.mu.Lock()
				if dl.local == nil {
					dl.local = err
				}
				dl.mu.Unlock()
				dl.poke()
				return
			case errors.Is(err, piece.ErrDigestMismatch):
				dl.log.Warn("parent sent a corrupt piece: blocking it", zap.Stringer("parent", id), zap.Int("piece", ev.Index))
				dl.d.metrics.corrupt.Inc()
				dl.mu.Lock()
				dl.blocked[id] = true
				dl.mu.Unlock()
				reason, bad = snapi.FailCorrupt, ev.Index
				return
			default:
				reason = dl.lost(ctx, p)
				return
			}
		}
	}
}

// lost says why p's stream broke, to report it: it timed out when its writer could not send a
// request (the parent stopped reading), it is unreachable otherwise, and nothing is reported
// when this peer stopped the stream itself (the download ended, or the scheduler dropped p).
func (dl *download) lost(ctx context.Context, p *parentState) snapi.FailureReason {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	switch {
	case p.stalled:
		return snapi.FailTimeout
	case ctx.Err() == nil && !p.retired:
		return snapi.FailUnreachable
	}
	return ""
}

// dropParent forgets a parent and frees what it was asked for, and queues the report of why it
// failed, if it did (bad is the piece of a FailCorrupt report).
func (dl *download) dropParent(id peer.ID, p *parentState, reason snapi.FailureReason, bad int) {
	p.conn.Close()
	close(p.gone)
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.parents[id] != p {
		return
	}
	delete(dl.parents, id)
	for i := range p.requested {
		if f := dl.inflight[i]; f != nil && f.owner == id {
			delete(dl.inflight, i)
		}
	}
	for i := range p.bf.Len() {
		if p.bf.Has(i) {
			dl.avail[i]--
		}
	}
	switch reason {
	case "":
	case snapi.FailCorrupt:
		dl.failures = append(dl.failures, snapi.CorruptPiece(id.String(), bad))
	default:
		dl.failures = append(dl.failures, snapi.Failure{Parent: id.String(), Reason: reason})
	}
	dl.poke()
}

// syncRequest builds the next progress report, draining queued failures and transfers; the
// caller holds dl.mu unless the download loop has stopped.
func (dl *download) syncRequest(wait int) snapi.SyncRequest {
	known := 0
	for known < dl.task.PieceCount() && dl.task.Digest(known) != "" {
		known++
	}
	req := snapi.SyncRequest{
		Task: dl.task.Meta().ID, Peer: dl.d.host.ID().String(), Have: dl.task.Bitfield().Count(),
		Complete: dl.task.Complete(), DigestsFrom: known, Ahead: dl.ahead(known), Failures: dl.failures, Transfers: dl.transfers, WaitMillis: wait,
	}
	dl.failures, dl.transfers = nil, nil
	return req
}

// syncPace is the shortest time between two syncs of a download. While the seed still fetches,
// a sync is a long-poll the supernode answers at the next new digest, so without a pace every
// peer made a round trip, and the supernode a scheduling decision, for every piece the seed
// fetched: N × pieces requests in the seed's first pass, a rate that grows with N and with the
// seed's pieces per second. Paced, the supernode spends less CPU, and runs on a loaded machine
// were faster (docs/benchmarks.md, "Toward 1.10"). A piece is asked for only once its digest
// is known, so the pace delays each new piece by up to 250 ms at another parent; the seed's
// offers carry their digests (p2p.ProtocolDigestsID) and wait for no sync.
const syncPace = 250 * time.Millisecond

// syncLoop reports progress to the supernode in batches and brings back new piece digests
// (long-polling while the seed is still fetching) and schedule changes.
func (dl *download) syncLoop(ctx context.Context, wg *sync.WaitGroup) {
	var last time.Time
	for ctx.Err() == nil {
		if gap := syncPace - time.Since(last); gap > 0 && !lifecycle.Sleep(ctx, gap) {
			return
		}
		last = time.Now()
		dl.mu.Lock()
		wait := 0
		if !dl.seedDone {
			wait = 2000
		}
		req := dl.syncRequest(wait)
		client := dl.client()
		dl.mu.Unlock()
		resp, err := client.Sync(ctx, req)
		if ctx.Err() != nil {
			return
		}
		var se *snapi.StatusError
		switch {
		case errors.As(err, &se) && se.Err.Code == apierr.CodeNotFound:
			// The supernode restarted or expired this peer: join again with what is held.
			fallthrough
		case errors.Is(err, snapi.ErrUnavailable) && len(dl.homes) > 1:
			// Move to the next supernode in rendezvous order and re-announce what is held; every
			// peer of the task moves to the same one.
			if err != nil && !errors.As(err, &se) {
				dl.log.Info("supernode unavailable: moving to the next one for this task", zap.String("supernode", client.Base), zap.Error(err))
				dl.mu.Lock()
				dl.home = (dl.home + 1) % len(dl.homes)
				dl.mu.Unlock()
			} else {
				dl.log.Info("the supernode no longer knows this peer: registering again", zap.String("supernode", client.Base))
			}
			if reg, rerr := dl.register(ctx); rerr == nil {
				resp, err = snapi.SyncResponse{Task: reg.Task, Schedule: reg.Schedule}, nil
			}
		}
		if err != nil {
			dl.mu.Lock()
			dl.syncFailing = true
			dl.mu.Unlock()
			dl.log.Debug("sync failed", zap.Error(err))
			if !lifecycle.Sleep(ctx, time.Second) {
				return
			}
			continue
		}
		dl.applyTask(resp.Task)
		dl.mu.Lock()
		dl.syncFailing = false
		dl.applySchedule(ctx, wg, resp.Schedule)
		seedDone := dl.seedDone
		dl.mu.Unlock()
		dl.poke()
		if seedDone && !lifecycle.Sleep(ctx, snapi.SyncInterval) {
			return
		}
	}
}
