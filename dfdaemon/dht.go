package dfdaemon

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	digest "github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/discovery"
	p2p "github.com/pouch-p2p/pouch/internal/peer"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/piece"
)

// Without a supernode, a dfdaemon finds the peers that hold a task through Pouch's DHT
// (internal/discovery), asks them what they hold (peer.Ask), and downloads from them as from
// parents a supernode had scheduled. What they say is checked, since no supernode vouches for
// it: only digest-addressed content is fetched this way (the whole content is checked against
// the digest the client asked for), only content its holders announce as public (the gate has
// no origin to ask), and a holder whose content fails that check is no longer used. Anything
// else goes to the origin, as it did before the DHT.

const (
	// maxHolders bounds the holders asked per download.
	maxHolders = 8
	// distrustFor is how long a holder whose content failed its digest is left out of lookups.
	distrustFor = time.Hour
	// distrustedPeers bounds the holders remembered as such.
	distrustedPeers = 1024
	// defaultLookupTimeout bounds the search for holders before a download goes to the origin.
	defaultLookupTimeout = 5 * time.Second
)

// The outcomes of looking for holders: the "result" label of pouch_dfdaemon_dht_lookups_total.
const (
	lookupFound     = "found"      // holders agreed on what they hold: fetched from them
	lookupNone      = "none"       // nobody (usable) holds it: the origin
	lookupNoDigest  = "no-digest"  // a URL task without a digest: nothing to check, the origin
	lookupNotPublic = "not-public" // the local task is private: its origin decides, the origin
)

// DHTConfig tunes discovery without supernodes.
type DHTConfig struct {
	// Disabled turns the DHT off: with no supernode answering, downloads go to the origin.
	Disabled bool
	// BootstrapPeers are multiaddrs with /p2p/ID of peers to join the DHT through, besides
	// the parents supernodes schedule. No public bootstrap peer is ever used.
	BootstrapPeers []string
	// Reprovide is how often every held task is announced again.
	Reprovide time.Duration
	// LookupTimeout bounds the search for holders when no supernode answers.
	LookupTimeout time.Duration
}

func (c DHTConfig) withDefaults() DHTConfig {
	if c.Reprovide == 0 {
		c.Reprovide = discovery.DefaultReprovide
	}
	if c.LookupTimeout == 0 {
		c.LookupTimeout = defaultLookupTimeout
	}
	return c
}

func (c DHTConfig) validate() error {
	if c.Reprovide < 0 || c.LookupTimeout < 0 {
		return errors.New("dfdaemon: dht reprovide and lookup timeout must not be negative")
	}
	_, err := c.bootstrap()
	return err
}

// bootstrap parses BootstrapPeers.
func (c DHTConfig) bootstrap() ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range c.BootstrapPeers {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("dfdaemon: bootstrap peer %q is not a multiaddr ending in /p2p/ID: %w", s, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

// offered says whether a complete task is provided in the DHT and announced to peers that ask:
// public content addressed by its own digest, which anyone who fetches it can check.
func offered(m piece.Meta) bool { return m.Public() && m.Digest != "" && m.Digest == m.ID }

// holders is the daemon's part in the DHT; nil when it runs none.
type holders struct {
	dht        *discovery.DHT
	distrusted *lru.Cache[peer.ID, time.Time]
	lookups    *prometheus.CounterVec
}

// startDHT joins the DHT and answers announcement requests, unless the DHT is disabled or the
// daemon lives for one download (a one-shot peer would only leave dead entries in routing
// tables).
func (d *Daemon) startDHT() error {
	if d.cfg.DHT.Disabled || d.cfg.OneShot {
		return nil
	}
	boot, err := d.cfg.DHT.bootstrap()
	if err != nil {
		return err
	}
	start := time.Now()
	kd, err := discovery.New(d.host, discovery.Config{Bootstrap: boot, Reprovide: d.cfg.DHT.Reprovide, Holding: d.holds, Log: d.log.Named("dht")})
	if err != nil {
		return err
	}
	d.life.OnClose(kd.Close)
	d.upload.ServeAnnouncements(offered)
	distrusted, _ := lru.New[peer.ID, time.Time](distrustedPeers) // fails only for a size <= 0
	d.holders = &holders{dht: kd, distrusted: distrusted,
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_dfdaemon_dht_lookups_total",
			Help: "Downloads that no supernode answered, by what the DHT gave: found (fetched from holders), none (origin), no-digest (a URL task: origin), not-public (origin)."}, []string{"result"})}
	for _, r := range []string{lookupFound, lookupNone, lookupNoDigest, lookupNotPublic} {
		d.holders.lookups.WithLabelValues(r)
	}
	stats := func(f func(discovery.Stats) float64) func() float64 { return func() float64 { return f(kd.Stats()) } }
	d.metrics.reg.MustRegister(d.holders.lookups,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pouch_dfdaemon_dht_routing_table_peers", Help: "Peers in the DHT routing table."},
			stats(func(s discovery.Stats) float64 { return float64(s.RoutingTable) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pouch_dfdaemon_dht_provided_tasks", Help: "Tasks this node provides in the DHT."},
			stats(func(s discovery.Stats) float64 { return float64(s.Provided) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pouch_dfdaemon_dht_announcements_total", Help: "Provider records put in the DHT."},
			stats(func(s discovery.Stats) float64 { return float64(s.Announced) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pouch_dfdaemon_dht_announcement_failures_total", Help: "Announcements that reached no peer (retried)."},
			stats(func(s discovery.Stats) float64 { return float64(s.Failed) })),
	)
	d.log.Debug("DHT created", zap.Int("bootstrapPeers", len(boot)), zap.Duration("took", time.Since(start)))
	return nil
}

// holds says whether the daemon still holds complete, offered content under dg.
func (d *Daemon) holds(dg digest.Digest) bool {
	t, err := d.store.Task(dg)
	return err == nil && t.Complete() && offered(t.Meta())
}

// dhtLoop provides every offered task the store holds, then keeps the DHT going.
func (d *Daemon) dhtLoop(ctx context.Context) {
	if d.holders == nil {
		return
	}
	for _, info := range d.store.List() {
		if info.Complete && offered(info.Meta) {
			d.provide(info.Meta.ID)
		}
	}
	d.holders.dht.Run(ctx)
}

// provide makes the daemon a provider of a task it completed, when the task is offered.
func (d *Daemon) provide(id digest.Digest) {
	if d.holders == nil || !d.holds(id) {
		return
	}
	if err := d.holders.dht.Provide(id); err != nil {
		d.log.Warn("cannot provide a task in the DHT", zap.String("task", id.String()), zap.Error(err))
	}
}

// unprovide stops providing a task the daemon no longer holds.
func (d *Daemon) unprovide(id digest.Digest) {
	if d.holders != nil {
		d.holders.dht.StopProviding(id)
	}
}

// learn remembers a parent a supernode scheduled as a way into the DHT.
func (d *Daemon) learn(sp snapi.Peer) {
	if d.holders == nil || sp.Seed {
		return
	}
	if info, err := p2p.AddrInfo(sp.ID, sp.Addrs); err == nil {
		d.holders.dht.Learn(info)
	}
}

// trusted says whether a holder may be asked: it has not sent content that failed its digest
// within distrustFor.
func (h *holders) trusted(id peer.ID, now time.Time) bool {
	until, ok := h.distrusted.Get(id)
	return !ok || now.After(until)
}

// holderSet is what holders that agree announced, and who they are.
type holderSet struct {
	ann   p2p.Announcement
	peers []snapi.Peer
}

// withoutSupernode fetches the task when no supernode can be asked (cause says why; nil when
// none is configured): from holders found through the DHT when the content can be checked
// against its digest, from the origin otherwise.
func (dl *download) withoutSupernode(ctx context.Context, cause error) error {
	hs, why := dl.findHolders(ctx)
	if hs != nil {
		return dl.fromHolders(ctx, hs)
	}
	if cause != nil {
		dl.log.Warn("no supernode answers, going to the origin", zap.Error(cause), zap.String("dht", why))
	}
	return dl.backToSource(ctx, nil)
}

// findHolders looks for holders of the task in the DHT, asks each what it holds and returns the
// largest group that agrees on it (honest holders of the same content announce the same
// thing), or nil and why the task must come from the origin.
func (dl *download) findHolders(ctx context.Context) (*holderSet, string) {
	h := dl.d.holders
	if h == nil {
		return nil, "the DHT is off"
	}
	want := dl.request().Digest
	if want == "" {
		h.lookups.WithLabelValues(lookupNoDigest).Inc()
		return nil, "a task without a digest: holders found in the DHT cannot be checked"
	}
	local, _ := dl.d.store.Task(dl.key)
	if local != nil && !local.Meta().Public() {
		h.lookups.WithLabelValues(lookupNotPublic).Inc()
		return nil, "private content: only its origin may serve it"
	}
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, dl.d.cfg.DHT.LookupTimeout)
	found, err := h.dht.FindProviders(lctx, want, maxHolders)
	cancel()
	if err != nil {
		dl.log.Warn("DHT lookup failed", zap.Error(err))
	}
	anns := make([]*p2p.Announcement, len(found))
	var wg sync.WaitGroup
	now := time.Now()
	for i, ai := range found {
		if !h.trusted(ai.ID, now) {
			continue
		}
		wg.Go(func() {
			a, err := p2p.Ask(ctx, dl.d.host, ai, dl.key)
			if err != nil {
				dl.log.Debug("holder does not offer the task", zap.Stringer("holder", ai.ID), zap.Error(err))
				return
			}
			if why := dl.unusable(a, want, local); why != "" {
				dl.log.Info("holder's announcement not used", zap.Stringer("holder", ai.ID), zap.String("reason", why))
				return
			}
			anns[i] = &a
		})
	}
	wg.Wait()
	groups := map[[sha256.Size]byte]*holderSet{}
	var best *holderSet
	for i, a := range anns {
		if a == nil {
			continue
		}
		k := fingerprint(*a)
		g := groups[k]
		if g == nil {
			g = &holderSet{ann: *a}
			groups[k] = g
		}
		var addrs []string
		for _, m := range found[i].Addrs {
			addrs = append(addrs, m.String())
		}
		g.peers = append(g.peers, snapi.Peer{ID: found[i].ID.String(), Addrs: addrs})
		if best == nil || len(g.peers) > len(best.peers) {
			best = g
		}
	}
	if best == nil {
		h.lookups.WithLabelValues(lookupNone).Inc()
		return nil, fmt.Sprintf("no usable holder found in the DHT (%d providers, %v)", len(found), time.Since(start).Round(time.Millisecond))
	}
	dl.log.Info("no supernode answers: fetching from holders found in the DHT", zap.Int("holders", len(best.peers)),
		zap.Int("providers", len(found)), zap.Int("disagreeing", len(groups)-1), zap.Duration("took", time.Since(start)))
	h.lookups.WithLabelValues(lookupFound).Inc()
	return best, ""
}

// unusable says why an announcement cannot be used for this download, or "".
func (dl *download) unusable(a p2p.Announcement, want digest.Digest, local *piece.Task) string {
	switch {
	case a.Digest != want:
		return fmt.Sprintf("content digest %s, want %s", a.Digest, want)
	case a.Access != piece.AccessPublic:
		return "private content: only its origin may serve it to a requester"
	case local == nil:
		return ""
	}
	m := local.Meta()
	if m.ContentLength != a.ContentLength || m.PieceSize != a.PieceSize {
		return fmt.Sprintf("%d bytes in pieces of %d, the local task has %d in %d", a.ContentLength, a.PieceSize, m.ContentLength, m.PieceSize)
	}
	for i, d := range a.Digests {
		if known := local.Digest(i); known != "" && known != d {
			return fmt.Sprintf("piece %d digest %s, the local task has %s", i, d, known)
		}
	}
	return ""
}

// fingerprint identifies what an announcement says of the content: its length and every piece
// digest (the rest was checked equal to the request).
func fingerprint(a p2p.Announcement) [sha256.Size]byte {
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, a.ContentLength)
	for _, d := range a.Digests {
		h.Write([]byte(d))
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// fromHolders downloads the task from the holders in hs as from scheduled parents, with the
// piece digests they announced; the whole content is checked against the requested digest at
// the end (download.verify), and holders whose content fails it are distrusted.
func (dl *download) fromHolders(ctx context.Context, hs *holderSet) error {
	a := hs.ann
	meta := piece.Meta{ID: dl.key, URL: dl.shown(), ContentLength: a.ContentLength, PieceSize: a.PieceSize, Digest: a.Digest, Access: piece.AccessPublic}
	dl.setMeta(meta)
	t, err := dl.open(ctx, meta)
	if err != nil {
		return err
	}
	for i, d := range a.Digests {
		if err := t.SetDigest(i, d); err != nil {
			// The local task learned other digests meanwhile: trust neither, ask the origin.
			dl.log.Warn("holders' piece digest conflicts with the local one: going to the origin", zap.Int("piece", i), zap.Error(err))
			return dl.backToSource(ctx, t)
		}
	}
	dl.mu.Lock()
	dl.seedDone, dl.detached = true, true
	dl.holderIDs = holderIDs(hs.peers)
	dl.mu.Unlock()
	return dl.p2p(ctx, snapi.Schedule{Parents: hs.peers})
}

// rescue hands a download that stalled because its supernodes stopped answering midway (and
// its parents with them, say the seed) to holders found in the DHT, once, instead of the
// origin: their piece digests fill in what the seed had not published yet, and must agree with
// what it had. It reports whether holders took over; the caller holds no lock.
func (dl *download) rescue(ctx context.Context, wg *sync.WaitGroup, stalled string) bool {
	dl.mu.Lock()
	try := dl.syncFailing && !dl.detached && !dl.rescued
	dl.rescued = true
	dl.mu.Unlock()
	if !try {
		return false
	}
	dl.log.Info("stalled with no supernode answering: looking for holders in the DHT", zap.String("reason", stalled))
	hs, why := dl.findHolders(ctx)
	if hs == nil {
		dl.log.Info("no holder to take over", zap.String("why", why))
		return false
	}
	for i, d := range hs.ann.Digests {
		if err := dl.task.SetDigest(i, d); err != nil {
			dl.log.Warn("holders' piece digest conflicts with the seed's: going to the origin", zap.Int("piece", i), zap.Error(err))
			return false
		}
	}
	dl.mu.Lock()
	defer dl.mu.Unlock()
	dl.seedDone = true
	dl.holderIDs = holderIDs(hs.peers)
	dl.lastProgress = time.Now()
	dl.applySchedule(ctx, wg, snapi.Schedule{Parents: hs.peers})
	dl.poke()
	return true
}

// holderIDs are the peer IDs of holders.
func holderIDs(peers []snapi.Peer) []peer.ID {
	var ids []peer.ID
	for _, p := range peers {
		if id, err := peer.Decode(p.ID); err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// distrustHolders leaves out of later lookups the holders this download fetched from, after
// the content they led to failed its digest.
func (dl *download) distrustHolders() {
	h := dl.d.holders
	dl.mu.Lock()
	ids := dl.holderIDs
	dl.mu.Unlock()
	if h == nil || len(ids) == 0 {
		return
	}
	until := time.Now().Add(distrustFor)
	for _, id := range ids {
		h.distrusted.Add(id, until)
	}
	dl.log.Error("content from holders found in the DHT fails its digest: they are no longer asked", zap.Stringers("holders", ids), zap.Duration("for", distrustFor))
}
