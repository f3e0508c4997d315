package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestDfbenchTiny runs `dfbench tiny` on the real binaries with a few files: every timed fetch
// must have come from a peer (dfbench exits non-zero otherwise) and tiny.json must hold a time
// for each fetch of each kind.
func TestDfbenchTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short: builds and starts real supernode, dfdaemon and dfget processes")
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const count = 4
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "dfbench"), "tiny", "--count", "4", "--size", "3KiB", "--out", out)
	b, err := cmd.CombinedOutput()
	t.Logf("dfbench tiny:\n%s", b)
	if err != nil {
		t.Fatalf("dfbench tiny: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(out, TinyFile))
	if err != nil {
		t.Fatal(err)
	}
	var r TinyResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	for name, xs := range map[string][]float64{"dfget": r.DFGet, "direct": r.Direct, "start": r.Start, "api": r.API} {
		if len(xs) != count {
			t.Errorf("%s: %d times, want %d", name, len(xs), count)
		}
		for _, x := range xs {
			if x <= 0 {
				t.Errorf("%s: time %v", name, x)
			}
		}
	}
	if r.Config.Size != 3<<10 || r.FromPeers != 2*count*3<<10 || r.FromOrigin != 0 {
		t.Errorf("size %d, from peers %v, from the origin %v", r.Config.Size, r.FromPeers, r.FromOrigin)
	}
}

// A measurement whose fetches did not all come from peers is refused.
func TestTinyCheck(t *testing.T) {
	t.Parallel()
	r := TinyResult{Config: TinyConfig{Size: 1024}, DFGet: []float64{1}, API: []float64{1}, FromPeers: 2048}
	if err := r.Check(); err != nil {
		t.Fatalf("all from peers: %v", err)
	}
	r.FromPeers, r.FromOrigin = 1024, 1024
	if err := r.Check(); err == nil {
		t.Fatal("half from the origin passed the check")
	}
	if err := (TinyConfig{Size: 1 << 30, Count: 1}).Validate(); err == nil {
		t.Fatal("a 1 GiB tiny file was accepted")
	}
}
