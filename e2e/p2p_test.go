package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Five nodes fetch the same 64 MiB file at the same moment: every copy is right and the origin
// sends the file's bytes once.
func TestBurstFiveNodesOriginServesOnce(t *testing.T) {
	const size = 64 << 20
	data := randomBytes(t, size)
	o := newOrigin(t, map[string][]byte{"/big.bin": data})
	c := startCluster(t, 5)
	out := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	codes := make([]int, len(c.daemons))
	msgs := make([]string, len(c.daemons))
	for i, d := range c.daemons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], msgs[i] = dfget(ctx, o.URL+"/big.bin", "-O", filepath.Join(out, fmt.Sprint(i)), "--daemon", "http://"+d.http, "--digest", sha(data))
		}()
	}
	wg.Wait()
	for i := range c.daemons {
		if codes[i] != 0 {
			t.Fatalf("dfget on node %d: exit %d: %s", i, codes[i], msgs[i])
		}
		if got := fileSHA(t, filepath.Join(out, fmt.Sprint(i))); got != sha(data) {
			t.Errorf("node %d: content %s, want %s", i, got, sha(data))
		}
	}
	if sent := o.sent.Load(); sent != size {
		t.Errorf("origin sent %d bytes for a %d-byte file (%.2f×); want exactly once", sent, size, float64(sent)/size)
	}
	var fromPeers float64
	for _, d := range c.daemons {
		fromPeers += metric(t, d, "pouch_dfdaemon_download_bytes_total")
		if n := metric(t, d, `pouch_dfdaemon_back_to_source_total`); n != 0 {
			t.Errorf("%s went back to source %v times", d.name, n)
		}
	}
	if fromPeers != 5*size {
		t.Errorf("daemons got %v bytes over P2P, want %d", fromPeers, 5*size)
	}
}
