package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pouch-p2p/pouch/internal/scrape"
)

// Binaries [Run] needs in Config.BinDir.
var Binaries = []string{"supernode", "dfdaemon", "dfget"}

// ErrNodesFailed is returned (with a complete Result) when some node's download failed or its
// digest did not match.
var ErrNodesFailed = errors.New("bench: some nodes failed")

// Run measures Pouch on cfg.Nodes dfdaemons on loopback: it starts the origin, a supernode and the
// daemons as separate processes, pulls the content on every node with dfget (all at once, or in
// waves), checks every copy's SHA-256 and reads the daemons' metrics. With cfg.Baseline it then
// runs the same workload on fresh daemons with no supernode, every node pulling from the origin.
// Cancelling ctx stops every process it started.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.PieceSize != 0 {
		return Result{}, errors.New("bench: the daemons choose their own piece size; PieceSize is for the simulator only")
	}
	if err := cfg.CheckMachine(); err != nil {
		return Result{}, err
	}
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return Result{}, fmt.Errorf("bench: %s not found in %q (build it next to dfbench: go build -o bin/ ./cmd/...): %w", b, cfg.BinDir, err)
		}
	}
	work := cfg.WorkDir
	if work == "" {
		dir, err := os.MkdirTemp("", "pouch-bench-")
		if err != nil {
			return Result{}, err
		}
		defer os.RemoveAll(dir)
		work = dir
	}
	var nn *netnsNet // nil: loopback
	if cfg.Netns {
		var err error
		if nn, err = setupNetns(ctx, cfg.Nodes, cfg.UploadRate, cfg.DownloadRate, false); err != nil {
			return Result{}, err
		}
		defer nn.close() // after every process and the origin have stopped
	}
	var wl workload
	var fileOrigin *origin
	if cfg.Layers > 0 {
		img, err := startImageOrigin(ctx, nn.originAddr(), cfg.Layers, cfg.Size, cfg.OriginRate)
		if err != nil {
			return Result{}, err
		}
		// F is what every node fetches: the random layers and the config.
		cfg.Size, wl = img.blobsTotal, img
	} else {
		data, sum, err := generate(cfg.Size, cfg.Seed)
		if err != nil {
			return Result{}, err
		}
		o, err := startOriginOn(nn.originAddr(), data, cfg.Size, cfg.OriginRate)
		if err != nil {
			return Result{}, err
		}
		fileOrigin, wl = o, &fileWorkload{o: o, sum: sum}
	}
	defer wl.close()

	res := cfg.header("run")
	p, err := runPhase(ctx, cfg, nn, filepath.Join(work, "p2p"), wl, true)
	if err != nil {
		return res, err
	}
	res.Timing = p.timing(cfg, cfg.TMin(), wl)
	res.BytesFromPeers, res.BytesFromSeed, res.BytesFromOrigin = p.fromPeers, p.fromSeed, p.fromOrigin
	res.SupernodeCPUSeconds, res.SupernodePeakRSS, res.DfdaemonPeakRSS = p.snCPU, p.snRSS, p.dRSS
	res.IdleDrops, res.Waits = p.idleDrops, p.waits
	if p.timeline != nil {
		p.timeline.Decompose(p.nodes, p.waveStart, cfg.Size, cfg.DownloadRate)
		res.Timeline = p.timeline
	}
	if cfg.Baseline {
		before := wl.sent()
		if fileOrigin != nil {
			fileOrigin.perConn.Store(cfg.DownloadRate)
		}
		b, err := runPhase(ctx, cfg, nn, filepath.Join(work, "baseline"), wl, false)
		if err != nil {
			return res, err
		}
		bt := b.timing(cfg, cfg.baselineTMin(), wl)
		bt.OriginBytes -= before
		bt.OriginRatio = float64(bt.OriginBytes) / float64(cfg.Size)
		res.Baseline = &BaselineResult{Timing: bt, Speedup: speedup(res.Timing, bt)}
		res.Timing.OriginBytes, res.Timing.OriginRatio = before, float64(before)/float64(cfg.Size)
	}
	if res.Failed > 0 || (res.Baseline != nil && res.Baseline.Failed > 0) {
		return res, fmt.Errorf("%w: %d of %d nodes (see per_node errors)", ErrNodesFailed, res.Failed, cfg.Nodes)
	}
	return res, nil
}

// phase is what one run of the workload measured.
type phase struct {
	nodes                           []NodeResult
	makespan                        float64
	fromPeers, fromSeed, fromOrigin int64
	snCPU                           float64
	snRSS, dRSS                     int64
	idleDrops                       uint64
	waits                           *Waits
	waveStart                       []float64 // seconds since the first wave's start
	timeline                        *Timeline // sampled with cfg.Timeline
}

func (p *phase) timing(cfg Config, tMin float64, wl workload) Timing {
	return summarize(p.nodes, tMin, p.makespan, wl.sent(), cfg.Size)
}

// runPhase starts a cluster (with a supernode when p2p, else daemons that go to the origin),
// runs the workload, checks the copies, reads the metrics and stops everything. With nn, every
// node's dfdaemon and dfget run in its namespace and its caps are nn's, not the daemon's flags.
func runPhase(ctx context.Context, cfg Config, nn *netnsNet, dir string, wl workload, p2p bool) (*phase, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	common := []string{"--log-level", "warn"}
	var sn *proc
	if p2p {
		var err error
		sn, err = startProc(ctx, cfg.BinDir, logs, "supernode", "supernode",
			append([]string{"--data-dir", filepath.Join(dir, "supernode"), "--upload-rate", strconv.FormatInt(cfg.SeedRate, 10)}, append(nn.listenArgs(-1), common...)...)...)
		if err != nil {
			return nil, err
		}
		procs = append(procs, sn)
	}
	daemons := make([]*proc, cfg.Nodes)
	err := parallel(cfg.Nodes, 8, func(i int) error {
		args := append([]string{"--data-dir", filepath.Join(dir, fmt.Sprintf("node%d", i))}, append(nn.listenArgs(i), common...)...)
		args = append(args, wl.daemonArgs()...)
		if nn == nil {
			args = append(args, "--upload-rate", strconv.FormatInt(cfg.UploadRate, 10), "--download-rate", strconv.FormatInt(cfg.DownloadRate, 10))
		}
		if sn != nil {
			args = append(args, "--supernode", "http://"+sn.HTTP)
		}
		prog, args := nn.command(i, filepath.Join(cfg.BinDir, "dfdaemon"), args...)
		var err error
		daemons[i], err = startProc(ctx, "", logs, fmt.Sprintf("dfdaemon%d", i), prog, args...)
		return err
	})
	for _, d := range daemons {
		if d != nil {
			procs = append(procs, d)
		}
	}
	if err != nil {
		return nil, err
	}

	ph := &phase{nodes: make([]NodeResult, cfg.Nodes)}
	start := time.Now()
	var (
		smp         *sampler
		stopSampler func()
	)
	if cfg.Timeline && p2p {
		smp = &sampler{sn: sn, daemons: daemons, origin: wl.sent, start: start}
		sctx, cancel := context.WithCancel(ctx)
		sampled := make(chan struct{})
		go func() { defer close(sampled); smp.run(sctx) }()
		stopSampler = func() { cancel(); <-sampled }
		defer stopSampler()
	}
	var checking time.Duration // the harness's checks between waves, not part of the makespan
	for w, wv := range cfg.waves() {
		wstart := time.Now()
		ph.waveStart = append(ph.waveStart, wstart.Sub(start).Seconds()) // the sampler's clock
		checks := make([]func() error, wv.n)
		parallel(wv.n, wv.n, func(k int) error {
			i := wv.first + k
			check, err := wl.fetch(ctx, cfg, nn, i, daemons[i], dir)
			// The time includes the fetcher's own digest check, as a pull's would, and not
			// the harness's check of the copy (below, once the whole wave is done: 16 nodes
			// hashing 128 MiB each took the 2 cores for seconds, counted as the nodes' time
			// until 2026-12-02).
			nr := NodeResult{Node: i, Wave: w, Seconds: time.Since(wstart).Seconds(), DigestOK: err == nil}
			if err != nil {
				nr.Error = err.Error()
			}
			ph.nodes[i], checks[k] = nr, check
			return nil
		})
		if ctx.Err() != nil {
			return nil, fmt.Errorf("bench: wave %d: %w", w, ctx.Err())
		}
		t := time.Now()
		if smp != nil && w == len(cfg.waves())-1 {
			// One last sample once every node finished, so each reaches the whole size.
			stopSampler()
			smp.sample(ctx)
		}
		parallel(wv.n, 2, func(k int) error {
			if checks[k] == nil {
				return nil
			}
			if err := checks[k](); err != nil {
				nr := &ph.nodes[wv.first+k]
				nr.DigestOK, nr.Error = false, err.Error()
			}
			return nil
		})
		checking += time.Since(t)
	}
	ph.makespan = (time.Since(start) - checking).Seconds()
	if smp != nil {
		tl := smp.timeline()
		ph.timeline = &tl
	}

	// Metrics and peak RSS before anything stops.
	var peer, orig, sending float64
	w := &Waits{Seconds: map[string]float64{}}
	for _, d := range daemons {
		m, err := d.metrics(ctx)
		if err != nil {
			return nil, err
		}
		peer += m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "peer"})
		orig += m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "origin"})
		ph.dRSS = max(ph.dRSS, d.peakRSS())
		for _, st := range waitStates {
			w.Seconds[st] += m.Sum("pouch_dfdaemon_download_wait_seconds_total", scrape.Labels{"state": st}) / float64(len(daemons))
		}
		sending += m.Sum("pouch_dfdaemon_download_sending_parents_seconds_total", nil)
		w.UploadBusy += m.Sum("pouch_dfdaemon_upload_busy_seconds_total", nil) / float64(len(daemons))
		w.Moved += m.Sum("pouch_dfdaemon_pieces_moved_total", scrape.Labels{"cancel": "true"}) / float64(len(daemons))
		w.Stolen += m.Sum("pouch_dfdaemon_pieces_moved_total", scrape.Labels{"cancel": "false"}) / float64(len(daemons))
	}
	if r := w.Seconds["receiving"] * float64(len(daemons)); r > 0 {
		w.SendingParents = sending / r
		ph.waits = w
	}
	if sn != nil {
		m, err := sn.metrics(ctx)
		if err != nil {
			return nil, err
		}
		ph.fromSeed = int64(m.Sum("pouch_supernode_seed_upload_bytes_total", nil))
		ph.snCPU = m.Sum("process_cpu_seconds_total", nil)
		ph.idleDrops = uint64(m.Sum("pouch_supernode_scheduler_events_total", scrape.Labels{"event": "idle_drop"}))
		ph.snRSS = sn.peakRSS()
	}
	ph.fromPeers, ph.fromOrigin = int64(peer)-ph.fromSeed, int64(orig)
	return ph, nil
}

// waitStates are the states of pouch_dfdaemon_download_wait_seconds_total, in the order
// dfbench prints them.
var waitStates = []string{"receiving", "requested", "undigested", "nothing", "no_parent"}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
