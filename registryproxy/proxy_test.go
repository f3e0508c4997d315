package registryproxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/registryproxy"
)

// memBlobs serves blobs from memory, misbehaving as told.
type memBlobs struct {
	data      map[digest.Digest][]byte
	fetchErr  error
	stall     bool  // Fetch blocks until its context ends
	stallRead bool  // readers block until their context ends
	breakAt   int64 // readers fail at this offset (0: never)
	badEnd    bool  // readers report a failed verification instead of io.EOF
}

func (m *memBlobs) Fetch(ctx context.Context, req registryproxy.BlobRequest) (registryproxy.Blob, error) {
	if m.stall {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if m.fetchErr != nil {
		return nil, m.fetchErr
	}
	return &memBlob{m: m, data: m.data[req.Digest]}, nil
}

type memBlob struct {
	m    *memBlobs
	data []byte
}

func (b *memBlob) Size() int64 { return int64(len(b.data)) }
func (b *memBlob) Close()      {}
func (b *memBlob) NewReader(ctx context.Context, off int64) io.Reader {
	return &memReader{ctx: ctx, b: b, off: off}
}

type memReader struct {
	ctx context.Context
	b   *memBlob
	off int64
}

func (r *memReader) Read(p []byte) (int, error) {
	m := r.b.m
	if m.stallRead {
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	if m.breakAt > 0 && r.off >= m.breakAt {
		return 0, errors.New("parent went away")
	}
	if r.off >= int64(len(r.b.data)) {
		if m.badEnd {
			return 0, errors.New("digest mismatch")
		}
		return 0, io.EOF
	}
	end := int64(len(r.b.data))
	if m.breakAt > 0 {
		end = min(end, m.breakAt)
	}
	n := copy(p, r.b.data[r.off:end])
	r.off += int64(n)
	return n, nil
}

func startProxy(t *testing.T, cfg registryproxy.Config, blobs registryproxy.Blobs, reg prometheus.Registerer) *httptest.Server {
	t.Helper()
	p, err := registryproxy.New(cfg, blobs, registryproxy.Options{Registerer: reg, Policy: netguard.Policy{Allow: loopback}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

// originWithImage starts an origin holding demo/app:latest, one random layer of 600 KiB.
func originWithImage(t *testing.T, opts registry.Options, user, pass string) (*registry.Registry, *image.Image) {
	t.Helper()
	origin, err := registry.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { origin.Close() })
	img, err := image.Random(1, 600<<10)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Push(context.Background(), origin.URL, "demo/app", "latest", user, pass); err != nil {
		t.Fatal(err)
	}
	return origin, img
}

// TestFallbackToUpstream: whatever P2P does wrong, the client gets the right blob.
func TestFallbackToUpstream(t *testing.T) {
	t.Parallel()
	origin, img := originWithImage(t, registry.Options{}, "", "")
	layer := img.Layers[0]
	data := map[digest.Digest][]byte{layer.Digest: layer.Data}
	cases := []struct {
		name  string
		blobs *memBlobs
		rng   string
	}{
		{"fetch fails", &memBlobs{fetchErr: errors.New("supernode down")}, ""},
		{"fetch stalls", &memBlobs{stall: true}, ""},
		{"first byte stalls", &memBlobs{data: data, stallRead: true}, ""},
		{"stream breaks", &memBlobs{data: data, breakAt: 300 << 10}, ""},
		{"stream breaks in a range", &memBlobs{data: data, breakAt: 300 << 10}, "bytes=1000-400000"},
		{"fetch fails in a range", &memBlobs{fetchErr: errors.New("supernode down")}, "bytes=1000-400000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			srv := startProxy(t, registryproxy.Config{Default: origin.Host, FirstByteTimeout: 300 * time.Millisecond,
				Registries: map[string]registryproxy.RegistryConfig{origin.Host: {Insecure: true}}}, tc.blobs, reg)
			h := http.Header{}
			want := layer.Data
			if tc.rng != "" {
				h.Set("Range", tc.rng)
				want = layer.Data[1000:400001]
			}
			r := do(t, http.MethodGet, srv.URL+"/v2/demo/app/blobs/"+layer.Digest.String(), h)
			if r.status/100 != 2 || !bytes.Equal(r.body, want) {
				t.Fatalf("%d, %d bytes (want %d)", r.status, len(r.body), len(want))
			}
			if n := metric(t, reg, "pouch_registryproxy_fallbacks_total", nil); n != 1 {
				t.Errorf("fallbacks = %v, want 1", n)
			}
		})
	}
}

// TestVerificationFailureAbortsResponse: a blob whose P2P content fails its digest check never
// reaches the client complete.
func TestVerificationFailureAbortsResponse(t *testing.T) {
	t.Parallel()
	origin, img := originWithImage(t, registry.Options{}, "", "")
	layer := img.Layers[0]
	srv := startProxy(t, registryproxy.Config{Default: origin.Host, Registries: map[string]registryproxy.RegistryConfig{origin.Host: {Insecure: true}}},
		&memBlobs{data: map[digest.Digest][]byte{layer.Digest: layer.Data}, badEnd: true}, nil)
	resp, err := http.Get(srv.URL + "/v2/demo/app/blobs/" + layer.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil || len(body) >= len(layer.Data) {
		t.Errorf("client read %d of %d bytes without an error", len(body), len(layer.Data))
	}
}

// TestPathTraversal sends unclean paths straight to the handler (no ServeMux cleaning).
func TestPathTraversal(t *testing.T) {
	t.Parallel()
	srv := startProxy(t, registryproxy.Config{Default: "registry.invalid"}, &memBlobs{}, nil)
	d := digest.FromString("x").String()
	for _, p := range []string{
		"/v2/demo/../../etc/blobs/" + d,
		"/v2/../v2/demo/manifests/latest",
		"/v2/demo/%2e%2e/%2e%2e/blobs/" + d,
		"/v2/demo%2f..%2fx/manifests/latest",
		"/v2/./demo/manifests/latest",
		"/v2//demo/manifests/latest",
	} {
		u, _ := url.Parse(srv.URL)
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "http", Host: u.Host, Opaque: p}, Header: http.Header{}}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := response{resp.StatusCode, resp.Header, body}
		if r.status != http.StatusBadRequest || r.code() != "NAME_INVALID" {
			t.Errorf("%s: %d %s", p, r.status, body)
		}
	}
}

// TestAllowList: only listed registries are mirrored; the default must be one of them.
func TestAllowList(t *testing.T) {
	t.Parallel()
	srv := startProxy(t, registryproxy.Config{Allowed: []string{"docker.io", "ghcr.io"}}, &memBlobs{}, nil)
	r := do(t, http.MethodGet, srv.URL+"/v2/x/manifests/latest?ns=evil.example.com", nil)
	if r.status != http.StatusNotFound || r.code() != "NAME_UNKNOWN" {
		t.Errorf("not allowed ns: %d %s", r.status, r.body)
	}
	if _, err := registryproxy.New(registryproxy.Config{Default: "quay.io", Allowed: []string{"docker.io"}}, &memBlobs{}, registryproxy.Options{}); err == nil {
		t.Error("a default outside the allow-list was accepted")
	}
}

// TestStaticCredentials: a configured user answers the upstream's token challenge for
// clients that send no credentials.
func TestStaticCredentials(t *testing.T) {
	t.Parallel()
	origin, img := originWithImage(t, registry.Options{Token: true, Htpasswd: map[string]string{"ci": "pw"}}, "ci", "pw")
	layer := img.Layers[0]
	srv := startProxy(t, registryproxy.Config{Registries: map[string]registryproxy.RegistryConfig{
		origin.Host: {Insecure: true, Username: "ci", Password: "pw"}}},
		&memBlobs{data: map[digest.Digest][]byte{layer.Digest: layer.Data}}, nil)
	ns := "?ns=" + origin.Host
	if r := do(t, http.MethodGet, srv.URL+"/v2/demo/app/manifests/latest"+ns, nil); r.status != http.StatusOK || !bytes.Equal(r.body, img.Manifest.Data) {
		t.Errorf("manifest: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, srv.URL+"/v2/demo/app/blobs/"+layer.Digest.String()+ns, nil); r.status != http.StatusOK || !bytes.Equal(r.body, layer.Data) {
		t.Errorf("blob: %d", r.status)
	}
}

// TestDockerHubNames: ns=docker.io maps to registry-1.docker.io with library/ for one-word
// names (checked without the network: only the mapping).
func TestDockerHubNames(t *testing.T) {
	t.Parallel()
	p, err := registryproxy.New(registryproxy.Config{}, &memBlobs{}, registryproxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/v2/alpine/manifests/3", "https://registry-1.docker.io/v2/library/alpine/manifests/3"},
		{"/v2/bitnami/redis/manifests/7", "https://registry-1.docker.io/v2/bitnami/redis/manifests/7"},
	} {
		u := registryproxy.UpstreamURL(p, "docker.io", tc.path)
		if u != tc.want {
			t.Errorf("%s → %s, want %s", tc.path, u, tc.want)
		}
	}
}

// TestAnswersReused: within their TTLs the mirror answers a tag and the manifest it names
// again without asking the upstream; with TagTTL < 0 every tag goes up. A blob Blobs serves
// never goes up: whether the client may read it is Blobs' decision.
func TestAnswersReused(t *testing.T) {
	t.Parallel()
	origin, img := originWithImage(t, registry.Options{}, "", "")
	layer := img.Layers[0]
	blobs := &memBlobs{data: map[digest.Digest][]byte{layer.Digest: layer.Data}}
	get := func(srv, path string) {
		t.Helper()
		if r := do(t, http.MethodGet, srv+path, nil); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
	}
	for _, tc := range []struct {
		name   string
		tagTTL time.Duration
		reused bool
	}{{"tag TTL 1h", time.Hour, true}, {"tag TTL off", -1, false}} {
		srv := startProxy(t, registryproxy.Config{Default: origin.Host, TagTTL: tc.tagTTL,
			Registries: map[string]registryproxy.RegistryConfig{origin.Host: {Insecure: true}}}, blobs, nil)
		get(srv.URL, "/v2/demo/app/manifests/latest")
		before := origin.Requests()
		get(srv.URL, "/v2/demo/app/manifests/latest")
		if got := origin.Requests() > before; got == tc.reused {
			t.Errorf("%s: second tag request went upstream = %v", tc.name, got)
		}
		if tc.reused {
			get(srv.URL, "/v2/demo/app/manifests/"+img.Manifest.Digest.String())
			if origin.Requests() > before {
				t.Errorf("%s: the manifest named by the cached tag was fetched again by digest", tc.name)
			}
		}
		before = origin.Requests()
		get(srv.URL, "/v2/demo/app/blobs/"+layer.Digest.String())
		if origin.Requests() > before {
			t.Errorf("%s: a blob served by Blobs went to the upstream", tc.name)
		}
	}
}

// TestUpstreamsBounded: every distinct ?ns= a client names makes an upstream client; the proxy
// keeps a bounded number of them, the least recently used going first.
func TestUpstreamsBounded(t *testing.T) {
	t.Parallel()
	p, err := registryproxy.New(registryproxy.Config{}, &memBlobs{}, registryproxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * registryproxy.UpstreamBound {
		if u := registryproxy.UpstreamURL(p, fmt.Sprintf("r%d.example", i), "/v2/a/manifests/1"); u == "" {
			t.Fatalf("ns r%d.example not resolved", i)
		}
	}
	if n := registryproxy.Upstreams(p); n != registryproxy.UpstreamBound {
		t.Fatalf("%d upstream clients after %d distinct ns, want the bound %d", n, 3*registryproxy.UpstreamBound, registryproxy.UpstreamBound)
	}
}
