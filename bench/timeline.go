package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	units "github.com/docker/go-units"
)

// TimelineInterval is how often [Run] samples the daemons' byte counters with Config.Timeline.
const TimelineInterval = 250 * time.Millisecond

// TimelinePlot is the file [WriteDir] writes the timeline's plot to.
const TimelinePlot = "timeline.svg"

// Timeline is what a run's sampler read every [TimelineInterval] from the start of the first
// wave: the bytes each dfdaemon had downloaded and uploaded (its metrics), what the seed had
// fetched and uploaded, and what dfbench's origin had sent. It shows where a run loses time
// against the bound: [Timeline.Decompose].
type Timeline struct {
	Seconds    []float64 `json:"seconds"`     // sample times since the first wave's start
	OriginSent []int64   `json:"origin_sent"` // bytes dfbench's origin had sent
	SeedOrigin []int64   `json:"seed_origin"` // pouch_supernode_origin_bytes_total: verified pieces from the origin
	SeedUpload []int64   `json:"seed_upload"` // pouch_supernode_seed_upload_bytes_total
	Down       [][]int64 `json:"down"`        // per node: pouch_dfdaemon_download_bytes_total
	Up         [][]int64 `json:"up"`          // per node: pouch_dfdaemon_upload_bytes_total
	// Decomposition of each node's time, from these samples and its completion time.
	Nodes []NodeTimeline `json:"nodes"`
	Seed  SeedTimeline   `json:"seed"`
}

// NodeTimeline splits one node's completion time T into what it spent before its first byte
// (Start), receiving (Receive: first byte to its last, F/d at best), and after its last byte
// (End: the whole-content check, the copy to the output file, dfget's exit). Below is
// Receive − F/d: the time lost to downloading below the cap in the middle. Times are from the
// start of the node's wave, interpolated between samples (±TimelineInterval/2). Behind is how
// long after the seed had a byte from the origin the node had it, on average over the bytes:
// the depth of the pipeline from the seed to this node (counted from the first wave's start).
type NodeTimeline struct {
	Start   float64 `json:"start_seconds"`
	Receive float64 `json:"receive_seconds"`
	End     float64 `json:"end_seconds"`
	Below   float64 `json:"below_cap_seconds"`
	Behind  float64 `json:"behind_seed_seconds"`
}

// SeedTimeline says when the seed's first and last origin bytes came (the origin's rate bounds
// the whole run when it equals the nodes' download) and how its upload kept up: Held is how
// long a byte stayed at the seed between its arrival from the origin and its first upload, on
// average over the bytes.
type SeedTimeline struct {
	OriginFirst float64 `json:"origin_first_seconds"`
	OriginLast  float64 `json:"origin_last_seconds"` // the seed held the whole content
	UploadFirst float64 `json:"upload_first_seconds"`
	Held        float64 `json:"held_seconds"`
}

// sampler reads the counters of a running phase.
type sampler struct {
	sn      *proc
	daemons []*proc
	origin  func() int64
	start   time.Time

	mu sync.Mutex
	tl Timeline
}

// run samples every TimelineInterval until ctx ends. A failed scrape leaves the previous value
// (a daemon busy for a moment), so the series stay aligned.
func (s *sampler) run(ctx context.Context) {
	s.tl.Down = make([][]int64, len(s.daemons))
	s.tl.Up = make([][]int64, len(s.daemons))
	t := time.NewTicker(TimelineInterval)
	defer t.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) sample(ctx context.Context) {
	// The time and the origin's count first: the scrapes below may take a while on a busy
	// machine, and every value is taken as of the sample's time.
	at, sent := time.Since(s.start).Seconds(), s.origin()
	last := func(xs []int64) int64 {
		if len(xs) == 0 {
			return 0
		}
		return xs[len(xs)-1]
	}
	down := make([]int64, len(s.daemons))
	up := make([]int64, len(s.daemons))
	var wg sync.WaitGroup
	for i, d := range s.daemons {
		down[i], up[i] = -1, -1
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m, err := d.metrics(ctx, "pouch_dfdaemon_download_bytes_total", "pouch_dfdaemon_upload_bytes_total"); err == nil {
				down[i] = int64(m.Sum("pouch_dfdaemon_download_bytes_total", nil))
				up[i] = int64(m.Sum("pouch_dfdaemon_upload_bytes_total", nil))
			}
		}()
	}
	seedOrigin, seedUp := int64(-1), int64(-1)
	if m, err := s.sn.metrics(ctx, "pouch_supernode_origin_bytes_total", "pouch_supernode_seed_upload_bytes_total"); err == nil {
		seedOrigin = int64(m.Sum("pouch_supernode_origin_bytes_total", nil))
		seedUp = int64(m.Sum("pouch_supernode_seed_upload_bytes_total", nil))
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pick := func(v int64, xs []int64) int64 {
		if v < 0 {
			return last(xs)
		}
		return v
	}
	s.tl.Seconds = append(s.tl.Seconds, at)
	s.tl.OriginSent = append(s.tl.OriginSent, sent)
	s.tl.SeedOrigin = append(s.tl.SeedOrigin, pick(seedOrigin, s.tl.SeedOrigin))
	s.tl.SeedUpload = append(s.tl.SeedUpload, pick(seedUp, s.tl.SeedUpload))
	for i := range s.daemons {
		s.tl.Down[i] = append(s.tl.Down[i], pick(down[i], s.tl.Down[i]))
		s.tl.Up[i] = append(s.tl.Up[i], pick(up[i], s.tl.Up[i]))
	}
}

// timeline returns what was sampled.
func (s *sampler) timeline() Timeline {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tl
}

// crossing is the time a non-decreasing series first exceeds level (above true) or reaches it
// (above false), interpolated linearly between the samples around it; NaN if it never does.
func crossing(ts []float64, xs []int64, level int64, above bool) float64 {
	for i, x := range xs {
		if (above && x > level) || (!above && x >= level) {
			if i == 0 {
				return ts[0]
			}
			x0, x1 := float64(xs[i-1]), float64(x)
			return ts[i-1] + (ts[i]-ts[i-1])*(float64(level)-x0)/(x1-x0)
		}
	}
	return math.NaN()
}

// lag is how long after series lead each of the first size bytes reached series follow, on
// average: the area between the two non-decreasing curves (both capped at size) over size,
// the samples joined by straight lines.
func lag(ts []float64, lead, follow []int64, size int64) float64 {
	gap := func(i int) float64 {
		return float64(max(0, min(lead[i], size)-min(follow[i], size)))
	}
	area := 0.0
	for i := 1; i < len(ts) && i < len(lead) && i < len(follow); i++ {
		area += (ts[i] - ts[i-1]) * (gap(i-1) + gap(i)) / 2
	}
	return area / float64(size)
}

// Decompose fills tl.Nodes and tl.Seed from the samples, each node's completion time (nodes)
// and the start of its wave (waveStart, seconds since the first wave's start), for content of
// size bytes at download cap d.
func (tl *Timeline) Decompose(nodes []NodeResult, waveStart []float64, size, d int64) {
	ideal := float64(size) / float64(d)
	tl.Nodes = make([]NodeTimeline, len(tl.Down))
	for i, xs := range tl.Down {
		if i >= len(nodes) {
			break
		}
		w0 := 0.0
		if nodes[i].Wave < len(waveStart) {
			w0 = waveStart[nodes[i].Wave]
		}
		first := crossing(tl.Seconds, xs, 0, true) - w0
		last := crossing(tl.Seconds, xs, size, false) - w0
		first = math.Max(first, 0)
		last = math.Min(last, nodes[i].Seconds)
		n := NodeTimeline{Start: first, Receive: last - first, End: nodes[i].Seconds - last}
		n.Below = n.Receive - ideal
		n.Behind = lag(tl.Seconds, tl.SeedOrigin, xs, size)
		tl.Nodes[i] = n
	}
	tl.Seed = SeedTimeline{
		OriginFirst: crossing(tl.Seconds, tl.SeedOrigin, 0, true),
		OriginLast:  crossing(tl.Seconds, tl.SeedOrigin, size, false),
		UploadFirst: crossing(tl.Seconds, tl.SeedUpload, 0, true),
		Held:        lag(tl.Seconds, tl.SeedOrigin, tl.SeedUpload, size),
	}
}

// writeDecomposition prints the means and extremes of tl's decomposition.
func writeDecomposition(w io.Writer, tl *Timeline, size, d, originRate int64) {
	if len(tl.Nodes) == 0 {
		return
	}
	stat := func(f func(NodeTimeline) float64) string {
		lo, hi, sum, n := math.Inf(1), math.Inf(-1), 0.0, 0
		for _, x := range tl.Nodes {
			v := f(x)
			if math.IsNaN(v) {
				continue
			}
			lo, hi, sum, n = math.Min(lo, v), math.Max(hi, v), sum+v, n+1
		}
		if n == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f s (%.2f–%.2f)", sum/float64(n), lo, hi)
	}
	fmt.Fprintf(w, "timeline (every %v, ±%v): per node, mean (min–max): before the first byte %s, receiving %s (F/d = %.2f s; below the cap %s), after the last byte %s\n",
		TimelineInterval, TimelineInterval/2,
		stat(func(n NodeTimeline) float64 { return n.Start }), stat(func(n NodeTimeline) float64 { return n.Receive }),
		float64(size)/float64(d), stat(func(n NodeTimeline) float64 { return n.Below }), stat(func(n NodeTimeline) float64 { return n.End }))
	fmt.Fprintf(w, "seed: first origin byte %.2f s, whole content from the origin %.2f s (F/origin rate = %.2f s), first upload %.2f s; a byte held %.2f s before it first went out; the nodes had each byte %s after the seed (mean over the bytes)\n",
		tl.Seed.OriginFirst, tl.Seed.OriginLast, float64(size)/float64(originRate), tl.Seed.UploadFirst, tl.Seed.Held,
		stat(func(n NodeTimeline) float64 { return n.Behind }))
}

// TimelineSVG plots the bytes over time: each node's download, the seed's origin fetch and
// upload, and the cap's line from 0 (a node at its cap from the start).
func TimelineSVG(r Result) string {
	tl := r.Timeline
	mib := func(v int64) float64 { return float64(v) / (1 << 20) }
	line := func(xs []int64) []point {
		p := make([]point, len(xs))
		for i, x := range xs {
			p[i] = point{tl.Seconds[i], mib(x)}
		}
		return p
	}
	var ss []series
	for i, xs := range tl.Down {
		name := ""
		if i == 0 {
			name = "nodes' downloads"
		}
		ss = append(ss, series{name: name, color: "#9ecae1", pts: line(xs)})
	}
	ss = append(ss, series{name: "seed: from the origin", color: "#d62728", pts: line(tl.SeedOrigin)})
	ss = append(ss, series{name: "seed: uploaded", color: "#ff7f0e", pts: line(tl.SeedUpload)})
	end := float64(r.SizeBytes) / float64(r.DownloadRate)
	ss = append(ss, series{name: "download cap from 0", color: "#2ca02c", dashed: true, pts: []point{{0, 0}, {end, mib(r.SizeBytes)}}})
	title := fmt.Sprintf("run %s: N=%d, %s — bytes over time", r.Mode, r.Nodes, units.BytesSize(float64(r.SizeBytes)))
	return plot(title, "seconds", "MiB", false, ss)
}
