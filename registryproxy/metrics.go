package registryproxy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests  *prometheus.CounterVec   // kind, code, registry
	latency   *prometheus.HistogramVec // kind, registry
	blobBytes *prometheus.CounterVec   // source: p2p, upstream
	fallbacks prometheus.Counter
}

// The registry label of requests that name none the mirror knows: its values are the
// configured registries (default, allowed, per-registry settings) and these two, so that no
// client can grow the label's values.
const (
	registryOther = "other" // a registry that is not configured (served when no allow list is set)
	registryNone  = "none"  // no upstream: no ns and no default, or a request refused before
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pouch_registryproxy_requests_total", Help: "Mirror requests by kind (base, manifest, blob, tags, other), HTTP status (code) and upstream registry (a configured one, other, or none).",
		}, []string{"kind", "code", "registry"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pouch_registryproxy_request_seconds", Help: "Time of a mirror request, from its arrival to the last byte of the answer, by kind and upstream registry (as in pouch_registryproxy_requests_total).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"kind", "registry"}),
		blobBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pouch_registryproxy_blob_bytes_total", Help: "Blob bytes sent to clients, by where they came from (p2p, upstream).",
		}, []string{"source"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pouch_registryproxy_fallbacks_total", Help: "Blob responses the mirror streamed from the upstream because P2P failed or stalled.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
		return nil, err
	}
	if m.blobBytes, err = register(reg, m.blobBytes); err != nil {
		return nil, err
	}
	if m.fallbacks, err = register(reg, m.fallbacks); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to reg, or returns the collector already registered under its name (a
// second proxy on the same registry shares the counters).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
