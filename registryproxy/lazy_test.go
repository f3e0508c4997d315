package registryproxy_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/piece"
)

// seeds is how many seed fetches of the supernode ended with result ("success", "parked").
func (c *cluster) seeds(t *testing.T, result string) float64 {
	t.Helper()
	m, err := scrape.Get(context.Background(), "http://"+c.sn.MetricsAddr()+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return m.Sum("pouch_supernode_seeds_total", scrape.Labels{"result": result})
}

// TestLazyRange reads the first MiB of an uncached blob through the mirror, as a lazy-pulling
// snapshotter does: the origin sends only the pieces that cover it, in one ranged answer that
// also tells the seed the length (no probe); a second node reading it gets it from the cluster;
// a later full GET fetches the rest, once.
func TestLazyRange(t *testing.T) {
	c := startCluster(t, 2, registry.Options{})
	img := pushImage(t, c.origin.URL, 1, 32<<20, "demo/lazy", "", "")
	layer := img.Layers[0]
	size := int64(len(layer.Data))
	ps := piece.SizeFor(size)
	const want = 1 << 20
	covering := (want + ps - 1) / ps * ps
	path := "/v2/demo/lazy/blobs/" + layer.Digest.String()
	rng := http.Header{"Range": {fmt.Sprintf("bytes=0-%d", want-1)}}

	r := do(t, http.MethodGet, c.url(0, path), rng)
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, layer.Data[:want]) {
		t.Fatalf("first MiB: %d, %d bytes", r.status, len(r.body))
	}
	// The seed parks once the reader left with what it wanted; whatever it fetched is counted
	// by then.
	wait.Until(t, 30*time.Second, "the seed to park", func() bool { return c.seeds(t, "parked") >= 1 })
	wait.Until(t, 10*time.Second, "the origin's count", func() bool { return c.origin.BlobBytes(layer.Digest) >= covering })
	if got := c.origin.BlobBytes(layer.Digest); got != covering {
		t.Fatalf("origin sent %d bytes for the first MiB of %d, want %d (pieces of %d covering it)", got, size, covering, ps)
	}

	// Another node reads the same range: from the cluster, the origin sends nothing more.
	r = do(t, http.MethodGet, c.url(1, path), rng)
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, layer.Data[:want]) {
		t.Fatalf("first MiB on the second node: %d, %d bytes", r.status, len(r.body))
	}
	if got := c.origin.BlobBytes(layer.Digest); got != covering {
		t.Errorf("the second node's read reached the origin: %d bytes in all, want %d", got, covering)
	}

	// A bounded range past the end: 416, as for a blob read whole, and nothing fetched.
	r = do(t, http.MethodGet, c.url(1, path), http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", size+10, size+20)}})
	if r.status != http.StatusRequestedRangeNotSatisfiable || r.header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
		t.Errorf("bounded range past the end: %d, Content-Range %q", r.status, r.header.Get("Content-Range"))
	}
	if got := c.origin.BlobBytes(layer.Digest); got != covering {
		t.Errorf("a range past the end reached the origin: %d bytes in all, want %d", got, covering)
	}

	// The whole blob: verified, and the origin sends only what it had not sent.
	r = do(t, http.MethodGet, c.url(0, path), nil)
	if r.status != http.StatusOK || digest.FromBytes(r.body) != layer.Digest {
		t.Fatalf("full GET: %d, %d bytes", r.status, len(r.body))
	}
	wait.Until(t, 30*time.Second, "the seed to complete", func() bool { return c.seeds(t, "success") >= 1 })
	wait.Until(t, 10*time.Second, "the origin's count", func() bool { return c.origin.BlobBytes(layer.Digest) >= size })
	if got := c.origin.BlobBytes(layer.Digest); got != size {
		t.Errorf("origin sent %d bytes in all for a blob of %d, want %d", got, size, size)
	}

	// An open range past the end is still refused.
	r = do(t, http.MethodGet, c.url(1, path), http.Header{"Range": {fmt.Sprintf("bytes=%d-", size)}})
	if r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: %d", r.status)
	}
}

// TestLazyRangeBesideFullGET sends a Range and a full GET of an uncached blob to one node at
// once: whichever download starts first, both answers are right, and the origin sends the blob
// once.
func TestLazyRangeBesideFullGET(t *testing.T) {
	c := startCluster(t, 1, registry.Options{})
	img := pushImage(t, c.origin.URL, 1, 8<<20, "demo/lazy", "", "")
	layer := img.Layers[0]
	size := int64(len(layer.Data))
	path := "/v2/demo/lazy/blobs/" + layer.Digest.String()
	var ranged, full response
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		ranged = do(t, http.MethodGet, c.url(0, path), http.Header{"Range": {"bytes=3000000-3000099"}})
	}()
	go func() { defer wg.Done(); full = do(t, http.MethodGet, c.url(0, path), nil) }()
	wg.Wait()
	if ranged.status != http.StatusPartialContent || !bytes.Equal(ranged.body, layer.Data[3000000:3000100]) {
		t.Errorf("range: %d, %d bytes", ranged.status, len(ranged.body))
	}
	if full.status != http.StatusOK || digest.FromBytes(full.body) != layer.Digest {
		t.Errorf("full GET: %d, %d bytes", full.status, len(full.body))
	}
	wait.Until(t, 30*time.Second, "the seed to complete", func() bool { return c.seeds(t, "success") >= 1 })
	wait.Until(t, 10*time.Second, "the origin's count", func() bool { return c.origin.BlobBytes(layer.Digest) >= size })
	if got := c.origin.BlobBytes(layer.Digest); got > size {
		t.Errorf("origin sent %d bytes for a blob of %d", got, size)
	}
}
