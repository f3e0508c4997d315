// Package grafana checks the dashboard in this directory: every query parses as PromQL, every
// metric it names is one a running supernode or dfdaemon exports, and every Pouch metric they
// export is on a panel.
package grafana

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/pouch-p2p/pouch/deploy/internal/deploytest"
	fimage "github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/scrape"
)

const dashboard = "pouch.json"

var binDir string

func TestMain(m *testing.M) { deploytest.Main(m, &binDir) }

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a row's
}

// queries returns every panel's PromQL by panel title, checking the panels' wiring.
func queries(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string  `json:"uid"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	out := map[string][]string{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q does not use the dashboard's datasource variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
		}
	}
	walk(d.Panels)
	return out
}

// grafanaVars are the variables Grafana replaces in a query before Prometheus sees it.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h")

// metricNames parses a query and returns the metric names it selects.
func metricNames(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, nil
}

// exported says whether a query's metric name is in the scrape: a family itself, or a
// histogram's _bucket, _sum or _count series.
func exported(families scrape.Families, name string) bool {
	if _, ok := families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := families[base]; ok && (f.GetType() == dto.MetricType_HISTOGRAM || (suffix != "_bucket" && f.GetType() == dto.MetricType_SUMMARY)) {
				return true
			}
		}
	}
	return false
}

// Every metric the dashboard queries is exported by a supernode or a dfdaemon that have just
// served a small image through the dfdaemon's registry mirror (labelled series exist only once
// counted), and every Pouch metric they export is queried by a panel.
func TestDashboardMetricsAreExported(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg, err := registry.Start(ctx, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	img, err := fimage.Random(2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Push(ctx, reg.URL, "demo/random", "latest", "", ""); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	sn := deploytest.Start(t, "supernode", filepath.Join(binDir, "supernode"), "--listen", "127.0.0.1:0",
		"--data-dir", filepath.Join(root, "sn"), "--allow-networks", "127.0.0.0/8")
	df := deploytest.Start(t, "dfdaemon", filepath.Join(binDir, "dfdaemon"), "--supernode", "http://"+sn.HTTP,
		"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(root, "df"), "--allow-networks", "127.0.0.0/8",
		"--registry-default", reg.Host, "--registry-insecure", reg.Host)

	// Pull the image through the mirror, every layer read to its end.
	ref, err := name.ParseReference(df.HTTP+"/demo/random:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pull through the mirror: %v", err)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer through the mirror: %v", err)
		}
		rc.Close()
	}

	families := scrape.Families{}
	for _, p := range []string{sn.HTTP, df.HTTP} {
		f, err := scrape.Get(ctx, "http://"+p+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range f {
			families[k] = v
		}
	}
	used := map[string]bool{}
	for title, exprs := range queries(t) {
		for _, expr := range exprs {
			names, err := metricNames(expr)
			if err != nil {
				t.Errorf("panel %q: query %q: %v", title, expr, err)
				continue
			}
			for _, n := range names {
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")] = true
				if !exported(families, n) {
					t.Errorf("panel %q: %s is exported by neither daemon", title, n)
				}
			}
		}
	}
	// And every Pouch metric has a panel: a new metric is added to the dashboard with it
	// (docs/metrics.md says what each means).
	var unused []string
	for n := range families {
		if strings.HasPrefix(n, "pouch_") && !used[n] {
			unused = append(unused, n)
		}
	}
	slices.Sort(unused)
	if len(unused) > 0 {
		t.Errorf("Pouch metrics no panel shows: %v; add them to %s", unused, dashboard)
	}
}
