package dfdaemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/supernode"
)

// A preheat job for all peers puts every blob of an image on every dfdaemon: the daemons learn
// their assignments from their heartbeats and fetch them over P2P, and the registry sends each
// blob once, to the seed.
func TestPreheatAllPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg, err := registry.Start(ctx, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	img, err := image.Random(3, 6<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Push(ctx, reg.URL, "team/app", "latest", "", ""); err != nil {
		t.Fatal(err)
	}
	sn := runSupernode(ctx, t, supernode.Config{RegistryInsecure: []string{reg.Host}})
	var ds []*dfdaemon.Daemon
	for range 3 {
		ds = append(ds, runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL(), Heartbeat: 100 * time.Millisecond}))
	}
	// Every daemon is known once it has sent its first heartbeat.
	wait.Until(t, 5*time.Second, "the daemons to make themselves known to the supernode", func() bool {
		m, err := scrape.Get(ctx, sn.URL()+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return m.Sum("pouch_supernode_peers", nil) == 3
	})

	cl := snapi.NewAdminClient(sn.URL(), "")
	job, err := cl.CreatePreheat(ctx, snapi.PreheatRequest{URL: reg.Host + "/team/app:latest", Scope: snapi.ScopeAllPeers})
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, time.Minute, "the preheat job to end", func() bool {
		if job, err = cl.Preheat(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		return job.State.Final()
	})
	if job.State != snapi.StateSuccess {
		t.Fatalf("job %s %q, want SUCCESS", job.State, job.Error)
	}
	for _, pt := range job.Progress.Tasks {
		if pt.PeersDone != 3 || pt.PeersTotal != 3 {
			t.Errorf("task %s on %d of %d peers, want 3 of 3", pt.Digest, pt.PeersDone, pt.PeersTotal)
		}
	}
	var total int64
	for _, b := range img.Blobs() {
		total += int64(len(b.Data))
		if got := reg.BlobBytes(b.Digest); got != int64(len(b.Data)) {
			t.Errorf("registry sent %d bytes of %s, want %d once", got, b.Digest, len(b.Data))
		}
	}
	for i, d := range ds {
		m, err := scrape.Gather(d.Metrics())
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "peer"}); got != float64(total) {
			t.Errorf("daemon %d got %v bytes from peers, want the image's %d", i, got, total)
		}
		// Each blob is complete in the daemon's store: a download of it needs nobody.
		for _, b := range img.Blobs() {
			x, err := d.Download(ctx, dfdaemon.Request{URL: reg.URL + "/v2/team/app/blobs/" + b.Digest.String(), Digest: b.Digest})
			if err != nil {
				t.Fatal(err)
			}
			if err := x.Wait(ctx); err != nil || x.BytesFromPeers()+x.BytesFromOrigin() != 0 {
				t.Errorf("daemon %d: blob %s: %v, %d bytes fetched; want it held already", i, b.Digest, err, x.BytesFromPeers()+x.BytesFromOrigin())
			}
			x.Close()
		}
	}
}
