package dfdaemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/supernode"
)

func gather(t *testing.T, g prometheus.Gatherer) scrape.Families {
	t.Helper()
	f, err := scrape.Gather(g)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func scrapeURL(t *testing.T, ctx context.Context, url string) scrape.Families {
	t.Helper()
	f, err := scrape.Get(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// until waits for cond, failing the test after a generous deadline.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.Until(t, 30*time.Second, what, cond)
}

// checkDownloadMetrics checks what the daemons of TestTwoPeersTrade count once each fetched
// the same file of size bytes in pieces of piece.SizeFor, the seed capped so that they trade: each one
// successful download, every byte from the seed or the other peer (none from the origin), one
// piece time per piece, and the content in its store; what one took from the other, the other
// uploaded.
func checkDownloadMetrics(t *testing.T, ds []*dfdaemon.Daemon, size int) {
	t.Helper()
	var fromPeers, uploaded float64
	for i, d := range ds {
		until(t, "the download ends", func() bool { return gather(t, d.Metrics()).Sum("pouch_dfdaemon_active_downloads", nil) == 0 })
		m := gather(t, d.Metrics())
		for _, miss := range m.Unmet(
			scrape.Want("pouch_dfdaemon_downloads_total", nil, 1),
			scrape.Want("pouch_dfdaemon_downloads_finished_total", scrape.Labels{"result": "success"}, 1),
			scrape.Want("pouch_dfdaemon_downloads_finished_total", nil, 1),
			scrape.Want("pouch_dfdaemon_downloads_failed_total", nil, 0),
			scrape.Want("pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "peer"}, float64(size)),
			scrape.Want("pouch_dfdaemon_download_bytes_total", scrape.Labels{"from": "origin"}, 0),
			scrape.Want("pouch_dfdaemon_store_bytes", nil, float64(size)),
			scrape.Want("pouch_dfdaemon_store_tasks", nil, 1),
			scrape.Want("pouch_dfdaemon_parents", nil, 0),
		) {
			t.Errorf("daemon %d: %s", i, miss)
		}
		seed, peer := m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"from": "seed"}), m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"from": "peer"})
		if seed+peer != float64(size) || seed == 0 {
			t.Errorf("daemon %d: %v bytes from the seed and %v from the peer, want %d in all, some from the seed", i, seed, peer, size)
		}
		pieces := piece.Count(int64(size), piece.SizeFor(int64(size)))
		if n := m.Count("pouch_dfdaemon_piece_seconds", scrape.Labels{"from": "seed"}) + m.Count("pouch_dfdaemon_piece_seconds", scrape.Labels{"from": "peer"}); n != uint64(pieces) {
			t.Errorf("daemon %d: %d piece times, want one per piece (%d)", i, n, pieces)
		}
		if n := m.Count("pouch_dfdaemon_download_seconds", nil); n != 1 {
			t.Errorf("daemon %d: %d download durations, want 1", i, n)
		}
		fromPeers += peer
		uploaded += m.Sum("pouch_dfdaemon_upload_bytes_total", nil)
	}
	// Pieces a parent sent after the child had them from another are drained, not counted.
	if fromPeers == 0 || fromPeers > uploaded {
		t.Errorf("the daemons took %v bytes from each other and uploaded %v: want some, no more than uploaded", fromPeers, uploaded)
	}
}

// A download the origin refuses is counted with its error code, and as failed.
func TestFailedDownloadMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sn := runSupernode(ctx, t, supernode.Config{})
	d := runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL()})
	gone := httptest.NewServer(http.NotFoundHandler())
	defer gone.Close()
	if x, err := d.Download(ctx, dfdaemon.Request{URL: gone.URL + "/missing"}); err == nil {
		x.Close()
		t.Fatal("a download of a 404 succeeded")
	}
	until(t, "the failed download is counted", func() bool {
		return gather(t, d.Metrics()).Sum("pouch_dfdaemon_downloads_finished_total", scrape.Labels{"result": "origin_status"}) == 1
	})
	m := gather(t, d.Metrics())
	if m.Sum("pouch_dfdaemon_downloads_failed_total", nil) != 1 || m.Sum("pouch_dfdaemon_downloads_finished_total", nil) != 1 {
		t.Errorf("after one failure: %v failed, %v finished", m.Sum("pouch_dfdaemon_downloads_failed_total", nil), m.Sum("pouch_dfdaemon_downloads_finished_total", nil))
	}
	if s := scrapeURL(t, ctx, sn.URL()+"/metrics"); s.Sum("pouch_supernode_seeds_total", scrape.Labels{"result": "failed"}) != 1 {
		t.Errorf("seeds_total{failed} = %v, want 1", s.Sum("pouch_supernode_seeds_total", scrape.Labels{"result": "failed"}))
	}
}

// While a download runs (the origin holds its second half), both daemons show it: an active
// download with the seed as its parent, a seed fetching and a child streaming from it. When it
// ends they go back to zero.
func TestGaugesWhileDownloading(t *testing.T) {
	data := make([]byte, 4<<20)
	rand.Read(data)
	held := origin.NewHeld(t, data)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sn := runSupernode(ctx, t, supernode.Config{})
	d := runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL(), StallTimeout: time.Minute})
	x, err := d.Download(ctx, dfdaemon.Request{URL: held.URL + "/f"})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	until(t, "the dfdaemon pulls from the seed", func() bool {
		m := gather(t, d.Metrics())
		return m.Sum("pouch_dfdaemon_active_downloads", nil) == 1 && m.Sum("pouch_dfdaemon_parents", nil) == 1 &&
			m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"from": "seed"}) == 2<<20
	})
	m := scrapeURL(t, ctx, sn.URL()+"/metrics")
	for _, miss := range m.Unmet(
		scrape.Want("pouch_supernode_seeds_running", nil, 1),
		scrape.Want("pouch_supernode_seed_children", nil, 1),
		scrape.Want("pouch_supernode_tasks", nil, 1),
		scrape.Want("pouch_supernode_scheduler_peers", scrape.Labels{"state": "downloading"}, 1),
		scrape.Want("pouch_supernode_origin_bytes_total", nil, 2<<20),
		scrape.Want("pouch_supernode_schedule_decisions_total", scrape.Labels{"call": "register", "outcome": "parents"}, 1),
	) {
		t.Errorf("supernode while downloading: %s", miss)
	}
	if n := m.Count("pouch_supernode_schedule_seconds", scrape.Labels{"call": "register"}); n != 1 {
		t.Errorf("%d register decisions timed, want 1", n)
	}

	held.Release()
	if got, err := io.ReadAll(x.NewReader(ctx, 0)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content differs: %v", err)
	}
	until(t, "the gauges go back to zero", func() bool {
		m := gather(t, d.Metrics())
		s := scrapeURL(t, ctx, sn.URL()+"/metrics")
		return m.Sum("pouch_dfdaemon_active_downloads", nil) == 0 && m.Sum("pouch_dfdaemon_parents", nil) == 0 &&
			s.Sum("pouch_supernode_seeds_running", nil) == 0 && s.Sum("pouch_supernode_seed_children", nil) == 0
	})
	s := scrapeURL(t, ctx, sn.URL()+"/metrics")
	if got := s.Sum("pouch_supernode_seeds_total", scrape.Labels{"result": "success"}); got != 1 {
		t.Errorf("seeds_total{success} = %v, want 1", got)
	}
	if got := s.Sum("pouch_supernode_reported_bytes_total", scrape.Labels{"from": "seed"}); got != float64(len(data)) {
		t.Errorf("reported bytes from the seed = %v, want %d", got, len(data))
	}
}

// A daemon without supernode fetches from the origin (counted as such, per piece), then garbage
// collection evicts the task once unused: the eviction, its bytes and the emptied store show.
func TestOriginAndGCMetrics(t *testing.T) {
	const size = 2 << 20
	data, src := randomOrigin(t, size)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := runDaemon(ctx, t, dfdaemon.Config{GC: dfdaemon.GCConfig{High: 1 << 30, TTL: time.Millisecond, Interval: 50 * time.Millisecond}})
	if m := gather(t, d.Metrics()); m.Sum("pouch_dfdaemon_store_quota_bytes", nil) != 1<<30 {
		t.Errorf("store_quota_bytes = %v, want the high watermark", m.Sum("pouch_dfdaemon_store_quota_bytes", nil))
	}
	downloadAll(ctx, t, []*dfdaemon.Daemon{d}, src.URL+"/f", data)
	m := gather(t, d.Metrics())
	// Pieces from the origin are durable before the fetch moves on: at least one group ran.
	if g, dropped := m.Sum("pouch_dfdaemon_store_sync_groups_total", nil), m.Sum("pouch_dfdaemon_store_sync_dropped_pieces_total", nil); g < 1 || dropped != 0 {
		t.Errorf("store sync groups %v, dropped pieces %v; want at least one group and none dropped", g, dropped)
	}
	if got := m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "origin", "from": "origin"}); got != size {
		t.Errorf("bytes from the origin = %v, want %d", got, size)
	}
	if n, want := m.Count("pouch_dfdaemon_piece_seconds", scrape.Labels{"from": "origin"}), piece.Count(size, piece.SizeFor(size)); n != uint64(want) {
		t.Errorf("%d origin piece latencies, want one per piece (%d)", n, want)
	}
	until(t, "garbage collection evicts the task", func() bool {
		return gather(t, d.Metrics()).Sum("pouch_dfdaemon_gc_evicted_tasks_total", nil) == 1
	})
	m = gather(t, d.Metrics())
	if m.Sum("pouch_dfdaemon_gc_evicted_bytes_total", nil) != size || m.Sum("pouch_dfdaemon_store_bytes", nil) != 0 ||
		m.Sum("pouch_dfdaemon_store_tasks", nil) != 0 || m.Sum("pouch_dfdaemon_gc_runs_total", scrape.Labels{"result": "ok"}) == 0 {
		t.Errorf("after eviction: evicted %v bytes, store %v bytes in %v tasks, %v runs",
			m.Sum("pouch_dfdaemon_gc_evicted_bytes_total", nil), m.Sum("pouch_dfdaemon_store_bytes", nil),
			m.Sum("pouch_dfdaemon_store_tasks", nil), m.Sum("pouch_dfdaemon_gc_runs_total", nil))
	}
}

func probe(t *testing.T, ctx context.Context, url string) (int, string) {
	t.Helper()
	code, body, err := scrape.Probe(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// A dfdaemon is ready once a supernode answers its heartbeat, and not ready, naming the
// discovery check, once none does and its DHT has no peer; it stays alive throughout. One whose
// supernode is gone but whose DHT has a peer is ready; one without supernode (origin only) is
// ready without the check.
func TestReadiness(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	snCtx, stopSupernode := context.WithCancel(ctx)
	sn := runSupernode(snCtx, t, supernode.Config{})
	d := runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL(), Heartbeat: 50 * time.Millisecond})
	until(t, "the dfdaemon is ready", func() bool {
		code, _ := probe(t, ctx, d.URL()+"/readyz")
		return code == http.StatusOK
	})
	if _, body := probe(t, ctx, d.URL()+"/readyz"); !strings.Contains(body, "[+]store ok") || !strings.Contains(body, "[+]discovery ok") {
		t.Errorf("ready body: %q", body)
	}
	if gather(t, d.Metrics()).Sum("pouch_dfdaemon_heartbeats_total", scrape.Labels{"result": "ok"}) == 0 {
		t.Error("no heartbeat counted")
	}

	stopSupernode()
	until(t, "the dfdaemon is not ready", func() bool {
		code, _ := probe(t, ctx, d.URL()+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if _, body := probe(t, ctx, d.URL()+"/readyz"); !strings.Contains(body, "[-]discovery failed: no supernode answered the latest heartbeat") ||
		!strings.Contains(body, "not ready: discovery failed") || !strings.Contains(body, "[+]store ok") {
		t.Errorf("not ready body: %q", body)
	}
	if code, body := probe(t, ctx, d.URL()+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz without supernode: %d %q", code, body)
	}
	if gather(t, d.Metrics()).Sum("pouch_dfdaemon_heartbeats_total", scrape.Labels{"result": "error"}) == 0 {
		t.Error("no failed heartbeat counted")
	}

	// A node whose supernode is gone but whose DHT has a peer (d) can still find content.
	viaDHT := runDaemon(ctx, t, dfdaemon.Config{Supernode: deadSupernode(t), Heartbeat: 50 * time.Millisecond,
		DHT: dfdaemon.DHTConfig{BootstrapPeers: []string{bootstrapAddr(d)}}})
	until(t, "the node is ready through the DHT", func() bool {
		code, body := probe(t, ctx, viaDHT.URL()+"/readyz")
		return code == http.StatusOK && strings.Contains(body, "[+]discovery ok")
	})

	alone := runDaemon(ctx, t, dfdaemon.Config{})
	until(t, "the origin-only dfdaemon serves", func() bool {
		code, body := probe(t, ctx, alone.URL()+"/readyz")
		return code == http.StatusOK && !strings.Contains(body, "discovery")
	})
}

// With MetricsListen the daemon serves /metrics, /healthz and /readyz there and nothing else;
// the local API keeps /metrics.
func TestMetricsListen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := runDaemon(ctx, t, dfdaemon.Config{MetricsListen: "127.0.0.1:0"})
	if d.MetricsAddr() == "" || d.MetricsAddr() == d.Addr() {
		t.Fatalf("metrics address %q beside the API's %q", d.MetricsAddr(), d.Addr())
	}
	base := "http://" + d.MetricsAddr()
	until(t, "the metrics listener serves", func() bool {
		code, _ := probe(t, ctx, base+"/readyz")
		return code == http.StatusOK
	})
	for _, u := range []string{base + "/metrics", d.URL() + "/metrics"} {
		if m := scrapeURL(t, ctx, u); m["pouch_dfdaemon_downloads_total"] == nil {
			t.Errorf("%s has no pouch_dfdaemon_downloads_total", u)
		}
	}
	if code, _ := probe(t, ctx, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz on the metrics listener: %d", code)
	}
	resp, err := http.Post(base+"/api/v1/download", "application/json", strings.NewReader(`{"url":"http://127.0.0.1/x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the download API on the metrics listener: %s, want 404", resp.Status)
	}
}
