package e2e

import (
	"context"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/taskid"
)

// failover is a burst over two supernodes in which the task's home supernode and some
// dfdaemons are killed while the burst runs.
type failover struct {
	nodes int    // dfdaemons pulling at once
	kill  int    // of them killed with the home supernode: every nodes/kill-th, from the last
	size  int    // bytes of the file
	rate  string // every cap: the origin, the seeds' upload, the dfdaemons' up and down
	// uncappedOrigin lets the origin send as fast as it can: the old home's seed then holds the
	// whole file at once, and the new home must fetch again what no survivor holds.
	uncappedOrigin bool
	// topUploaders kills the dfdaemons that uploaded most instead: they hold pieces that
	// nobody else holds yet, which the new home must then fetch again.
	topUploaders bool
	killAfter    time.Duration // from the start of the burst
	maxCopies    float64       // what the origin may send, in copies of the file
}

// run starts the cluster, runs the burst, kills, and checks every survivor's copy and what
// reached the origin. It returns the copies the origin sent.
func (f failover) run(t *testing.T) float64 {
	data := randomBytes(t, f.size)
	originRate := parseRate(t, f.rate)
	if f.uncappedOrigin {
		originRate = 0
	}
	o := origin.NewFilesRate(t, map[string][]byte{"/big.bin": data}, originRate)
	root := t.TempDir()
	var sns []*proc
	for i := range 2 {
		sns = append(sns, start(t, fmt.Sprintf("supernode %d", i), "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(root, fmt.Sprint("sn", i)),
			"--allow-networks", "127.0.0.0/8", "--upload-rate", f.rate, "--log-level", "debug"))
	}
	list := "http://" + sns[0].HTTP + ",http://" + sns[1].HTTP
	id, err := taskid.For(o.URL+"/big.bin", "", digest.Digest(sha(data)), taskid.DefaultFilter)
	if err != nil {
		t.Fatal(err)
	}
	home := 0
	if snapi.NewRing(list, snapi.ClientConfig{}).For(id.String())[0].Base != "http://"+sns[0].HTTP {
		home = 1
	}
	daemons := startDaemons(t, root, list, f.nodes, f.rate)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	wait := burst(ctx, daemons, o.URL+"/big.bin", out, "--digest", sha(data))
	time.Sleep(f.killAfter)
	if n := metric(t, sns[1-home], "pouch_supernode_registrations_total", nil); n != 0 {
		t.Fatalf("the other supernode had %v registrations before the failure; the task's home is %d", n, home)
	}
	up := make([]float64, f.nodes)
	for i := range daemons {
		up[i] = metric(t, daemons[i], "pouch_dfdaemon_upload_bytes_total", nil)
	}
	var victims []int
	if f.topUploaders {
		victims = make([]int, f.nodes)
		for i := range victims {
			victims[i] = i
		}
		sort.SliceStable(victims, func(a, b int) bool { return up[victims[a]] > up[victims[b]] })
		victims = victims[:f.kill]
	} else {
		for k := range f.kill {
			victims = append(victims, f.nodes-1-k*(f.nodes/f.kill))
		}
	}
	t.Logf("bytes uploaded by each dfdaemon so far: %v", up)
	before := float64(o.Sent.Load()) / float64(f.size)
	sns[home].Cmd.Process.Signal(syscall.SIGKILL)
	for _, v := range victims {
		daemons[v].Cmd.Process.Signal(syscall.SIGKILL)
	}
	t.Logf("killed supernode %d and dfdaemons %v after %v; the origin had sent %.2f copies", home, victims, f.killAfter, before)
	codes, msgs := wait()
	checkCopies(t, codes, msgs, out, data, victims...)
	if n := metric(t, sns[1-home], "pouch_supernode_registrations_total", nil); n < 1 {
		t.Errorf("no peer re-registered with the surviving supernode (%v registrations)", n)
	}
	copies := float64(o.Sent.Load()) / float64(f.size)
	var fromOrigin float64
	for i, d := range daemons {
		if !slices.Contains(victims, i) {
			fromOrigin += metric(t, d, "pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "origin"})
		}
	}
	t.Logf("origin sent %.2f copies of the file (%.2f by the survivors themselves)", copies, fromOrigin/float64(f.size))
	if fromOrigin > 0 {
		t.Errorf("the survivors fetched %.0f bytes from the origin themselves: the fail-over sent them back to the origin", fromOrigin)
	}
	if copies > f.maxCopies {
		t.Errorf("origin sent %.2f copies of the file, want at most %.2f", copies, f.maxCopies)
	}
	return copies
}

// Two supernodes: each task is homed on one by rendezvous hashing. When the home dies in the
// middle of a burst, with two dfdaemons, the survivors move to the other supernode, announce
// what they hold, and finish; the new home fetches from the origin only what no survivor holds.
// The goal for this scenario is 1.10 copies, measured 1.05–1.09 on a quiet machine and
// 1.11 with the load of a parallel `make test` (what is lost is physical: pieces the old seed
// had just fetched, and pieces only the killed nodes held). The bound here is what tells a
// stampede (the code before measured 1.30–3.44) from that noise; docs/reliability.md keeps the
// measured figures.
func TestSupernodeFailover(t *testing.T) {
	failover{nodes: 8, kill: 2, size: 48 << 20, rate: "4MB", killAfter: 4 * time.Second, maxCopies: 1.20}.run(t)
}
