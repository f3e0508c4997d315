package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"

	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/internal/scrape"
)

// TinyConfig is the small-file measurement: what does dfget of a small file that a peer
// already holds cost, end to end, next to a plain HTTP GET of the same file from the origin?
type TinyConfig struct {
	Size  int64 // bytes of each file (default 1 KiB)
	Count int   // files fetched, each once, each timed (default 50)

	BinDir  string        // supernode, dfdaemon and dfget
	WorkDir string        // the daemons' data and logs (default: a temporary directory, removed)
	Timeout time.Duration // bounds the whole measurement (default 5 min)
}

// WithDefaults fills the zero fields.
func (c TinyConfig) WithDefaults() TinyConfig {
	if c.Size == 0 {
		c.Size = 1 << 10
	}
	if c.Count == 0 {
		c.Count = 50
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	return c
}

// Validate reports a configuration that cannot run.
func (c TinyConfig) Validate() error {
	if c.Size < 1 || c.Size > tinyMax || c.Count < 1 {
		return fmt.Errorf("bench: tiny needs a size of 1 B to %s and at least one file (got %d B, %d files)",
			units.BytesSize(tinyMax), c.Size, c.Count)
	}
	return nil
}

// tinyMax bounds the file size: this measures a fixed cost, not throughput.
const tinyMax = 16 << 20

// TinyResult is what [Tiny] measured, in milliseconds per file.
type TinyResult struct {
	Config TinyConfig `json:"config"`
	// DFGet is each dfget process's wall time on the fetching node, from its start to its
	// exit with the file written.
	DFGet []float64 `json:"dfgetMs"`
	// Direct is each plain HTTP GET of the same URL from the origin, on a new connection, in
	// dfbench's own process: the baseline.
	Direct []float64 `json:"directMs"`
	// Start is each `dfget --version`: the part of DFGet that is starting a process at all.
	Start []float64 `json:"startMs"`
	// API is each request of another file, held by a peer as well, straight to the fetching
	// node's local API from dfbench's process: DFGet without dfget's process.
	API []float64 `json:"apiMs"`
	// FromPeers and FromOrigin are the bytes the fetching node received from peers and from
	// the origin during the timed fetches; OriginSent is what the origin sent meanwhile (to
	// anyone). A fetch from a peer that holds the file has FromOrigin = OriginSent = 0.
	FromPeers  float64 `json:"fromPeers"`
	FromSeed   float64 `json:"fromSeed"` // the part of FromPeers that came from the supernode's seed
	FromOrigin float64 `json:"fromOrigin"`
	OriginSent int64   `json:"originSent"`
}

// Tiny measures the fixed cost of small downloads from a peer: an origin serving Count files
// of Size bytes, a supernode and two dfdaemons as processes on loopback. The first daemon (the
// holder) fetches every file with dfget, so it and the supernode's seed hold them; then dfget
// fetches each file once through the second daemon, timed, alternating with a plain HTTP GET
// of the same URL from the origin, a bare `dfget --version` and a request of another file to
// the second daemon's local API from this process. One untimed fetch through the
// second daemon first opens its connections, as a daemon that has been running would have.
func Tiny(ctx context.Context, cfg TinyConfig) (TinyResult, error) {
	cfg = cfg.WithDefaults()
	res := TinyResult{Config: cfg}
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	work := cfg.WorkDir
	if work == "" {
		dir, err := os.MkdirTemp("", "pouch-bench-tiny-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		work = dir
	}
	logs := filepath.Join(work, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return res, err
	}
	data, _ := content(cfg.Size, 1)
	o, err := startOrigin(bytes.NewReader(data), int64(len(data)), 0)
	if err != nil {
		return res, err
	}
	defer o.close()

	common := append((*netnsNet)(nil).listenArgs(0), "--log-level", "warn")
	sn, err := startProc(ctx, cfg.BinDir, logs, "supernode", "supernode", append([]string{"--data-dir", filepath.Join(work, "supernode")}, common...)...)
	if err != nil {
		return res, err
	}
	defer sn.kill()
	var daemons [2]*proc
	defer func() {
		for _, d := range daemons {
			d.kill()
		}
	}()
	for i, name := range []string{"holder", "fetcher"} {
		args := append([]string{"--data-dir", filepath.Join(work, name), "--supernode", "http://" + sn.HTTP}, common...)
		if daemons[i], err = startProc(ctx, cfg.BinDir, logs, name, "dfdaemon", args...); err != nil {
			return res, err
		}
	}
	holder, fetcher := daemons[0], daemons[1]
	dfget := filepath.Join(cfg.BinDir, "dfget")
	out := filepath.Join(work, "out")
	// Each file is its own task: the task ID of a URL fetched without --digest is the URL's.
	url := func(k int) string { return fmt.Sprintf("%s/tiny/%d", o.url, k) }
	get := func(d *proc, u string) error {
		if err := runCommand(ctx, dfget, u, "-O", out, "--daemon", "http://"+d.HTTP, "--quiet"); err != nil {
			return err
		}
		got, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, data) {
			return fmt.Errorf("bench: dfget %s through %s wrote %d bytes that are not the file", u, d.Name, len(got))
		}
		return os.Remove(out)
	}
	for k := -1; k < 2*cfg.Count; k++ { // k = -1: the untimed warm-up file; from Count on: the API's
		if err := get(holder, url(k)); err != nil {
			return res, fmt.Errorf("holder: %w", err)
		}
	}
	if err := get(fetcher, url(-1)); err != nil {
		return res, fmt.Errorf("fetcher, warm-up: %w", err)
	}
	before, err := nodeBytes(ctx, fetcher)
	if err != nil {
		return res, err
	}
	sent0 := o.sent.Load()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for k := range cfg.Count {
		start := time.Now()
		if err := get(fetcher, url(k)); err != nil {
			return res, fmt.Errorf("fetcher: %w", err)
		}
		res.DFGet = append(res.DFGet, ms(time.Since(start)))

		start = time.Now()
		if err := httpGet(ctx, client, url(k), data); err != nil {
			return res, err
		}
		res.Direct = append(res.Direct, ms(time.Since(start)))

		start = time.Now()
		if err := runCommand(ctx, dfget, "--version"); err != nil {
			return res, err
		}
		res.Start = append(res.Start, ms(time.Since(start)))

		start = time.Now()
		if err := apiGet(ctx, fetcher, url(cfg.Count+k), data); err != nil {
			return res, err
		}
		res.API = append(res.API, ms(time.Since(start)))
	}
	// The direct GETs are the origin's only sends meant here; the rest would be P2P failing.
	res.OriginSent = o.sent.Load() - sent0 - int64(cfg.Count)*cfg.Size
	after, err := nodeBytes(ctx, fetcher)
	if err != nil {
		return res, err
	}
	res.FromPeers, res.FromSeed, res.FromOrigin = after[0]-before[0], after[1]-before[1], after[2]-before[2]
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runCommand runs prog with args, its stderr in the error.
func runCommand(ctx context.Context, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, prog, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(prog), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// httpGet fetches url and checks that the body is want.
func httpGet(ctx context.Context, client *http.Client, url string, want []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
		return fmt.Errorf("bench: GET %s: %s, %d bytes that are not the file", url, resp.Status, len(got))
	}
	return nil
}

// apiGet asks d's local API for url, as dfget does, on a new connection, and checks that the
// content is want.
func apiGet(ctx context.Context, d *proc, url string, want []byte) error {
	c, err := dfapi.NewClient("http://" + d.HTTP)
	if err != nil {
		return err
	}
	c.HTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	dl, err := c.Download(ctx, dfapi.DownloadRequest{URL: url})
	if err != nil {
		return fmt.Errorf("bench: %s through the local API of %s: %w", url, d.Name, err)
	}
	defer dl.Body.Close()
	got, err := io.ReadAll(dl.Body)
	if err != nil {
		return fmt.Errorf("bench: %s through the local API of %s: %w", url, d.Name, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("bench: %s through the local API of %s: %d bytes that are not the file", url, d.Name, len(got))
	}
	return nil
}

// nodeBytes reads a dfdaemon's bytes received over P2P, the part of them from the seed, and
// from the origin.
func nodeBytes(ctx context.Context, d *proc) ([3]float64, error) {
	m, err := d.metrics(ctx)
	if err != nil {
		return [3]float64{}, err
	}
	const name = "pouch_dfdaemon_download_bytes_total"
	return [3]float64{m.Sum(name, scrape.Labels{"source": "peer"}), m.Sum(name, scrape.Labels{"source": "peer", "from": "seed"}),
		m.Sum(name, scrape.Labels{"source": "origin"})}, nil
}

// TinyFile is the file [WriteTinyDir] writes.
const TinyFile = "tiny.json"

// WriteTinyDir writes the result as JSON into dir.
func WriteTinyDir(dir string, r TinyResult) error { return writeJSON(dir, TinyFile, r) }

// ErrTinyNotP2P is a measurement whose fetches did not all come from peers: its times are
// not those of a file a peer holds.
var ErrTinyNotP2P = errors.New("bench: the timed fetches did not all come from peers")

// Check says whether every timed fetch came from a peer, nothing from the origin.
func (r TinyResult) Check() error {
	want := float64(r.Config.Size) * float64(len(r.DFGet)+len(r.API))
	if r.FromPeers != want || r.FromOrigin != 0 || r.OriginSent != 0 {
		return fmt.Errorf("%w: %.0f bytes from peers (want %.0f), %.0f from the origin, the origin sent %d besides the direct GETs",
			ErrTinyNotP2P, r.FromPeers, want, r.FromOrigin, r.OriginSent)
	}
	return nil
}

// WriteTiny prints the measurement as a table.
func WriteTiny(w io.Writer, r TinyResult) error {
	c := r.Config
	fmt.Fprintf(w, "tiny: %d files of %s, each held by a peer, fetched once with dfget through another dfdaemon; baseline: HTTP GET from the origin on a new connection\n\n",
		c.Count, units.BytesSize(float64(c.Size)))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "what\tp50 (ms)\tp99 (ms)\tmax (ms)")
	for _, row := range []struct {
		name string
		xs   []float64
	}{{"dfget through the dfdaemon, from a peer", r.DFGet}, {"HTTP GET from the origin", r.Direct}, {"dfget --version (process start)", r.Start},
		{"local API of the dfdaemon, from a peer (no dfget process)", r.API}} {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\n", row.name, Percentile(row.xs, 50), Percentile(row.xs, 99), Percentile(row.xs, 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\ndfget p50 ÷ direct p50: %.1f; the fetching node received %.0f bytes over P2P (%.0f of them from the seed), %.0f from the origin\n",
		Percentile(r.DFGet, 50)/Percentile(r.Direct, 50), r.FromPeers, r.FromSeed, r.FromOrigin)
	return err
}
