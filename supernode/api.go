package supernode

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/health"
	"github.com/pouch-p2p/pouch/internal/httpx"
	"github.com/pouch-p2p/pouch/internal/peerauth"
	"github.com/pouch-p2p/pouch/internal/reqid"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/scheduler"
	"github.com/pouch-p2p/pouch/supernode/status"
)

func (s *Supernode) routes() http.Handler {
	mux := http.NewServeMux()
	peerRoute(s, mux, "POST "+snapi.PathRegister, s.handleRegister)
	peerRoute(s, mux, "POST "+snapi.PathSync, s.handleSync)
	peerRoute(s, mux, "POST "+snapi.PathLeave, s.handleLeave)
	peerRoute(s, mux, "POST "+snapi.PathHeartbeat, s.handleHeartbeat)
	mux.HandleFunc("GET "+snapi.PathTasks, s.handleListTasks)
	mux.HandleFunc("GET "+snapi.PathTasks+"/{id}", s.handleGetTask)
	mux.HandleFunc("DELETE "+snapi.PathTasks+"/{id}", s.handleDeleteTask)
	mux.HandleFunc("POST "+snapi.PathPreheats, s.handleCreatePreheat)
	mux.HandleFunc("GET "+snapi.PathPreheats, s.handleListPreheats)
	mux.HandleFunc("GET "+snapi.PathPreheats+"/{id}", s.handleGetPreheat)
	mux.HandleFunc("DELETE "+snapi.PathPreheats+"/{id}", s.handleCancelPreheat)
	health.Mount(mux, &s.ready, promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	status.Mount(mux, s.admin, s.snapshot)
	return mux
}

// peerRoute registers an endpoint of the peer API, where a peer calls for itself. The call must
// pass peerauth (the caller's libp2p signature, the membership MAC with a secret, a fresh date
// and nonce); its body is decoded and validated by snapi into a T; and it is refused unless the
// peer the body speaks for is the one that signed it — so nobody registers, reports or leaves
// as another peer, or as the seed. Every peer endpoint, including later ones, is registered
// here; operator endpoints use s.admin instead.
func peerRoute[T any, P interface {
	*T
	snapi.PeerRequest
}](s *Supernode, mux *http.ServeMux, pattern string, handle func(http.ResponseWriter, *http.Request, *T)) {
	mux.Handle(pattern, s.auth.Middleware(snapi.MaxBody, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := P(new(T))
		if err := snapi.Decode(r.Body, req); err != nil {
			badRequest(w, err.Error())
			return
		}
		if body, signer := req.Caller(), peerauth.Caller(r.Context()); body != signer {
			httpx.WriteError(w, http.StatusUnauthorized, apierr.Error{Code: apierr.CodeUnauthorized,
				Message: fmt.Sprintf("%v: the body speaks for peer %s, the call is signed by %s; a peer may only speak for itself", peerauth.ErrCallerMismatch, body, signer)})
			return
		}
		handle(w, r, (*T)(req))
	})))
}

func badRequest(w http.ResponseWriter, msg string) {
	httpx.WriteError(w, http.StatusBadRequest, apierr.Error{Message: msg, Code: apierr.CodeBadRequest})
}

func notFound(w http.ResponseWriter, msg string) {
	httpx.WriteError(w, http.StatusNotFound, apierr.Error{Message: msg, Code: apierr.CodeNotFound})
}

func (s *Supernode) handleRegister(w http.ResponseWriter, r *http.Request, req *snapi.RegisterRequest) {
	id, err := taskid.For(req.Task.URL, req.Task.Tag, req.Task.Digest, s.cfg.QueryFilter)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	s.metrics.registrations.Inc()

	s.mu.Lock()
	t := s.taskFor(id, req.Task, s.announcesMore(id, req.Holding), req.Want)
	ready := t.ready
	s.mu.Unlock()

	select {
	case <-ready:
	case <-r.Context().Done():
		return
	}

	resp, status, failed := s.registered(id, t, req, callerHost(r))
	if failed != nil {
		httpx.WriteError(w, status, *failed)
		return
	}
	if rid := r.Header.Get(reqid.Header); reqid.Check(rid) == nil {
		s.log.Debug("peer registered", zap.String("task", id.String()), zap.String("peer", req.Peer.ID), zap.String("request", rid))
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
}

// registered joins the peer of req to task t, whose seed has started, and returns the answer
// (or the seed's failure and its status): built under s.mu, and written by the caller after releasing it, so that a peer slow to read
// its answer (the registration carries every piece digest) never holds the supernode's one
// lock, which every other peer's call needs.
func (s *Supernode) registered(id digest.Digest, t *task, req *snapi.RegisterRequest, host netip.Addr) (snapi.RegisterResponse, int, *apierr.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.err != nil && t.ptask == nil {
		status := http.StatusBadGateway
		switch t.err.Code {
		case apierr.CodeForbidden:
			status = http.StatusForbidden
		case apierr.CodeLocal:
			status = http.StatusInsufficientStorage
		}
		failed := *t.err
		return snapi.RegisterResponse{}, status, &failed
	}
	start := time.Now()
	p := s.touchPeer(req.Peer, host)
	p.tasks[id] = true
	t.peers[req.Peer.ID] = true
	delete(t.idle, req.Peer.ID)
	if req.Holding != nil && t.holdings != nil {
		s.announce(t, req.Peer.ID, req.Holding)
	}
	d := s.sched.Join(start, schedTask(id), scheduler.PeerInfo{ID: scheduler.PeerID(req.Peer.ID), UploadRate: float64(req.Peer.UploadRate)}, req.Have)
	s.metrics.decided(callRegister, start, d)
	return snapi.RegisterResponse{Task: t.info(0), Schedule: s.schedule(d, t, host)}, http.StatusOK, nil
}

// touchPeer records that a peer is alive, with its latest addresses and the host it announced
// them from; the caller holds s.mu.
func (s *Supernode) touchPeer(info snapi.Peer, host netip.Addr) *peerEntry {
	p, ok := s.peers[info.ID]
	if !ok {
		p = &peerEntry{tasks: map[digest.Digest]bool{}}
		s.peers[info.ID] = p
	}
	if len(info.Addrs) > 0 {
		p.info, p.host = info, host
	}
	p.lastSeen = time.Now()
	return p
}

var failureReasons = map[snapi.FailureReason]scheduler.FailureReason{
	snapi.FailUnreachable: scheduler.FailUnreachable,
	snapi.FailTimeout:     scheduler.FailTimeout,
	snapi.FailCorrupt:     scheduler.FailCorrupt,
}

func (s *Supernode) handleSync(w http.ResponseWriter, r *http.Request, req *snapi.SyncRequest) {
	s.mu.Lock()
	t, ok := s.tasks[req.Task]
	if !ok || !t.peers[req.Peer] {
		s.mu.Unlock()
		notFound(w, "peer is not registered for this task: register again")
		return
	}
	now := time.Now()
	s.peers[req.Peer].lastSeen = now
	st, pid := schedTask(t.id), scheduler.PeerID(req.Peer)
	for _, f := range req.Failures {
		s.failureReport(now, t, req.Peer, f)
	}
	for _, tr := range req.Transfers {
		s.sched.Transfer(now, st, pid, scheduler.PeerID(tr.Parent), tr.Bytes, time.Duration(tr.Millis)*time.Millisecond)
		s.transferred(now, t, req.Peer, tr)
	}
	d := s.sched.Report(now, st, pid, req.Have, req.Complete)
	s.metrics.decided(callSync, now, d)
	if req.Complete && t.holdings != nil && !t.holdings.Complete(pid) {
		t.holdings.SetComplete(pid)
		t.notify() // a seed waiting for downloading peers may park
	}
	if req.Idle && !t.idle[req.Peer] {
		t.idle[req.Peer] = true
		t.notify() // likewise
	}

	// Long-poll: a peer that knows every published digest waits for the next one.
	wait := min(time.Duration(req.WaitMillis)*time.Millisecond, s.cfg.SyncWaitMax)
	if wait > 0 && req.DigestsFrom >= len(t.digests) && req.Ahead >= len(t.ahead()) && !t.allKnown() && t.err == nil {
		changed := t.changed
		s.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-changed:
		case <-timer.C:
		case <-r.Context().Done():
		}
		timer.Stop()
		s.mu.Lock()
		d = s.sched.Decision(st, pid)
	}
	// Built under s.mu, written after it (see registered).
	resp := snapi.SyncResponse{Task: t.info(req.DigestsFrom), Schedule: s.schedule(d, t, callerHost(r))}
	s.mu.Unlock()
	httpx.WriteJSON(w, http.StatusOK, resp)
}

func (s *Supernode) handleLeave(w http.ResponseWriter, r *http.Request, req *snapi.LeaveRequest) {
	s.mu.Lock()
	if t, ok := s.tasks[req.Task]; ok {
		s.leave(t, req.Peer)
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Supernode) handleHeartbeat(w http.ResponseWriter, r *http.Request, req *snapi.HeartbeatRequest) {
	// A heartbeat makes a peer known even before its first download, so that a preheat job
	// for all peers reaches it.
	s.mu.Lock()
	if _, ok := s.peers[req.Peer.ID]; !ok && len(req.Peer.Addrs) == 0 {
		s.mu.Unlock()
		badRequest(w, "a peer's first heartbeat must announce its addresses")
		return
	}
	s.touchPeer(req.Peer, callerHost(r))
	s.mu.Unlock()
	httpx.WriteJSON(w, http.StatusOK, snapi.HeartbeatResponse{Preheat: s.preheat.beat(req.Peer.ID, req.Preheat)})
}

// TaskStatus is what the operator API shows of a task.
type TaskStatus struct {
	ID            digest.Digest `json:"id"`
	URL           string        `json:"url"`
	ContentLength int64         `json:"contentLength"`
	PieceSize     int64         `json:"pieceSize"`
	Pieces        int           `json:"pieces"`
	SeedPieces    int           `json:"seedPieces"`
	SeedDone      bool          `json:"seedDone"`
	Peers         int           `json:"peers"`
	Access        piece.Access  `json:"access,omitempty"` // public, private; empty until the seed has started
	Error         string        `json:"error,omitempty"`
}

func (s *Supernode) status(t *task) TaskStatus {
	st := TaskStatus{ID: t.id, URL: taskid.Redact(t.req.URL, s.cfg.QueryFilter), ContentLength: t.meta.ContentLength, PieceSize: t.meta.PieceSize,
		Pieces: t.meta.PieceCount(), SeedDone: t.done, Peers: len(t.peers), Access: t.meta.Access}
	if t.ptask != nil {
		st.SeedPieces = t.ptask.Bitfield().Count()
	}
	if t.err != nil {
		st.Error = t.err.Message
	}
	return st
}

func (s *Supernode) handleListTasks(w http.ResponseWriter, r *http.Request) {
	if !s.admin.Allow(w, r) {
		return
	}
	s.mu.Lock()
	out := make([]TaskStatus, 0, len(s.tasks))
	for _, t := range s.tasks {
		out = append(out, s.status(t))
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	httpx.WriteJSON(w, http.StatusOK, out)
}

// taskID is the task the path names; a bad one is answered here.
func taskID(w http.ResponseWriter, r *http.Request) (digest.Digest, bool) {
	id := digest.Digest(r.PathValue("id"))
	if id.Validate() != nil {
		badRequest(w, "task id must be a digest such as sha256:<64 hex>")
		return "", false
	}
	return id, true
}

func (s *Supernode) handleGetTask(w http.ResponseWriter, r *http.Request) {
	if !s.admin.Allow(w, r) {
		return
	}
	id, ok := taskID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	t, ok := s.tasks[id]
	var st TaskStatus
	if ok {
		st = s.status(t)
	}
	s.mu.Unlock()
	if !ok {
		notFound(w, "no such task")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, st)
}

func (s *Supernode) handleDeleteTask(w http.ResponseWriter, r *http.Request) {
	if !s.admin.Allow(w, r) {
		return
	}
	id, ok := taskID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	t, ok := s.tasks[id]
	if !ok {
		s.mu.Unlock()
		notFound(w, "no such task")
		return
	}
	// A seed that holds every verified piece is only winding down (t.done is set after the
	// content's digest check): the task can go.
	if t.running && !t.done {
		s.mu.Unlock()
		httpx.WriteError(w, http.StatusConflict, apierr.Error{Message: "the seed is still fetching this task", Code: apierr.CodeBadRequest})
		return
	}
	s.dropTask(t)
	s.mu.Unlock()
	if err := s.store.Delete(t.id); err != nil && !errors.Is(err, piece.ErrNotFound) {
		httpx.WriteError(w, http.StatusInternalServerError, apierr.Error{Message: err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
