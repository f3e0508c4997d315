package bench

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/supernode"
)

// BenchmarkLoadInProcess plays 2,000 simulated peers against an in-process supernode: the
// generator and the supernode share one profile (go test -cpuprofile), which dfbench load's
// separate processes cannot give. The p99 call times it reports include the generator's own share
// of the CPU, so they say less than dfbench load's.
func BenchmarkLoadInProcess(b *testing.B) {
	const secret = "s3cret"
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		sn, stop := runSupernode(b, supernode.Config{Secret: secret})
		data, _ := content(16<<20, 1)
		o, err := startOrigin(bytes.NewReader(data), int64(len(data)), 0)
		if err != nil {
			b.Fatal(err)
		}
		cfg := LoadConfig{Peers: 2000, Tasks: 2, Size: int64(len(data)), DownloadRate: 4e6, Ramp: time.Second}.WithDefaults()
		g, err := newLoadGen(cfg, sn.URL(), o.url, secret)
		if err != nil {
			b.Fatal(err)
		}
		if err := g.warm(ctx, secret); err != nil {
			b.Fatal(err)
		}
		g.run(ctx)
		if err := g.err(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(latency(g.sync).P99*1e3, "sync-p99-ms")
		b.ReportMetric(latency(g.register).P99*1e3, "register-p99-ms")
		cancel()
		stop()
		o.close()
	}
}
