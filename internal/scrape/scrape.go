// Package scrape reads Prometheus metrics for tests and dfbench: from a daemon's /metrics over
// HTTP, parsed by Prometheus's own expfmt, or from a registry in the same process; and sums the
// series of one metric that carry given labels. It also reads a daemon's probes (/healthz,
// /readyz). It owns reading only: the daemons own their metrics.
//
// Tests with a registry in process use Gather rather than client_golang's testutil: testutil's
// ToFloat64 needs the collector itself, which the daemons keep private, and from a Gatherer it
// only compares whole expositions, help text included, where a test wants one number.
package scrape

import (
	"context"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// Labels selects series by label values, e.g. Labels{"source": "peer"}.
type Labels map[string]string

// Get reads the text exposition at url (a daemon's /metrics): only the families named, when
// names are given (the `name[]` parameters of client_golang's handler, which then encodes only
// those), and uncompressed. A daemon gzipped every scrape by default, and dfbench's timeline
// scrapes each daemon every 250 ms, on the cores the nodes share: compressing, and parsing
// every family on dfbench's side, took about 5 % of a run's CPU (docs/benchmarks.md, "CPU per
// byte on a node").
func Get(ctx context.Context, url string, names ...string) (Families, error) {
	if len(names) > 0 {
		q := neturl.Values{"name[]": names}
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		url += sep + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return mfs, nil
}

// Probe reads a plain-text endpoint such as /readyz: its status code and body.
func Probe(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("probe %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", fmt.Errorf("probe %s: %w", url, err)
	}
	return resp.StatusCode, string(body), nil
}

// Gather reads a registry in the same process.
func Gather(g prometheus.Gatherer) (Families, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	f := make(Families, len(mfs))
	for _, mf := range mfs {
		f[mf.GetName()] = mf
	}
	return f, nil
}

// Sum adds the values of the counter, gauge or untyped series named name whose labels include
// every one of labels (nil: all series); 0 if there is none.
func (f Families) Sum(name string, labels Labels) float64 {
	var total float64
	for _, m := range f[name].GetMetric() {
		if matches(m, labels) {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return total
}

// Count adds the sample counts of the histogram or summary series named name whose labels
// include every one of labels (nil: all series): how many observations they made; 0 if none.
func (f Families) Count(name string, labels Labels) uint64 {
	var total uint64
	for _, m := range f[name].GetMetric() {
		if matches(m, labels) {
			total += m.GetHistogram().GetSampleCount() + m.GetSummary().GetSampleCount()
		}
	}
	return total
}

// Expect is what a test expects of a series: the Sum of name's series whose labels include
// labels. Want makes one.
type Expect struct {
	name   string
	labels Labels
	value  float64
}

// Want expects Sum(name, labels) to be value.
func Want(name string, labels Labels, value float64) Expect { return Expect{name, labels, value} }

// Unmet says, a line each, which expectations f does not meet ("name map[labels] = got, want
// value"); none when it meets them all. A test reports each line as an error.
func (f Families) Unmet(want ...Expect) []string {
	var out []string
	for _, w := range want {
		if got := f.Sum(w.name, w.labels); got != w.value {
			out = append(out, fmt.Sprintf("%s%v = %v, want %v", w.name, w.labels, got, w.value))
		}
	}
	return out
}

func matches(m *dto.Metric, labels Labels) bool {
	found := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(labels)
}
