package e2e

import (
	"context"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"testing"
	"time"
)

// Five nodes fetch the same 64 MiB file at the same moment: every copy is right and the origin
// sends the file's bytes once.
func TestBurstFiveNodesOriginServesOnce(t *testing.T) {
	const size = 64 << 20
	data := randomBytes(t, size)
	o := origin.NewFiles(t, map[string][]byte{"/big.bin": data})
	c := startCluster(t, 5)
	out := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	codes, msgs := burst(ctx, c.daemons, o.URL+"/big.bin", out, "--digest", sha(data))()
	checkCopies(t, codes, msgs, out, data)
	if sent := o.Sent.Load(); sent != size {
		t.Errorf("origin sent %d bytes for a %d-byte file (%.2f×); want exactly once", sent, size, float64(sent)/size)
	}
	var fromPeers float64
	for _, d := range c.daemons {
		fromPeers += metric(t, d, "pouch_dfdaemon_download_bytes_total", nil)
		if n := metric(t, d, "pouch_dfdaemon_back_to_source_total", nil); n != 0 {
			t.Errorf("%s went back to source %v times", d.Name, n)
		}
	}
	if fromPeers != 5*size {
		t.Errorf("daemons got %v bytes over P2P, want %d", fromPeers, 5*size)
	}
}
