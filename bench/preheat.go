package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"

	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

// PreheatConfig is the preheat measurement: does warming an image on every node starve the
// nodes' live pulls? Sizes are bytes and rates bytes per second.
type PreheatConfig struct {
	Nodes       int   // dfdaemons (default 8)
	Layers      int   // layers of the preheated image (default 4)
	Size        int64 // the preheated image's layers in all (default 256 MiB)
	Pullers     int   // nodes that pull another image through their mirror during the preheat (default 2)
	LiveLayers  int   // layers of that image (default 2)
	LiveSize    int64 // its layers in all (default 64 MiB)
	Concurrency int   // the dfdaemons' --preheat-concurrency (0: their default)
	Runs        int   // repetitions; the ratio is over all of them (default 3)

	UploadRate   int64 // every node's upload cap (default 20 MB/s)
	DownloadRate int64 // every node's download cap (default 20 MB/s)
	SeedRate     int64 // the seed's upload cap (default UploadRate)
	OriginRate   int64 // the registry's, all connections together (default 100 MB/s)

	BinDir  string        // supernode and dfdaemon
	WorkDir string        // the daemons' data and logs (default: a temporary directory, removed)
	Timeout time.Duration // bounds each phase (default 5 min)
}

// WithDefaults fills the zero fields.
func (c PreheatConfig) WithDefaults() PreheatConfig {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	for _, f := range []struct {
		v *int
		d int
	}{{&c.Nodes, 8}, {&c.Layers, 4}, {&c.Pullers, 2}, {&c.LiveLayers, 2}, {&c.Runs, 3}} {
		if *f.v == 0 {
			*f.v = f.d
		}
	}
	def(&c.Size, 256<<20)
	def(&c.LiveSize, 64<<20)
	def(&c.UploadRate, 20e6)
	def(&c.DownloadRate, 20e6)
	def(&c.SeedRate, c.UploadRate)
	def(&c.OriginRate, 100e6)
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	return c
}

// Validate reports a configuration that cannot run.
func (c PreheatConfig) Validate() error {
	var errs []error
	if c.Pullers < 1 || c.Pullers > c.Nodes {
		errs = append(errs, fmt.Errorf("bench: %d pullers on %d nodes", c.Pullers, c.Nodes))
	}
	if c.Layers < 1 || c.LiveLayers < 1 || c.Size < int64(c.Layers) || c.LiveSize < int64(c.LiveLayers) {
		errs = append(errs, errors.New("bench: each image needs at least one layer and a byte per layer"))
	}
	if c.UploadRate < 1 || c.DownloadRate < 1 || c.SeedRate < 1 || c.OriginRate < 1 || c.Runs < 1 || c.Concurrency < 0 {
		errs = append(errs, errors.New("bench: rates and runs must be positive"))
	}
	return errors.Join(errs...)
}

// PreheatResult is what [Preheat] measured. A live pull's time is from its manifest request to
// its last verified blob.
type PreheatResult struct {
	Config PreheatConfig `json:"config"`
	// Alone holds every live pull's seconds on a cluster doing nothing else; During the same
	// pulls' while the cluster preheats the other image on every node.
	Alone  []float64 `json:"alone"`
	During []float64 `json:"during"`
	// PreheatRate is, per pull during the preheat, what its node received of the preheated
	// image meanwhile, in bytes/s: how much the preheat went on beside the pull.
	PreheatRate []float64 `json:"preheatRate"`
	// PreheatSeconds is each run's job time, from creation to SUCCESS.
	PreheatSeconds []float64 `json:"preheatSeconds"`
	// Overlapped counts the runs whose live pulls all ended before the preheat did.
	Overlapped int `json:"overlapped"`
	// Ratio is the median of During over the median of Alone: 1 means the preheat cost the
	// live pulls nothing.
	Ratio float64 `json:"ratio"`
}

const (
	preheatRepo = "bench/preheat"
	liveRepo    = "bench/live"
	benchTagV1  = "v1"
)

// Preheat measures live pulls with and without a preheat running: per run, a fresh cluster
// where Pullers nodes pull the live image through their mirrors, then another fresh cluster
// where a preheat job (scope all-peers) warms the other image on every node and the same
// nodes pull the live image as soon as the seed holds a first layer of it (the peers are then
// fetching). Both images sit in one embedded registry.
func Preheat(ctx context.Context, cfg PreheatConfig) (PreheatResult, error) {
	cfg = cfg.WithDefaults()
	res := PreheatResult{Config: cfg}
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	work := cfg.WorkDir
	if work == "" {
		dir, err := os.MkdirTemp("", "pouch-bench-preheat-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		work = dir
	}
	warm, err := image.Random(cfg.Layers, cfg.Size)
	if err != nil {
		return res, err
	}
	live, err := image.Random(cfg.LiveLayers, cfg.LiveSize)
	if err != nil {
		return res, err
	}
	reg, err := registry.Start(ctx, registry.Options{BlobRate: cfg.OriginRate})
	if err != nil {
		return res, err
	}
	defer reg.Close()
	for repo, img := range map[string]*image.Image{preheatRepo: warm, liveRepo: live} {
		if err := img.Push(ctx, reg.URL, repo, benchTagV1, "", ""); err != nil {
			return res, err
		}
	}
	for run := range cfg.Runs {
		alone, err := preheatPhase(ctx, cfg, reg, live, filepath.Join(work, fmt.Sprintf("run%d-alone", run)), false)
		if err != nil {
			return res, fmt.Errorf("run %d, pulls alone: %w", run, err)
		}
		during, err := preheatPhase(ctx, cfg, reg, live, filepath.Join(work, fmt.Sprintf("run%d-during", run)), true)
		if err != nil {
			return res, fmt.Errorf("run %d, pulls during the preheat: %w", run, err)
		}
		res.Alone, res.During = append(res.Alone, alone.pulls...), append(res.During, during.pulls...)
		res.PreheatRate = append(res.PreheatRate, during.preheatRate...)
		res.PreheatSeconds = append(res.PreheatSeconds, during.job)
		if during.overlapped {
			res.Overlapped++
		}
	}
	res.Ratio = Percentile(res.During, 50) / Percentile(res.Alone, 50)
	return res, nil
}

// phaseResult is one phase of one run.
type phaseResult struct {
	pulls       []float64 // each live pull's seconds
	preheatRate []float64 // bytes/s of the preheat each pulling node received during its pull
	job         float64   // the preheat job's seconds
	overlapped  bool      // every live pull ended before the job
}

// preheatPhase starts a cluster and runs the live pulls, during a preheat when preheating.
func preheatPhase(ctx context.Context, cfg PreheatConfig, reg *registry.Registry, live *image.Image, dir string, preheating bool) (phaseResult, error) {
	var res phaseResult
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return res, err
	}
	common := []string{"--listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--allow-networks", "127.0.0.0/8", "--log-level", "warn"}
	sn, err := startProc(ctx, cfg.BinDir, logs, "supernode", "supernode", append([]string{"--data-dir", filepath.Join(dir, "supernode"),
		"--upload-rate", strconv.FormatInt(cfg.SeedRate, 10), "--registry-insecure", reg.Host}, common...)...)
	if err != nil {
		return res, err
	}
	defer sn.kill()
	daemons := make([]*proc, cfg.Nodes)
	defer func() {
		for _, d := range daemons {
			d.kill()
		}
	}()
	err = parallel(cfg.Nodes, 8, func(i int) error {
		args := append([]string{"--supernode", "http://" + sn.HTTP, "--data-dir", filepath.Join(dir, fmt.Sprintf("node%d", i)),
			"--registry-insecure", reg.Host, "--heartbeat", "500ms",
			"--upload-rate", strconv.FormatInt(cfg.UploadRate, 10), "--download-rate", strconv.FormatInt(cfg.DownloadRate, 10)}, common...)
		if cfg.Concurrency > 0 {
			args = append(args, "--preheat-concurrency", strconv.Itoa(cfg.Concurrency))
		}
		var err error
		daemons[i], err = startProc(ctx, cfg.BinDir, logs, fmt.Sprintf("dfdaemon%d", i), "dfdaemon", args...)
		return err
	})
	if err != nil {
		return res, err
	}

	var job snapi.PreheatJob
	cl := snapi.NewAdminClient("http://"+sn.HTTP, "")
	if preheating {
		if err := waitPeers(ctx, sn, cfg.Nodes); err != nil {
			return res, err
		}
		if job, err = cl.CreatePreheat(ctx, snapi.PreheatRequest{URL: reg.Host + "/" + preheatRepo + ":" + benchTagV1, Scope: snapi.ScopeAllPeers}); err != nil {
			return res, err
		}
		// Pull once the preheat is moving bytes into every pulling node.
		if err := waitReceived(ctx, daemons[:cfg.Pullers], preheatStarted); err != nil {
			return res, err
		}
	}
	before, err := received(ctx, daemons[:cfg.Pullers])
	if err != nil {
		return res, err
	}
	seconds := make([]float64, cfg.Pullers)
	errs := make([]error, cfg.Pullers)
	parallel(cfg.Pullers, cfg.Pullers, func(i int) error {
		start := time.Now()
		errs[i] = PullImage(ctx, "http://"+daemons[i].HTTP, reg.Host, liveRepo, benchTagV1, live)
		seconds[i] = time.Since(start).Seconds()
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	after, err := received(ctx, daemons[:cfg.Pullers])
	if err != nil {
		return res, err
	}
	for i := range after {
		// What the node received besides the live image: the preheat's share of its download.
		rate := (after[i] - before[i] - float64(blobsTotal(live))) / seconds[i]
		res.preheatRate = append(res.preheatRate, max(rate, 0))
	}
	res.pulls = seconds
	if !preheating {
		return res, nil
	}
	now, err := cl.Preheat(ctx, job.ID)
	res.overlapped = err == nil && !now.State.Final()
	if job, err = pollJob(ctx, cl, job.ID, func(j snapi.PreheatJob) bool { return j.State.Final() }); err != nil {
		return res, err
	}
	if job.State != snapi.StateSuccess || job.FinishedAt == nil {
		return res, fmt.Errorf("preheat job %s %s: %s", job.ID, job.State, job.Error)
	}
	res.job = job.FinishedAt.Sub(job.CreatedAt).Seconds()
	return res, nil
}

// preheatStarted is how much a pulling node must have received of the preheat before the
// live pulls start, so that they overlap with the peers' preheat downloads.
const preheatStarted = 4 << 20

// received reads each daemon's piece bytes received from peers.
func received(ctx context.Context, daemons []*proc) ([]float64, error) {
	out := make([]float64, len(daemons))
	for i, d := range daemons {
		m, err := d.metrics(ctx)
		if err != nil {
			return nil, err
		}
		out[i] = m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "peer"})
	}
	return out, nil
}

// waitReceived waits until every daemon has received at least n bytes from peers.
func waitReceived(ctx context.Context, daemons []*proc, n float64) error {
	for {
		got, err := received(ctx, daemons)
		if err != nil {
			return err
		}
		if slices.Min(got) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: the preheat never reached the pulling nodes: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func blobsTotal(img *image.Image) int64 {
	var n int64
	for _, b := range img.Blobs() {
		n += int64(len(b.Data))
	}
	return n
}

// waitPeers waits until n dfdaemons have made themselves known to the supernode.
func waitPeers(ctx context.Context, sn *proc, n int) error {
	for {
		m, err := sn.metrics(ctx)
		if err != nil {
			return err
		}
		if int(m.Sum("pouch_supernode_peers", nil)) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: %d dfdaemons never all heartbeated: %w", n, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pollJob asks for the job every 100 ms until until holds.
func pollJob(ctx context.Context, cl *snapi.AdminClient, id string, until func(snapi.PreheatJob) bool) (snapi.PreheatJob, error) {
	for {
		j, err := cl.Preheat(ctx, id)
		if err != nil {
			return j, err
		}
		if until(j) || j.State.Final() {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PreheatFile is the file [WritePreheatDir] writes.
const PreheatFile = "preheat.json"

// WritePreheatDir writes the result as JSON into dir.
func WritePreheatDir(dir string, r PreheatResult) error { return writeJSON(dir, PreheatFile, r) }

// WritePreheat prints the measurement as a table.
func WritePreheat(w io.Writer, r PreheatResult) error {
	c := r.Config
	fmt.Fprintf(w, "preheat: %d-layer image of %s to %d nodes (scope all-peers, %s); live: %d nodes pull a %d-layer %s image through their mirrors\n",
		c.Layers, units.BytesSize(float64(c.Size)), c.Nodes, concurrency(c.Concurrency), c.Pullers, c.LiveLayers, units.BytesSize(float64(c.LiveSize)))
	fmt.Fprintf(w, "caps: node upload %s, download %s, seed %s, registry %s\n\n", rate(c.UploadRate), rate(c.DownloadRate), rate(c.SeedRate), rate(c.OriginRate))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tlive pulls alone (s)\tlive pulls during preheat (s)\tpreheat received meanwhile (MB/s)\tpreheat job (s)")
	for run := range len(r.PreheatSeconds) {
		k := run * c.Pullers
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.2f\n", run+1, list(r.Alone[k:k+c.Pullers], 1), list(r.During[k:k+c.Pullers], 1),
			list(r.PreheatRate[k:k+c.Pullers], 1e6), r.PreheatSeconds[run])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nlive pull time during the preheat ÷ alone (medians): %.2f; the pulls ended before the preheat in %d of %d runs\n",
		r.Ratio, r.Overlapped, len(r.PreheatSeconds))
	return err
}

func concurrency(n int) string {
	if n == 0 {
		return "dfdaemon default concurrency"
	}
	return fmt.Sprintf("concurrency %d", n)
}

// list formats xs ÷ unit with two decimals, space-separated.
func list(xs []float64, unit float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.2f", x/unit)
	}
	return strings.Join(s, " ")
}
