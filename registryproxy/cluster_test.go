package registryproxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/registryproxy"
	"github.com/pouch-p2p/pouch/supernode"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

const accept = ocispec.MediaTypeImageManifest + ", " + ocispec.MediaTypeImageIndex

// cluster is a supernode, n daemons with the mirror mounted, and an origin registry.
type cluster struct {
	origin  *registry.Registry
	sn      *supernode.Supernode
	daemons []*dfdaemon.Daemon
}

func startCluster(t *testing.T, n int, opts registry.Options) *cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := zap.NewNop()
	origin, err := registry.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := supernode.New(supernode.Config{Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", DataDir: t.TempDir(), Allow: loopback}, log)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sn.Run(ctx) }()
	c := &cluster{origin: origin, sn: sn}
	for range n {
		d, err := dfdaemon.New(dfdaemon.Config{Supernode: sn.URL(), Listen: "127.0.0.1:0", DataDir: t.TempDir(), Allow: loopback}, log)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.MountMirror(registryproxy.Config{Registries: map[string]registryproxy.RegistryConfig{origin.Host: {Insecure: true}}}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); d.Run(ctx) }()
		c.daemons = append(c.daemons, d)
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		origin.Close()
	})
	return c
}

// downloads is how many downloads daemon d has started.
func downloads(t *testing.T, d *dfdaemon.Daemon) float64 {
	t.Helper()
	m, err := scrape.Gather(d.Metrics())
	if err != nil {
		t.Fatal(err)
	}
	return m.Sum("pouch_dfdaemon_downloads_total", nil)
}

func (c *cluster) url(i int, path string) string {
	return c.daemons[i].URL() + path + "?ns=" + url.QueryEscape(c.origin.Host)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, u string, h http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

func (r response) code() string {
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if json.Unmarshal(r.body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// pushImage pushes an image of random layers (size bytes in all) as repo:latest, and its index
// as repo:multi.
func pushImage(t *testing.T, base string, layers int, size int64, repo, user, pass string) *image.Image {
	t.Helper()
	img, err := image.Random(layers, size)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Push(context.Background(), base, repo, "latest", user, pass); err != nil {
		t.Fatal(err)
	}
	if err := img.PushIndex(context.Background(), base, repo, "multi", user, pass); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestConformance pulls through one daemon's mirror and checks the OCI pull API.
func TestConformance(t *testing.T) {
	c := startCluster(t, 1, registry.Options{})
	img := pushImage(t, c.origin.URL, 2, 3<<20, "demo/busybox", "", "")
	layer := img.Layers[0]
	idx := img.Index()

	t.Run("base", func(t *testing.T) {
		if r := do(t, http.MethodGet, c.url(0, "/v2/"), nil); r.status != http.StatusOK {
			t.Errorf("GET /v2/: %d", r.status)
		}
	})
	t.Run("manifest by tag and digest", func(t *testing.T) {
		for _, ref := range []string{"latest", img.Manifest.Digest.String()} {
			r := do(t, http.MethodGet, c.url(0, "/v2/demo/busybox/manifests/"+ref), nil)
			if r.status != http.StatusOK || !bytes.Equal(r.body, img.Manifest.Data) {
				t.Fatalf("%s: %d %s", ref, r.status, r.body)
			}
			if r.header.Get("Content-Type") != ocispec.MediaTypeImageManifest || r.header.Get("Docker-Content-Digest") != img.Manifest.Digest.String() ||
				r.header.Get("Content-Length") != fmt.Sprint(len(img.Manifest.Data)) {
				t.Errorf("%s: headers %v", ref, r.header)
			}
			h := do(t, http.MethodHead, c.url(0, "/v2/demo/busybox/manifests/"+ref), nil)
			if h.status != http.StatusOK || len(h.body) != 0 || h.header.Get("Docker-Content-Digest") != img.Manifest.Digest.String() ||
				h.header.Get("Content-Length") != fmt.Sprint(len(img.Manifest.Data)) {
				t.Errorf("HEAD %s: %d %v", ref, h.status, h.header)
			}
		}
	})
	t.Run("image index", func(t *testing.T) {
		r := do(t, http.MethodGet, c.url(0, "/v2/demo/busybox/manifests/multi"), nil)
		if r.status != http.StatusOK || !bytes.Equal(r.body, idx.Data) || r.header.Get("Content-Type") != ocispec.MediaTypeImageIndex ||
			r.header.Get("Docker-Content-Digest") != idx.Digest.String() {
			t.Errorf("index: %d %v", r.status, r.header)
		}
	})
	t.Run("blobs", func(t *testing.T) {
		for _, b := range img.Blobs() {
			r := do(t, http.MethodGet, c.url(0, "/v2/demo/busybox/blobs/"+b.Digest.String()), nil)
			if r.status != http.StatusOK || digest.FromBytes(r.body) != b.Digest || r.header.Get("Docker-Content-Digest") != b.Digest.String() ||
				r.header.Get("Content-Length") != fmt.Sprint(len(b.Data)) {
				t.Errorf("blob %s: %d, %d bytes, %v", b.Digest, r.status, len(r.body), r.header)
			}
		}
	})
	t.Run("ranges", func(t *testing.T) {
		n := int64(len(layer.Data))
		cases := []struct {
			rng        string
			status     int
			start, end int64
		}{
			{"bytes=10-99", http.StatusPartialContent, 10, 99},
			{"bytes=1048576-", http.StatusPartialContent, 1 << 20, n - 1},
			{"bytes=-5", http.StatusPartialContent, n - 5, n - 1},
			{fmt.Sprintf("bytes=%d-", n), http.StatusRequestedRangeNotSatisfiable, 0, 0},
		}
		for _, tc := range cases {
			r := do(t, http.MethodGet, c.url(0, "/v2/demo/busybox/blobs/"+layer.Digest.String()), http.Header{"Range": {tc.rng}})
			if r.status != tc.status {
				t.Errorf("%s: %d, want %d", tc.rng, r.status, tc.status)
				continue
			}
			if tc.status != http.StatusPartialContent {
				if got, want := r.header.Get("Content-Range"), fmt.Sprintf("bytes */%d", n); got != want {
					t.Errorf("%s: Content-Range %q, want %q", tc.rng, got, want)
				}
				continue
			}
			if !bytes.Equal(r.body, layer.Data[tc.start:tc.end+1]) || r.header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", tc.start, tc.end, n) {
				t.Errorf("%s: %d bytes, Content-Range %q", tc.rng, len(r.body), r.header.Get("Content-Range"))
			}
		}
	})
	t.Run("HEAD blob", func(t *testing.T) {
		d := img.Layers[1].Digest
		before, started := c.origin.BlobBytes(d), downloads(t, c.daemons[0])
		r := do(t, http.MethodHead, c.url(0, "/v2/demo/busybox/blobs/"+d.String()), nil)
		if r.status != http.StatusOK || r.header.Get("Content-Length") != fmt.Sprint(len(img.Layers[1].Data)) || r.header.Get("Docker-Content-Digest") != d.String() {
			t.Errorf("HEAD: %d %v", r.status, r.header)
		}
		// A download would have been started before the HEAD was answered.
		if n := downloads(t, c.daemons[0]) - started; n != 0 {
			t.Errorf("HEAD of a blob started %v downloads", n)
		}
		if after := c.origin.BlobBytes(d); after != before {
			t.Errorf("HEAD of a blob fetched %d bytes from the origin", after-before)
		}
	})
	unknown := digest.FromString("nothing here")
	errCases := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"unknown blob", http.MethodGet, "/v2/demo/busybox/blobs/" + unknown.String(), 404, "BLOB_UNKNOWN"},
		{"unknown blob HEAD", http.MethodHead, "/v2/demo/busybox/blobs/" + unknown.String(), 404, ""},
		{"unknown manifest", http.MethodGet, "/v2/demo/busybox/manifests/nope", 404, "MANIFEST_UNKNOWN"},
		{"unknown manifest digest", http.MethodGet, "/v2/demo/busybox/manifests/" + unknown.String(), 404, "MANIFEST_UNKNOWN"},
		{"upper-case name", http.MethodGet, "/v2/Demo/busybox/manifests/latest", 400, "NAME_INVALID"},
		{"bad name", http.MethodGet, "/v2/demo/-x/blobs/" + unknown.String(), 400, "NAME_INVALID"},
		{"bad digest", http.MethodGet, "/v2/demo/busybox/blobs/sha256:xyz", 400, "DIGEST_INVALID"},
		{"bad algorithm", http.MethodGet, "/v2/demo/busybox/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", 400, "DIGEST_INVALID"},
		{"bad manifest digest", http.MethodGet, "/v2/demo/busybox/manifests/sha256:1234", 400, "DIGEST_INVALID"},
		{"push start", http.MethodPost, "/v2/demo/busybox/blobs/uploads/", 405, "UNSUPPORTED"},
		{"push manifest", http.MethodPut, "/v2/demo/busybox/manifests/latest", 405, "UNSUPPORTED"},
		{"patch", http.MethodPatch, "/v2/demo/busybox/blobs/uploads/abc", 405, "UNSUPPORTED"},
		{"delete blob", http.MethodDelete, "/v2/demo/busybox/blobs/" + layer.Digest.String(), 405, "UNSUPPORTED"},
		{"delete manifest", http.MethodDelete, "/v2/demo/busybox/manifests/" + img.Manifest.Digest.String(), 405, "UNSUPPORTED"},
		{"upload GET", http.MethodGet, "/v2/demo/busybox/blobs/uploads/abc", 405, "UNSUPPORTED"},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, c.url(0, tc.path), nil)
			if r.status != tc.status || (tc.method != http.MethodHead && r.code() != tc.code) {
				t.Errorf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	t.Run("ns", func(t *testing.T) {
		base := c.daemons[0].URL() + "/v2/demo/busybox/manifests/latest"
		for _, tc := range []struct {
			ns     string
			status int
			code   string
		}{
			{"", 404, "NAME_UNKNOWN"},
			{"bad/host", 400, "NAME_INVALID"},
			{"http://x", 400, "NAME_INVALID"},
			{"a..b", 400, "NAME_INVALID"},
			{"127.0.0.1:99999", 400, "NAME_INVALID"},
		} {
			u := base
			if tc.ns != "" {
				u += "?ns=" + url.QueryEscape(tc.ns)
			}
			r := do(t, http.MethodGet, u, nil)
			if r.status != tc.status || r.code() != tc.code {
				t.Errorf("ns %q: %d %s, want %d %s", tc.ns, r.status, r.body, tc.status, tc.code)
			}
		}
	})
	t.Run("upstream down", func(t *testing.T) {
		// A public blob the cluster holds is served by its digest whatever the upstream does.
		if r := do(t, http.MethodGet, c.daemons[0].URL()+"/v2/demo/busybox/blobs/"+layer.Digest.String()+"?ns=127.0.0.1:1", nil); r.status != http.StatusOK || !bytes.Equal(r.body, layer.Data) {
			t.Errorf("public blob, upstream down: %d", r.status)
		}
		for _, path := range []string{"/v2/demo/busybox/manifests/latest", "/v2/demo/busybox/blobs/" + unknown.String()} {
			r := do(t, http.MethodGet, c.daemons[0].URL()+path+"?ns=127.0.0.1:1", nil)
			if r.status != http.StatusBadGateway || !strings.Contains(string(r.body), "127.0.0.1:1") || r.code() == "" {
				t.Errorf("%s: %d %s", path, r.status, r.body)
			}
		}
	})
}

// TestThreeDaemonsOneUpstreamFetch pulls the same image through three daemons at once: the
// origin must serve each blob exactly once.
func TestThreeDaemonsOneUpstreamFetch(t *testing.T) {
	c := startCluster(t, 3, registry.Options{})
	img := pushImage(t, c.origin.URL, 2, 16<<20, "demo/big", "", "")
	var wg sync.WaitGroup
	for i := range c.daemons {
		for _, b := range img.Blobs() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := do(t, http.MethodGet, c.url(i, "/v2/demo/big/blobs/"+b.Digest.String()), nil)
				if r.status != http.StatusOK || digest.FromBytes(r.body) != b.Digest {
					t.Errorf("daemon %d blob %s: %d, %d bytes", i, b.Digest, r.status, len(r.body))
				}
			}()
		}
	}
	wg.Wait()
	for _, b := range img.Blobs() {
		if got := c.origin.BlobBytes(b.Digest); got != int64(len(b.Data)) {
			t.Errorf("origin served %d bytes of %s (%d bytes)", got, b.Digest, len(b.Data))
		}
	}
	for i, d := range c.daemons {
		if n := metric(t, d.Metrics(), "pouch_registryproxy_fallbacks_total", nil); n != 0 {
			t.Errorf("daemon %d fell back to the upstream %v times", i, n)
		}
		if n := metric(t, d.Metrics(), "pouch_registryproxy_blob_bytes_total", scrape.Labels{"source": "p2p"}); n != float64(img.TotalSize()-int64(len(img.Manifest.Data))) {
			t.Errorf("daemon %d served %v blob bytes from P2P, want %d", i, n, img.TotalSize()-int64(len(img.Manifest.Data)))
		}
	}
}

// metric sums the series of one metric in a registry, as scrape.Families.Sum does.
func metric(t *testing.T, g prometheus.Gatherer, name string, labels scrape.Labels) float64 {
	t.Helper()
	f, err := scrape.Gather(g)
	if err != nil {
		t.Fatal(err)
	}
	return f.Sum(name, labels)
}

// TestTokenAuthPassThrough: the upstream's challenge reaches the client, a client with a token
// pulls, and a client without one is refused even once the blob is in the cluster.
func TestTokenAuthPassThrough(t *testing.T) {
	c := startCluster(t, 1, registry.Options{Token: true, Htpasswd: map[string]string{"alice": "pw"}, Public: []string{"pub/img"}})
	img := pushImage(t, c.origin.URL, 1, 1<<20, "priv/img", "alice", "pw")
	layer := img.Layers[0]
	blob := "/v2/priv/img/blobs/" + layer.Digest.String()

	r := do(t, http.MethodGet, c.url(0, "/v2/priv/img/manifests/latest"), nil)
	ch := r.header.Get("WWW-Authenticate")
	if r.status != http.StatusUnauthorized || !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, c.origin.URL+"/token") {
		t.Fatalf("anonymous manifest: %d %q", r.status, ch)
	}
	tok, err := c.origin.PullToken(context.Background(), "priv/img", "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	auth := http.Header{"Authorization": {tok}}
	if r := do(t, http.MethodGet, c.url(0, "/v2/priv/img/manifests/latest"), auth); r.status != http.StatusOK || !bytes.Equal(r.body, img.Manifest.Data) {
		t.Fatalf("manifest with a token: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, c.url(0, blob), auth); r.status != http.StatusOK || !bytes.Equal(r.body, layer.Data) {
		t.Fatalf("blob with a token: %d", r.status)
	}
	// Now in the cluster: an anonymous client, and one with a token for another repository,
	// must still be refused.
	r = do(t, http.MethodGet, c.url(0, blob), nil)
	if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("anonymous cached blob: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	anonPub, err := c.origin.PullToken(context.Background(), "pub/img", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, http.MethodGet, c.url(0, blob), http.Header{"Authorization": {anonPub}}); r.status != http.StatusUnauthorized {
		t.Errorf("cached blob with another repository's token: %d", r.status)
	}
	if r := do(t, http.MethodHead, c.url(0, blob), nil); r.status != http.StatusUnauthorized {
		t.Errorf("anonymous HEAD: %d", r.status)
	}
	if got := c.origin.BlobBytes(layer.Digest); got != int64(len(layer.Data)) {
		t.Errorf("origin served %d bytes of the layer, want %d", got, len(layer.Data))
	}
}

// TestBasicAuthPassThrough: the same with an htpasswd upstream.
func TestBasicAuthPassThrough(t *testing.T) {
	c := startCluster(t, 1, registry.Options{Htpasswd: map[string]string{"bob": "pw"}})
	img := pushImage(t, c.origin.URL, 1, 1<<20, "team/app", "bob", "pw")
	layer := img.Layers[0]
	blob := "/v2/team/app/blobs/" + layer.Digest.String()
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth("bob", "pw")
	auth := http.Header{"Authorization": {req.Header.Get("Authorization")}}

	if r := do(t, http.MethodGet, c.url(0, "/v2/team/app/manifests/latest"), nil); r.status != http.StatusUnauthorized ||
		!strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous manifest: %d %v", r.status, r.header)
	}
	if r := do(t, http.MethodGet, c.url(0, "/v2/team/app/manifests/latest"), auth); r.status != http.StatusOK {
		t.Errorf("manifest with credentials: %d", r.status)
	}
	if r := do(t, http.MethodGet, c.url(0, blob), auth); r.status != http.StatusOK || !bytes.Equal(r.body, layer.Data) {
		t.Errorf("blob with credentials: %d", r.status)
	}
	if r := do(t, http.MethodGet, c.url(0, blob), nil); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("anonymous cached blob: %d %v", r.status, r.header)
	}
	req.SetBasicAuth("bob", "wrong")
	if r := do(t, http.MethodGet, c.url(0, blob), http.Header{"Authorization": {req.Header.Get("Authorization")}}); r.status != http.StatusUnauthorized {
		t.Errorf("wrong password, cached blob: %d", r.status)
	}
}
