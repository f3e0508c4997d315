package dfdaemon

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pouch-p2p/pouch/internal/storemetrics"
)

// Where verified piece bytes came from: the "from" label of the byte counter and the piece
// latency histogram. The schedule marks the seed (snapi.Peer.Seed).
const (
	srcSeed   = "seed"   // the supernode's seed
	srcPeer   = "peer"   // another dfdaemon
	srcOrigin = "origin" // the origin, fetched by this daemon itself
)

// Outcomes of a download besides the API error codes of a failure (apierr.Code).
const (
	resultSuccess   = "success"   // complete and verified
	resultUnclaimed = "unclaimed" // every requester was refused or sent elsewhere by the gate: nothing fetched
	resultCancelled = "cancelled" // the daemon stopped
)

// metrics are the daemon's Prometheus metrics, on a registry of its own so that several
// daemons run in one process (tests, dfbench). Byte counters are totals: rates come from
// PromQL's rate().
type metrics struct {
	reg *prometheus.Registry
	// bytes counts verified piece bytes by source (peer: over P2P, origin) and from (seed,
	// peer, origin): source is the older split, which tests and dashboards sum.
	bytes        *prometheus.CounterVec
	pieceSeconds *prometheus.HistogramVec // from
	corrupt      prometheus.Counter
	backToSource prometheus.Counter
	downloads    prometheus.Counter
	failed       prometheus.Counter
	finished     *prometheus.CounterVec // result
	duration     prometheus.Histogram
	// authorization counts the gate's outcomes (result: public, allowed, denied, elsewhere,
	// error); direct counts requests sent to their origin directly (reason: other-origin,
	// other-content).
	authorization *prometheus.CounterVec
	direct        *prometheus.CounterVec
	store         *storemetrics.Store    // disk use and garbage collection
	heartbeats    *prometheus.CounterVec // result: ok, error
	// wait is the time P2P downloads spent by state (download.tally); sending adds up, over
	// that time, how many parents were sending at once.
	wait    *prometheus.CounterVec
	sending prometheus.Counter
	// moved counts requests moved from one parent to an idle one (download.move), by whether
	// the first was told to drop it (cancel: true) or sends its copy anyway (false).
	moved *prometheus.CounterVec
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_dfdaemon_download_bytes_total",
			Help: "Piece bytes downloaded and verified, by source (peer: over P2P, origin: fetched by this daemon) and from (seed: the supernode's seed, peer: another dfdaemon, origin). The download rate is rate() of it."},
			[]string{"source", "from"}),
		pieceSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pouch_dfdaemon_piece_seconds",
			Help:    "Time of one piece from its request to its verification, by from (seed, peer, origin); from the origin, the time since the previous piece of the same stream.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"from"}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_dfdaemon_corrupt_pieces_total",
			Help: "Pieces from parents that failed their SHA-256; the parent was blocked."}),
		backToSource: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_dfdaemon_back_to_source_total",
			Help: "Downloads that fetched pieces from the origin themselves."}),
		downloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_dfdaemon_downloads_total", Help: "Downloads started."}),
		failed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_dfdaemon_downloads_failed_total", Help: "Downloads failed (the results of pouch_dfdaemon_downloads_finished_total other than success, unclaimed and cancelled)."}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_dfdaemon_downloads_finished_total",
			Help: "Downloads ended, by result: success, unclaimed (every requester was refused by the gate: nothing fetched), cancelled (the daemon stopped), or the error code of a failure (origin_status, origin_unreachable, forbidden, digest_mismatch, local, internal, bad_request)."},
			[]string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pouch_dfdaemon_download_seconds",
			Help: "Time of a successful download, from its start to the whole content verified.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 9)}),
		authorization: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_dfdaemon_authorization_total",
			Help: "Client requests checked by the gate, by result: public, allowed (the origin accepted the requester), denied (it refused), elsewhere (another origin: fetched directly), error (no usable answer: refused)."}, []string{"result"}),
		direct: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_dfdaemon_direct_fetches_total",
			Help: "Requests for private content sent to their origin directly, by reason: other-origin, other-content."}, []string{"reason"}),
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_dfdaemon_heartbeats_total",
			Help: "Heartbeats sent to supernodes, by result (ok, error); the readiness check reads the latest ones."}, []string{"result"}),
		wait: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_dfdaemon_download_wait_seconds_total",
			Help: "Time P2P downloads spent, by state: receiving (a piece arriving from a parent), requested (pieces asked for, none arriving yet), undigested (nothing asked: a parent holds a missing piece whose digest is not known yet), nothing (nothing asked: no parent holds a piece the download lacks), no_parent (none connected)."},
			[]string{"state"}),
		sending: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_dfdaemon_download_sending_parents_seconds_total",
			Help: "The number of parents sending to a P2P download at once, integrated over time: divided by the receiving time of pouch_dfdaemon_download_wait_seconds_total, how many parents a download received from at once on average."}),
		moved: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_dfdaemon_pieces_moved_total",
			Help: "Piece requests moved from a parent that had not started them to an idle parent that holds the piece, by cancel: true (the first parent was told to drop it), false (an older parent, which sends its copy anyway: the endgame's steal)."},
			[]string{"cancel"}),
	}
	m.bytes.WithLabelValues("peer", srcSeed)
	m.bytes.WithLabelValues("peer", srcPeer)
	m.bytes.WithLabelValues("origin", srcOrigin)
	for _, f := range []string{srcSeed, srcPeer, srcOrigin} {
		m.pieceSeconds.WithLabelValues(f)
	}
	for _, r := range []string{resultSuccess, resultUnclaimed, resultCancelled} {
		m.finished.WithLabelValues(r)
	}
	for _, r := range []string{gatePublic, gateAllowed, gateDenied, gateElsewhere, gateError} {
		m.authorization.WithLabelValues(r)
	}
	for _, r := range []string{directOtherOrigin, directOtherContent} {
		m.direct.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "error"} {
		m.heartbeats.WithLabelValues(r)
	}
	for _, w := range []string{waitReceiving, waitRequested, waitUndigested, waitNothing, waitNoParent} {
		m.wait.WithLabelValues(w)
	}
	m.moved.WithLabelValues("true")
	m.moved.WithLabelValues("false")
	m.reg.MustRegister(m.bytes, m.pieceSeconds, m.corrupt, m.backToSource, m.downloads, m.failed, m.finished, m.duration,
		m.authorization, m.direct, m.heartbeats, m.wait, m.sending, m.moved,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pouch_dfdaemon_upload_bytes_total",
			Help: "Piece bytes uploaded to children. The upload rate is rate() of it."}, func() float64 { return float64(d.upload.Uploaded()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pouch_dfdaemon_upload_busy_seconds_total",
			Help: "Time during which at least one piece was being sent to a child; the upload was idle the rest of the time (no child asked for anything)."}, d.upload.BusySeconds),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pouch_dfdaemon_active_downloads",
			Help: "Downloads in progress (one per task, however many clients read it)."}, func() float64 { return float64(len(d.activeDownloads())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pouch_dfdaemon_parents",
			Help: "Parents connected, over every download in progress."}, func() float64 { return float64(d.parentCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pouch_dfdaemon_children",
			Help: "Children's streams this daemon uploads to now (one per child and task)."}, func() float64 { return float64(d.upload.Streams()) }),
	)
	m.store = storemetrics.New(m.reg, "dfdaemon", d.store, d.cfg.GC.High)
	return m
}

// downloadEnded counts how a download ended; err is classified (or nil).
func (m *metrics) downloadEnded(err error, took time.Duration) {
	switch {
	case err == nil:
		m.finished.WithLabelValues(resultSuccess).Inc()
		m.duration.Observe(took.Seconds())
	case errors.Is(err, errUnclaimed):
		m.finished.WithLabelValues(resultUnclaimed).Inc()
	case errors.Is(err, context.Canceled):
		m.finished.WithLabelValues(resultCancelled).Inc()
	default:
		_, body := APIError(err)
		m.finished.WithLabelValues(string(body.Code)).Inc()
		m.failed.Inc()
	}
}

// heartbeatSent counts one heartbeat to a supernode.
func (m *metrics) heartbeatSent(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.heartbeats.WithLabelValues(result).Inc()
}

// piece counts one verified piece of n bytes from a source (srcSeed, srcPeer, srcOrigin).
func (m *metrics) piece(from string, n int64, took time.Duration) {
	source := "peer"
	if from == srcOrigin {
		source = "origin"
	}
	m.bytes.WithLabelValues(source, from).Add(float64(n))
	m.pieceSeconds.WithLabelValues(from).Observe(took.Seconds())
}

// activeDownloads lists the downloads in progress.
func (d *Daemon) activeDownloads() []*download {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*download, 0, len(d.downloads))
	for _, dl := range d.downloads {
		out = append(out, dl)
	}
	return out
}

// parentCount is the number of parents connected over every download in progress.
func (d *Daemon) parentCount() int {
	n := 0
	for _, dl := range d.activeDownloads() {
		dl.mu.Lock()
		n += len(dl.parents)
		dl.mu.Unlock()
	}
	return n
}
