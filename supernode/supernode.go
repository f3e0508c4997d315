package supernode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/libp2p/go-libp2p/core/host"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/health"
	"github.com/pouch-p2p/pouch/internal/httpx"
	"github.com/pouch-p2p/pouch/internal/lifecycle"
	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/internal/peer"
	"github.com/pouch-p2p/pouch/internal/peerauth"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/source"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/scheduler"
	"github.com/pouch-p2p/pouch/supernode/status"
)

// Supernode is a running supernode: New binds its listeners, Run serves until ctx ends, Close
// releases what New acquired (Run does it too when it returns).
type Supernode struct {
	cfg     Config
	log     *zap.Logger
	node    *peer.Node
	store   *piece.Store
	host    host.Host
	upload  *peer.Server
	origin  *http.Client
	ln      net.Listener
	metrics *metrics
	admin   httpx.Admin        // guards task listing and deletion
	auth    *peerauth.Verifier // guards the peer API
	tls     bool               // the API serves https
	life    *lifecycle.Shell   // seeds run under its context
	preheat *preheats          // preheat jobs (their own lock and bbolt store)
	spool   *source.Spool      // origins without Content-Length, within Config.SpoolMax
	ready   health.Checks      // /readyz: see observe
	// metricsLn is the --metrics-listen listener; nil: metrics on the API listener only.
	metricsLn net.Listener
	started   time.Time
	seedSent  status.Meter // piece bytes peers report receiving from the seed
	// seedPID is the seed's peer ID as the scheduler knows it, computed once: every sync
	// compares its parents with it, and peer.ID.String() base58-encodes the ID at each call
	// (4 % of a loaded supernode's CPU when it did; docs/benchmarks.md, "The control plane").
	seedPID scheduler.PeerID

	mu    sync.Mutex // guards everything below and the scheduler
	sched *scheduler.Scheduler
	tasks map[digest.Digest]*task
	peers map[string]*peerEntry
	// seedWarned: the seed was logged as unreachable from another host (see offer).
	seedWarned bool
	// failed holds the tasks whose seed failed before storing anything, with when it failed:
	// bounded (oldest forgotten first) and expired by the reap loop.
	failed *simplelru.LRU[digest.Digest, time.Time]
}

type peerEntry struct {
	info snapi.Peer
	// host is the host the peer called from when it last announced its addresses (see
	// callerHost), and warned whether it was logged as unreachable from other hosts.
	host     netip.Addr
	warned   bool
	lastSeen time.Time
	tasks    map[digest.Digest]bool
	// For the status page: bytes received and sent as reported by the peer and its children,
	// and the failure reports against it that counted.
	received, sent status.Meter
	failures       int
	lastFailure    time.Time
}

// New opens the store, starts the seed's libp2p host and binds the HTTP listener.
func New(cfg Config, log *zap.Logger) (*Supernode, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("supernode")
	// The seed super-seeds: its upload is the scarcest in the cluster (see peer.ServerConfig).
	life := lifecycle.New()
	node, err := peer.OpenNode(peer.NodeConfig{DataDir: cfg.DataDir, Listen: cfg.P2PListen, Advertise: cfg.AdvertiseAddrs, Secret: cfg.Secret, UploadRate: cfg.UploadRate, SuperSeed: true, Log: log})
	if err != nil {
		return nil, err
	}
	life.OnClose(node.Close)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("supernode: listen on %s: %w", cfg.Listen, err), life.Close())
	}
	if err := checkSeedReachable(ln.Addr(), peer.Addrs(node.Host)); err != nil {
		return nil, errors.Join(err, ln.Close(), life.Close())
	}
	served := ln
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("supernode: TLS certificate: %w", err), ln.Close(), life.Close())
		}
		served = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	s := &Supernode{
		cfg: cfg, log: log, node: node, store: node.Store, host: node.Host, upload: node.Upload, ln: ln,
		origin: netguard.Policy{Allow: cfg.Allow, Deny: cfg.Deny}.Client(),
		life:   life,
		spool:  &source.Spool{Dir: cfg.DataDir, Max: cfg.SpoolMax},
		sched:  scheduler.New(cfg.Scheduler),
		tasks:  map[digest.Digest]*task{},
		peers:  map[string]*peerEntry{},
	}
	s.started = time.Now()
	s.seedPID = scheduler.PeerID(node.Host.ID().String())
	// NewLRU fails only for a size below 1, which WithDefaults and Validate rule out.
	s.failed, _ = simplelru.NewLRU(cfg.MaxFailedTasks, s.forgetFailed)
	s.metrics = newMetrics(s)
	s.admin = httpx.Admin{Token: cfg.AdminToken}
	s.auth = peerauth.NewVerifier(peerauth.VerifierConfig{Secret: cfg.Secret})
	s.tls = served != ln
	s.loadTasks()
	if s.preheat, err = openPreheats(s); err != nil {
		return nil, errors.Join(err, ln.Close(), life.Close())
	}
	life.OnClose(s.preheat.store.Close)
	s.upload.SetBackground(s.preheat.background)
	s.upload.SetHeld(s.heldBy)
	life.HTTP(served, s.routes())
	if err := s.observe(); err != nil {
		return nil, errors.Join(err, life.Close())
	}
	return s, nil
}

// Addr is the bound HTTP address.
func (s *Supernode) Addr() string { return s.ln.Addr().String() }

// URL is the base URL of the HTTP API.
func (s *Supernode) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// P2PAddrs are the seed's libp2p addresses.
func (s *Supernode) P2PAddrs() []string { return peer.Addrs(s.host) }

// Run serves until ctx is cancelled, then shuts down gracefully and closes the supernode.
func (s *Supernode) Run(ctx context.Context) error {
	s.log.Info(s.admin.Describe())
	if s.auth.Open() {
		s.log.Warn("open cluster: no cluster secret (--secret, POUCH_SECRET) is configured, so anyone who can reach this API or the P2P port may join as a peer and read the content nodes hold; calls are still signed by each peer's key, so nobody can speak for another peer")
	} else {
		s.log.Info("closed cluster: peers prove membership with the cluster secret on every call and check it on every answer")
	}
	if !s.tls {
		s.log.Info("the API is plain HTTP: registry and origin credentials in registrations cross the network in clear text unless it serves TLS (--tls-cert, --tls-key)")
	}
	s.log.Info("serving", zap.String("http", s.URL()), zap.Strings("p2p", s.P2PAddrs()))
	return s.life.Run(ctx, s.reapLoop, s.gcLoop, s.preheat.resume)
}

// Close stops the seeds and releases the listener, the seed's libp2p host and its piece store,
// whether Run ran or not; it is idempotent.
func (s *Supernode) Close() error { return s.life.Close() }

// loadTasks makes every task in the seed's store known again after a restart, complete or not,
// with its piece digests, access and origin: registrations are answered at once. A complete
// task is served as before; the seed of an incomplete one resumes at the next registration,
// with that request's URL and headers (the store keeps the URL redacted), fetching only what it
// lacks and no live peer holds. The peer view comes back from the peers' registrations: each
// peer that syncs is told to register again, and announces what it holds.
//
// A task whose index was rebuilt (piece.Meta.Rebuilt) keeps its verified data but lost who may
// read it: it is not served until the next registration's seed learns that again (see seed).
func (s *Supernode) loadTasks() {
	now := time.Now()
	for _, info := range s.store.List() {
		pt, err := s.store.Task(info.Meta.ID)
		if err != nil {
			continue
		}
		t := newTask(info.Meta.ID, snapi.TaskRequest{URL: info.Meta.URL, Digest: info.Meta.Digest})
		s.tasks[t.id] = t
		if info.Meta.Rebuilt {
			continue
		}
		s.setMeta(t, pt)
		s.sched.Join(now, schedTask(t.id), s.seedInfo(), info.Have)
		if info.Complete {
			t.done = true
			s.sched.Report(now, schedTask(t.id), s.seedID(), pt.PieceCount(), true)
		} else {
			// Left incomplete (a lazy read, or a seed the restart cut short): the next
			// registration says whether the whole content is wanted (see wants).
			t.lazy = &wantSet{}
		}
		s.extendDigests(t)
		close(t.ready)
	}
}

// heldBy is what a child announced it holds of a task (see peer.Server.SetHeld): the seed never
// offers it those pieces.
func (s *Supernode) heldBy(child libp2ppeer.ID, id digest.Digest) func(int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok || t.holdings == nil {
		return nil
	}
	p := scheduler.PeerID(child.String())
	held := piece.NewBitfield(t.holdings.Pieces())
	for i := range held.Len() {
		if t.holdings.Holds(p, i) {
			held.Set(i)
		}
	}
	if held.Count() == 0 {
		return nil
	}
	return held.Has
}

func (s *Supernode) seedID() scheduler.PeerID { return s.seedPID }

func (s *Supernode) seedInfo() scheduler.PeerInfo {
	return scheduler.PeerInfo{ID: s.seedID(), UploadRate: float64(s.cfg.UploadRate), Seed: true}
}

// parents turns the scheduler's decision into the addresses child (the host the request came
// from, see callerHost) can reach; the caller holds s.mu.
func (s *Supernode) schedule(d scheduler.Decision, t *task, child netip.Addr) snapi.Schedule {
	out := snapi.Schedule{BackToSource: d.BackToSource}
	switch {
	case t.err != nil && t.err.Code == apierr.CodeDigestMismatch:
		out.Error = t.err
	case t.err != nil:
		out.BackToSource, out.Reason = true, t.err.Message
	}
	for _, id := range d.Parents {
		if id == s.seedID() {
			seed := snapi.Peer{ID: string(id), Addrs: s.P2PAddrs(), UploadRate: s.cfg.UploadRate, Seed: true}
			out.Parents = s.offer(out.Parents, seed, selfHost, child, &s.seedWarned)
			continue
		}
		if p, ok := s.peers[string(id)]; ok {
			out.Parents = s.offer(out.Parents, p.info, p.host, child, &p.warned)
		}
	}
	return out
}

// leave removes a peer from one task; the caller holds s.mu.
func (s *Supernode) leave(t *task, peerID string) {
	if !t.peers[peerID] {
		return
	}
	delete(t.peers, peerID)
	delete(t.idle, peerID)
	s.sched.Leave(time.Now(), schedTask(t.id), scheduler.PeerID(peerID))
	if p, ok := s.peers[peerID]; ok {
		delete(p.tasks, t.id)
	}
	if t.holdings != nil {
		// What it held is no longer covered: a waiting seed fetches it.
		t.holdings.Forget(scheduler.PeerID(peerID))
		t.notify()
	}
}

// dropTask forgets a task: its peers leave it and the scheduler drops it. The caller holds s.mu,
// and deletes the task from the store itself, after releasing s.mu (piece.Store.GC asks inUse,
// which takes s.mu, while it holds the store).
func (s *Supernode) dropTask(t *task) {
	for p := range t.peers {
		s.leave(t, p)
	}
	s.sched.RemoveTask(schedTask(t.id))
	delete(s.tasks, t.id)
}

// reapLoop removes peers that stopped syncing and heartbeating (a killed dfdaemon must not stay
// a parent for long, though its children notice at once and report it) and failed tasks past
// their TTL.
func (s *Supernode) reapLoop(ctx context.Context) {
	every(ctx, s.cfg.PeerTTL/4, s.reap)
}

func (s *Supernode) reap(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		_, at, ok := s.failed.GetOldest()
		if !ok || now.Sub(at) < s.cfg.FailedTaskTTL {
			break
		}
		s.failed.RemoveOldest() // forgetFailed drops the task
	}
	for id, p := range s.peers {
		if now.Sub(p.lastSeen) < s.cfg.PeerTTL {
			continue
		}
		for tid := range p.tasks {
			if t, ok := s.tasks[tid]; ok {
				s.leave(t, id)
			}
		}
		delete(s.peers, id)
		s.log.Info("peer expired", zap.String("peer", id))
	}
}

// every calls f with the time at every tick of interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func(time.Time)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			f(now)
		}
	}
}

func schedTask(id digest.Digest) scheduler.TaskID { return scheduler.TaskID(id) }
func zapTask(id digest.Digest) zap.Field          { return zap.String("task", id.String()) }
func zapErr(err error) zap.Field                  { return zap.Error(err) }
func zapInt64(k string, v int64) zap.Field        { return zap.Int64(k, v) }
