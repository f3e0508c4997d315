package supernode

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pouch-p2p/pouch/internal/health"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/supernode/status"
)

// failingWindow is how long a failure report against a peer marks it failing on the status
// page.
const failingWindow = time.Minute

// observe sets up the readiness checks and, with --metrics-listen, the metrics listener:
// /metrics, /healthz and /readyz and nothing else, plain HTTP even when the API serves TLS (a
// Prometheus scrape needs no certificate; nothing there is secret). The API listener serves
// them too (routes), so a scraper of the old address still works.
func (s *Supernode) observe() error {
	// The seed's store is open, the listeners serve, the seed's libp2p host listens. More
	// conditions go here.
	s.ready.Add(health.Node{Store: s.store, Serving: s.life.Serving, P2P: func() int { return len(s.host.Network().ListenAddresses()) }}.Checks()...)
	if s.cfg.MetricsListen == "" {
		return nil
	}
	ln, h, err := health.Listen(s.cfg.MetricsListen, &s.ready, promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	if err != nil {
		return fmt.Errorf("supernode: %w", err)
	}
	s.metricsLn = ln
	s.life.HTTP(ln, h)
	return nil
}

// MetricsAddr is the metrics listener's address ("" without MetricsListen).
func (s *Supernode) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// fetchedFromOrigin counts n bytes of t the seed fetched and verified, the piece having taken
// took.
func (s *Supernode) fetchedFromOrigin(t *task, n int64, took time.Duration) {
	t.originBytes.Add(n)
	s.metrics.originBytes.Add(float64(n))
	s.metrics.seedPiece.Observe(took.Seconds())
}

// transferred records a child's report that it received tr from a parent, for the status page
// and the metrics; the caller holds s.mu. Reports are claims: they move no decision here.
func (s *Supernode) transferred(now time.Time, t *task, child string, tr snapi.Transfer) {
	if c, ok := s.peers[child]; ok {
		c.received.Add(now, tr.Bytes)
	}
	if tr.Parent == string(s.seedID()) {
		t.seedBytes += tr.Bytes
		s.seedSent.Add(now, tr.Bytes)
		s.metrics.reported.WithLabelValues("seed").Add(float64(tr.Bytes))
		return
	}
	t.peerBytes += tr.Bytes
	if p, ok := s.peers[tr.Parent]; ok {
		p.sent.Add(now, tr.Bytes)
	}
	s.metrics.reported.WithLabelValues("peer").Add(float64(tr.Bytes))
}

// snapshot is what the status page shows. URLs are redacted (taskid.Redact, and the preheat
// jobs' own redaction); no header or credential is in it.
func (s *Supernode) snapshot() status.Status {
	results := s.ready.Run(context.Background())
	now := time.Now()
	out := status.Status{Time: now, Supernode: status.Supernode{
		PeerID: string(s.seedID()), URL: s.URL(), Started: s.started,
		NotReady: health.Failing(results), SeedUpload: s.upload.Uploaded(), SeedUploadBps: s.seedSent.Rate(now),
	}}
	out.Supernode.Ready = len(out.Supernode.NotReady) == 0

	s.mu.Lock()
	out.PeersTotal, out.TasksTotal = len(s.peers), len(s.tasks)
	for id, p := range s.peers {
		out.Peers = append(out.Peers, s.peerView(now, id, p))
	}
	for _, t := range s.tasks {
		out.Tasks = append(out.Tasks, s.taskView(t))
		out.Supernode.OriginBytes += t.originBytes.Load()
	}
	s.mu.Unlock()

	// The busiest peers first, then the ones heard from least recently (the ones to look at).
	slices.SortFunc(out.Peers, func(a, b status.Peer) int {
		if c := cmp.Compare(b.ReceiveBps+b.SendBps, a.ReceiveBps+a.SendBps); c != 0 {
			return c
		}
		if c := cmp.Compare(b.LastSeen, a.LastSeen); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	// Tasks moving now first, then the newest.
	slices.SortFunc(out.Tasks, func(a, b status.Task) int {
		if c := cmp.Compare(active(b), active(a)); c != 0 {
			return c
		}
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	out.Peers = out.Peers[:min(len(out.Peers), status.MaxPeers)]
	out.Tasks = out.Tasks[:min(len(out.Tasks), status.MaxTasks)]
	if out.Peers == nil {
		out.Peers = []status.Peer{}
	}
	if out.Tasks == nil {
		out.Tasks = []status.Task{}
	}
	out.Preheats = s.preheat.list()
	for i := range out.Preheats {
		s.seedProgress(&out.Preheats[i])
	}
	return out
}

func active(t status.Task) int {
	if t.Downloading > 0 || t.Seeding {
		return 1
	}
	return 0
}

// peerView is one peer on the status page; the caller holds s.mu.
func (s *Supernode) peerView(now time.Time, id string, p *peerEntry) status.Peer {
	v := status.Peer{
		ID: id, Addrs: p.info.Addrs, OneShot: p.info.OneShot, LastSeen: now.Sub(p.lastSeen).Seconds(), Tasks: len(p.tasks),
		Received: p.received.Total(), Sent: p.sent.Total(), ReceiveBps: p.received.Rate(now), SendBps: p.sent.Rate(now),
		Failures: p.failures, UploadLimit: p.info.UploadRate, Health: status.HealthOK,
	}
	if v.Addrs == nil {
		v.Addrs = []string{}
	}
	switch since := now.Sub(p.lastSeen); {
	case since > s.cfg.PeerTTL/2:
		v.Health = status.HealthLate
		v.Why = fmt.Sprintf("no sync or heartbeat for %v: it expires after %v", since.Round(time.Second), s.cfg.PeerTTL)
	case !p.lastFailure.IsZero() && now.Sub(p.lastFailure) < failingWindow:
		v.Health = status.HealthFailing
		v.Why = fmt.Sprintf("%d failure reports from its children, the latest %v ago", p.failures, now.Sub(p.lastFailure).Round(time.Second))
	}
	return v
}

// taskView is one task on the status page; the caller holds s.mu.
func (s *Supernode) taskView(t *task) status.Task {
	st := s.sched.TaskStats(schedTask(t.id))
	complete := st.Complete
	if t.done {
		complete -= st.Seeds // a seed holding every piece counts as complete
	}
	v := status.Task{
		ID: t.id.String(), URL: taskid.Redact(t.req.URL, s.cfg.QueryFilter), Access: string(t.meta.Access),
		Size: t.meta.ContentLength, Pieces: t.meta.PieceCount(), SeedPieces: len(t.digests), SeedDone: t.done, Seeding: t.running && !t.done,
		Peers: len(t.peers), Complete: max(complete, 0), Downloading: st.Downloading, Created: t.created,
		OriginBytes: t.originBytes.Load(), SeedBytes: t.seedBytes, PeerBytes: t.peerBytes,
	}
	if t.err != nil {
		v.Error = t.err.Message
	}
	return v
}
