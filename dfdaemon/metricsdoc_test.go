package dfdaemon_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/registryproxy"
	"github.com/pouch-p2p/pouch/supernode"
)

const metricsDoc = "../docs/metrics.md"

// documented lists the metrics named in the first column of docs/metrics.md's tables.
func documented(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(pouch_[a-z0-9_]+)` \\|").FindAllStringSubmatch(string(data), -1) {
		out = append(out, m[1])
	}
	return out
}

// docs/metrics.md lists exactly the metrics a supernode and a dfdaemon export once the
// dfdaemon's mirror has served a pull (labelled series exist once counted).
func TestMetricsAreDocumented(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := registry.StartTest(t, registry.Options{})
	img := image.PushRandom(t, reg.URL, "team/app", "latest", 1, 1<<20, "", "")
	sn := runSupernode(ctx, t, supernode.Config{})
	d := runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL()})
	if _, err := d.MountMirror(registryproxy.Config{Default: reg.Host, Registries: map[string]registryproxy.RegistryConfig{reg.Host: {Insecure: true}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(d.URL() + "/v2/team/app/blobs/" + img.Layers[0].Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("blob through the mirror: %s", resp.Status)
	}

	exported := map[string]bool{}
	for name := range gather(t, d.Metrics()) {
		exported[name] = true
	}
	for name := range scrapeURL(t, ctx, sn.URL()+"/metrics") {
		exported[name] = true
	}
	docs := documented(t)
	for _, name := range docs {
		if !exported[name] {
			t.Errorf("%s lists %s, which neither daemon exports", metricsDoc, name)
		}
	}
	for name := range exported {
		if strings.HasPrefix(name, "pouch_") && !slices.Contains(docs, name) {
			t.Errorf("%s is exported but missing from %s", name, metricsDoc)
		}
	}
}
