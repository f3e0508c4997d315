package bench

import (
	"errors"
	"math"
	"testing"
)

func near(a, b float64) bool { return a == b || math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestBound(t *testing.T) {
	t.Parallel()
	const F = 100e6
	for _, tc := range []struct {
		name      string
		n         int
		us, d, u  float64
		want      float64
		whichTerm string
	}{
		{"seed bound", 1, 10e6, 100e6, 100e6, 10, "F/u_s"},
		{"download bound", 4, 100e6, 10e6, 100e6, 10, "F/d_min"},
		{"aggregate bound", 100, 10e6, 100e6, 1e6, 100 * F / (10e6 + 100*1e6), "N·F/(u_s+Σu_i)"},
		{"symmetric caps", 8, 20e6, 20e6, 20e6, F / 20e6, "F/u_s = F/d"},
		{"zero seed", 3, 0, 1, 1, math.Inf(1), "no source"},
	} {
		if got := Bound(F, tc.n, tc.us, tc.d, tc.u); !near(got, tc.want) {
			t.Errorf("%s (%s): Bound = %v, want %v", tc.name, tc.whichTerm, got, tc.want)
		}
	}
	if got := Bound(0, 5, 1, 1, 1); got != 0 {
		t.Errorf("empty content: %v", got)
	}
	// Extra complete sources add to the seed.
	if got, want := BoundSources(F, 10, 10e6, 40e6, 1e9, 100e6), F/50e6; !near(got, want) {
		t.Errorf("BoundSources = %v, want %v", got, want)
	}
	if got, want := BaselineBound(F, 10, 50e6, 20e6), 10*F/50e6; !near(got, want) {
		t.Errorf("BaselineBound = %v, want %v", got, want)
	}
}

func TestWaves(t *testing.T) {
	t.Parallel()
	c := Config{Nodes: 12, Size: 100e6, UploadRate: 10e6, DownloadRate: 20e6, Mode: ModeWaves}.WithDefaults()
	ws := c.waves()
	if len(ws) != 4 { // ⌈0.2·12⌉ = 3 nodes a wave
		t.Fatalf("%d waves, want 4 of 3 nodes", len(ws))
	}
	total := 0
	for i, w := range ws {
		if w.first != total {
			t.Errorf("wave %d starts at node %d, want %d", i, w.first, total)
		}
		total += w.n
	}
	if total != 12 {
		t.Errorf("waves cover %d nodes", total)
	}
	// First wave: seed alone, 10 MB/s → 10 s; later waves have complete peers as sources, so
	// the download cap (5 s) binds.
	if b := c.WaveBounds(); !near(b[0], 10) || !near(b[1], 5) || !near(c.TMin(), 10) {
		t.Errorf("wave bounds %v, T_min %v", b, c.TMin())
	}
	burst := c
	burst.Mode = ModeBurst
	if len(burst.waves()) != 1 || !near(burst.TMin(), Bound(100e6, 12, 10e6, 20e6, 10e6)) {
		t.Errorf("burst waves %+v", burst.waves())
	}
}

func TestCheckMachine(t *testing.T) {
	t.Parallel()
	ok := Config{Nodes: 8, Size: 64 << 20, UploadRate: 20e6, DownloadRate: 20e6}.WithDefaults()
	if err := ok.CheckMachine(); err != nil {
		t.Errorf("8 × 20 MB/s: %v", err)
	}
	big := Config{Nodes: 50, Size: 64 << 20, UploadRate: 20e6, DownloadRate: 20e6}.WithDefaults()
	err := big.CheckMachine()
	if !errors.Is(err, ErrTooMuchThroughput) {
		t.Fatalf("50 × 20 MB/s = 1 GB/s: got %v, want ErrTooMuchThroughput", err)
	}
	// The aggregate is N·F/T_min: here the seed binds, N·F/(F/u_s) = 50·20 MB/s.
	if got := big.Throughput(); !near(got, 1000e6) {
		t.Errorf("throughput %v, want 1e9", got)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	bad := Config{Nodes: -1, Size: -1, UploadRate: -1, Mode: "storm", PieceSize: -1}.WithDefaults()
	if err := bad.Validate(); err == nil {
		t.Error("a bad configuration passed")
	}
}
