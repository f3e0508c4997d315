package dfdaemon

import (
	"context"
	"sync"

	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/snapi"
)

// preheater runs the preheat assignments (scope all-peers) that supernodes hand this daemon in
// their heartbeat answers, at most Config.PreheatConcurrency at once so that a preheat does not
// starve the node's live pulls. Each outcome goes back to the supernode that assigned it in the
// next heartbeat, which a finished assignment sends at once.
type preheater struct {
	d    *Daemon
	sem  chan struct{}
	kick chan struct{} // an outcome is ready: heartbeat now

	mu      sync.Mutex
	active  map[assignment]*assigned      // queued, downloading, or done and not yet reported
	results map[int][]snapi.PreheatResult // outcomes to report, by supernode (index in ring.All)
}

// assignment names one task of one job from one supernode.
type assignment struct {
	home int
	job  string
	task digest.Digest
}

type assigned struct {
	cancel context.CancelFunc
	done   bool
}

func newPreheater(d *Daemon) *preheater {
	return &preheater{
		d: d, sem: make(chan struct{}, d.cfg.PreheatConcurrency), kick: make(chan struct{}, 1),
		active: map[assignment]*assigned{}, results: map[int][]snapi.PreheatResult{},
	}
}

// take removes the outcomes to report to supernode home.
func (p *preheater) take(home int) []snapi.PreheatResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.results[home]
	delete(p.results, home)
	return out
}

// reported settles a heartbeat to supernode home that carried rs: delivered, those
// assignments are forgotten; not delivered, the outcomes wait for the next heartbeat.
func (p *preheater) reported(home int, rs []snapi.PreheatResult, delivered bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !delivered {
		p.results[home] = append(rs, p.results[home]...)
		return
	}
	for _, r := range rs {
		delete(p.active, assignment{home, r.Job, r.Task})
	}
}

// assign makes the daemon's work match supernode home's list of outstanding assignments: new
// ones are queued, those no longer listed (the job was cancelled or failed) are dropped.
// Downloads already started go on for the sake of whoever else uses them; only the wait ends.
func (p *preheater) assign(ctx context.Context, home int, list []snapi.PreheatAssignment) {
	want := map[assignment]snapi.PreheatAssignment{}
	for _, a := range list {
		want[assignment{home, a.Job, a.Task}] = a
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, st := range p.active {
		if _, ok := want[k]; k.home == home && !ok && !st.done {
			st.cancel()
			delete(p.active, k)
		}
	}
	for k, a := range want {
		if _, ok := p.active[k]; ok {
			continue
		}
		actx, cancel := context.WithCancel(ctx)
		st := &assigned{cancel: cancel}
		if !p.d.life.Go(func(context.Context) { p.run(actx, k, a, st) }) {
			cancel()
			return
		}
		p.active[k] = st
	}
}

// run downloads one assignment when a slot is free and records its outcome.
func (p *preheater) run(ctx context.Context, k assignment, a snapi.PreheatAssignment, st *assigned) {
	defer st.cancel()
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	err := p.warm(ctx, a)
	<-p.sem
	if ctx.Err() != nil {
		return // dropped, or the daemon is stopping: nothing to report
	}
	r := snapi.PreheatResult{Job: a.Job, Task: a.Task}
	if err != nil {
		r.Error = err.Error()
		p.d.log.Warn("preheat download failed", zap.String("job", a.Job), zap.String("task", a.Task.String()), zap.Error(err))
	} else {
		p.d.log.Info("preheated", zap.String("job", a.Job), zap.String("task", a.Task.String()))
	}
	p.mu.Lock()
	st.done = true
	p.results[k.home] = append(p.results[k.home], r)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// warm is the preheat's entry point into the download engine: a download this daemon starts on
// its own behalf, so it goes through DownloadInternal — no requester, no gate — and never
// through the local API or the mirror, whose requests are a client's and are checked as such.
// Nothing of it is handed to anyone: a later client request for the content passes the gate
// then. It returns once the content is complete and verified in the store.
func (p *preheater) warm(ctx context.Context, a snapi.PreheatAssignment) error {
	x, err := p.d.DownloadInternal(ctx, Request{URL: a.URL, Digest: a.Digest})
	if err != nil {
		return err
	}
	defer x.Close()
	return x.Wait(ctx)
}
