package bench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	units "github.com/docker/go-units"
)

// Modes of a workload.
const (
	ModeBurst = "burst" // every node pulls at the same moment
	ModeWaves = "waves" // a rolling update: WaveFraction of the nodes at a time, each wave after the previous one finished
)

// WaveFraction is the share of the nodes that pull together in waves mode.
const WaveFraction = 0.2

// DefaultMaxThroughput is the total capped throughput (bytes/s, all nodes together) that [Run]
// accepts on the 2-core machine it was written for. One libp2p TCP+TLS stream on loopback moves
// 1.03 GB/s there using both cores (docs/DESIGN.md); every byte a node receives also costs a
// SHA-256 check, a write to the piece store and a read by dfget (≈ 2.5× the TLS cost in all), so
// beyond ≈ 400 MB/s the processes starve for CPU and the run would measure the CPU, not the
// scheduling. Raise it with Config.MaxThroughput on a bigger machine.
const DefaultMaxThroughput = 400e6

// Config describes one benchmark: the cluster, the workload and the caps. Sizes are bytes and
// rates bytes per second; the command line reads them with cliutil.ParseBytes ("64MiB", "20MB").
type Config struct {
	Nodes        int    `yaml:"nodes"`        // N, the number of dfdaemons (default 8)
	Size         int64  `yaml:"size"`         // content size F in bytes (default 64 MiB)
	UploadRate   int64  `yaml:"uploadRate"`   // every node's upload cap u_i (default 20 MB/s)
	DownloadRate int64  `yaml:"downloadRate"` // every node's download cap d (default 20 MB/s)
	SeedRate     int64  `yaml:"seedRate"`     // the seed's upload cap (default UploadRate)
	OriginRate   int64  `yaml:"originRate"`   // the origin's upload cap, all connections together (default UploadRate)
	Mode         string `yaml:"mode"`         // burst or waves (default burst)
	Baseline     bool   `yaml:"baseline"`     // also run the workload with every node pulling from the origin
	// Layers > 0 makes the workload an image of Layers random layers of Size bytes
	// in total, in the embedded registry, pulled through every node's registry mirror; 0 is a
	// single file fetched with dfget ([Run] only).
	Layers int `yaml:"layers"`

	// PieceSize is used by the simulator only (0: the daemons' policy, piece.SizeFor); the
	// daemons choose their own piece size, so [Run] refuses a non-zero value.
	PieceSize int64 `yaml:"pieceSize"`
	// Seed seeds the content generator and the simulator (default 1).
	Seed uint64 `yaml:"seed"`

	// BinDir holds the supernode, dfdaemon and dfget binaries ([Run] only).
	BinDir string `yaml:"binDir"`
	// WorkDir holds the daemons' data (default: a temporary directory, removed after the run).
	WorkDir string `yaml:"workDir"`
	// MaxThroughput is the total capped throughput the machine can carry; see
	// [DefaultMaxThroughput].
	MaxThroughput float64 `yaml:"maxThroughput"`
	// Timeout bounds each phase (the P2P run, the baseline) (default 10 min).
	Timeout time.Duration `yaml:"timeout"`
	// Netns puts every node in a network namespace of its own, on a bridge with the origin and
	// the supernode, its caps being tc on its veth pair instead of the dfdaemon's flags ([Run]
	// only; root only). See netns.go.
	Netns bool `yaml:"netns"`
	// Timeline samples every daemon's byte counters during the P2P phase ([Run] only) and
	// records them, and where each node's time went, in Result.Timeline.
	Timeline bool `yaml:"timeline"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Nodes == 0 {
		c.Nodes = 8
	}
	if c.Size == 0 {
		c.Size = 64 << 20
	}
	if c.UploadRate == 0 {
		c.UploadRate = 20e6
	}
	if c.DownloadRate == 0 {
		c.DownloadRate = 20e6
	}
	if c.SeedRate == 0 {
		c.SeedRate = c.UploadRate
	}
	if c.OriginRate == 0 {
		c.OriginRate = c.UploadRate
	}
	if c.Mode == "" {
		c.Mode = ModeBurst
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.MaxThroughput == 0 {
		c.MaxThroughput = DefaultMaxThroughput
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	return c
}

// Validate reports every invalid field of a configuration with defaults applied.
func (c Config) Validate() error {
	var errs []error
	if c.Nodes < 1 {
		errs = append(errs, fmt.Errorf("bench: nodes %d < 1", c.Nodes))
	}
	if c.Size < 1 {
		errs = append(errs, fmt.Errorf("bench: size %d < 1 byte", c.Size))
	}
	for _, r := range []struct {
		name string
		v    int64
	}{{"upload rate", c.UploadRate}, {"download rate", c.DownloadRate}, {"seed rate", c.SeedRate}, {"origin rate", c.OriginRate}} {
		if r.v < 1 {
			errs = append(errs, fmt.Errorf("bench: %s %d must be > 0 (the bound needs finite caps)", r.name, r.v))
		}
	}
	if c.Mode != ModeBurst && c.Mode != ModeWaves {
		errs = append(errs, fmt.Errorf("bench: mode %q is not burst or waves", c.Mode))
	}
	if c.Layers < 0 || int64(c.Layers) > c.Size {
		errs = append(errs, fmt.Errorf("bench: layers %d must be between 0 and the size in bytes", c.Layers))
	}
	if c.PieceSize < 0 {
		errs = append(errs, fmt.Errorf("bench: piece size %d < 0", c.PieceSize))
	}
	if !(c.MaxThroughput > 0) || math.IsInf(c.MaxThroughput, 0) {
		errs = append(errs, fmt.Errorf("bench: max throughput %v must be a finite rate > 0", c.MaxThroughput))
	}
	if c.Netns && os.Geteuid() != 0 {
		errs = append(errs, errors.New("bench: netns needs root (network namespaces, veth, tc)"))
	}
	if c.Netns && c.Nodes > NetnsMaxNodes {
		errs = append(errs, fmt.Errorf("bench: netns supports at most %d nodes, not %d", NetnsMaxNodes, c.Nodes))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("bench: timeout %v < 0", c.Timeout))
	}
	return errors.Join(errs...)
}

// ErrTooMuchThroughput is returned by [Config.CheckMachine] and [Run] for a configuration whose
// total capped throughput the machine cannot carry.
var ErrTooMuchThroughput = errors.New("bench: the machine cannot carry this configuration")

// Throughput is the total rate (bytes/s, all nodes together) at which a run moves data if it
// meets the bound: N·F/T_min for the largest wave, and the origin's rate for the baseline.
func (c Config) Throughput() float64 {
	var agg float64
	for _, w := range c.waves() {
		agg = max(agg, float64(w.n)*float64(c.Size)/w.tMin)
	}
	if c.Baseline {
		agg = max(agg, min(float64(c.OriginRate), float64(c.Nodes)*float64(c.DownloadRate)))
	}
	return agg
}

// CheckMachine refuses a configuration whose total capped throughput exceeds MaxThroughput:
// such a run would report CPU starvation as a scheduling result.
func (c Config) CheckMachine() error {
	if t := c.Throughput(); t > c.MaxThroughput {
		return fmt.Errorf("%w: %d nodes moving %s at the caps need %s/s in total, over the %s/s budget of this machine "+
			"(loopback libp2p TLS 1.03 GB/s on 2 cores, ÷ ≈2.5 for the SHA-256 check, store write and dfget read of every byte); "+
			"lower --nodes or the rates, or raise --max-throughput on a bigger machine",
			ErrTooMuchThroughput, c.Nodes, units.BytesSize(float64(c.Size)), rateString(t), rateString(c.MaxThroughput))
	}
	return nil
}

func rateString(r float64) string { return fmt.Sprintf("%.0f MB", r/1e6) }
