package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/supernode"
)

// The load generator's peers speak the real protocol to an in-process supernode: every call
// signed by its own identity and MACed with the cluster secret, every peer registered on every
// task, reporting every byte and its completion; the supernode ends with each peer complete in
// each task.
func TestLoadGenAgainstSupernode(t *testing.T) {
	t.Parallel()
	const secret, peers, tasks = "s3cret", 12, 2
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sn, _ := runSupernode(t, supernode.Config{Secret: secret})
	data, _ := content(3<<20+5, 7) // pieces of the smallest size, the last one short
	o, err := startOrigin(bytes.NewReader(data), int64(len(data)), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()

	cfg := LoadConfig{Peers: peers, Tasks: tasks, Size: int64(len(data)), DownloadRate: 64 << 20, Conns: 4,
		SyncInterval: 10 * time.Millisecond, Heartbeat: time.Hour, Ramp: -1}.WithDefaults()
	g, err := newLoadGen(cfg, sn.URL(), o.url, secret)
	if err != nil {
		t.Fatal(err)
	}
	before, err := scrape.Get(ctx, sn.URL()+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.warm(ctx, secret); err != nil {
		t.Fatal(err)
	}
	for i, tk := range g.tasks {
		if tk.length != int64(len(data)) || tk.pieces < 2 || tk.id == "" {
			t.Fatalf("task %d after the warm-up: %+v", i, tk)
		}
	}
	g.run(ctx)
	if err := g.err(); err != nil {
		t.Fatal(err)
	}
	if len(g.register) != peers*tasks || len(g.sync) < peers*tasks {
		t.Errorf("%d registrations and %d syncs, want %d and at least as many", len(g.register), len(g.sync), peers*tasks)
	}
	if want := int64(peers * tasks * len(data)); g.bytes.Load() != want {
		t.Errorf("peers reported %d bytes, want %d: every byte of every task once", g.bytes.Load(), want)
	}
	if g.heartbeats.Load() != peers {
		t.Errorf("%d heartbeats, want one per peer (the interval is an hour)", g.heartbeats.Load())
	}

	after, err := scrape.Get(ctx, sn.URL()+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Sum("pouch_supernode_scheduler_peers", scrape.Labels{"state": "complete"}); got != peers*tasks+tasks {
		t.Errorf("scheduler holds %v complete peer-task pairs, want %d (and each task's seed)", got, peers*tasks+tasks)
	}
	// The warm-up peers left their task but stay known until the peer TTL, as a dfdaemon that
	// finished its download does.
	if got := after.Sum("pouch_supernode_peers", nil); got != peers+tasks {
		t.Errorf("supernode knows %v peers, want %d and the %d warm-up peers", got, peers, tasks)
	}
	reported := after.Sum("pouch_supernode_reported_bytes_total", nil)
	if reported <= 0 || reported > float64(g.bytes.Load()) {
		t.Errorf("supernode counted %v transferred bytes, want some of the %d reported", reported, g.bytes.Load())
	}
	for _, call := range []string{callRegister, callSync} {
		if p50, p99 := bucketQuantiles(before, after, call); p50 <= 0 || p99 < p50 {
			t.Errorf("%s decision quantiles from the histogram: %v, %v", call, p50, p99)
		}
	}
}

// A peer the supernode expired between two syncs (its TTL far below the sync interval)
// registers again, as a dfdaemon does, and still reports every byte and its completion.
func TestLoadGenRegistersAgainWhenExpired(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sn, _ := runSupernode(t, supernode.Config{PeerTTL: 40 * time.Millisecond})
	data, _ := content(3<<20+5, 8)
	o, err := startOrigin(bytes.NewReader(data), int64(len(data)), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	cfg := LoadConfig{Peers: 3, Tasks: 1, Size: int64(len(data)), DownloadRate: 8 << 20, Conns: 2,
		SyncInterval: 200 * time.Millisecond, Heartbeat: time.Hour, Ramp: -1}.WithDefaults()
	g, err := newLoadGen(cfg, sn.URL(), o.url, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.warm(ctx, ""); err != nil {
		t.Fatal(err)
	}
	g.run(ctx)
	if want := int64(cfg.Peers * len(data)); g.bytes.Load() != want {
		t.Errorf("peers reported %d bytes, want %d", g.bytes.Load(), want)
	}
	if len(g.register) <= cfg.Peers || g.errs.Load() == 0 {
		t.Errorf("%d registrations for %d peers and %d failed calls: no peer was expired and registered again", len(g.register), cfg.Peers, g.errs.Load())
	}
	if err := g.err(); !errors.Is(err, ErrLoadCalls) {
		t.Errorf("err() = %v, want ErrLoadCalls: the expired peers' syncs failed", err)
	}
	t.Logf("%d registrations, %d failed calls (expired peers)", len(g.register), g.errs.Load())
}

func TestCPUSecondsAndStatus(t *testing.T) {
	t.Parallel()
	if _, err := cpuSeconds(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	rss, err := statusBytes(os.Getpid(), "VmRSS:")
	if err != nil || rss <= 0 {
		t.Fatalf("VmRSS %d, %v", rss, err)
	}
	if _, err := statusBytes(os.Getpid(), "NoSuchKey:"); err == nil {
		t.Fatal("a missing key read as found")
	}
}

// dfbench load against the real supernode binary writes every figure.
func TestDfbenchLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short: builds and starts a real supernode process")
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "dfbench"), "load", "--peers", "40", "--tasks", "2", "--size", "4MiB",
		"--download-rate", "16MB", "--sync-interval", "50ms", "--ramp", "1s", "--out", out)
	b, err := cmd.CombinedOutput()
	t.Logf("dfbench load:\n%s", b)
	if err != nil {
		t.Fatalf("dfbench load: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(out, LoadFile))
	if err != nil {
		t.Fatal(err)
	}
	var r LoadResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if r.Register.Calls != 80 || r.Errors != 0 || r.SimulatedBytes != 80*4<<20 || r.PeersAtEnd != 40+2 { // and the warm-up peers
		t.Errorf("result %+v", r)
	}
	if r.CPUSeconds <= 0 || r.RSSEnd <= 0 || r.PeakRSS < r.RSSEnd || r.HeapEnd <= 0 || r.SchedSyncP99 <= 0 {
		t.Errorf("supernode figures missing: %+v", r)
	}
}

// runSupernode runs an in-process supernode with cfg on loopback, loopback origins allowed, until
// stop or the end of the test.
func runSupernode(tb testing.TB, cfg supernode.Config) (sn *supernode.Supernode, stop func()) {
	tb.Helper()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", tb.TempDir()
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	sn, err := supernode.New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sn.Run(ctx) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	tb.Cleanup(stop)
	return sn, stop
}
