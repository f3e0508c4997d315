package scheduler

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Defaults applied by [Config.WithDefaults] to zero fields.
const (
	DefaultMaxParents    = 4
	DefaultCandidates    = 32
	DefaultMaxFailures   = 2
	DefaultUploadRate    = 100e6 // bytes/s
	DefaultSeed          = 1
	DefaultSwapRatio     = 2.0
	DefaultSourceSamples = 8
	// DefaultCorruptReporters is how many distinct children must report a parent corrupt
	// before it is blocked for everyone: one liar must not cut a parent off.
	DefaultCorruptReporters = 2
	// DefaultReportWindow is how long after a parent was taken from a child that child's
	// reports about it still count: reports travel in batches, and the parent set may change
	// between a transfer and its report.
	DefaultReportWindow = time.Minute
)

// Config tunes the scheduler. The zero value is usable: [New] fills zero
// fields with the defaults.
type Config struct {
	// MaxParents is the number of parents handed to a downloading peer
	// (the backbone parent plus MaxParents-1 lateral ones). Default 4.
	MaxParents int
	// Candidates is the number of peers sampled at random per decision, on
	// top of the best known sources. Default 32.
	Candidates int
	// MaxFailures is the number of consecutive transfer failures from one
	// parent after which the child stops using it. Default 2.
	MaxFailures int
	// DefaultUpload is the upload rate (bytes/s) assumed for a peer that
	// reports none. Default 100 MB/s.
	DefaultUpload float64
	// Seed seeds the PRNG used for sampling. Default 1.
	Seed uint64

	// SwapRatio is how much better (score ratio) a candidate must be than
	// the worst current parent before Report swaps it in. Default 2.
	// (Addition to the original API.)
	SwapRatio float64
	// SourceSamples is how many of the best known sources (by free upload
	// capacity) are evaluated per decision, on top of the random sample.
	// Default 8. (Addition to the original API.)
	SourceSamples int

	// CorruptReporters is how many distinct children must report a parent FailCorrupt before
	// it is blocked for the whole task; below that, a report blocks the parent for its
	// reporter only. The seed is never blocked by reports. Default 2.
	CorruptReporters int
	// ReportWindow is how long after a parent was taken out of a child's set the child's
	// failure reports about it still count; reports about a parent the child was never
	// scheduled to are ignored. Default 1 minute.
	ReportWindow time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxParents == 0 {
		c.MaxParents = DefaultMaxParents
	}
	if c.Candidates == 0 {
		c.Candidates = DefaultCandidates
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	if c.DefaultUpload == 0 {
		c.DefaultUpload = DefaultUploadRate
	}
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	if c.SwapRatio == 0 {
		c.SwapRatio = DefaultSwapRatio
	}
	if c.SourceSamples == 0 {
		c.SourceSamples = DefaultSourceSamples
	}
	if c.CorruptReporters == 0 {
		c.CorruptReporters = DefaultCorruptReporters
	}
	if c.ReportWindow == 0 {
		c.ReportWindow = DefaultReportWindow
	}
	return c
}

// Validate reports every invalid field. Zero fields are valid (they mean
// "default"); call it on the configuration as loaded, before [New].
func (c Config) Validate() error {
	var errs []error
	if c.MaxParents < 0 {
		errs = append(errs, fmt.Errorf("scheduler: maxParents %d < 0", c.MaxParents))
	}
	if c.Candidates < 0 {
		errs = append(errs, fmt.Errorf("scheduler: candidates %d < 0", c.Candidates))
	}
	if c.MaxFailures < 0 {
		errs = append(errs, fmt.Errorf("scheduler: maxFailures %d < 0", c.MaxFailures))
	}
	if c.DefaultUpload < 0 || math.IsNaN(c.DefaultUpload) || math.IsInf(c.DefaultUpload, 0) {
		errs = append(errs, fmt.Errorf("scheduler: defaultUpload %v is not a finite rate >= 0", c.DefaultUpload))
	}
	if c.SwapRatio != 0 && (c.SwapRatio < 1 || math.IsNaN(c.SwapRatio) || math.IsInf(c.SwapRatio, 0)) {
		errs = append(errs, fmt.Errorf("scheduler: swapRatio %v < 1", c.SwapRatio))
	}
	if c.SourceSamples < 0 {
		errs = append(errs, fmt.Errorf("scheduler: sourceSamples %d < 0", c.SourceSamples))
	}
	if c.CorruptReporters < 0 {
		errs = append(errs, fmt.Errorf("scheduler: corruptReporters %d < 0", c.CorruptReporters))
	}
	if c.ReportWindow < 0 {
		errs = append(errs, fmt.Errorf("scheduler: reportWindow %v < 0", c.ReportWindow))
	}
	return errors.Join(errs...)
}

// sanitized is what New runs with: defaults applied and any field that
// Validate would reject replaced by its default, so New never fails.
func (c Config) sanitized() Config {
	d := Config{}.WithDefaults()
	c = c.WithDefaults()
	if c.MaxParents < 1 {
		c.MaxParents = d.MaxParents
	}
	if c.Candidates < 1 {
		c.Candidates = d.Candidates
	}
	if c.MaxFailures < 1 {
		c.MaxFailures = d.MaxFailures
	}
	if !(c.DefaultUpload > 0) || math.IsInf(c.DefaultUpload, 0) {
		c.DefaultUpload = d.DefaultUpload
	}
	if !(c.SwapRatio >= 1) || math.IsInf(c.SwapRatio, 0) {
		c.SwapRatio = d.SwapRatio
	}
	if c.SourceSamples < 1 {
		c.SourceSamples = d.SourceSamples
	}
	if c.CorruptReporters < 1 {
		c.CorruptReporters = d.CorruptReporters
	}
	if c.ReportWindow < 0 {
		c.ReportWindow = d.ReportWindow
	}
	return c
}
