package supernode

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are per supernode (not global), so several can run in one test process.
type metrics struct {
	reg            *prometheus.Registry
	registrations  prometheus.Counter
	originBytes    prometheus.Counter
	corruptReports prometheus.Counter
	failureReports *prometheus.CounterVec
	// seedPiecesDropped counts pieces of the seed's own store that failed their digest when
	// re-hashed after a report.
	seedPiecesDropped prometheus.Counter
	decision          prometheus.Histogram
}

func newMetrics(s *Supernode) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		registrations: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_supernode_registrations_total",
			Help: "Peer registrations for a task."}),
		originBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_supernode_origin_bytes_total",
			Help: "Bytes the seed fetched from origins."}),
		corruptReports: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_supernode_corrupt_reports_total",
			Help: "Pieces peers reported as failing their digest, from peers scheduled to that parent (reports that counted)."}),
		failureReports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pouch_supernode_failure_reports_total",
			Help: "Failure reports from peers, by reason and by what the scheduler made of them (ignored, counted, blocked)."},
			[]string{"reason", "verdict"}),
		seedPiecesDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "pouch_supernode_seed_pieces_dropped_total",
			Help: "Pieces of the seed's own store that failed their digest when re-hashed after a report, and were dropped."}),
		decision: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pouch_supernode_schedule_seconds",
			Help: "Time of one scheduling decision.", Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10)}),
	}
	m.reg.MustRegister(m.registrations, m.originBytes, m.corruptReports, m.failureReports, m.seedPiecesDropped, m.decision,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
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
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pouch_supernode_seed_upload_bytes_total",
			Help: "Piece bytes the seed uploaded to peers."}, func() float64 { return float64(s.upload.Uploaded()) }),
	)
	return m
}
