package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/wait"
)

// The long fault tests are named TestFault* and run only with POUCH_FAULTS=long: `make
// test-faults` runs them, `make test` the short versions next to them (TestBrokenIndexIsRebuilt,
// TestDiskFullBlamesNobody, TestParentKilledMidTransfer, TestSupernodeKilledMidTransfer...).
// Add a long version of any fault here, named TestFault*, starting with longFaults(t).
func longFaults(t *testing.T) {
	t.Helper()
	if os.Getenv("POUCH_FAULTS") != "long" {
		t.Skip("a long fault test: run it with POUCH_FAULTS=long (make test-faults)")
	}
}

// originCopies is how many copies of size bytes the origin sent since before.
func originCopies(o *origin, before int64, size int) float64 {
	return float64(o.sent.Load()-before) / float64(size)
}

// Bursts of 20 nodes, 20% of them killed in the middle of each: every survivor ends with the
// right file, the origin sends each file once (the seed's fetch: nobody falls back to it), and
// the killed nodes, started again on their data directories, fetch the file too.
func TestFaultBurstsWithKilledPeers(t *testing.T) {
	longFaults(t)
	const nodes, killed, rounds, size = 20, 4, 3, 32 << 20
	files := map[string][]byte{}
	for r := range rounds {
		files[fmt.Sprintf("/round%d.bin", r)] = randomBytes(t, size)
	}
	o := newOrigin(t, files)
	c := startClusterWith(t, nodes, []string{"--upload-rate", "20MB"}, "--upload-rate", "20MB", "--download-rate", "20MB")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for r := range rounds {
		path := fmt.Sprintf("/round%d.bin", r)
		data, out, before := files[path], t.TempDir(), o.sent.Load()
		finished := burst(ctx, c.daemons, o.URL+path, out, "--digest", sha(data))
		// Kill while the swarm moves: once the first node has a quarter of the file.
		waitAny(t, c.daemons, size/4)
		victims := rand.Perm(nodes)[:killed]
		for _, v := range victims {
			c.daemons[v].Cmd.Process.Signal(syscall.SIGKILL)
		}
		codes, msgs := finished()
		checkCopies(t, codes, msgs, out, data, victims...)
		if copies := originCopies(o, before, size); copies > 1.0 {
			t.Errorf("round %d: the origin sent %.2f copies with %d of %d peers killed, want 1 (the seed's)", r, copies, killed, nodes)
		} else {
			t.Logf("round %d: %d of %d peers killed, origin sent %.2f copies", r, killed, nodes, copies)
		}
		for _, v := range victims {
			c.restartDaemon(t, v, nil)
			dst := filepath.Join(out, fmt.Sprint("restarted-", v))
			if code, msg := dfget(ctx, o.URL+path, "-O", dst, "--daemon", "http://"+c.daemons[v].HTTP, "--digest", sha(data)); code != 0 {
				t.Fatalf("round %d: node %d after its restart: exit %d: %s", r, v, code, msg)
			}
		}
	}
}

// waitAny waits until one of the daemons has downloaded n bytes.
func waitAny(t *testing.T, daemons []*proc, n float64) {
	t.Helper()
	wait.Until(t, 2*time.Minute, fmt.Sprintf("a node to get %v bytes", n), func() bool {
		for _, d := range daemons {
			if metric(t, d, "pouch_dfdaemon_download_bytes_total", nil) >= n {
				return true
			}
		}
		return false
	})
}

// The supernode is killed and started again, three times, during one burst of 8 nodes: every
// node ends with the right file, and the origin sends the file about once — the seed resumes
// from its store after each restart, and the nodes, which hold most of the file between them,
// need not go to the origin (the goal: at most 1.10 copies).
func TestFaultRepeatedSupernodeRestarts(t *testing.T) {
	longFaults(t)
	const nodes, restarts, size = 8, 3, 48 << 20
	data := randomBytes(t, size)
	o := newOrigin(t, map[string][]byte{"/big.bin": data})
	c := startClusterWith(t, nodes, []string{"--listen", freePort(t), "--upload-rate", "10MB"},
		"--upload-rate", "10MB", "--download-rate", "10MB", "--stall-timeout", "5s")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out := t.TempDir()
	finished := burst(ctx, c.daemons, o.URL+"/big.bin", out, "--digest", sha(data))
	for r := range restarts {
		waitAny(t, c.daemons, float64(r+1)*size/(restarts+2))
		c.restartSupernode(t)
	}
	codes, msgs := finished()
	checkCopies(t, codes, msgs, out, data)
	copies := originCopies(o, 0, size)
	t.Logf("%d supernode restarts during a burst of %d: origin sent %.2f copies", restarts, nodes, copies)
	if copies > 1.10 {
		t.Errorf("the origin sent %.2f copies across %d supernode restarts, want at most 1.10", copies, restarts)
	}
}
