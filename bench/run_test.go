package bench

import (
	"context"
	"errors"
	"flag"
	"github.com/pouch-p2p/pouch/internal/fixture/daemon"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var binDir string

// TestMain builds the real binaries for the end-to-end test, like e2e/harness_test.go; under
// -short it builds nothing and that test skips.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	daemon.BuildMain(m, "..", &binDir, "supernode", "dfdaemon", "dfget", "dfbench", "pouch")
}

// TestDfbenchRun runs the dfbench binary on 3 nodes with the baseline and checks that every node
// got the right bytes and that result.json has every field: a file with dfget, and an image of
// two layers pulled through the registry mirrors.
func TestDfbenchRun(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short: builds and starts real supernode, dfdaemon and dfget processes")
	}
	t.Run("file", func(t *testing.T) { dfbenchRun(t, "--timeline") })
	t.Run("image", func(t *testing.T) { dfbenchRun(t, "--layers", "2") })
}

func dfbenchRun(t *testing.T, extra ...string) {
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "dfbench"), append([]string{"run", "--nodes", "3", "--size", "8MiB",
		"--upload-rate", "20MB", "--download-rate", "20MB", "--baseline", "--out", out}, extra...)...)
	b, err := cmd.CombinedOutput()
	t.Logf("dfbench run:\n%s", b)
	if err != nil {
		t.Fatalf("dfbench run: %v", err)
	}
	m := checkResultJSON(t, filepath.Join(out, ResultFile), true)
	if m["nodes"].(float64) != 3 {
		t.Errorf("nodes = %v", m["nodes"])
	}
	nodes := m["per_node"].([]any)
	if len(nodes) != 3 {
		t.Fatalf("per_node has %d entries", len(nodes))
	}
	for _, n := range nodes {
		n := n.(map[string]any)
		if n["digest_ok"] != true || n["seconds"].(float64) <= 0 {
			t.Errorf("node %v", n)
		}
	}
	for _, n := range m["baseline"].(map[string]any)["per_node"].([]any) {
		if n.(map[string]any)["digest_ok"] != true {
			t.Errorf("baseline node %v", n)
		}
	}
	if r := m["origin_ratio"].(float64); r != 1 {
		t.Errorf("origin ratio %v, want 1 (the seed fetches once)", r)
	}
	if _, err := os.Stat(filepath.Join(out, PlotFile)); err != nil {
		t.Error(err)
	}
	if slices.Contains(extra, "--timeline") {
		checkTimeline(t, out)
	}
}

// checkTimeline checks what --timeline wrote: every node's samples end at the whole content,
// its time splits into the three parts, and the plot exists.
func checkTimeline(t *testing.T, out string) {
	r, err := ReadResult(out)
	if err != nil {
		t.Fatal(err)
	}
	tl := r.Timeline
	if tl == nil || len(tl.Seconds) < 2 || len(tl.Down) != r.Nodes || len(tl.Nodes) != r.Nodes {
		t.Fatalf("timeline: %+v", tl)
	}
	for i, xs := range tl.Down {
		if got := xs[len(xs)-1]; got != r.SizeBytes {
			t.Errorf("node %d: last sample %d bytes downloaded, want %d", i, got, r.SizeBytes)
		}
		n := tl.Nodes[i]
		if sum := n.Start + n.Receive + n.End; math.Abs(sum-r.PerNode[i].Seconds) > 1e-6 || n.Start < 0 || n.Receive <= 0 || n.End < 0 {
			t.Errorf("node %d: %+v does not split its %.3f s", i, n, r.PerNode[i].Seconds)
		}
	}
	if last := tl.SeedOrigin[len(tl.SeedOrigin)-1]; last != r.SizeBytes {
		t.Errorf("seed fetched %d bytes, want %d", last, r.SizeBytes)
	}
	if _, err := os.Stat(filepath.Join(out, TimelinePlot)); err != nil {
		t.Error(err)
	}
}

// Run refuses what the machine cannot carry, before starting anything.
func TestRunRefusesOverBudget(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), Config{Nodes: 100, UploadRate: 100e6, DownloadRate: 100e6, BinDir: "/nonexistent"})
	if err == nil || !errors.Is(err, ErrTooMuchThroughput) {
		t.Fatalf("got %v", err)
	}
}
