// Package storemetrics is the metrics of a daemon's piece store and its garbage collection,
// the same on the supernode (the seed's store) and the dfdaemon: disk use, tasks held, the
// quota, and what each collection evicted. It owns the metrics only: the daemon decides when
// to collect and what is in use.
package storemetrics

import (
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pouch-p2p/pouch/piece"
)

// Store counts one daemon's store; build it with New.
type Store struct {
	store *piece.Store
	runs  *prometheus.CounterVec // result: ok, error
	tasks prometheus.Counter
	bytes prometheus.Counter
}

// New registers on reg, named pouch_<daemon>_store_… and pouch_<daemon>_gc_…, the metrics of
// store, whose quota (the high watermark, 0 = none) is quota.
func New(reg prometheus.Registerer, daemon string, store *piece.Store, quota int64) *Store {
	name := func(s string) string { return "pouch_" + daemon + "_" + s }
	m := &Store{
		store: store,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("gc_runs_total"),
			Help: "Garbage collections of the piece store, by result (ok, error)."}, []string{"result"}),
		tasks: prometheus.NewCounter(prometheus.CounterOpts{Name: name("gc_evicted_tasks_total"),
			Help: "Tasks evicted by garbage collection (TTL or disk quota)."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: name("gc_evicted_bytes_total"),
			Help: "Content bytes of the tasks evicted by garbage collection."}),
	}
	m.runs.WithLabelValues("ok")
	m.runs.WithLabelValues("error")
	reg.MustRegister(m.runs, m.tasks, m.bytes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name("store_bytes"),
			Help: "Content bytes the piece store holds (the sum of its tasks' lengths), which garbage collection keeps under the quota."},
			func() float64 { return float64(store.Usage()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name("store_tasks"),
			Help: "Tasks in the piece store, complete or not."}, func() float64 { return float64(len(store.List())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name("store_quota_bytes"),
			Help: "The disk quota (--gc-high): garbage collection evicts above it; 0 = none."}, func() float64 { return float64(quota) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name("store_sync_groups_total"),
			Help: "Durability groups of the piece store: data files synced, then the pieces written since recorded in one index transaction."},
			func() float64 { return float64(store.SyncStats().Groups) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name("store_sync_dropped_pieces_total"),
			Help: "Pieces held but dropped because their data file failed to sync (they are fetched again); see the ERROR log line."},
			func() float64 { return float64(store.SyncStats().Dropped) }),
	)
	return m
}

// GC runs one garbage collection of the store (piece.Store.GC) and counts it.
func (m *Store) GC(now time.Time, p piece.GCPolicy, inUse func(digest.Digest) bool) ([]digest.Digest, error) {
	sizes := map[digest.Digest]int64{}
	for _, info := range m.store.List() {
		sizes[info.Meta.ID] = info.Meta.ContentLength
	}
	evicted, err := m.store.GC(now, p, inUse)
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.runs.WithLabelValues(result).Inc()
	m.tasks.Add(float64(len(evicted)))
	for _, id := range evicted {
		m.bytes.Add(float64(sizes[id]))
	}
	return evicted, err
}
