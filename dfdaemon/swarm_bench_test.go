package dfdaemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/supernode"
)

// BenchmarkSwarm is six capped peers and a capped seed in one process, all fetching 32 MiB at
// once: it reports the slowest completion over the Kumar–Ross minimum (here F/u, 4 s) and the
// seed's upload over the content size. dfbench measures the same with real processes.
func BenchmarkSwarm(b *testing.B) {
	for b.Loop() {
		swarm(b)
	}
}

func swarm(t *testing.B) {
	t.Helper()
	const N = 6
	data, origin := randomOrigin(t, 32<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rate := int64(8 << 20)
	sn := runSupernode(ctx, t, supernode.Config{UploadRate: rate})
	var ds []*dfdaemon.Daemon
	for range N {
		ds = append(ds, runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL(), UploadRate: rate, DownloadRate: rate}))
	}
	start := time.Now()
	downloadAll(ctx, t, ds, origin.URL+"/f", data)
	tmin := float64(len(data)) / float64(rate)
	t.ReportMetric(time.Since(start).Seconds()/tmin, "max/T_min")
	m, err := scrape.Get(ctx, sn.URL()+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	t.ReportMetric(m.Sum("pouch_supernode_seed_upload_bytes_total", nil)/float64(len(data)), "seed-bytes/size")
}
