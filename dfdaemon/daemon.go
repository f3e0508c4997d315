// Package dfdaemon is the peer on every node: a libp2p host that downloads pieces from several
// parents at once and serves its own to children, a local HTTP API that dfget uses, and the
// place where the registry mirror is mounted. A download never fails because of P2P: when the
// supernode is unreachable, or the swarm cannot make progress, the daemon fetches the missing
// pieces from the origin itself. Every piece is verified before it is stored or served. Every
// client request (dfget's, the mirror's) passes one gate (gate.go): content fetched with
// credentials is served only to requesters its origin accepts.
package dfdaemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"math/rand/v2"

	"github.com/libp2p/go-libp2p/core/host"
	digest "github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/internal/health"
	"github.com/pouch-p2p/pouch/internal/lifecycle"
	"github.com/pouch-p2p/pouch/internal/netguard"
	p2p "github.com/pouch-p2p/pouch/internal/peer"
	"github.com/pouch-p2p/pouch/internal/peerauth"
	"github.com/pouch-p2p/pouch/internal/ratelimit"
	"github.com/pouch-p2p/pouch/internal/reqid"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/piece"
)

// Daemon is a running dfdaemon: New binds its listeners, Run serves until ctx ends, Close
// releases what New acquired (Run does it too when it returns).
type Daemon struct {
	cfg       Config
	log       *zap.Logger
	node      *p2p.Node
	store     *piece.Store
	host      host.Host
	upload    *p2p.Server
	ring      *snapi.Ring // the supernodes; empty: origin only
	origin    *http.Client
	downLimit *ratelimit.Limiter
	ln        net.Listener
	mux       *http.ServeMux
	metrics   *metrics
	gate      *gate            // who may read what: every client request passes it
	life      *lifecycle.Shell // downloads run under its context
	preheat   *preheater       // assignments from the supernodes' heartbeat answers
	ready     health.Checks    // /readyz: see readyChecks
	metricsLn net.Listener     // --metrics-listen; nil: metrics on the local API only
	beats     heartbeats       // the latest heartbeat to each supernode, for readiness
	holders   *holders         // the DHT, when no supernode answers (dht.go); nil: none

	mu        sync.Mutex
	downloads map[digest.Digest]*download
	inUse     map[digest.Digest]int
}

// New opens the store, starts the libp2p host and binds the local API.
func New(cfg Config, log *zap.Logger) (*Daemon, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("dfdaemon")
	life := lifecycle.New()
	node, err := p2p.OpenNode(p2p.NodeConfig{DataDir: cfg.DataDir, Listen: cfg.P2PListen, Advertise: cfg.AdvertiseAddrs, Secret: cfg.Secret, UploadRate: cfg.UploadRate, Log: log})
	if err != nil {
		return nil, err
	}
	life.OnClose(node.Close)
	if err := checkAdvertised(cfg.Supernode, p2p.Addrs(node.Host)); err != nil {
		return nil, errors.Join(err, life.Close())
	}
	// Every call to a supernode is signed with this peer's libp2p key, the one its peer ID names.
	signer, err := peerauth.NewSigner(node.Host.Peerstore().PrivKey(node.Host.ID()), cfg.Secret)
	if err != nil {
		return nil, errors.Join(err, life.Close())
	}
	roots, err := snapi.LoadCA(cfg.SupernodeCA)
	if err != nil {
		return nil, errors.Join(err, life.Close())
	}
	d := &Daemon{
		cfg: cfg, log: log, node: node, store: node.Store, host: node.Host, upload: node.Upload, life: life,
		origin:    netguard.Policy{Allow: cfg.Allow, Deny: cfg.Deny}.Client(),
		downLimit: ratelimit.New(cfg.DownloadRate),
		downloads: map[digest.Digest]*download{},
		inUse:     map[digest.Digest]int{},
		ring:      snapi.NewRing(cfg.Supernode, snapi.ClientConfig{Signer: signer, RootCAs: roots, Log: log}),
		mux:       http.NewServeMux(),
	}
	if cfg.Listen != "none" {
		if d.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, errors.Join(fmt.Errorf("dfdaemon: listen on %s: %w", cfg.Listen, err), life.Close())
		}
		life.HTTP(d.ln, localOnly(withRequestID(d.mux)))
	}
	d.metrics = newMetrics(d)
	if err := d.startDHT(); err != nil {
		return nil, errors.Join(err, life.Close())
	}
	d.gate = newGate(d.origin, cfg.QueryFilter, cfg.AuthTTL, d.metrics, log.Named("gate"))
	d.dropUnknownAccess()
	d.preheat = newPreheater(d)
	d.mux.HandleFunc("POST "+dfapi.PathDownload, d.handleDownload)
	if err := d.observe(); err != nil {
		return nil, errors.Join(err, life.Close())
	}
	return d, nil
}

// Handle mounts another handler (the registry mirror) on the local API.
func (d *Daemon) Handle(pattern string, h http.Handler) { d.mux.Handle(pattern, h) }

// Addr is the local API's address ("" with Listen "none").
func (d *Daemon) Addr() string {
	if d.ln == nil {
		return ""
	}
	return d.ln.Addr().String()
}

// URL is the local API's base URL.
func (d *Daemon) URL() string { return "http://" + d.Addr() }

// P2PAddrs are the daemon's libp2p addresses.
func (d *Daemon) P2PAddrs() []string { return p2p.Addrs(d.host) }

// PeerID is the daemon's libp2p identity.
func (d *Daemon) PeerID() string { return d.host.ID().String() }

// Metrics is the daemon's Prometheus registry, for embedding programs (dfget's one-shot peer).
func (d *Daemon) Metrics() *prometheus.Registry { return d.metrics.reg }

func (d *Daemon) self() snapi.Peer {
	return snapi.Peer{ID: d.host.ID().String(), Addrs: d.P2PAddrs(), UploadRate: d.cfg.UploadRate, OneShot: d.cfg.OneShot}
}

// Run serves until ctx is cancelled, then shuts down gracefully and closes the daemon.
func (d *Daemon) Run(ctx context.Context) error {
	d.log.Info("serving", zap.String("http", d.Addr()), zap.Strings("p2p", d.P2PAddrs()), zap.String("peer", d.PeerID()))
	if plain := clearText(d.cfg.Supernode); len(plain) > 0 {
		d.log.Warn("supernode reached over plain HTTP: registry and origin credentials sent with registrations cross the network in clear text; serve the supernode with --tls-cert/--tls-key and name it https://",
			zap.Strings("supernodes", plain))
	}
	return d.life.Run(ctx, d.heartbeatLoop, d.gcLoop, d.dhtLoop)
}

// Close stops the daemon's downloads and releases the listener, the libp2p host and the piece
// store, whether Run ran or not; it is idempotent.
func (d *Daemon) Close() error { return d.life.Close() }

// Download starts (or joins) the download of req for a client — dfget's local API, the
// registry mirror — and returns once the content's size is known and the client passed the gate
// (gate.check): public content is served to anyone; private content only to a request for the
// origin it came from that this origin accepts. A request for another origin gets an *Error of
// kind ErrNotShared and must be served from what it names, directly; a refused one the
// origin's status (ErrOriginStatus). Content already complete in the store is gated the same
// way. Nothing private is fetched over P2P until one of its requesters passed.
func (d *Daemon) Download(ctx context.Context, req Request) (*Download, error) {
	return d.download(ctx, req, true)
}

// DownloadInternal is Download for content the daemon fetches on its own behalf (preheat):
// there is no requester to authorize, so it skips the gate, and what it returns must never be
// handed to a client. The origin still authorizes req's own headers when it is asked.
func (d *Daemon) DownloadInternal(ctx context.Context, req Request) (*Download, error) {
	return d.download(ctx, req, false)
}

func (d *Daemon) download(ctx context.Context, req Request, gated bool) (*Download, error) {
	key, err := taskid.For(req.URL, req.Tag, req.Digest, d.cfg.QueryFilter)
	if err != nil {
		return nil, &Error{Kind: ErrBadRequest, Msg: err.Error()}
	}
	x, err := d.joinCovering(ctx, key, req, reqid.From(ctx))
	if err != nil {
		return nil, err
	}
	dl := x.dl
	if err := wait(ctx, dl.ready, dl); err != nil {
		x.Close()
		return nil, err
	}
	if gated {
		if err := d.gate.check(ctx, dl.meta, req); err != nil {
			x.Close()
			return nil, err
		}
	}
	dl.authorize(req)
	if err := wait(ctx, dl.created, dl); err != nil {
		x.Close()
		return nil, err
	}
	if dl.task == nil {
		x.Close()
		return nil, dl.err
	}
	return x, nil
}

// wait waits for one of dl's stages, and returns dl's error when it failed before.
func wait(ctx context.Context, stage <-chan struct{}, dl *download) error {
	select {
	case <-stage:
	case <-ctx.Done():
		return ctx.Err()
	}
	if dl.meta.ID == "" {
		return dl.err
	}
	return nil
}

// joinCovering is join for a request whose download fetches what it reads: a lazy download
// (Request.Want) that does not cover req is waited for first; it ends once its few pieces are
// held, and a download for req then starts and resumes from them.
func (d *Daemon) joinCovering(ctx context.Context, key digest.Digest, req Request, id string) (*Download, error) {
	for {
		x, busy, err := d.join(key, req, id)
		if busy == nil {
			return x, err
		}
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// join returns a handle on the download of key, starting it with req when none runs. The
// download's log lines carry the request ID of the request that started it (a new one for the
// daemon's own, such as a preheat); a request joining it is logged with both. A running lazy
// download that does not cover req is not joined: busy is its end to wait for. One that ended
// is replaced.
func (d *Daemon) join(key digest.Digest, req Request, id string) (x *Download, busy <-chan struct{}, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id == "" {
		id = reqid.New()
	}
	dl, ok := d.downloads[key]
	if ok && !dl.covers(req.Want) {
		select {
		case <-dl.done:
			ok = false
		default:
			return nil, dl.done, nil
		}
	}
	if ok {
		dl.log.Debug("another request joins the download", zap.String("joining", id))
	} else {
		dl = &download{
			d: d, key: key, want: req.Want, req: req, log: d.log.With(zap.String("task", key.String()), zap.String("peer", d.PeerID()), zap.String("request", id)),
			ready: make(chan struct{}), created: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1),
			authorized: make(chan struct{}), released: make(chan struct{}, 1),
			parents: map[peerID]*parentState{}, dialing: map[peerID]bool{}, lastDial: map[peerID]time.Time{},
			blocked: map[peerID]bool{}, inflight: map[int]*flight{}, cursor: -1,
			rng:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
			homes: d.ring.For(key.String()), started: time.Now(),
		}
		started := d.life.Go(func(ctx context.Context) {
			dl.run(reqid.With(ctx, id))
			d.mu.Lock()
			if d.downloads[key] == dl {
				delete(d.downloads, key)
			}
			d.mu.Unlock()
		})
		if !started {
			return nil, nil, fmt.Errorf("dfdaemon: download %s: %w", taskid.Redact(req.URL, d.cfg.QueryFilter), lifecycle.ErrClosed)
		}
		d.downloads[key] = dl
		d.metrics.downloads.Inc()
	}
	d.inUse[key]++
	dl.holders++
	return &Download{d: d, dl: dl}, nil, nil
}

// forget drops a download that nobody holds any more and nobody was authorized for, so that
// nothing is fetched or stored for requesters the gate refused. It reports whether it did.
func (d *Daemon) forget(dl *download) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dl.holders > 0 || dl.isAuthorized() {
		return false
	}
	if d.downloads[dl.key] == dl {
		delete(d.downloads, dl.key)
	}
	return true
}

// dropUnknownAccess deletes the tasks stored before access was recorded. Nothing says who may
// read them: the first requester's URL, the only one they kept, was never checked against an
// origin, so no origin can be trusted to authorize readers; served to nobody, they would only
// take space. The cluster still has them: they come back over P2P, with their access. Tasks
// whose index was rebuilt are kept: their pieces are verified, and the supernode gives their
// access back at the next download (piece.Meta.Rebuilt).
func (d *Daemon) dropUnknownAccess() {
	n := 0
	for _, info := range d.store.List() {
		if info.Meta.Access != "" || info.Meta.Rebuilt {
			continue
		}
		if err := d.store.Delete(info.Meta.ID); err != nil {
			d.log.Warn("cannot drop a task of unknown access", zap.String("task", info.Meta.ID.String()), zap.Error(err))
			continue
		}
		n++
	}
	if n > 0 {
		d.log.Info("dropped tasks stored before their access was recorded", zap.Int("tasks", n))
	}
}

func (d *Daemon) heartbeatLoop(ctx context.Context) {
	if d.ring.Len() == 0 {
		return
	}
	t := time.NewTicker(d.cfg.Heartbeat)
	defer t.Stop()
	for {
		// The first beat at once: it makes the daemon known to the supernodes (preheat jobs
		// for all peers reach it from then on).
		for i, c := range d.ring.All() {
			results := d.preheat.take(i)
			hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := c.Heartbeat(hctx, snapi.HeartbeatRequest{Peer: d.self(), Preheat: results})
			cancel()
			d.beats.record(c.Base, err)
			d.metrics.heartbeatSent(err)
			d.preheat.reported(i, results, err == nil)
			if err == nil {
				d.preheat.assign(ctx, i, resp.Preheat)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.preheat.kick:
		}
	}
}

func (d *Daemon) gcLoop(ctx context.Context) {
	p := piece.GCPolicy{HighWatermark: d.cfg.GC.High, LowWatermark: d.cfg.GC.Low, TTL: d.cfg.GC.TTL}
	if p.HighWatermark == 0 && p.TTL == 0 {
		return
	}
	t := time.NewTicker(d.cfg.GC.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			evicted, err := d.metrics.store.GC(now, p, func(id digest.Digest) bool {
				d.mu.Lock()
				defer d.mu.Unlock()
				return d.inUse[id] > 0
			})
			if err != nil {
				d.log.Warn("gc failed", zap.Error(err))
			}
			for _, id := range evicted {
				d.log.Info("evicted", zap.String("task", id.String()))
				d.unprovide(id)
			}
		}
	}
}
