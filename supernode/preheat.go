package supernode

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/httpx"
	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/supernode/preheat"
)

// Bounds of the preheat jobs a supernode keeps (every client-created state is bounded).
const (
	maxActiveJobs = 16  // PENDING or RUNNING at once; more are refused with 429
	maxKeptJobs   = 256 // finished jobs beyond this are forgotten, oldest first
	seedsPerJob   = 4   // seeds a job starts at once
)

// preheats runs the preheat jobs: it resolves them, seeds their tasks through the seed's own
// entry point (never the peer API), hands scope all-peers assignments to dfdaemons in their
// heartbeat answers, and keeps every job in bbolt.
type preheats struct {
	s     *Supernode
	log   *zap.Logger
	store *preheat.Store

	mu   sync.Mutex // guards jobs and every run's job
	jobs map[string]*jobRun
}

// jobRun is a job and what its run holds in memory only.
type jobRun struct {
	job    *preheat.Job
	secret jobSecret
	// urls are the tasks' full URLs (a file's pre-signed URL is redacted in job).
	urls    map[digest.Digest]string
	cancel  context.CancelFunc // stops the run; nil before it starts
	started time.Time          // when this run began: peers get PeerTTL from here to heartbeat
	changed chan struct{}      // closed and replaced whenever the job changes
	ended   chan struct{}      // closed when the run has returned; nil before it starts
}

// jobSecret is what a job was given for its own use: never logged, stored or shown.
type jobSecret struct {
	header             http.Header
	username, password string
}

// redact replaces a file job's full URL (its signed query) with the shown one in a message
// that is about to be stored and shown; the caller holds p.mu or is the run.
func (jr *jobRun) redact(msg string) string {
	if full := jr.urls[""]; full != "" && full != jr.job.URL {
		msg = strings.ReplaceAll(msg, full, jr.job.URL)
	}
	return msg
}

func (jr *jobRun) notify() {
	close(jr.changed)
	jr.changed = make(chan struct{})
}

func openPreheats(s *Supernode) (*preheats, error) {
	store, err := preheat.OpenStore(s.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	p := &preheats{s: s, log: s.log.Named("preheat"), store: store, jobs: map[string]*jobRun{}}
	if damage, aside := store.Damaged(); aside != "" {
		p.log.Warn("preheat store damaged: moved aside, its jobs are lost; starting with an empty one",
			zap.String("aside", aside), zap.String("damage", damage))
	}
	jobs, bad, err := store.Load()
	if err != nil {
		store.Close()
		return nil, err
	}
	if len(bad) > 0 {
		p.log.Warn("dropping preheat jobs that do not decode", zap.Strings("ids", bad))
		_ = store.Delete(bad...)
	}
	now := time.Now()
	for _, j := range jobs {
		jr := &jobRun{job: j, urls: map[digest.Digest]string{}, changed: make(chan struct{})}
		wasFinal := j.State.Final()
		j.Resume(now)
		if !wasFinal && j.State.Final() {
			p.log.Warn("preheat job failed at restart", zap.String("job", j.ID), zap.String("error", j.Error))
			p.persist(jr)
		}
		p.jobs[j.ID] = jr
	}
	return p, nil
}

// resume restarts the unfinished jobs found at start. It runs as one of the supernode's loops,
// so the API may already have accepted jobs, which run from their creation: those are left
// alone (a second run of one job would race the first).
func (p *preheats) resume(context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, jr := range p.jobs {
		if !jr.job.State.Final() && jr.ended == nil {
			p.log.Info("resuming preheat job", zap.String("job", jr.job.ID), zap.String("state", string(jr.job.State)))
			p.start(jr)
		}
	}
}

// persist writes jr's job; the caller holds p.mu (or is the only user).
func (p *preheats) persist(jr *jobRun) {
	if err := p.store.Put(jr.job); err != nil {
		p.log.Warn("cannot store preheat job", zap.String("job", jr.job.ID), zap.Error(err))
	}
}

// start runs jr under the supernode's lifetime; the caller holds p.mu.
func (p *preheats) start(jr *jobRun) {
	jr.started = time.Now()
	ctx, cancel := context.WithCancel(p.s.life.Context())
	jr.cancel, jr.ended = cancel, make(chan struct{})
	if !p.s.life.Go(func(context.Context) {
		defer close(jr.ended)
		defer cancel()
		p.run(ctx, jr)
	}) {
		cancel()
		close(jr.ended)
	}
}

// create validates and accepts a job; its run starts at once.
func (p *preheats) create(req snapi.PreheatRequest) (*preheat.Job, error) {
	req, err := preheat.Normalize(req, netguard.Policy{Allow: p.s.cfg.Allow, Deny: p.s.cfg.Deny})
	if err != nil {
		return nil, err
	}
	shown, signed := req.URL, false
	if req.Type == snapi.PreheatFile && taskid.Credentialed(req.URL, nil, p.s.cfg.QueryFilter) {
		shown, signed = taskid.Redact(req.URL, p.s.cfg.QueryFilter), true
	}
	id, err := newJobID()
	if err != nil {
		return nil, err
	}
	jr := &jobRun{
		job:     preheat.New(id, req, shown, signed || len(req.Headers) > 0 || req.Username != "", time.Now()),
		secret:  jobSecret{header: http.Header{}, username: req.Username, password: req.Password},
		urls:    map[digest.Digest]string{},
		changed: make(chan struct{}),
	}
	for k, v := range req.Headers {
		jr.secret.header.Set(k, v)
	}
	if req.Type == snapi.PreheatFile {
		// The only copy of a pre-signed URL: in memory, for this run.
		jr.urls[""] = req.URL
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.makeRoom(); err != nil {
		return nil, err
	}
	p.jobs[id] = jr
	p.persist(jr)
	p.s.metrics.preheatCreated.Inc()
	p.log.Info("preheat job created", zap.String("job", id), zap.String("type", string(req.Type)),
		zap.String("url", shown), zap.String("platform", req.Platform), zap.String("scope", string(req.Scope)))
	p.start(jr)
	return jr.job.Clone(), nil
}

var errTooManyJobs = fmt.Errorf("%d preheat jobs are running: wait for one to end or cancel one", maxActiveJobs)

// makeRoom refuses a job beyond maxActiveJobs and forgets the oldest finished jobs beyond
// maxKeptJobs; the caller holds p.mu.
func (p *preheats) makeRoom() error {
	var finished []*preheat.Job
	active := 0
	for _, jr := range p.jobs {
		if jr.job.State.Final() {
			finished = append(finished, jr.job)
		} else {
			active++
		}
	}
	if active >= maxActiveJobs {
		return errTooManyJobs
	}
	slices.SortFunc(finished, func(a, b *preheat.Job) int { return a.CreatedAt.Compare(b.CreatedAt) })
	var drop []string
	for len(finished) > 0 && len(p.jobs)-len(drop) >= maxKeptJobs {
		drop = append(drop, finished[0].ID)
		finished = finished[1:]
	}
	for _, id := range drop {
		delete(p.jobs, id)
	}
	if len(drop) > 0 {
		if err := p.store.Delete(drop...); err != nil {
			p.log.Warn("cannot forget old preheat jobs", zap.Error(err))
		}
	}
	return nil
}

func newJobID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// update applies f to jr's job under p.mu and stores the result.
func (p *preheats) update(jr *jobRun, f func(j *preheat.Job)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	before := jr.job.State
	f(jr.job)
	p.persist(jr)
	jr.notify()
	if j := jr.job; j.State.Final() && !before.Final() {
		p.ended(j)
	}
}

// run drives one job to its end: resolve (once), seed every task, then, for scope all-peers,
// wait for the peers' reports, failing the peers that expire. Its context ends when the
// operator cancels the job (cancel has failed it already) or the supernode stops (the job is
// left as it is, to resume at the next start).
func (p *preheats) run(ctx context.Context, jr *jobRun) {
	p.mu.Lock()
	pending := jr.job.State == snapi.StatePending
	p.mu.Unlock()
	var reg *preheat.Registry
	if jr.job.Type == snapi.PreheatImage {
		var err error
		if reg, err = preheat.NewRegistry(jr.job.URL, preheat.RegistryOptions{
			Client: p.s.origin, Insecure: p.s.cfg.RegistryInsecure, Header: jr.secret.header,
			Username: jr.secret.username, Password: jr.secret.password,
		}); err != nil {
			p.update(jr, func(j *preheat.Job) { j.Fail(time.Now(), err.Error()) })
			return
		}
	}
	if pending {
		tasks, err := p.resolve(ctx, jr, reg)
		if ctx.Err() != nil {
			return // cancelled (the job is FAILED already), or the supernode stops: it resumes
		}
		if err != nil {
			p.update(jr, func(j *preheat.Job) { j.Fail(time.Now(), err.Error()) })
			return
		}
		peers := p.s.peerIDs()
		p.update(jr, func(j *preheat.Job) { j.Start(time.Now(), tasks, peers) })
	}

	var wg sync.WaitGroup
	sem := make(chan struct{}, seedsPerJob)
	p.mu.Lock()
	tasks := slices.Clone(jr.job.Tasks)
	p.mu.Unlock()
	for _, t := range tasks {
		if t.Seed.Final() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			p.seed(ctx, jr, reg, t)
		}()
	}
	p.watchPeers(ctx, jr)
	wg.Wait()
}

// resolve lists the job's tasks: an image's config and layers, or a file.
func (p *preheats) resolve(ctx context.Context, jr *jobRun, reg *preheat.Registry) ([]preheat.Task, error) {
	j := jr.job
	if j.Type == snapi.PreheatFile {
		full := jr.urls[""]
		if full == "" {
			full = j.URL // resumed after a restart: a URL without secrets, stored as given
		}
		id, err := taskid.For(full, "", "", p.s.cfg.QueryFilter)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		jr.urls[id] = full
		p.mu.Unlock()
		return []preheat.Task{{ID: id, URL: j.URL}}, nil
	}
	platform, err := preheat.ParsePlatform(j.Platform)
	if err != nil {
		return nil, err
	}
	img, err := reg.Resolve(ctx, platform)
	if err != nil {
		return nil, err
	}
	var tasks []preheat.Task
	for _, b := range img.Blobs {
		if slices.ContainsFunc(tasks, func(t preheat.Task) bool { return t.ID == b.Digest }) {
			continue // the same layer twice in one image is one task
		}
		tasks = append(tasks, preheat.Task{ID: b.Digest, Digest: b.Digest, URL: b.URL, MediaType: b.MediaType, Size: b.Size})
	}
	return tasks, nil
}

// seed has the seed fetch one task (or finds it held already) and records the outcome.
func (p *preheats) seed(ctx context.Context, jr *jobRun, reg *preheat.Registry, t preheat.Task) {
	req := snapi.TaskRequest{URL: t.URL, Digest: t.Digest}
	p.mu.Lock()
	if full, ok := jr.urls[t.ID]; ok {
		req.URL = full
	}
	p.mu.Unlock()
	fail := func(err error) {
		if ctx.Err() == nil {
			p.update(jr, func(j *preheat.Job) { j.SeedFailed(time.Now(), t.ID, jr.redact(err.Error())) })
		}
	}
	if reg != nil {
		h, err := reg.Authorize(ctx, preheat.Blob{Digest: t.Digest, MediaType: t.MediaType, Size: t.Size, URL: t.URL})
		if err != nil {
			fail(err)
			return
		}
		req.Header = h
	} else if len(jr.secret.header) > 0 {
		req.Header = jr.secret.header.Clone()
	}
	p.update(jr, func(j *preheat.Job) { j.SeedStarted(t.ID) })
	size, err := p.s.warmSeed(ctx, req)
	if err != nil {
		fail(err)
		return
	}
	p.update(jr, func(j *preheat.Job) { j.SeedDone(time.Now(), t.ID, size) })
}

// watchPeers waits until the job ends, failing, for scope all-peers, the peers it waits for
// that are no longer registered (expired, after PeerTTL without a heartbeat, or never came back
// after a restart of the supernode).
func (p *preheats) watchPeers(ctx context.Context, jr *jobRun) {
	tick := time.NewTicker(min(time.Second, p.s.cfg.PeerTTL/4))
	defer tick.Stop()
	for {
		p.mu.Lock()
		final, changed := jr.job.State.Final(), jr.changed
		waiting := jr.job.Waiting()
		p.mu.Unlock()
		if final {
			return
		}
		if time.Since(jr.started) > p.s.cfg.PeerTTL {
			for _, peer := range waiting {
				if !p.s.peerKnown(peer) {
					reason := fmt.Sprintf("the peer expired: no heartbeat for %v", p.s.cfg.PeerTTL)
					p.update(jr, func(j *preheat.Job) { j.PeerLost(time.Now(), peer, reason) })
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// beat applies a peer's reports and returns its outstanding assignments, for its heartbeat.
func (p *preheats) beat(peer string, results []snapi.PreheatResult) []snapi.PreheatAssignment {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	touched := map[*jobRun]bool{}
	for _, r := range results {
		jr, ok := p.jobs[r.Job]
		if !ok {
			continue
		}
		changed := false
		if r.Error == "" {
			changed = jr.job.PeerDone(now, r.Task, peer)
		} else {
			changed = jr.job.PeerFailed(now, r.Task, peer, jr.redact(r.Error))
		}
		if changed {
			touched[jr] = true
		}
	}
	for jr := range touched {
		p.persist(jr)
		jr.notify()
		if j := jr.job; j.State.Final() {
			p.ended(j)
		}
	}
	var out []snapi.PreheatAssignment
	for _, jr := range p.jobs {
		for _, t := range jr.job.Assignments(peer) {
			u := t.URL
			if full, ok := jr.urls[t.ID]; ok {
				u = full
			}
			out = append(out, snapi.PreheatAssignment{Job: jr.job.ID, Task: t.ID, URL: u, Digest: t.Digest})
		}
	}
	return out
}

// background is the seed's peer.BackgroundFunc: a child's download of a task is background
// while it is a preheat assignment the child has not reported on, and the seed then serves the
// pulls clients wait for first.
func (p *preheats) background(child libp2ppeer.ID, task digest.Digest) bool {
	return p.owed(child.String(), task)
}

// owed says whether peer owes some job a report on task.
func (p *preheats) owed(peer string, task digest.Digest) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, jr := range p.jobs {
		if jr.job.Owes(task, peer) {
			return true
		}
	}
	return false
}

// uses says whether an unfinished job names task: GC keeps it.
func (p *preheats) uses(task digest.Digest) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, jr := range p.jobs {
		if !jr.job.State.Final() && slices.ContainsFunc(jr.job.Tasks, func(t preheat.Task) bool { return t.ID == task }) {
			return true
		}
	}
	return false
}

// cancel fails a running job at once and stops its run; ok is false for an unknown job.
func (p *preheats) cancel(id string) (*preheat.Job, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	jr, ok := p.jobs[id]
	if !ok {
		return nil, false, nil
	}
	if jr.job.State.Final() {
		return jr.job.Clone(), true, fmt.Errorf("job %s has already ended %s", id, jr.job.State)
	}
	jr.job.Fail(time.Now(), preheat.ReasonCancelled)
	p.persist(jr)
	p.s.metrics.preheatEnded.WithLabelValues(string(jr.job.State)).Inc()
	if jr.cancel != nil {
		jr.cancel()
	}
	p.log.Info("preheat job cancelled", zap.String("job", id))
	return jr.job.Clone(), true, nil
}

// ended logs and counts a job that has just reached a final state; the caller holds p.mu.
func (p *preheats) ended(j *preheat.Job) {
	p.s.metrics.preheatEnded.WithLabelValues(string(j.State)).Inc()
	p.log.Info("preheat job ended", zap.String("job", j.ID), zap.String("state", string(j.State)), zap.String("error", j.Error))
}

// countByState counts the jobs kept, by state, for the metrics.
func (p *preheats) countByState() map[snapi.PreheatState]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[snapi.PreheatState]int{}
	for _, jr := range p.jobs {
		out[jr.job.State]++
	}
	return out
}

func (p *preheats) get(id string) (*preheat.Job, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	jr, ok := p.jobs[id]
	if !ok {
		return nil, false
	}
	return jr.job.Clone(), true
}

func (p *preheats) list() []snapi.PreheatJob {
	p.mu.Lock()
	out := make([]snapi.PreheatJob, 0, len(p.jobs))
	for _, jr := range p.jobs {
		out = append(out, jr.job.View())
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b snapi.PreheatJob) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return out
}

// warmSeed is the preheat's entry point into the seed: it starts the seed of a task (or joins
// the fetch already running, or finds the task held) without going through the peer API, and
// waits until the seed holds every piece (it returns the content length) or fails.
func (s *Supernode) warmSeed(ctx context.Context, req snapi.TaskRequest) (int64, error) {
	id, err := taskid.For(req.URL, req.Tag, req.Digest, s.cfg.QueryFilter)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.taskFor(id, req, false, nil)
	if !t.wantAll {
		// The seed must hold every piece, not only what peers lack: wake it if it waits.
		t.wantAll = true
		t.notify()
	}
	for {
		switch {
		case t.done:
			return t.meta.ContentLength, nil
		case t.err != nil && !t.running:
			return 0, t.err
		}
		changed := t.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
		}
		s.mu.Lock()
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if s.tasks[id] != t {
			return 0, fmt.Errorf("task %s was deleted while the seed fetched it", id)
		}
	}
}

// peerIDs lists the registered dfdaemons (the snapshot of a scope all-peers job), not the
// one-shot peers of dfget, which leave when their download ends.
func (s *Supernode) peerIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.peers))
	for id, p := range s.peers {
		if !p.info.OneShot {
			out = append(out, id)
		}
	}
	return out
}

// peerKnown says whether a peer is registered (it has not expired).
func (s *Supernode) peerKnown(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.peers[id]
	return ok
}

// Preheat API handlers: every one is an admin view.

func (s *Supernode) handleCreatePreheat(w http.ResponseWriter, r *http.Request) {
	if !s.admin.Allow(w, r) {
		return
	}
	var req snapi.PreheatRequest
	if err := httpx.DecodeJSON(r, snapi.MaxBody, &req); err != nil {
		badRequest(w, err.Error())
		return
	}
	j, err := s.preheat.create(req)
	switch {
	case errors.Is(err, netguard.ErrForbidden):
		httpx.WriteError(w, http.StatusBadRequest, apierr.Error{Message: err.Error(), Code: apierr.CodeForbidden})
	case errors.Is(err, preheat.ErrBadRequest):
		badRequest(w, err.Error())
	case errors.Is(err, errTooManyJobs):
		httpx.WriteError(w, http.StatusTooManyRequests, apierr.Error{Message: err.Error(), Code: apierr.CodeBadRequest})
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, apierr.Error{Message: err.Error()})
	default:
		httpx.WriteJSON(w, http.StatusAccepted, j.View())
	}
}

func (s *Supernode) handleListPreheats(w http.ResponseWriter, r *http.Request) {
	if !s.admin.Allow(w, r) {
		return
	}
	jobs := s.preheat.list()
	for i := range jobs {
		s.seedProgress(&jobs[i])
	}
	httpx.WriteJSON(w, http.StatusOK, jobs)
}

func (s *Supernode) handleGetPreheat(w http.ResponseWriter, r *http.Request) {
	if !s.admin.Allow(w, r) {
		return
	}
	j, ok := s.preheat.get(r.PathValue("id"))
	if !ok {
		notFound(w, "no such preheat job")
		return
	}
	v := j.View()
	s.seedProgress(&v)
	httpx.WriteJSON(w, http.StatusOK, v)
}

// seedProgress fills in how much of each task the seed holds (and a file's size once known).
func (s *Supernode) seedProgress(v *snapi.PreheatJob) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range v.Progress.Tasks {
		pt := &v.Progress.Tasks[i]
		t, ok := s.tasks[pt.Digest]
		if !ok || t.ptask == nil {
			continue
		}
		if pt.Size == 0 {
			pt.Size = t.meta.ContentLength
		}
		pt.SeedBytes = min(int64(len(t.digests))*t.meta.PieceSize, t.meta.ContentLength)
	}
}

func (s *Supernode) handleCancelPreheat(w http.ResponseWriter, r *http.Request) {
	if !s.admin.Allow(w, r) {
		return
	}
	j, ok, err := s.preheat.cancel(r.PathValue("id"))
	switch {
	case !ok:
		notFound(w, "no such preheat job")
	case err != nil:
		httpx.WriteError(w, http.StatusConflict, apierr.Error{Message: err.Error(), Code: apierr.CodeBadRequest})
	default:
		httpx.WriteJSON(w, http.StatusOK, j.View())
	}
}
