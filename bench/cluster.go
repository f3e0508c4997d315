package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/pouch-p2p/pouch/internal/fixture/daemon"
	"github.com/pouch-p2p/pouch/internal/scrape"
)

// proc is a daemon started by the harness, its stderr in a log file of the work directory.
type proc struct {
	*daemon.Proc
	log string
}

// startProc runs a daemon binary and waits for its ready line ("listening http=ADDR p2p=...").
func startProc(ctx context.Context, binDir, logDir, name, bin string, args ...string) (*proc, error) {
	p := &proc{log: filepath.Join(logDir, name+".log")}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	if p.Proc, err = daemon.Start(ctx, name, filepath.Join(binDir, bin), args, logf); err != nil {
		return nil, fmt.Errorf("bench: %w; see %s", err, p.log)
	}
	return p, nil
}

func (p *proc) kill() {
	if p != nil {
		p.Kill()
	}
}

// peakRSS reads the process's peak resident set (VmHWM) from /proc; 0 if unknown.
func (p *proc) peakRSS() int64 {
	if p == nil || p.Cmd.Process == nil {
		return 0
	}
	b, _ := statusBytes(p.Cmd.Process.Pid, "VmHWM:")
	return b
}

// metrics reads the daemon's /metrics: only the families named, if any (scrape.Get).
func (p *proc) metrics(ctx context.Context, names ...string) (scrape.Families, error) {
	m, err := scrape.Get(ctx, "http://"+p.HTTP+"/metrics", names...)
	if err != nil {
		return nil, fmt.Errorf("bench: metrics of %s: %w", p.Name, err)
	}
	return m, nil
}

// parallel runs f(i) for i in [0, n) with at most limit at a time and returns the first error.
func parallel(n, limit int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, limit)
	)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}
