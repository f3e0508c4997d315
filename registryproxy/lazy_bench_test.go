package registryproxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/registryproxy"
	"github.com/pouch-p2p/pouch/supernode"
)

// BenchmarkLazyRange is what a lazy-pulling snapshotter's first read costs: the first MiB of an
// uncached 256 MiB layer through the mirror (each iteration a new supernode and dfdaemon, so
// nothing is cached), against the same Range asked of the registry directly, in the same run.
// It reports the time to the first body byte and to the last, and the bytes the origin sent.
func BenchmarkLazyRange(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	origin, err := registry.Start(ctx, registry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer origin.Close()
	// 256 MiB in all with the tar header: the piece size is then 1 MiB (piece.SizeFor).
	img, err := image.Random(1, 256<<20-4096)
	if err != nil {
		b.Fatal(err)
	}
	if err := img.Push(ctx, origin.URL, "bench/lazy", "latest", "", ""); err != nil {
		b.Fatal(err)
	}
	layer := img.Layers[0]
	path := "/v2/bench/lazy/blobs/" + layer.Digest.String()
	const want = 1 << 20
	rng := fmt.Sprintf("bytes=0-%d", want-1)

	var mirrorFirst, mirrorLast, directFirst, directLast time.Duration
	var mirrorOrigin, directOrigin int64
	for b.Loop() {
		b.StopTimer()
		sn, d, stop := startMirror(ctx, b, origin)
		before := origin.BlobBytes(layer.Digest)
		b.StartTimer()
		first, last := timedRange(b, d.URL()+path+"?ns="+url.QueryEscape(origin.Host), rng, want)
		b.StopTimer()
		// The origin's count lands when its handler returns: wait for the seed to park.
		wait.Until(b, time.Minute, "the seed to park", func() bool {
			m, err := scrape.Get(ctx, "http://"+sn.MetricsAddr()+"/metrics")
			return err == nil && m.Sum("pouch_supernode_seeds_total", scrape.Labels{"result": "parked"}) >= 1
		})
		wait.Until(b, 10*time.Second, "the origin's count", func() bool { return origin.BlobBytes(layer.Digest) >= before+want })
		mirrorFirst, mirrorLast = mirrorFirst+first, mirrorLast+last
		mirrorOrigin += origin.BlobBytes(layer.Digest) - before
		stop()

		before = origin.BlobBytes(layer.Digest)
		first, last = timedRange(b, origin.URL+path, rng, want)
		wait.Until(b, 10*time.Second, "the origin's count", func() bool { return origin.BlobBytes(layer.Digest) >= before+want })
		directFirst, directLast = directFirst+first, directLast+last
		directOrigin += origin.BlobBytes(layer.Digest) - before
		b.StartTimer()
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(mirrorFirst), "mirror-ttfb-ms")
	b.ReportMetric(ms(directFirst), "direct-ttfb-ms")
	b.ReportMetric(ms(mirrorLast), "mirror-ttlb-ms")
	b.ReportMetric(ms(directLast), "direct-ttlb-ms")
	b.ReportMetric(float64(mirrorOrigin)/n, "mirror-origin-B/op")
	b.ReportMetric(float64(directOrigin)/n, "direct-origin-B/op")
}

// startMirror starts a supernode and a dfdaemon with the mirror for origin, each with empty
// storage; stop ends both.
func startMirror(ctx context.Context, tb testing.TB, origin *registry.Registry) (*supernode.Supernode, *dfdaemon.Daemon, func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(ctx)
	log := zap.NewNop()
	sn, err := supernode.New(supernode.Config{Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", DataDir: tb.TempDir(), Allow: loopback}, log)
	if err != nil {
		tb.Fatal(err)
	}
	d, err := dfdaemon.New(dfdaemon.Config{Supernode: sn.URL(), Listen: "127.0.0.1:0", DataDir: tb.TempDir(), Allow: loopback}, log)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := d.MountMirror(registryproxy.Config{Registries: map[string]registryproxy.RegistryConfig{origin.Host: {Insecure: true}}}); err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sn.Run(ctx) }()
	go func() { defer wg.Done(); d.Run(ctx) }()
	return sn, d, func() { cancel(); wg.Wait() }
}

// timedRange GETs rng of u and times the first body byte and the last.
func timedRange(tb testing.TB, u, rng string, want int64) (first, last time.Duration) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Range", rng)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var one [1]byte
	if _, err := io.ReadFull(resp.Body, one[:]); err != nil || resp.StatusCode != http.StatusPartialContent {
		tb.Fatalf("%s: %s, %v", u, resp.Status, err)
	}
	first = time.Since(start)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n+1 != want {
		tb.Fatalf("%s: %d bytes, %v", u, n+1, err)
	}
	return first, time.Since(start)
}
