package bench

import (
	"math"
	"testing"
)

func TestCrossing(t *testing.T) {
	t.Parallel()
	ts := []float64{0, 1, 2, 3}
	xs := []int64{0, 0, 100, 200}
	for _, tc := range []struct {
		level int64
		above bool
		want  float64
	}{
		{0, true, 1},      // first byte: the bytes between 1 s (0) and 2 s (100) came at one rate
		{200, false, 3},   // reached at the last sample
		{150, false, 2.5}, // halfway between 100 and 200
		{0, false, 0},     // reached at the first sample
	} {
		if got := crossing(ts, xs, tc.level, tc.above); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("crossing(%d, above %v) = %v, want %v", tc.level, tc.above, got, tc.want)
		}
	}
	if got := crossing(ts, xs, 300, false); !math.IsNaN(got) {
		t.Errorf("a level never reached: %v, want NaN", got)
	}
}

// Decompose splits each node's time into before its first byte, receiving, and after its last
// byte, counted from the start of its own wave.
func TestDecompose(t *testing.T) {
	t.Parallel()
	tl := Timeline{
		Seconds:    []float64{0, 1, 2, 3, 4, 5, 6},
		SeedOrigin: []int64{0, 50, 100, 100, 100, 100, 100},
		SeedUpload: []int64{0, 0, 50, 100, 100, 100, 100},
		Down: [][]int64{
			{0, 0, 50, 100, 100, 100, 100}, // wave 0: bytes from 1 s to 3 s
			{0, 0, 0, 0, 0, 100, 100},      // wave 1 (starts at 3.5 s): bytes from 4 s to 5 s
		},
	}
	nodes := []NodeResult{{Node: 0, Wave: 0, Seconds: 3.5}, {Node: 1, Wave: 1, Seconds: 2}}
	tl.Decompose(nodes, []float64{0, 3.5}, 100, 100) // F/d = 1 s
	// Behind: node 0 had each byte 1 s after the seed; node 1 had the first byte 4 s after it
	// and the last 3 s after it, 3.5 s on average.
	want := []NodeTimeline{{Start: 1, Receive: 2, End: 0.5, Below: 1, Behind: 1}, {Start: 0.5, Receive: 1, End: 0.5, Below: 0, Behind: 3.5}}
	for i, w := range want {
		g := tl.Nodes[i]
		if math.Abs(g.Start-w.Start)+math.Abs(g.Receive-w.Receive)+math.Abs(g.End-w.End)+math.Abs(g.Below-w.Below)+math.Abs(g.Behind-w.Behind) > 1e-9 {
			t.Errorf("node %d: %+v, want %+v", i, g, w)
		}
	}
	// Each byte went out 1 s after the seed had it.
	if s := tl.Seed; s.OriginFirst != 0 || s.OriginLast != 2 || s.UploadFirst != 1 || math.Abs(s.Held-1) > 1e-9 {
		t.Errorf("seed: %+v", s)
	}
}
