package supernode

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/storemetrics"
	"github.com/pouch-p2p/pouch/scheduler"
)

// metrics are per supernode (not global), so several can run in one test process. Byte
// counters are totals: rates come from PromQL's rate().
type metrics struct {
	reg            *prometheus.Registry
	registrations  prometheus.Counter
	originBytes    prometheus.Counter
	corruptReports prometheus.Counter
	failureReports *prometheus.CounterVec
	// seedPiecesDropped counts pieces of the seed's own store that failed their digest when
	// re-hashed after a report.
	seedPiecesDropped prometheus.Counter
	decision          *prometheus.HistogramVec // call: register, sync
	decisions         *prometheus.CounterVec   // call, outcome
	seeds             *prometheus.CounterVec   // result: success, failed, parked
	seedPiece         prometheus.Histogram
	reported          *prometheus.CounterVec // from: seed, peer
	preheatCreated    prometheus.Counter
	preheatEnded      *prometheus.CounterVec // state: SUCCESS, FAILED
	store             *storemetrics.Store    // the seed's disk use and garbage collection
	// unreachableParents counts parents not handed to a child for want of an address it can
	// reach (see addrs.go).
	unreachableParents prometheus.Counter
}

// The call label of the scheduling metrics: which API call asked for the decision.
const (
	callRegister = "register"
	callSync     = "sync"
)

func newMetrics(s *Supernode) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		registrations: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_supernode_registrations_total",
			Help: "Peer registrations for a task."}),
		originBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_supernode_origin_bytes_total",
			Help: "Bytes the seed fetched from origins (verified pieces). The origin download rate is rate() of it."}),
		corruptReports: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_supernode_corrupt_reports_total",
			Help: "Pieces peers reported as failing their digest, from peers scheduled to that parent (reports that counted)."}),
		failureReports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_supernode_failure_reports_total",
			Help: "Failure reports from peers, by reason and by what the scheduler made of them (ignored, counted, blocked)."},
			[]string{"reason", "verdict"}),
		seedPiecesDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_supernode_seed_pieces_dropped_total",
			Help: "Pieces of the seed's own store that failed their digest when re-hashed after a report, and were dropped."}),
		decision: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pouch_supernode_schedule_seconds",
			Help: "Time of one scheduling decision, by the call that asked for it (register, sync).", Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10)},
			[]string{"call"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_supernode_schedule_decisions_total",
			Help: "Scheduling decisions, by call (register, sync) and outcome: parents (the peer got parents), back_to_source (it must fetch from the origin), none (no parent yet, or a complete peer)."},
			[]string{"call", "outcome"}),
		seeds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_supernode_seeds_total",
			Help: "Seed fetches from the origin that ended, by result (success, failed, parked: it fetched what was wanted, and the peers hold or want nothing more of it for now)."}, []string{"result"}),
		seedPiece: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pouch_supernode_seed_piece_seconds",
			Help: "Time of one piece the seed fetched from the origin, until verified: the time since the previous piece of the same stream.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		reported: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_supernode_reported_bytes_total",
			Help: "Piece bytes peers reported receiving, by from: seed (this supernode's seed) or peer (another dfdaemon)."}, []string{"from"}),
		unreachableParents: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_supernode_unreachable_parents_total",
			Help: "Parents the scheduler chose but the supernode could not hand to a child: they announced only loopback or link-local addresses and the child called from another host (set the parent's --p2p-listen or --advertise-addrs)."}),
		preheatCreated: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_supernode_preheat_jobs_created_total",
			Help: "Preheat jobs accepted."}),
		preheatEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_supernode_preheat_jobs_ended_total",
			Help: "Preheat jobs that ended, by state (SUCCESS, FAILED; a cancelled job is FAILED)."}, []string{"state"}),
	}
	for _, call := range []string{callRegister, callSync} {
		m.decision.WithLabelValues(call)
		for _, o := range []string{"parents", "back_to_source", "none"} {
			m.decisions.WithLabelValues(call, o)
		}
	}
	for _, r := range []string{"success", "failed", "parked"} {
		m.seeds.WithLabelValues(r)
	}
	for reason := range failureReasons {
		for _, v := range []scheduler.Verdict{scheduler.Ignored, scheduler.Counted, scheduler.BlockedForAll} {
			m.failureReports.WithLabelValues(string(reason), v.String())
		}
	}
	m.reported.WithLabelValues("seed")
	m.reported.WithLabelValues("peer")
	for _, st := range []snapi.PreheatState{snapi.StateSuccess, snapi.StateFailed} {
		m.preheatEnded.WithLabelValues(string(st))
	}
	m.reg.MustRegister(m.registrations, m.originBytes, m.corruptReports, m.failureReports, m.seedPiecesDropped, m.decision,
		m.decisions, m.seeds, m.seedPiece, m.reported, m.preheatCreated, m.preheatEnded, m.unreachableParents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&schedulerCollector{s: s}, &preheatCollector{s: s},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pouch_supernode_tasks", Help: "Tasks known."}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.tasks))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pouch_supernode_peers", Help: "Live peers."}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.peers))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pouch_supernode_seeds_running", Help: "Seeds fetching from the origin now."}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			n := 0
			for _, t := range s.tasks {
				if t.running {
					n++
				}
			}
			return float64(n)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pouch_supernode_seed_upload_bytes_total",
			Help: "Piece bytes the seed uploaded to peers. The seed's upload rate is rate() of it."}, func() float64 { return float64(s.upload.Uploaded()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pouch_supernode_seed_children",
			Help: "Children's streams the seed uploads to now (one per child and task)."}, func() float64 { return float64(s.upload.Streams()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pouch_supernode_spool_bytes",
			Help: "Bytes spooled now for origins that send no Content-Length (capped by --spool-max)."}, func() float64 { return float64(s.spool.Used()) }),
	)
	m.store = storemetrics.New(m.reg, "supernode", s.store, s.cfg.GC.High)
	return m
}

// decided counts one scheduling decision that took since start.
func (m *metrics) decided(call string, start time.Time, d scheduler.Decision) {
	m.decision.WithLabelValues(call).Observe(time.Since(start).Seconds())
	outcome := "none"
	switch {
	case d.BackToSource:
		outcome = "back_to_source"
	case len(d.Parents) > 0:
		outcome = "parents"
	}
	m.decisions.WithLabelValues(call, outcome).Inc()
}

// seedEnded counts one seed fetch that ended.
func (m *metrics) seedEnded(err error) {
	result := "success"
	switch {
	case errors.Is(err, errParked):
		result = "parked"
	case err != nil:
		result = "failed"
	}
	m.seeds.WithLabelValues(result).Inc()
}

// schedulerCollector exports the scheduler's state and event counts at each scrape. The
// state is a scan of the peers (scheduler.Stats), so it is computed only when scraped.
type schedulerCollector struct{ s *Supernode }

var (
	schedEventsDesc = prometheus.NewDesc("pouch_supernode_scheduler_events_total",
		"Scheduler events, by event: join, report, leave, failure, swap (a parent swapped for a clearly better one), reassignment (a decision changed because a parent left, failed or was blocked, or a source appeared).",
		[]string{"event"}, nil)
	schedPeersDesc = prometheus.NewDesc("pouch_supernode_scheduler_peers",
		"Peer-task pairs the scheduler holds, by state: downloading, complete, back_to_source, orphan (sent to the origin for lack of a backbone parent), blocked (for corruption).",
		[]string{"state"}, nil)
	schedSourcesDesc = prometheus.NewDesc("pouch_supernode_scheduler_sources",
		"Peer-task pairs that may serve anyone: seeds that can reach the origin and complete peers.", nil, nil)
	schedEdgesDesc = prometheus.NewDesc("pouch_supernode_scheduler_edges",
		"Parent-to-child assignments over all tasks.", nil, nil)
)

func (c *schedulerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{schedEventsDesc, schedPeersDesc, schedSourcesDesc, schedEdgesDesc} {
		ch <- d
	}
}

func (c *schedulerCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	st := c.s.sched.Stats()
	c.s.mu.Unlock()
	counter := func(event string, v uint64) {
		ch <- prometheus.MustNewConstMetric(schedEventsDesc, prometheus.CounterValue, float64(v), event)
	}
	counter("join", st.Counters.Joins)
	counter("report", st.Counters.Reports)
	counter("leave", st.Counters.Leaves)
	counter("failure", st.Counters.Failures)
	counter("swap", st.Counters.Swaps)
	counter("reassignment", st.Counters.Reassignments)
	counter("idle_drop", st.Counters.IdleDrops)
	gauge := func(state string, v int) {
		ch <- prometheus.MustNewConstMetric(schedPeersDesc, prometheus.GaugeValue, float64(v), state)
	}
	gauge("downloading", st.Downloading)
	gauge("complete", st.Complete)
	gauge("back_to_source", st.BackToSource)
	gauge("orphan", st.Orphans)
	gauge("blocked", st.Blocked)
	ch <- prometheus.MustNewConstMetric(schedSourcesDesc, prometheus.GaugeValue, float64(st.Sources))
	ch <- prometheus.MustNewConstMetric(schedEdgesDesc, prometheus.GaugeValue, float64(st.Edges))
}

// preheatCollector exports the preheat jobs the supernode keeps, by state.
type preheatCollector struct{ s *Supernode }

var preheatJobsDesc = prometheus.NewDesc("pouch_supernode_preheat_jobs",
	"Preheat jobs kept, by state (PENDING, RUNNING, SUCCESS, FAILED); finished ones are forgotten beyond 256.",
	[]string{"state"}, nil)

func (c *preheatCollector) Describe(ch chan<- *prometheus.Desc) { ch <- preheatJobsDesc }

func (c *preheatCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[snapi.PreheatState]int{}
	if c.s.preheat != nil {
		counts = c.s.preheat.countByState()
	}
	for _, st := range []snapi.PreheatState{snapi.StatePending, snapi.StateRunning, snapi.StateSuccess, snapi.StateFailed} {
		ch <- prometheus.MustNewConstMetric(preheatJobsDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}
