package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/pouch-p2p/pouch/internal/fixture/daemon"
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
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// metrics is a scrape of a daemon's /metrics: series ("name" or "name{labels}") → value.
type metrics map[string]float64

func (p *proc) scrape(ctx context.Context) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.HTTP+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: metrics of %s: %w", p.Name, err)
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body), nil
}

// parseMetrics reads the Prometheus text format, enough for counters and gauges.
func parseMetrics(r io.Reader) metrics {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[strings.TrimSpace(line[:i])] += v
	}
	return m
}

// sum adds the series of one metric whose labels contain every one of labels (e.g. `source="peer"`).
func (m metrics) sum(name string, labels ...string) float64 {
	var t float64
	for k, v := range m {
		base, lbl, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(lbl, l) {
				ok = false
			}
		}
		if ok {
			t += v
		}
	}
	return t
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
