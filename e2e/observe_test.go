package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/scrape"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := scrape.Probe(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// waitProbe polls url until it answers want, and returns the body.
func waitProbe(t *testing.T, url string, want int) string {
	t.Helper()
	var body string
	wait.Until(t, 30*time.Second, fmt.Sprintf("%s to answer %d", url, want), func() bool {
		var code int
		code, body = get(t, url)
		return code == want
	})
	return body
}

// The daemons started as the binaries are, with --metrics-listen: each prints the metrics
// address on its ready line and serves its metrics and probes there; a dfget download moves the
// dfdaemon's counters; the supernode's status page answers on loopback; and the dfdaemon turns
// not ready, naming the supernode, when the supernode is gone.
func TestProbesAndMetricsListener(t *testing.T) {
	data := randomBytes(t, 3<<20)
	o := origin.NewFiles(t, map[string][]byte{"/blob": data})
	listen := []string{"--metrics-listen", "127.0.0.1:0"}
	c := startClusterWith(t, 1, listen, append(listen, "--heartbeat", "200ms")...)
	sn, d := c.supernode, c.daemons[0]
	if sn.Metrics == "" || d.Metrics == "" {
		t.Fatalf("metrics addresses on the ready lines: supernode %q, dfdaemon %q", sn.Metrics, d.Metrics)
	}
	if body := waitProbe(t, "http://"+sn.Metrics+"/readyz", http.StatusOK); !strings.Contains(body, "[+]store ok") {
		t.Errorf("supernode /readyz: %q", body)
	}
	if body := waitProbe(t, "http://"+d.Metrics+"/readyz", http.StatusOK); !strings.Contains(body, "[+]discovery ok") {
		t.Errorf("dfdaemon /readyz: %q", body)
	}

	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if code, msg := dfget(ctx, o.URL+"/blob", "-O", filepath.Join(out, "blob"), "--daemon", "http://"+d.HTTP); code != 0 {
		t.Fatalf("dfget: exit %d: %s", code, msg)
	}
	m, err := scrape.Get(ctx, "http://"+d.Metrics+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if m.Sum("pouch_dfdaemon_downloads_finished_total", scrape.Labels{"result": "success"}) != 1 ||
		m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"from": "seed"}) != float64(len(data)) {
		t.Errorf("after one dfget through the daemon: %v successes, %v bytes from the seed",
			m.Sum("pouch_dfdaemon_downloads_finished_total", scrape.Labels{"result": "success"}), m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"from": "seed"}))
	}

	// The status page and its snapshot, from loopback without a token.
	if code, page := get(t, "http://"+sn.HTTP+"/"); code != http.StatusOK || !strings.Contains(page, "Pouch supernode") {
		t.Errorf("status page: %d", code)
	}
	code, body := get(t, "http://"+sn.HTTP+"/api/v1/status")
	var st struct {
		Tasks []struct {
			URL         string `json:"url"`
			OriginBytes int64  `json:"origin_bytes"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil || len(st.Tasks) != 1 || st.Tasks[0].OriginBytes != int64(len(data)) {
		t.Errorf("status snapshot: %d %v %s", code, err, body)
	}

	sn.Kill()
	if body := waitProbe(t, "http://"+d.Metrics+"/readyz", http.StatusServiceUnavailable); !strings.Contains(body, "not ready: discovery failed") {
		t.Errorf("dfdaemon /readyz without its supernode: %q", body)
	}
	if code, _ := get(t, "http://"+d.Metrics+"/healthz"); code != http.StatusOK {
		t.Errorf("dfdaemon /healthz without its supernode: %d", code)
	}
}
