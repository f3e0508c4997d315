package registryproxy_test

import (
	"fmt"
	"net/http"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/registryproxy"
)

// Mirror requests are counted and timed by kind, status and upstream registry; the registry
// label names only the registries the config names, so however many a client makes up, the
// label keeps "other" for all of them (and "none" when no upstream was chosen).
func TestRequestMetricsByRegistry(t *testing.T) {
	t.Parallel()
	origin, img := originWithImage(t, registry.Options{}, "", "")
	layer := img.Layers[0]
	reg := prometheus.NewRegistry()
	srv := startProxy(t, registryproxy.Config{Registries: map[string]registryproxy.RegistryConfig{origin.Host: {Insecure: true}}},
		&memBlobs{data: map[digest.Digest][]byte{layer.Digest: layer.Data}}, reg)

	if r := do(t, http.MethodGet, srv.URL+"/v2/demo/app/manifests/latest?ns="+origin.Host, nil); r.status != http.StatusOK {
		t.Fatalf("manifest: %d", r.status)
	}
	if r := do(t, http.MethodGet, srv.URL+"/v2/demo/app/blobs/"+layer.Digest.String()+"?ns="+origin.Host, nil); r.status != http.StatusOK {
		t.Fatalf("blob: %d", r.status)
	}
	// Registries nobody configured: refused connections, each its own upstream.
	for i := range 5 {
		do(t, http.MethodGet, srv.URL+fmt.Sprintf("/v2/demo/app/manifests/latest?ns=127.0.0.%d:1", i+2), nil)
	}
	if r := do(t, http.MethodGet, srv.URL+"/v2/demo/app/manifests/latest", nil); r.status != http.StatusNotFound {
		t.Fatalf("no ns, no default: %d", r.status)
	}

	f, err := scrape.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		labels scrape.Labels
		want   float64
	}{
		{scrape.Labels{"kind": "manifest", "code": "200", "registry": origin.Host}, 1},
		{scrape.Labels{"kind": "blob", "code": "200", "registry": origin.Host}, 1},
		{scrape.Labels{"kind": "manifest", "registry": "other"}, 5},
		{scrape.Labels{"kind": "manifest", "code": "404", "registry": "none"}, 1},
	} {
		if got := f.Sum("pouch_registryproxy_requests_total", c.labels); got != c.want {
			t.Errorf("requests%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if n := f.Count("pouch_registryproxy_request_seconds", scrape.Labels{"kind": "blob", "registry": origin.Host}); n != 1 {
		t.Errorf("%d blob requests timed, want 1", n)
	}
	if n := f.Count("pouch_registryproxy_request_seconds", nil); n != 8 {
		t.Errorf("%d requests timed, want 8", n)
	}
	values := map[string]bool{}
	for _, m := range f["pouch_registryproxy_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "registry" {
				values[l.GetValue()] = true
			}
		}
	}
	if len(values) != 3 || !values[origin.Host] || !values["other"] || !values["none"] {
		t.Errorf("registry label values %v, want the configured registry, other and none", values)
	}
}
