package bench

import (
	"math"
	"slices"
)

// NodeResult is one node's outcome.
type NodeResult struct {
	Node     int     `json:"node"`
	Wave     int     `json:"wave"`
	Seconds  float64 `json:"seconds"`   // from the start of its wave to the end of its dfget (sim: to its last piece)
	DigestOK bool    `json:"digest_ok"` // the file it got has the content's SHA-256
	Error    string  `json:"error,omitempty"`
}

// Timing holds the completion times of a set of nodes against a bound.
type Timing struct {
	TMin        float64      `json:"t_min_seconds"`
	P50         float64      `json:"p50_seconds"`
	P99         float64      `json:"p99_seconds"`
	Max         float64      `json:"max_seconds"`
	MaxOverTMin float64      `json:"max_over_t_min"`
	P50OverTMin float64      `json:"p50_over_t_min"`
	Makespan    float64      `json:"makespan_seconds"` // first start to last completion (waves: all waves)
	OriginBytes int64        `json:"origin_bytes"`
	OriginRatio float64      `json:"origin_ratio"` // origin bytes ÷ content size
	Failed      int          `json:"failed_nodes"` // nodes whose download failed or whose digest did not match
	PerNode     []NodeResult `json:"per_node"`
}

// BaselineResult is the same workload with every node pulling from the origin.
type BaselineResult struct {
	Timing
	// Speedup is the baseline's max completion time ÷ Pouch's.
	Speedup float64 `json:"speedup"`
}

// Result is what a run or a simulation reports.
type Result struct {
	Kind         string    `json:"kind"` // "run" or "sim"
	Mode         string    `json:"mode"`
	Nodes        int       `json:"nodes"`
	SizeBytes    int64     `json:"size_bytes"`
	PieceSize    int64     `json:"piece_size_bytes,omitempty"`
	UploadRate   int64     `json:"upload_rate"`
	DownloadRate int64     `json:"download_rate"`
	SeedRate     int64     `json:"seed_rate"`
	OriginRate   int64     `json:"origin_rate"`
	WaveTMin     []float64 `json:"wave_t_min_seconds,omitempty"`
	Layers       int       `json:"layers,omitempty"` // image workload: random layers (0: one file)
	Netns        bool      `json:"netns,omitempty"`  // nodes in network namespaces with tc caps
	Timing

	// Where the nodes' bytes came from.
	BytesFromPeers  int64 `json:"bytes_from_peers"`
	BytesFromSeed   int64 `json:"bytes_from_seed"`
	BytesFromOrigin int64 `json:"bytes_from_origin"` // nodes that fell back to the origin themselves

	SupernodeCPUSeconds float64 `json:"supernode_cpu_seconds"`
	SupernodePeakRSS    int64   `json:"supernode_peak_rss_bytes"`
	DfdaemonPeakRSS     int64   `json:"dfdaemon_peak_rss_bytes"` // the largest of the nodes'
	// IdleDrops is how many times the scheduler dropped a parent that uploaded nothing to anyone
	// (the supernode's idle_drop events; the simulated scheduler's counter).
	IdleDrops uint64 `json:"idle_drops"`
	// Waits is where the nodes' P2P downloads spent their time, and how busy their uploads
	// were (run only; nil with daemons that do not export it).
	Waits *Waits `json:"waits,omitempty"`

	// Timeline is the byte counters sampled during the run and their decomposition
	// (Config.Timeline).
	Timeline *Timeline `json:"timeline,omitempty"`

	SimEvents int64 `json:"sim_events,omitempty"`
	// SimAccount is where a simulation's time went (sim only).
	SimAccount     *SimAccount `json:"sim_account,omitempty"`
	SimWallSeconds float64     `json:"sim_wall_seconds,omitempty"`

	Baseline *BaselineResult `json:"baseline,omitempty"`
}

// Waits are the dfdaemons' own accounts of a run, means per node: the time their P2P download
// spent by state (pouch_dfdaemon_download_wait_seconds_total: receiving, requested,
// undigested, nothing, no_parent), how many parents sent at once while receiving, the time
// their upload was sending, and the requests they moved between parents. A node below its cap with parents that hold nothing it lacks shows
// as nothing; one whose parents' uploads go to other children as few parents sending.
type Waits struct {
	Seconds        map[string]float64 `json:"seconds"`
	SendingParents float64            `json:"sending_parents"`
	UploadBusy     float64            `json:"upload_busy_seconds"`
	// Moved and Stolen are the requests moved to an idle parent, with a cancel to the first
	// parent and without (pouch_dfdaemon_pieces_moved_total); zero from older dfdaemons.
	Moved  float64 `json:"moved"`
	Stolen float64 `json:"stolen"`
}

// Percentile is the nearest-rank percentile p (0 < p ≤ 100) of xs: the smallest value with at
// least p% of the values at or below it. It returns 0 for no values.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// summarize fills the timing figures from per-node results, the bound and origin bytes. A node
// that failed counts with the time it failed at and in Failed; [Run] returns an error then.
func summarize(nodes []NodeResult, tMin float64, makespan float64, originBytes, size int64) Timing {
	xs := make([]float64, len(nodes))
	failed := 0
	for i, n := range nodes {
		xs[i] = n.Seconds
		if n.Error != "" || !n.DigestOK {
			failed++
		}
	}
	t := Timing{TMin: tMin, P50: Percentile(xs, 50), P99: Percentile(xs, 99), Max: Percentile(xs, 100),
		Makespan: makespan, OriginBytes: originBytes, Failed: failed, PerNode: nodes}
	if tMin > 0 {
		t.MaxOverTMin, t.P50OverTMin = t.Max/tMin, t.P50/tMin
	}
	if size > 0 {
		t.OriginRatio = float64(originBytes) / float64(size)
	}
	return t
}

// speedup is the baseline's max completion time over Pouch's.
func speedup(pouch, base Timing) float64 {
	if pouch.Max <= 0 {
		return 0
	}
	return base.Max / pouch.Max
}

// header fills the configuration part of a result.
func (c Config) header(kind string) Result {
	return Result{Kind: kind, Mode: c.Mode, Nodes: c.Nodes, SizeBytes: c.Size, PieceSize: c.PieceSize,
		UploadRate: c.UploadRate, DownloadRate: c.DownloadRate, SeedRate: c.SeedRate, OriginRate: c.OriginRate,
		WaveTMin: c.WaveBounds(), Layers: c.Layers, Netns: c.Netns}
}
