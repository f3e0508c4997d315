package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	dto "github.com/prometheus/client_model/go"

	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

// LoadConfig describes a control-plane load run ([Load]): one supernode process, Peers
// simulated peers, Tasks tasks of Size bytes each.
type LoadConfig struct {
	Peers        int   `json:"peers"`         // simulated peers (default 10,000)
	Tasks        int   `json:"tasks"`         // tasks every peer downloads in turn (default 4)
	Size         int64 `json:"size_bytes"`    // each task's content (default 64 MiB)
	DownloadRate int64 `json:"download_rate"` // bytes/s each peer reports receiving (default 8 MB/s)
	Conns        int   `json:"conns"`         // HTTP connections the peers share (default 256)
	// Ramp spreads the peers' first calls evenly over this long (default 10 s: a rollout to
	// 10,000 nodes at 1,000 a second); negative: every peer at the same instant.
	Ramp         time.Duration `json:"ramp"`
	SyncInterval time.Duration `json:"sync_interval"` // default snapi.SyncInterval, as dfdaemons sync
	Heartbeat    time.Duration `json:"heartbeat"`     // default 10 s, the dfdaemon's default
	Seed         uint64        `json:"seed"`          // content generator's seed (default 1)
	BinDir       string        `json:"-"`             // where the supernode binary is
	WorkDir      string        `json:"-"`             // its data and log (default: a temporary directory, removed)
	Timeout      time.Duration `json:"-"`             // bounds the whole run (default 10 min)
}

// WithDefaults fills the zero fields.
func (c LoadConfig) WithDefaults() LoadConfig {
	if c.Peers == 0 {
		c.Peers = 10000
	}
	if c.Tasks == 0 {
		c.Tasks = 4
	}
	if c.Size == 0 {
		c.Size = 64 << 20
	}
	if c.DownloadRate == 0 {
		c.DownloadRate = 8e6
	}
	if c.Conns == 0 {
		c.Conns = 256
	}
	if c.Ramp == 0 {
		c.Ramp = 10 * time.Second
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = snapi.SyncInterval
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	return c
}

// Validate reports every invalid field of a configuration with defaults applied.
func (c LoadConfig) Validate() error {
	var errs []error
	if c.Peers < 1 || c.Tasks < 1 || c.Conns < 1 {
		errs = append(errs, fmt.Errorf("bench: load: peers (%d), tasks (%d) and conns (%d) must be at least 1", c.Peers, c.Tasks, c.Conns))
	}
	if c.Size < 1 {
		errs = append(errs, fmt.Errorf("bench: load: size %d < 1 byte", c.Size))
	}
	if c.DownloadRate < 1 {
		errs = append(errs, fmt.Errorf("bench: load: download rate %d must be > 0", c.DownloadRate))
	}
	if c.SyncInterval <= 0 || c.Heartbeat <= 0 || c.Timeout < 0 {
		errs = append(errs, errors.New("bench: load: the intervals must be positive and the timeout not negative"))
	}
	return errors.Join(errs...)
}

// LoadResult is what [Load] measured.
type LoadResult struct {
	Config LoadConfig `json:"config"`
	// Calls as the peers saw them (signing, HTTP, the supernode's answer), in seconds.
	Register Latency `json:"register"`
	Sync     Latency `json:"sync"`
	// The supernode's own pouch_supernode_schedule_seconds over the load: the bucket bound
	// at or above each percentile (its buckets are powers of 4 from 1 µs).
	SchedRegisterP50 float64 `json:"sched_register_p50_le_seconds"`
	SchedRegisterP99 float64 `json:"sched_register_p99_le_seconds"`
	SchedSyncP50     float64 `json:"sched_sync_p50_le_seconds"`
	SchedSyncP99     float64 `json:"sched_sync_p99_le_seconds"`
	Heartbeats       int64   `json:"heartbeats"`
	Errors           int64   `json:"errors"`
	// PeerParents is how many answers named a parent other than the seed.
	PeerParents int64   `json:"peer_parents"`
	Seconds     float64 `json:"load_seconds"` // the load phase: first registration to last completion
	// SimulatedBytes is what the peers reported receiving.
	SimulatedBytes int64 `json:"simulated_bytes"`
	// The supernode's CPU (utime + stime from /proc) during the load phase.
	CPUSeconds   float64 `json:"supernode_cpu_seconds"`
	Cores        float64 `json:"supernode_cores"`
	CPUPerGiB    float64 `json:"supernode_cpu_seconds_per_gib"`
	CPUPerPeer   float64 `json:"supernode_cpu_seconds_per_peer"`
	GeneratorCPU float64 `json:"generator_cpu_seconds"`
	RSSStart     int64   `json:"rss_start_bytes"`        // supernode started, no task
	RSSTasks     int64   `json:"rss_tasks_bytes"`        // every task seeded, no peer
	RSSEnd       int64   `json:"rss_end_bytes"`          // every peer in every task
	PeakRSS      int64   `json:"peak_rss_bytes"`         // VmHWM
	HeapTasks    int64   `json:"heap_tasks_bytes"`       // go_memstats_heap_inuse_bytes at RSSTasks
	HeapEnd      int64   `json:"heap_end_bytes"`         // and at RSSEnd
	RSSPerTask   float64 `json:"rss_per_task_bytes"`     // (RSSTasks − RSSStart) ÷ tasks
	RSSPerPeer   float64 `json:"rss_per_peer_bytes"`     // (RSSEnd − RSSTasks) ÷ peers
	HeapPerPeer  float64 `json:"heap_per_peer_bytes"`    // (HeapEnd − HeapTasks) ÷ peers
	PeersAtEnd   float64 `json:"supernode_peers_at_end"` // pouch_supernode_peers
	// LoadAvg is the machine's 1-minute load average at the start and the end of the load
	// phase: other work on the machine shows in the call times.
	LoadAvg [2]float64 `json:"load_average"`
}

// Latency is the distribution of a call's time.
type Latency struct {
	Calls int     `json:"calls"`
	P50   float64 `json:"p50_seconds"`
	P99   float64 `json:"p99_seconds"`
	Max   float64 `json:"max_seconds"`
}

func latency(xs []float64) Latency {
	return Latency{Calls: len(xs), P50: Percentile(xs, 50), P99: Percentile(xs, 99), Max: Percentile(xs, 100)}
}

// Load measures one supernode process scheduling cfg.Peers peers: it starts an origin and the
// supernode binary (with a cluster secret, so every call is signed and MACed both ways), lets
// the seed fetch every task, then plays the peers through every task at once (see loadGen)
// and reads the supernode's CPU and memory from /proc and its /metrics.
func Load(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	cfg = cfg.WithDefaults()
	res := LoadResult{Config: cfg}
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if _, err := os.Stat(filepath.Join(cfg.BinDir, "supernode")); err != nil {
		return res, fmt.Errorf("bench: supernode not found in %q (build it next to dfbench: go build -o bin/ ./cmd/...): %w", cfg.BinDir, err)
	}
	work := cfg.WorkDir
	if work == "" {
		dir, err := os.MkdirTemp("", "pouch-load-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		work = dir
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return res, err
	}
	data, _, err := generate(cfg.Size, cfg.Seed)
	if err != nil {
		return res, err
	}
	o, err := startOrigin(data, cfg.Size, 0)
	if err != nil {
		return res, err
	}
	defer o.close()
	key := make([]byte, 16)
	rand.Read(key)
	secret := hex.EncodeToString(key)
	sn, err := startProc(ctx, cfg.BinDir, work, "supernode", "supernode", "--data-dir", filepath.Join(work, "supernode"),
		"--listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--allow-networks", "127.0.0.0/8",
		"--secret", secret, "--log-level", "warn")
	if err != nil {
		return res, err
	}
	defer sn.kill()
	pid := sn.Cmd.Process.Pid

	g, err := newLoadGen(cfg, "http://"+sn.HTTP, o.url, secret)
	if err != nil {
		return res, err
	}
	start, err := sample(ctx, sn, pid)
	if err != nil {
		return res, err
	}
	if err := g.warm(ctx, secret); err != nil {
		return res, err
	}
	warm, err := sample(ctx, sn, pid)
	if err != nil {
		return res, err
	}
	self0, _ := cpuSeconds(os.Getpid())
	t0 := time.Now()
	res.LoadAvg[0] = loadAverage()
	g.run(ctx)
	res.LoadAvg[1] = loadAverage()
	res.Seconds = time.Since(t0).Seconds()
	self1, _ := cpuSeconds(os.Getpid())
	if ctx.Err() != nil {
		return res, fmt.Errorf("bench: load: %w", ctx.Err())
	}
	end, err := sample(ctx, sn, pid)
	if err != nil {
		return res, err
	}
	res.PeakRSS = sn.peakRSS()

	res.Register, res.Sync = latency(g.register), latency(g.sync)
	res.SchedRegisterP50, res.SchedRegisterP99 = bucketQuantiles(warm.m, end.m, callRegister)
	res.SchedSyncP50, res.SchedSyncP99 = bucketQuantiles(warm.m, end.m, callSync)
	res.Heartbeats, res.Errors, res.PeerParents = g.heartbeats.Load(), g.errs.Load(), g.peerParents.Load()
	res.SimulatedBytes = g.bytes.Load()
	res.CPUSeconds, res.GeneratorCPU = end.cpu-warm.cpu, self1-self0
	res.Cores = res.CPUSeconds / res.Seconds
	res.CPUPerGiB = res.CPUSeconds / (float64(res.SimulatedBytes) / (1 << 30))
	res.CPUPerPeer = res.CPUSeconds / float64(cfg.Peers)
	res.RSSStart, res.RSSTasks, res.RSSEnd = start.rss, warm.rss, end.rss
	res.HeapTasks, res.HeapEnd = warm.heap, end.heap
	res.RSSPerTask = float64(warm.rss-start.rss) / float64(cfg.Tasks)
	res.RSSPerPeer = float64(end.rss-warm.rss) / float64(cfg.Peers)
	res.HeapPerPeer = float64(end.heap-warm.heap) / float64(cfg.Peers)
	res.PeersAtEnd = end.m.Sum("pouch_supernode_peers", nil)
	return res, g.err()
}

// loadAverage is the machine's 1-minute load average; 0 if unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// The call labels of pouch_supernode_schedule_seconds (supernode/metrics.go).
const (
	callRegister = "register"
	callSync     = "sync"
)

// procSample is the supernode's state at one moment.
type procSample struct {
	cpu  float64
	rss  int64
	heap int64
	m    scrape.Families
}

func sample(ctx context.Context, p *proc, pid int) (procSample, error) {
	m, err := p.metrics(ctx)
	if err != nil {
		return procSample{}, err
	}
	cpu, err := cpuSeconds(pid)
	if err != nil {
		return procSample{}, err
	}
	rss, err := statusBytes(pid, "VmRSS:")
	if err != nil {
		return procSample{}, err
	}
	return procSample{cpu: cpu, rss: rss, heap: int64(m.Sum("go_memstats_heap_inuse_bytes", nil)), m: m}, nil
}

// userHZ is the unit of /proc/<pid>/stat's times: USER_HZ, 100 on every Linux architecture Go
// supports.
const userHZ = 100

// cpuSeconds is a process's user + system time from /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count after its end.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: /proc/%d/stat: %d fields after the name", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("bench: /proc/%d/stat: %w", pid, err)
	}
	return float64(utime+stime) / userHZ, nil
}

// statusBytes reads a "kB" line of /proc/<pid>/status (VmRSS:, VmHWM:).
func statusBytes(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			if f := strings.Fields(v); len(f) > 0 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("bench: /proc/%d/status has no %s", pid, key)
}

// bucketQuantiles are the upper bounds of the buckets holding the 50th and 99th percentiles of
// the observations of pouch_supernode_schedule_seconds{call} made between two scrapes.
func bucketQuantiles(before, after scrape.Families, call string) (p50, p99 float64) {
	b0, b1 := buckets(before, call), buckets(after, call)
	if len(b1) == 0 {
		return 0, 0
	}
	delta := make([]uint64, len(b1))
	for i, b := range b1 {
		delta[i] = b.GetCumulativeCount()
		if i < len(b0) {
			delta[i] -= b0[i].GetCumulativeCount()
		}
	}
	q := func(p float64) float64 {
		total := delta[len(delta)-1]
		for i, c := range delta {
			if float64(c) >= p*float64(total) {
				return b1[i].GetUpperBound()
			}
		}
		return math.Inf(1)
	}
	return q(0.5), q(0.99)
}

func buckets(f scrape.Families, call string) []*dto.Bucket {
	for _, m := range f["pouch_supernode_schedule_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "call" && l.GetValue() == call {
				return m.GetHistogram().GetBucket()
			}
		}
	}
	return nil
}

// LoadFile is the file [WriteLoadDir] writes.
const LoadFile = "load.json"

// WriteLoadDir writes r as load.json in dir.
func WriteLoadDir(dir string, r LoadResult) error { return writeJSON(dir, LoadFile, r) }

// WriteLoad prints r as dfbench's other modes print theirs.
func WriteLoad(w io.Writer, r LoadResult) error {
	c := r.Config
	fmt.Fprintf(w, "load: %d peers on one supernode joining over %v, %d tasks of %s each, every peer through every task at %s; sync every %v, heartbeat every %v, %d HTTP connections\n\n",
		c.Peers, max(c.Ramp, 0), c.Tasks, units.BytesSize(float64(c.Size)), rate(c.DownloadRate), c.SyncInterval, c.Heartbeat, c.Conns)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "call (as the peers saw it)\tcalls\tp50 (ms)\tp99 (ms)\tmax (ms)\tsupernode decision p50, p99 (ms, bucket bound)")
	for _, l := range []struct {
		name     string
		l        Latency
		p50, p99 float64
	}{{"register", r.Register, r.SchedRegisterP50, r.SchedRegisterP99}, {"sync", r.Sync, r.SchedSyncP50, r.SchedSyncP99}} {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t≤ %.3f, ≤ %.3f\n", l.name, l.l.Calls, l.l.P50*1e3, l.l.P99*1e3, l.l.Max*1e3, l.p50*1e3, l.p99*1e3)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	calls := float64(r.Register.Calls+r.Sync.Calls) + float64(r.Heartbeats)
	fmt.Fprintf(w, "\nload phase %.1f s (machine load average %.1f → %.1f): %.0f calls/s (%d heartbeats), %s reported (simulated), %d answers named a peer parent, %d calls failed\n",
		r.Seconds, r.LoadAvg[0], r.LoadAvg[1], calls/r.Seconds, r.Heartbeats, units.BytesSize(float64(r.SimulatedBytes)), r.PeerParents, r.Errors)
	fmt.Fprintf(w, "supernode CPU: %.2f s = %.2f cores; %.0f µs per call, %.3f s per GiB distributed, %.2f ms per peer (the generator: %.2f s)\n",
		r.CPUSeconds, r.Cores, r.CPUSeconds/calls*1e6, r.CPUPerGiB, r.CPUPerPeer*1e3, r.GeneratorCPU)
	fmt.Fprintf(w, "supernode RSS: %s started, %s with the tasks, %s with every peer (peak %s): %s per task, %s per peer (%d tasks each)\n",
		mib(r.RSSStart), mib(r.RSSTasks), mib(r.RSSEnd), mib(r.PeakRSS), kib(r.RSSPerTask), kib(r.RSSPerPeer), c.Tasks)
	_, err := fmt.Fprintf(w, "supernode Go heap in use: %s with the tasks, %s with every peer: %s per peer; peers known at the end: %.0f\n",
		mib(r.HeapTasks), mib(r.HeapEnd), kib(r.HeapPerPeer), r.PeersAtEnd)
	return err
}

func mib(b int64) string   { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/(1<<10)) }
