//go:build faults

// The long fault tests: `make test-faults` runs every TestFault* test of this package with the
// faults build tag (go test -tags faults -run '^TestFault' ./e2e/). Each takes a minute or more.
// `make test` runs the short versions, untagged, beside the other e2e tests
// (TestParentKilledMidTransfer, TestSupernodeFailover, TestSupernodeRestartMidBurst,
// TestBrokenIndexIsRebuilt, TestDiskFullBlamesNobody...). A long version of a fault goes here,
// named TestFault*.

package e2e

import (
	"context"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/wait"
)

// A burst of 20 over two supernodes; the task's home and 20% of the dfdaemons are killed 4 s
// in. The survivors finish and the origin sends about one copy: besides the first one, the new
// home fetches again what no survivor held — the pieces the old seed got in its last second
// (still on their way to their first child) and those that only killed nodes held. Measured
// 1.12: the survivors held 11 of the 17 pieces the old seed had fetched.
func TestFaultFailoverBurst20(t *testing.T) {
	failover{nodes: 20, kill: 4, size: 48 << 20, rate: "4MB", killAfter: 4 * time.Second, maxCopies: 1.15}.run(t)
}

// The dfdaemons killed with the home are those that uploaded most: they hold pieces nobody else
// holds yet, which the new home fetches again; nothing else is fetched twice. The bound is the
// origin's first copy, what those victims alone held (a few pieces at 4 s), and a margin.
func TestFaultFailoverKillsTheBestUploaders(t *testing.T) {
	failover{nodes: 8, kill: 2, topUploaders: true, size: 48 << 20, rate: "4MB", killAfter: 4 * time.Second, maxCopies: 1.25}.run(t)
}

// The home dies later in the burst, when the peers hold most of the file.
func TestFaultFailoverLate(t *testing.T) {
	failover{nodes: 8, kill: 2, size: 48 << 20, rate: "4MB", killAfter: 10 * time.Second, maxCopies: 1.10}.run(t)
}

// The supernode is killed and started again three times during one burst (the repeated
// restarts). Before the supernode kept its tasks across restarts the nodes stalled while it knew
// nothing of what they held, and went to the origin: 4.35 copies with an uncapped origin and
// 10 MB/s caps. That variant, its seed complete before the first kill, now sends 1.00; this one
// also makes each restarted seed resume a task it had not finished.
func TestFaultSupernodeRestarts(t *testing.T) {
	restart{nodes: 8, size: 48 << 20, rate: "4MB", every: 3 * time.Second, down: time.Second, restarts: 3}.run(t)
}

// With an origin faster than everything else, the old home's seed held the whole file when it
// died: the new home fetches again what no survivor holds, and no survivor goes to the origin
// (before, they all did once their stall timeout passed: 3.25-3.50 copies).
func TestFaultFailoverUncappedOrigin(t *testing.T) {
	failover{nodes: 3, size: 48 << 20, rate: "10MB", uncappedOrigin: true, killAfter: 3 * time.Second, maxCopies: 2}.run(t)
}

// Bursts of 20 nodes, 20% of them killed in the middle of each: every survivor ends with the
// right file, the origin sends each file once (the seed's fetch: nobody falls back to it), and
// the killed nodes, started again on their data directories, fetch the file too.
func TestFaultBurstsWithKilledPeers(t *testing.T) {
	const nodes, killed, rounds, size = 20, 4, 3, 32 << 20
	files := map[string][]byte{}
	for r := range rounds {
		files[fmt.Sprintf("/round%d.bin", r)] = randomBytes(t, size)
	}
	o := origin.NewFiles(t, files)
	c := startClusterWith(t, nodes, []string{"--upload-rate", "20MB"}, "--upload-rate", "20MB", "--download-rate", "20MB")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for r := range rounds {
		path := fmt.Sprintf("/round%d.bin", r)
		data, out, before := files[path], t.TempDir(), o.Sent.Load()
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
