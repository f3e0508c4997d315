// Package dfdaemon is the peer on every node: a libp2p host that downloads pieces from several
// parents at once and serves its own to children, a local HTTP API that dfget uses, and the
// place where the registry mirror is mounted. A download never fails because of P2P: when the
// supernode is unreachable, or the swarm cannot make progress, the daemon fetches the missing
// pieces from the origin itself. Every piece is verified before it is stored or served.
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
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/internal/lifecycle"
	"github.com/pouch-p2p/pouch/internal/netguard"
	p2p "github.com/pouch-p2p/pouch/internal/peer"
	"github.com/pouch-p2p/pouch/internal/peerauth"
	"github.com/pouch-p2p/pouch/internal/ratelimit"
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
	life      *lifecycle.Shell // downloads run under its context

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
	node, err := p2p.OpenNode(p2p.NodeConfig{DataDir: cfg.DataDir, Listen: cfg.P2PListen, Secret: cfg.Secret, UploadRate: cfg.UploadRate, Log: log})
	if err != nil {
		return nil, err
	}
	life.OnClose(node.Close)
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
		life.HTTP(d.ln, localOnly(d.mux))
	}
	d.metrics = newMetrics(d)
	d.mux.HandleFunc("POST "+dfapi.PathDownload, d.handleDownload)
	d.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	d.mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
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
	return snapi.Peer{ID: d.host.ID().String(), Addrs: d.P2PAddrs(), UploadRate: d.cfg.UploadRate}
}

// Run serves until ctx is cancelled, then shuts down gracefully and closes the daemon.
func (d *Daemon) Run(ctx context.Context) error {
	d.log.Info("serving", zap.String("http", d.Addr()), zap.Strings("p2p", d.P2PAddrs()), zap.String("peer", d.PeerID()))
	if plain := clearText(d.cfg.Supernode); len(plain) > 0 {
		d.log.Warn("supernode reached over plain HTTP: registry and origin credentials sent with registrations cross the network in clear text; serve the supernode with --tls-cert/--tls-key and name it https://",
			zap.Strings("supernodes", plain))
	}
	return d.life.Run(ctx, d.heartbeatLoop, d.gcLoop)
}

// Close stops the daemon's downloads and releases the listener, the libp2p host and the piece
// store, whether Run ran or not; it is idempotent.
func (d *Daemon) Close() error { return d.life.Close() }

// Download starts (or joins) the download of req and returns once its size is known.
func (d *Daemon) Download(ctx context.Context, req Request) (*Download, error) {
	key, err := taskid.For(req.URL, req.Tag, req.Digest, d.cfg.QueryFilter)
	if err != nil {
		return nil, &Error{Kind: ErrBadRequest, Msg: err.Error()}
	}
	d.mu.Lock()
	dl, ok := d.downloads[key]
	if !ok {
		dl = &download{
			d: d, key: key, req: req, log: d.log.With(zap.String("task", key.String())),
			ready: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1),
			parents: map[peerID]*parentState{}, dialing: map[peerID]bool{}, lastDial: map[peerID]time.Time{},
			blocked: map[peerID]bool{}, inflight: map[int]*flight{}, cursor: -1,
			rng:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
			homes: d.ring.For(key.String()),
		}
		started := d.life.Go(func(ctx context.Context) {
			dl.run(ctx)
			d.mu.Lock()
			delete(d.downloads, key)
			d.mu.Unlock()
		})
		if !started {
			d.mu.Unlock()
			return nil, fmt.Errorf("dfdaemon: download %s: %w", req.URL, lifecycle.ErrClosed)
		}
		d.downloads[key] = dl
		d.metrics.downloads.Inc()
	}
	d.inUse[key]++
	d.mu.Unlock()
	x := &Download{d: d, dl: dl}
	select {
	case <-dl.ready:
	case <-ctx.Done():
		x.Close()
		return nil, ctx.Err()
	}
	if dl.task == nil {
		x.Close()
		return nil, dl.err
	}
	return x, nil
}

func (d *Daemon) heartbeatLoop(ctx context.Context) {
	if d.ring.Len() == 0 {
		return
	}
	t := time.NewTicker(d.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, c := range d.ring.All() {
				hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_ = c.Heartbeat(hctx, snapi.HeartbeatRequest{Peer: d.self()})
				cancel()
			}
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
			evicted, err := d.store.GC(now, p, func(id digest.Digest) bool {
				d.mu.Lock()
				defer d.mu.Unlock()
				return d.inUse[id] > 0
			})
			if err != nil {
				d.log.Warn("gc failed", zap.Error(err))
			}
			for _, id := range evicted {
				d.log.Info("evicted", zap.String("task", id.String()))
			}
		}
	}
}

type metrics struct {
	reg          *prometheus.Registry
	bytes        *prometheus.CounterVec
	corrupt      prometheus.Counter
	backToSource prometheus.Counter
	downloads    prometheus.Counter
	failed       prometheus.Counter
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_dfdaemon_download_bytes_total",
			Help: "Piece bytes downloaded, by source (peer or origin)."}, []string{"source"}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_dfdaemon_corrupt_pieces_total",
			Help: "Pieces from parents that failed their SHA-256; the parent was blocked."}),
		backToSource: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_dfdaemon_back_to_source_total",
			Help: "Downloads that fetched pieces from the origin themselves."}),
		downloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_dfdaemon_downloads_total", Help: "Downloads started."}),
		failed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_dfdaemon_downloads_failed_total", Help: "Downloads failed."}),
	}
	m.bytes.WithLabelValues("peer")
	m.bytes.WithLabelValues("origin")
	m.reg.MustRegister(m.bytes, m.corrupt, m.backToSource, m.downloads, m.failed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pouch_dfdaemon_upload_bytes_total",
			Help: "Piece bytes uploaded to children."}, func() float64 { return float64(d.upload.Uploaded()) }),
	)
	return m
}
