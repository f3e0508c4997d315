package bench

import (
	"testing"
)

func TestSimulateSmall(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{ModeBurst, ModeWaves} {
		r := Simulate(Config{Nodes: 20, Size: 32 << 20, UploadRate: 10e6, DownloadRate: 10e6, Mode: mode, Baseline: true})
		if r.Failed != 0 {
			t.Fatalf("%s: %d nodes failed: %+v", mode, r.Failed, r.PerNode)
		}
		if r.MaxOverTMin < 1 {
			t.Errorf("%s: max/T_min = %.3f < 1: the simulation beat the bound", mode, r.MaxOverTMin)
		}
		if mode == ModeBurst && r.OriginRatio != 1 {
			t.Errorf("origin ratio %.3f, want 1", r.OriginRatio)
		}
		if r.Baseline == nil || r.Baseline.Speedup <= 1 {
			t.Errorf("%s: baseline %+v", mode, r.Baseline)
		}
		t.Logf("%s: T_min %.2f p50 %.2f max %.2f max/T_min %.3f origin %.2f speedup %.2f events %d", mode, r.TMin, r.P50, r.Max, r.MaxOverTMin, r.OriginRatio, r.Baseline.Speedup, r.SimEvents)
	}
}
