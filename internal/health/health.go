// Package health answers the daemons' probes: /healthz (the process is alive and serving) and
// /readyz (every readiness check passes). A daemon keeps its readiness checks in a Checks list,
// the one place to add a condition (a DHT that is up, say): a failing check makes /readyz
// answer 503 with the check named in the body. It owns the probes' HTTP shape only; what each
// check tests is the daemon's.
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Timeout bounds one check: a probe must answer even when a check hangs.
const Timeout = 2 * time.Second

// Check is one readiness condition.
type Check struct {
	// Name names the check in /readyz's body: store, api, supernode...
	Name string
	// Run returns nil when the condition holds, or what is wrong. It must return when ctx ends.
	Run func(ctx context.Context) error
}

// Checks is a daemon's list of readiness checks; the zero value is empty and ready. It is safe
// for concurrent use, so checks may be added after the probe is served.
type Checks struct {
	mu     sync.Mutex
	checks []Check
}

// Add appends checks; /readyz runs them in the order they were added.
func (c *Checks) Add(checks ...Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks = append(c.checks, checks...)
}

// Result is the outcome of one check.
type Result struct {
	Name string
	Err  error
}

// Run runs every check, each bounded by Timeout, and returns their outcomes in order.
func (c *Checks) Run(ctx context.Context) []Result {
	c.mu.Lock()
	checks := append([]Check(nil), c.checks...)
	c.mu.Unlock()
	out := make([]Result, len(checks))
	for i, ch := range checks {
		cctx, cancel := context.WithTimeout(ctx, Timeout)
		out[i] = Result{Name: ch.Name, Err: ch.Run(cctx)}
		cancel()
	}
	return out
}

// Failing names the checks that failed, in order.
func Failing(results []Result) []string {
	var out []string
	for _, r := range results {
		if r.Err != nil {
			out = append(out, r.Name)
		}
	}
	return out
}

// Ready serves /readyz: 200 when every check passes, else 503. The body has one line per check,
// "[+]name ok" or "[-]name failed: why" (the form Kubernetes' own components use), then the
// verdict naming the failing checks.
func (c *Checks) Ready() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		results := c.Run(r.Context())
		var b strings.Builder
		for _, res := range results {
			if res.Err == nil {
				fmt.Fprintf(&b, "[+]%s ok\n", res.Name)
			} else {
				fmt.Fprintf(&b, "[-]%s failed: %v\n", res.Name, res.Err)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if failing := Failing(results); len(failing) > 0 {
			fmt.Fprintf(&b, "not ready: %s failed\n", strings.Join(failing, ", "))
			w.WriteHeader(http.StatusServiceUnavailable)
		} else {
			b.WriteString("ready\n")
		}
		_, _ = w.Write([]byte(b.String()))
	})
}

// Live serves /healthz: the process is up and its HTTP server answers. It checks nothing else,
// so that a liveness probe never restarts a daemon for a dependency that is down.
func Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
}

// Node is what both daemons are made of, for the checks they share.
type Node struct {
	Store   interface{ Check() error } // the piece store (piece.Store)
	Serving func() bool                // the HTTP listeners serve (lifecycle.Shell.Serving)
	P2P     func() int                 // how many addresses the libp2p host listens on
}

// Checks are the checks every daemon has: "store" (the piece store is open and answers), "api"
// (its listeners serve: from Run until its shutdown starts) and "p2p" (the libp2p host
// listens).
func (n Node) Checks() []Check {
	return []Check{
		{Name: "store", Run: func(context.Context) error { return n.Store.Check() }},
		{Name: "api", Run: func(context.Context) error {
			if !n.Serving() {
				return errors.New("the HTTP listeners are not serving (starting or shutting down)")
			}
			return nil
		}},
		{Name: "p2p", Run: func(context.Context) error {
			if n.P2P() == 0 {
				return errors.New("the libp2p host listens on no address")
			}
			return nil
		}},
	}
}

// Listen binds a metrics listener on addr: its handler serves /metrics, /healthz and /readyz
// and nothing else. The daemon serves it beside its API (lifecycle.Shell.HTTP).
func Listen(addr string, checks *Checks, metrics http.Handler) (net.Listener, http.Handler, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	Mount(mux, checks, metrics)
	return ln, mux, nil
}

// Mount serves /healthz, /readyz and, with metrics non-nil, /metrics on mux: what a daemon's
// main listener and its metrics listener both answer.
func Mount(mux *http.ServeMux, checks *Checks, metrics http.Handler) {
	mux.Handle("GET /healthz", Live())
	mux.Handle("GET /readyz", checks.Ready())
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
}
