// Package discovery finds the peers that hold some content when no supernode answers: a
// Kademlia DHT (go-libp2p-kad-dht) run in server mode on the peer's own libp2p host, keyed by
// the CIDs of content digests (CID). A peer provides what it holds (Provide) and announces it
// again on a schedule; another asks who provides a digest (FindProviders).
//
// The DHT is Pouch's own: its protocols carry the /pouch prefix, so it never meets the public
// IPFS DHT, and it knows no public bootstrap peer — only those configured and those its caller
// learned (Learn: the parents a supernode scheduled). With a cluster secret the host is a libp2p
// private network, so only members take part.
//
// It knows nothing of tasks, pieces or who may read what: its caller decides what to provide,
// and whether to trust what a provider then says.
package discovery

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	cid "github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mh "github.com/multiformats/go-multihash"
	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// ProtocolPrefix keeps Pouch's DHT apart from the public IPFS one: its peers speak
// /pouch/kad/1.0.0, which no IPFS node does.
const ProtocolPrefix protocol.ID = "/pouch"

const (
	// DefaultReprovide is how often a provided key is announced again.
	DefaultReprovide = 30 * time.Minute
	// retry is how soon a key whose announcement failed (no peer known yet, none answered) is
	// tried again.
	retry = time.Minute
	// provideTimeout bounds one announcement.
	provideTimeout = 30 * time.Second
	// dialTimeout bounds a connection to one bootstrap candidate.
	dialTimeout = 5 * time.Second
	// learnedPeers bounds the peers remembered from schedules as bootstrap candidates.
	learnedPeers = 256
	// routingWait bounds the wait, after bootstrapping an empty routing table, for the peers
	// reached to join it (they do once libp2p's identify shows they speak the DHT).
	routingWait = 2 * time.Second
)

// ErrDigest is a digest that cannot be a DHT key.
var ErrDigest = errors.New("discovery: digest cannot be a DHT key")

// CID is the DHT key of content with digest d: a CIDv1 with the raw codec whose multihash is d
// itself (sha2-256 or sha2-512), so the key of a blob is the CID IPFS would give the same bytes
// stored as one raw block.
func CID(d digest.Digest) (cid.Cid, error) {
	if err := d.Validate(); err != nil {
		return cid.Undef, fmt.Errorf("%w: %w", ErrDigest, err)
	}
	var code uint64
	switch d.Algorithm() {
	case digest.SHA256:
		code = mh.SHA2_256
	case digest.SHA512:
		code = mh.SHA2_512
	default:
		return cid.Undef, fmt.Errorf("%w: algorithm %s", ErrDigest, d.Algorithm())
	}
	raw, err := hex.DecodeString(d.Encoded())
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %w", ErrDigest, err)
	}
	m, err := mh.Encode(raw, code)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %w", ErrDigest, err)
	}
	return cid.NewCidV1(cid.Raw, m), nil
}

// Config tunes the DHT.
type Config struct {
	// Bootstrap are peers to join through (multiaddrs with /p2p/ID, parsed): at start, and
	// whenever the routing table is empty.
	Bootstrap []peer.AddrInfo
	// Reprovide is how often each provided key is announced again; a provider record lives
	// three times as long, so a holder that dies drops out of answers within that time.
	Reprovide time.Duration
	// Holding reports whether the node still holds the content of a provided key; a key it no
	// longer holds is dropped at its next announcement. Nil: keys are kept until StopProviding.
	Holding func(digest.Digest) bool
	Log     *zap.Logger
}

// Stats counts what the DHT did, for metrics.
type Stats struct {
	RoutingTable int    // peers in the routing table
	Provided     int    // keys this node provides
	Announced    uint64 // announcements that reached the network
	Failed       uint64 // announcements that did not (retried)
}

// DHT is a peer's membership of Pouch's DHT.
type DHT struct {
	h    host.Host
	kdht *dht.IpfsDHT
	cfg  Config
	log  *zap.Logger

	learned *lru.Cache[peer.ID, peer.AddrInfo]
	kick    chan struct{}

	mu   sync.Mutex
	keys map[digest.Digest]time.Time // provided keys → when to announce next
	// announcing serialises announcement rounds: two at once would both find a key due and
	// announce it twice (Run's round, kicked by Provide, and a caller's own).
	announcing sync.Mutex

	announced, failed atomic.Uint64
}

// New starts the DHT on h in server mode. Run announces the provided keys and bootstraps;
// Close stops it (before h is closed).
func New(h host.Host, cfg Config) (*DHT, error) {
	if cfg.Reprovide <= 0 {
		cfg.Reprovide = DefaultReprovide
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	learned, _ := lru.New[peer.ID, peer.AddrInfo](learnedPeers) // fails only for a size <= 0
	d := &DHT{h: h, cfg: cfg, log: cfg.Log, learned: learned, kick: make(chan struct{}, 1), keys: map[digest.Digest]time.Time{}}
	kdht, err := dht.New(h,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(ProtocolPrefix),
		// Only provider records: nobody may store values in this node's memory.
		dht.DisableValues(),
		dht.ProviderManagerOpts(
			records.ProvideValidity(3*cfg.Reprovide),
			records.ProviderAddrTTL(3*cfg.Reprovide),
		),
		// Never the public IPFS bootstrappers: the configured peers and those learned.
		dht.BootstrapPeersFunc(d.candidates),
	)
	if err != nil {
		return nil, fmt.Errorf("discovery: start DHT: %w", err)
	}
	d.kdht = kdht
	return d, nil
}

// Close stops the DHT; the host stays open.
func (d *DHT) Close() error { return d.kdht.Close() }

// Learn remembers a peer met through a supernode's schedule: a candidate to bootstrap from
// when the routing table runs empty (every supernode down, the peers it knew gone).
func (d *DHT) Learn(info peer.AddrInfo) {
	if info.ID == d.h.ID() || len(info.Addrs) == 0 {
		return
	}
	d.learned.Add(info.ID, info)
}

// candidates are the peers to bootstrap from: the configured ones, then those learned.
func (d *DHT) candidates() []peer.AddrInfo {
	out := make([]peer.AddrInfo, 0, len(d.cfg.Bootstrap)+d.learned.Len())
	for _, ai := range d.cfg.Bootstrap {
		if ai.ID != d.h.ID() {
			out = append(out, ai)
		}
	}
	for _, id := range d.learned.Keys() {
		if ai, ok := d.learned.Peek(id); ok {
			out = append(out, ai)
		}
	}
	return out
}

// bootstrap connects to every candidate at once and returns how many answered.
func (d *DHT) bootstrap(ctx context.Context) int {
	var wg sync.WaitGroup
	var ok atomic.Int64
	for _, ai := range d.candidates() {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			if err := d.h.Connect(cctx, ai); err != nil {
				d.log.Debug("bootstrap peer unreachable", zap.Stringer("peer", ai.ID), zap.Error(err))
				return
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	return int(ok.Load())
}

// joined bootstraps an empty routing table and waits a little for the peers reached to join
// it; it reports whether the table has any peer.
func (d *DHT) joined(ctx context.Context) bool {
	rt := d.kdht.RoutingTable()
	if rt.Size() > 0 {
		return true
	}
	if d.bootstrap(ctx) == 0 {
		return false
	}
	// A peer joins the table once identify has shown it speaks the DHT, a moment after the
	// connection; kad-dht offers no event for it, so look a few times.
	wait := time.NewTimer(routingWait)
	defer wait.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for rt.Size() == 0 {
		select {
		case <-tick.C:
		case <-wait.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// Provide makes this node a provider of content with digest d: at once in its own provider
// store (peers that ask it find it), and in the network at the next announcement, which Run
// makes soon. It does not block on the network. Providing a key again changes nothing: it is
// announced on its schedule.
func (d *DHT) Provide(dg digest.Digest) error {
	c, err := CID(dg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	_, known := d.keys[dg]
	d.mu.Unlock()
	if known {
		return nil
	}
	if err := d.kdht.Provide(d.kdht.Context(), c, false); err != nil {
		return fmt.Errorf("discovery: provide %s: %w", dg, err)
	}
	d.mu.Lock()
	d.keys[dg] = time.Time{}
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
	return nil
}

// StopProviding stops announcing d. Records already in the network expire on their own (three
// reprovide intervals); a peer that asks meanwhile finds the content gone and looks elsewhere.
func (d *DHT) StopProviding(dg digest.Digest) {
	d.mu.Lock()
	delete(d.keys, dg)
	d.mu.Unlock()
}

// FindProviders returns up to limit peers other than this one that provide content with digest
// dg, searching until ctx ends or the lookup is exhausted. An empty answer with a nil error
// means nobody known provides it.
func (d *DHT) FindProviders(ctx context.Context, dg digest.Digest, limit int) ([]peer.AddrInfo, error) {
	c, err := CID(dg)
	if err != nil {
		return nil, err
	}
	if !d.joined(ctx) {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []peer.AddrInfo
	// One more than asked: this node's own record may be among them.
	for ai := range d.kdht.FindProvidersAsync(ctx, c, limit+1) {
		if ai.ID == d.h.ID() || len(out) == limit {
			continue
		}
		out = append(out, ai)
	}
	return out, nil
}

// Stats tells what the DHT holds and did.
func (d *DHT) Stats() Stats {
	d.mu.Lock()
	n := len(d.keys)
	d.mu.Unlock()
	return Stats{RoutingTable: d.kdht.RoutingTable().Size(), Provided: n, Announced: d.announced.Load(), Failed: d.failed.Load()}
}

// Run bootstraps, then announces provided keys as they come and again every Reprovide, until
// ctx ends.
func (d *DHT) Run(ctx context.Context) {
	start := time.Now()
	n := d.bootstrap(ctx)
	d.log.Info("DHT started", zap.String("protocol", string(ProtocolPrefix)+"/kad/1.0.0"), zap.Int("bootstrapPeers", len(d.cfg.Bootstrap)),
		zap.Int("reached", n), zap.Duration("took", time.Since(start)))
	tick := time.NewTicker(retry)
	defer tick.Stop()
	for {
		d.announceDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		case <-tick.C:
		}
	}
}

// announceDue announces the keys whose time has come, one after another.
func (d *DHT) announceDue(ctx context.Context) {
	d.announcing.Lock()
	defer d.announcing.Unlock()
	now := time.Now()
	var due []digest.Digest
	d.mu.Lock()
	for k, next := range d.keys {
		if !next.After(now) {
			due = append(due, k)
		}
	}
	d.mu.Unlock()
	for _, k := range due {
		if ctx.Err() != nil {
			return
		}
		if d.cfg.Holding != nil && !d.cfg.Holding(k) {
			d.StopProviding(k)
			continue
		}
		next := time.Now().Add(d.cfg.Reprovide)
		if err := d.announce(ctx, k); err != nil {
			d.failed.Add(1)
			d.log.Debug("announcement failed: retrying", zap.Stringer("content", k), zap.Error(err))
			next = time.Now().Add(retry)
		} else {
			d.announced.Add(1)
		}
		d.mu.Lock()
		if _, ok := d.keys[k]; ok {
			d.keys[k] = next
		}
		d.mu.Unlock()
	}
}

// announce puts this node's provider record on the peers closest to k.
func (d *DHT) announce(ctx context.Context, k digest.Digest) error {
	if !d.joined(ctx) {
		return errors.New("no DHT peer known")
	}
	c, err := CID(k)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, provideTimeout)
	defer cancel()
	start := time.Now()
	if err := d.kdht.Provide(ctx, c, true); err != nil {
		return err
	}
	d.log.Debug("announced", zap.Stringer("content", k), zap.Duration("took", time.Since(start)))
	return nil
}
