package dfdaemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pouch-p2p/pouch/internal/health"
)

// observe serves the probes and the metrics: /healthz, /readyz and /metrics on the local API,
// and on the metrics listener when one is configured (--metrics-listen), which serves nothing
// else. The local API keeps /metrics either way, so a scraper of the old address still works.
func (d *Daemon) observe() error {
	d.ready.Add(d.readyChecks()...)
	metrics := promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{})
	health.Mount(d.mux, &d.ready, metrics)
	if d.cfg.MetricsListen == "" {
		return nil
	}
	ln, h, err := health.Listen(d.cfg.MetricsListen, &d.ready, metrics)
	if err != nil {
		return fmt.Errorf("dfdaemon: %w", err)
	}
	d.metricsLn = ln
	d.life.HTTP(ln, h)
	return nil
}

// readyChecks are the conditions of /readyz: the piece store is open, the listeners serve, the
// libp2p host listens, and, with supernodes configured, the node can find content over P2P
// ("discovery"): a supernode answered the latest heartbeat, or the DHT has peers to ask. A node
// without supernodes (origin only) has no such check. This list is the place for more.
func (d *Daemon) readyChecks() []health.Check {
	checks := health.Node{Store: d.store, Serving: d.life.Serving, P2P: func() int { return len(d.host.Network().ListenAddresses()) }}.Checks()
	if d.ring.Len() > 0 {
		checks = append(checks, health.Check{Name: "discovery", Run: func(context.Context) error { return d.discoverable() }})
	}
	return checks
}

// discoverable says why the node cannot find content over P2P, or nil when it can.
func (d *Daemon) discoverable() error {
	err := d.beats.check()
	if err == nil {
		return nil
	}
	if d.holders == nil {
		return err
	}
	if d.holders.dht.Stats().RoutingTable > 0 {
		return nil
	}
	return fmt.Errorf("%w, and the DHT has no peer", err)
}

// MetricsAddr is the metrics listener's address ("" without --metrics-listen).
func (d *Daemon) MetricsAddr() string {
	if d.metricsLn == nil {
		return ""
	}
	return d.metricsLn.Addr().String()
}

// heartbeats keeps the outcome of the latest heartbeat to each supernode: the daemon can find
// content over P2P when one of them answered (or the DHT has peers).
type heartbeats struct {
	mu   sync.Mutex
	last map[string]error // by supernode URL
}

func (h *heartbeats) record(supernode string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		h.last = map[string]error{}
	}
	h.last[supernode] = err
}

// check passes when the latest heartbeat to some supernode was answered.
func (h *heartbeats) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.last) == 0 {
		return errors.New("no heartbeat sent yet")
	}
	var why []string
	for url, err := range h.last {
		if err == nil {
			return nil
		}
		why = append(why, fmt.Sprintf("%s: %v", url, err))
	}
	slices.Sort(why)
	return fmt.Errorf("no supernode answered the latest heartbeat (%s)", strings.Join(why, "; "))
}
