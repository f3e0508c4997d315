package e2e

import (
	"bytes"
	"context"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/scrape"
)

// Secrets the tests use, distinctive enough to look for in every log and answer.
const (
	bearerSecret = "Bearer s3cr3t-token"
	signature    = "s3cr3t-signature"
)

// privateOrigin serves /bearer only to "Authorization: Bearer s3cr3t-token" (401 with a
// challenge otherwise) and /signed only to a GET whose X-Amz-Signature is right (403
// otherwise, HEAD included: like a pre-signed URL, it is signed for one method). It counts
// the content bytes it sends per path, and apart from them the one-byte GETs (bytes=0-0) that
// check a requester where HEAD is refused.
type privateOrigin struct {
	*httptest.Server
	sent   map[string]*atomic.Int64
	probes atomic.Int64
}

func newPrivateOrigin(t *testing.T, files map[string][]byte) *privateOrigin {
	o := &privateOrigin{sent: map[string]*atomic.Int64{}}
	for p := range files {
		o.sent[p] = &atomic.Int64{}
	}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		switch {
		case !ok:
			http.NotFound(w, r)
			return
		case r.URL.Path == "/bearer" && r.Header.Get("Authorization") != bearerSecret:
			w.Header().Set("WWW-Authenticate", `Bearer realm="https://auth.example/token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		case r.URL.Path == "/signed" && (r.Method != http.MethodGet || r.URL.Query().Get("X-Amz-Signature") != signature):
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if r.Header.Get("Range") == "bytes=0-0" {
			o.probes.Add(1)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
			return
		}
		http.ServeContent(origin.CountWrites(w, o.sent[r.URL.Path]), r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(o.Close)
	return o
}

// noSecrets fails the test when a log of the cluster shows a credential.
func noSecrets(t *testing.T, procs ...*proc) {
	t.Helper()
	for _, p := range procs {
		p.mu.Lock()
		log := p.log.String()
		p.mu.Unlock()
		for _, s := range []string{"s3cr3t-token", signature} {
			if strings.Contains(log, s) {
				t.Errorf("%s logged a credential (%s)", p.Name, s)
			}
		}
	}
}

// The dfget leak: content fetched with credentials on node A is not served to node B without
// them, neither by its URL nor by a signed URL's unsigned or wrongly signed variants; node B
// with them gets it over P2P, and the origin sends it once.
func TestDfgetPrivateContent(t *testing.T) {
	bearerData, signedData := randomBytes(t, 3<<20+17), randomBytes(t, 2<<20+5)
	o := newPrivateOrigin(t, map[string][]byte{"/bearer": bearerData, "/signed": signedData})
	c := startCluster(t, 2)
	a, b := "http://"+c.daemons[0].HTTP, "http://"+c.daemons[1].HTTP
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	signedURL := o.URL + "/signed?X-Amz-Expires=600&X-Amz-Signature=" + signature

	get := func(t *testing.T, daemon, u string, wantCode int, wantSay string, data []byte, args ...string) {
		t.Helper()
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		code, stderr := dfget(ctx, append([]string{u, "-O", out, "--daemon", daemon}, args...)...)
		if code != wantCode || !strings.Contains(stderr, wantSay) {
			t.Fatalf("dfget %s: exit %d (%s), want %d saying %q", u, code, strings.TrimSpace(stderr), wantCode, wantSay)
		}
		if strings.Contains(stderr, signature) || strings.Contains(stderr, "s3cr3t-token") {
			t.Errorf("dfget shows a credential: %s", stderr)
		}
		if wantCode != 0 {
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("refused download left %s behind", left[0].Name())
			}
			return
		}
		if got := fileSHA(t, out); got != sha(data) {
			t.Errorf("content %s, want %s", got, sha(data))
		}
	}
	auth := []string{"-H", "Authorization: " + bearerSecret}

	t.Run("header", func(t *testing.T) {
		get(t, a, o.URL+"/bearer", 0, "", bearerData, auth...)
		get(t, b, o.URL+"/bearer", 4, "401", nil)
		get(t, b, o.URL+"/bearer", 4, "401", nil, "-H", "Authorization: Bearer wrong")
		// Nothing was fetched for the refused requests, and nothing counts as failed.
		if n := metric(t, c.daemons[1], "pouch_dfdaemon_download_bytes_total", nil); n != 0 {
			t.Errorf("node B fetched %v bytes for requests it refused", n)
		}
		if n := metric(t, c.daemons[1], "pouch_dfdaemon_downloads_failed_total", nil); n != 0 {
			t.Errorf("node B counted %v refusals as failed downloads", n)
		}
		before := metric(t, c.daemons[1], "pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "peer"})
		get(t, b, o.URL+"/bearer", 0, "", bearerData, auth...)
		if got := metric(t, c.daemons[1], "pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "peer"}) - before; got != float64(len(bearerData)) {
			t.Errorf("node B got %v bytes over P2P, want %d", got, len(bearerData))
		}
		if sent := o.sent["/bearer"].Load(); sent != int64(len(bearerData)) {
			t.Errorf("origin sent %d bytes of a %d-byte file", sent, len(bearerData))
		}
	})
	t.Run("signed query", func(t *testing.T) {
		get(t, a, signedURL, 0, "", signedData)
		get(t, b, strings.Replace(signedURL, signature, "forged", 1), 4, "403", nil)
		get(t, b, o.URL+"/signed?X-Amz-Expires=600", 4, "403", nil)
		get(t, b, o.URL+"/signed", 4, "403", nil)
		get(t, b, signedURL, 0, "", signedData)
		if sent := o.sent["/signed"].Load(); sent != int64(len(signedData)) {
			t.Errorf("origin sent %d bytes of a %d-byte file", sent, len(signedData))
		}
		if n := o.probes.Load(); n != 2 {
			t.Errorf("origin answered %d one-byte checks; want 2, node A's and node B's authorized requests", n)
		}
	})

	for result, atLeast := range map[string]float64{"denied": 3, "elsewhere": 2, "allowed": 2} {
		if n := metric(t, c.daemons[1], "pouch_dfdaemon_authorization_total", scrape.Labels{"result": result}); n < atLeast {
			t.Errorf("node B counted %v %s requests, want at least %v", n, result, atLeast)
		}
	}
	if n := metric(t, c.daemons[1], "pouch_dfdaemon_direct_fetches_total", nil); n < 2 {
		t.Errorf("node B counted %v direct fetches, want 2", n)
	}
	resp, err := http.Get("http://" + c.supernode.HTTP + "/api/v1/tasks")
	if err != nil {
		t.Fatal(err)
	}
	listing, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(string(listing), signature) || !strings.Contains(string(listing), "X-Amz-Signature=REDACTED") {
		t.Errorf("task listing: %d %s; want the signed URL redacted", resp.StatusCode, listing)
	}
	noSecrets(t, append([]*proc{c.supernode}, c.daemons...)...)
}

// The mirror leak: after an authorized pull of a private blob through node A's mirror, node B's
// mirror serves it neither to a client naming another registry that says yes to everything,
// nor to one without credentials for the right registry (which gets the registry's challenge);
// a client with them gets it over P2P.
func TestMirrorPrivateBlob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg, layer := privateLayer(ctx, t, 3<<20)
	// A registry that answers yes to every HEAD, and junk of the right length to every GET.
	var evilGets atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(layer.Data)))
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			evilGets.Add(1)
			w.Write(make([]byte, len(layer.Data)))
		}
	}))
	t.Cleanup(evil.Close)
	evilHost := strings.TrimPrefix(evil.URL, "http://")

	c := startCluster(t, 2, "--registry-insecure", reg.Host+","+evilHost)
	blob := func(node int, repo, ns string) string {
		return fmt.Sprintf("http://%s/v2/%s/blobs/%s?ns=%s", c.daemons[node].HTTP, repo, layer.Digest, url.QueryEscape(ns))
	}
	tok, err := reg.PullToken(ctx, "private/app", "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	anonymous, err := reg.PullToken(ctx, "private/app", "", "")
	if err != nil {
		t.Fatal(err)
	}

	if status, body, _ := fetch(t, blob(0, "private/app", reg.Host), tok); status != http.StatusOK || !bytes.Equal(body, layer.Data) {
		t.Fatalf("authorized pull on node A: %d, %d bytes", status, len(body))
	}

	status, body, _ := fetch(t, blob(1, "evil/x", evilHost), "")
	if bytes.Equal(body, layer.Data) {
		t.Fatalf("node B served the private blob to a client naming %s (status %d)", evilHost, status)
	}
	if evilGets.Load() == 0 {
		t.Errorf("node B did not go to the registry the client named")
	}

	status, _, h := fetch(t, blob(1, "private/app", reg.Host), "")
	if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("anonymous pull on node B: %d %q, want 401 with the registry's challenge", status, h.Get("WWW-Authenticate"))
	}
	if status, _, _ := fetch(t, blob(1, "private/app", reg.Host), anonymous); status != http.StatusUnauthorized {
		t.Errorf("pull with an anonymous token on node B: %d, want 401", status)
	}

	if status, body, _ := fetch(t, blob(1, "private/app", reg.Host), tok); status != http.StatusOK || !bytes.Equal(body, layer.Data) {
		t.Fatalf("authorized pull on node B: %d, %d bytes", status, len(body))
	}
	if got := metric(t, c.daemons[1], "pouch_registryproxy_blob_bytes_total", scrape.Labels{"source": "p2p"}); got != float64(len(layer.Data)) {
		t.Errorf("node B served %v bytes from P2P, want %d", got, len(layer.Data))
	}
	if got := reg.BlobBytes(layer.Digest); got != int64(len(layer.Data)) {
		t.Errorf("the registry sent %d bytes of the layer, want %d (once)", got, len(layer.Data))
	}
	for result, atLeast := range map[string]float64{"denied": 2, "elsewhere": 1, "allowed": 1} {
		if n := metric(t, c.daemons[1], "pouch_dfdaemon_authorization_total", scrape.Labels{"result": result}); n < atLeast {
			t.Errorf("node B counted %v %s requests, want at least %v", n, result, atLeast)
		}
	}
}

// fetch GETs u with an Authorization (none when auth is empty).
func fetch(t *testing.T, u, auth string) (int, []byte, http.Header) {
	t.Helper()
	return request(t, http.MethodGet, u, auth)
}

// request sends method u with an Authorization (none when auth is empty); a body cut short (the
// mirror aborts a response that fails its digest) is what was read before.
func request(t *testing.T, method, u, auth string) (int, []byte, http.Header) {
	t.Helper()
	h := http.Header{}
	if auth != "" {
		h.Set("Authorization", auth)
	}
	return send(t, method, u, h)
}

// send sends method u with the header h; a body cut short is what was read before.
func send(t *testing.T, method, u string, h http.Header) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header
}

// The mirror leak, for a lazy read: node A reads a Range of a private blob no node holds (only
// its covering pieces enter the cluster); node B's mirror then serves that Range neither to a
// client without credentials (the registry's challenge) nor to one naming a registry that says
// yes to everything; with the right token it is served the same bytes, from P2P.
func TestMirrorPrivateBlobLazyRange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg, layer := privateLayer(ctx, t, 8<<20)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(layer.Data)))
		if r.Method == http.MethodGet {
			w.Write(make([]byte, len(layer.Data)))
		}
	}))
	t.Cleanup(evil.Close)
	evilHost := strings.TrimPrefix(evil.URL, "http://")

	c := startCluster(t, 2, "--registry-insecure", reg.Host+","+evilHost)
	const want = 1 << 20
	ranged := func(node int, repo, ns, auth string) (int, []byte, http.Header) {
		t.Helper()
		u := fmt.Sprintf("http://%s/v2/%s/blobs/%s?ns=%s", c.daemons[node].HTTP, repo, layer.Digest, url.QueryEscape(ns))
		h := http.Header{"Range": {fmt.Sprintf("bytes=0-%d", want-1)}}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		return send(t, http.MethodGet, u, h)
	}
	tok, err := reg.PullToken(ctx, "private/app", "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}

	if status, body, _ := ranged(0, "private/app", reg.Host, tok); status != http.StatusPartialContent || !bytes.Equal(body, layer.Data[:want]) {
		t.Fatalf("authorized Range on node A: %d, %d bytes", status, len(body))
	}
	if got := reg.BlobBytes(layer.Digest); got >= int64(len(layer.Data)) {
		t.Fatalf("the registry sent %d bytes for a %d-byte Range of a %d-byte blob: not a lazy read", got, want, len(layer.Data))
	}

	if _, body, _ := ranged(1, "evil/x", evilHost, ""); bytes.Equal(body, layer.Data[:want]) {
		t.Fatalf("node B served the private range to a client naming %s", evilHost)
	}
	status, body, h := ranged(1, "private/app", reg.Host, "")
	if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer ") || bytes.Contains(body, layer.Data[:64]) {
		t.Errorf("anonymous Range on node B: %d %q, want 401 with the registry's challenge", status, h.Get("WWW-Authenticate"))
	}

	before := reg.BlobBytes(layer.Digest)
	if status, body, _ := ranged(1, "private/app", reg.Host, tok); status != http.StatusPartialContent || !bytes.Equal(body, layer.Data[:want]) {
		t.Fatalf("authorized Range on node B: %d, %d bytes", status, len(body))
	}
	if got := reg.BlobBytes(layer.Digest); got != before {
		t.Errorf("node B's authorized Range reached the registry: %d more bytes, want them from P2P", got-before)
	}
}

// privateLayer starts a registry with token auth (user alice, password pw) and pushes a random
// one-layer image of size bytes as private/app:latest; it returns the registry and the layer.
func privateLayer(ctx context.Context, t *testing.T, size int64) (*registry.Registry, image.Blob) {
	t.Helper()
	reg, err := registry.Start(ctx, registry.Options{Token: true, Htpasswd: map[string]string{"alice": "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	img, err := image.Random(1, size)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Push(ctx, reg.URL, "private/app", "latest", "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	return reg, img.Layers[0]
}
