package scrape_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pouch-p2p/pouch/internal/scrape"
)

// A registry read in process and the same registry scraped over HTTP give the same sums.
func TestGetAndGatherAgree(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_bytes_total", Help: "h"}, []string{"source", "kind"})
	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_up", Help: "h"})
	took := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "test_seconds", Help: "h"}, []string{"from"})
	reg.MustRegister(bytes, up, took)
	took.WithLabelValues("seed").Observe(0.1)
	took.WithLabelValues("seed").Observe(0.2)
	took.WithLabelValues("peer").Observe(3)
	bytes.WithLabelValues("peer", "blob").Add(3)
	bytes.WithLabelValues("peer", "file").Add(4)
	bytes.WithLabelValues("origin", "blob").Add(5)
	up.Set(1)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	scraped, err := scrape.Get(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	gathered, err := scrape.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels scrape.Labels
		want   float64
	}{
		{"test_bytes_total", nil, 12},
		{"test_bytes_total", scrape.Labels{"source": "peer"}, 7},
		{"test_bytes_total", scrape.Labels{"source": "peer", "kind": "blob"}, 3},
		{"test_bytes_total", scrape.Labels{"source": "seed"}, 0},
		{"test_bytes_total", scrape.Labels{"tenant": "a"}, 0},
		{"test_up", nil, 1},
		{"test_missing", nil, 0},
	} {
		for from, f := range map[string]scrape.Families{"Get": scraped, "Gather": gathered} {
			if got := f.Sum(tc.name, tc.labels); got != tc.want {
				t.Errorf("%s: Sum(%s, %v) = %v, want %v", from, tc.name, tc.labels, got, tc.want)
			}
		}
	}
	for _, tc := range []struct {
		labels scrape.Labels
		want   uint64
	}{{nil, 3}, {scrape.Labels{"from": "seed"}, 2}, {scrape.Labels{"from": "origin"}, 0}} {
		for from, f := range map[string]scrape.Families{"Get": scraped, "Gather": gathered} {
			if got := f.Count("test_seconds", tc.labels); got != tc.want {
				t.Errorf("%s: Count(test_seconds, %v) = %v, want %v", from, tc.labels, got, tc.want)
			}
		}
	}
	unmet := gathered.Unmet(scrape.Want("test_bytes_total", scrape.Labels{"source": "peer"}, 7),
		scrape.Want("test_bytes_total", scrape.Labels{"source": "origin"}, 1), scrape.Want("test_up", nil, 1))
	if want := []string{"test_bytes_total" + fmt.Sprint(scrape.Labels{"source": "origin"}) + " = 5, want 1"}; !slices.Equal(unmet, want) {
		t.Errorf("Unmet = %q, want %q", unmet, want)
	}
	named, err := scrape.Get(context.Background(), srv.URL, "test_up", "test_missing")
	if err != nil || len(named) != 1 || named.Sum("test_up", nil) != 1 {
		t.Errorf("Get naming test_up and test_missing: %d families (%v), want test_up alone", len(named), err)
	}
	notFound := httptest.NewServer(nil)
	defer notFound.Close()
	if _, err := scrape.Get(context.Background(), notFound.URL+"/metrics"); err == nil {
		t.Error("a 404 scrape returned no error")
	}
}
