//go:build faults

// The long fault tests: `make test-faults` runs every TestFault* test of this package with the
// faults build tag (go test -tags faults -run '^TestFault' ./e2e/). Each takes a minute or more.

package e2e

import (
	"testing"
	"time"
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

// The supernode is killed and started again three times during one burst.
func TestFaultSupernodeRestarts(t *testing.T) {
	restart{nodes: 8, size: 48 << 20, rate: "4MB", every: 3 * time.Second, down: time.Second, restarts: 3}.run(t)
}

// With an origin faster than everything else, the old home's seed held the whole file when it
// died: the new home fetches again what no survivor holds, and no survivor goes to the origin
// (before, they all did once their stall timeout passed: 3.25-3.50 copies).
func TestFaultFailoverUncappedOrigin(t *testing.T) {
	failover{nodes: 3, size: 48 << 20, rate: "10MB", uncappedOrigin: true, killAfter: 3 * time.Second, maxCopies: 2}.run(t)
}
