package e2e

import (
	"context"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/cliutil"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"github.com/pouch-p2p/pouch/internal/source"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// restart is a burst on one supernode that is killed and started again on the same data
// directory and address while the burst runs, restarts times.
type restart struct {
	nodes    int
	size     int
	rate     string        // every cap: the origin, the seed's upload, the dfdaemons' up and down
	every    time.Duration // from the start of the burst (or the last restart) to the next kill
	down     time.Duration // how long the supernode stays dead
	restarts int
}

// run checks that every node finishes with the right content and that no seed fetched again
// what it already held: the origin bytes of every supernode process add up to at most the
// file (and the origin sent about one copy).
func (r restart) run(t *testing.T) {
	data := randomBytes(t, r.size)
	o := origin.NewFilesRate(t, map[string][]byte{"/big.bin": data}, parseRate(t, r.rate))
	root := t.TempDir()
	args := []string{"--data-dir", filepath.Join(root, "sn"), "--allow-networks", "127.0.0.0/8", "--upload-rate", r.rate, "--log-level", "debug"}
	sn := start(t, "supernode", append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	addr := sn.HTTP
	daemons := startDaemons(t, root, "http://"+addr, r.nodes, r.rate)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	wait := burst(ctx, daemons, o.URL+"/big.bin", out, "--digest", sha(data))
	var seeded float64 // what the killed supernode processes fetched from the origin
	for k := range r.restarts {
		time.Sleep(r.every)
		seeded += metric(t, sn, "pouch_supernode_origin_bytes_total", nil)
		sn.Cmd.Process.Signal(syscall.SIGKILL)
		sn.Cmd.Wait()
		t.Logf("killed the supernode (restart %d): its seed had fetched %.1f MiB", k+1, seeded/(1<<20))
		time.Sleep(r.down)
		sn = start(t, fmt.Sprintf("supernode (restart %d)", k+1), append([]string{"--listen", addr}, args...)...)
	}
	codes, msgs := wait()
	checkCopies(t, codes, msgs, out, data)
	seeded += metric(t, sn, "pouch_supernode_origin_bytes_total", nil)
	copies := float64(o.Sent.Load()) / float64(r.size)
	t.Logf("the seeds fetched %.2f copies of the file, the origin sent %.2f", seeded/float64(r.size), copies)
	if seeded > float64(r.size) {
		t.Errorf("the seeds fetched %.0f bytes of a %d-byte file: a restarted seed fetched again what it held", seeded, r.size)
	}
	// Each kill loses what was on its way from the origin: the piece being written and what the
	// connection buffered (two 1 MiB pieces, generously), and the pieces held but not yet
	// durable, which the fetch reads on past (at most source.DurableBytes).
	if limit := int64(r.size) + int64(r.restarts)*(2<<20+source.DurableBytes); o.Sent.Load() > limit {
		t.Errorf("origin sent %d bytes (%.2f copies), want at most %d: the file, and per kill two pieces and what awaited its sync", o.Sent.Load(), copies, limit)
	}
	for i, d := range daemons {
		if n := metric(t, d, "pouch_dfdaemon_back_to_source_total", nil); n != 0 {
			t.Errorf("dfdaemon %d went back to the origin %v times", i, n)
		}
	}
}

// parseRate reads rate as the daemons read --upload-rate, for the origin to send at the same cap.
func parseRate(t *testing.T, rate string) int64 {
	n, err := cliutil.ParseRate(rate)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The supernode is killed in the middle of a burst and started again on the same data
// directory: it serves the same task, its seed resumes where it stopped, the peers register
// again with what they hold, and every node finishes.
func TestSupernodeRestartMidBurst(t *testing.T) {
	restart{nodes: 4, size: 48 << 20, rate: "4MB", every: 4 * time.Second, down: time.Second, restarts: 1}.run(t)
}
