package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	xs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, tc := range []struct{ p, want float64 }{{50, 5}, {99, 10}, {100, 10}, {10, 1}, {11, 2}} {
		if got := Percentile(xs, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty")
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	nodes := []NodeResult{{Seconds: 2, DigestOK: true}, {Seconds: 4, DigestOK: true}, {Seconds: 3, DigestOK: false, Error: "x"}}
	tm := summarize(nodes, 2, 4.5, 300, 100)
	if tm.P50 != 3 || tm.Max != 4 || tm.MaxOverTMin != 2 || tm.P50OverTMin != 1.5 || tm.OriginRatio != 3 || tm.Failed != 1 || tm.Makespan != 4.5 {
		t.Errorf("%+v", tm)
	}
	base := summarize([]NodeResult{{Seconds: 12, DigestOK: true}}, 10, 12, 100, 100)
	if s := speedup(tm, base); s != 3 {
		t.Errorf("speedup %v, want 3", s)
	}
}

// Every key the issue asks of result.json.
var resultKeys = []string{"nodes", "size_bytes", "t_min_seconds", "p50_seconds", "p99_seconds", "max_seconds",
	"max_over_t_min", "p50_over_t_min", "origin_bytes", "origin_ratio", "per_node"}

func checkResultJSON(t *testing.T, path string, baseline bool) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range resultKeys {
		if _, ok := m[k]; !ok {
			t.Errorf("result.json has no %q", k)
		}
	}
	if baseline {
		bl, ok := m["baseline"].(map[string]any)
		if !ok {
			t.Fatalf("result.json has no baseline object")
		}
		for _, k := range append(resultKeys[2:], "speedup") {
			if _, ok := bl[k]; !ok {
				t.Errorf("baseline has no %q", k)
			}
		}
	}
	return m
}

func TestReports(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var dirs []string
	for _, n := range []int{10, 100} {
		r := Simulate(Config{Nodes: n, Size: 8 << 20, Baseline: true})
		d := filepath.Join(dir, "sim", string(rune('a'+n%26)))
		if err := WriteDir(d, r); err != nil {
			t.Fatal(err)
		}
		checkResultJSON(t, filepath.Join(d, ResultFile), true)
		svg, _ := os.ReadFile(filepath.Join(d, PlotFile))
		if !strings.HasPrefix(string(svg), "<svg") || !strings.Contains(string(svg), "T_min") {
			t.Errorf("bad plot: %.200s", svg)
		}
		var tb bytes.Buffer
		WriteTable(&tb, r)
		if !strings.Contains(tb.String(), "max/T_min") || !strings.Contains(tb.String(), "speed-up") {
			t.Errorf("table: %s", tb.String())
		}
		dirs = append(dirs, d)
	}
	var out bytes.Buffer
	if err := WriteReport(&out, dir, dirs); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "\n") != 3 {
		t.Errorf("report table:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, ReportPlot)); err != nil {
		t.Error(err)
	}
}
