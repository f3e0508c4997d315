package dfdaemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/supernode"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// runSupernode starts a supernode on loopback that serves until ctx ends.
func runSupernode(ctx context.Context, tb testing.TB, cfg supernode.Config) *supernode.Supernode {
	tb.Helper()
	cfg.Listen, cfg.Allow = "127.0.0.1:0", loopback
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	sn, err := supernode.New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	serve(ctx, tb, sn.Run)
	return sn
}

// serve runs a daemon's Run until ctx ends or the test does, and waits for it to return before
// the test is over: what it started must not outlive the test (see leak_test.go).
func serve(ctx context.Context, tb testing.TB, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
}

// runDaemon starts a dfdaemon on loopback that serves until ctx ends.
func runDaemon(ctx context.Context, tb testing.TB, cfg dfdaemon.Config) *dfdaemon.Daemon {
	tb.Helper()
	cfg.Listen, cfg.Allow = "127.0.0.1:0", loopback
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	d, err := dfdaemon.New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	serve(ctx, tb, d.Run)
	return d
}

// randomOrigin serves size random bytes at every path.
func randomOrigin(tb testing.TB, size int) ([]byte, *origin.Files) {
	data := make([]byte, size)
	rand.Read(data)
	return data, origin.NewData(tb, data)
}

// downloadAll fetches url on every daemon at once and checks each copy against want.
func downloadAll(ctx context.Context, tb testing.TB, ds []*dfdaemon.Daemon, url string, want []byte) {
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, err := d.Download(ctx, dfdaemon.Request{URL: url})
			if err != nil {
				tb.Error(err)
				return
			}
			defer x.Close()
			got, err := io.ReadAll(x.NewReader(ctx, 0))
			if err != nil || !bytes.Equal(got, want) {
				tb.Errorf("content differs: %v", err)
			}
		}()
	}
	wg.Wait()
}

func TestTwoPeersTrade(t *testing.T) {
	data, origin := randomOrigin(t, 32<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sn := runSupernode(ctx, t, supernode.Config{UploadRate: 8e6})
	var ds []*dfdaemon.Daemon
	for range 2 {
		ds = append(ds, runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL()}))
	}
	downloadAll(ctx, t, ds, origin.URL+"/f", data)
	// The seed is capped at 8 MB/s: the peers must have traded pieces rather than each taking
	// everything from it (and their metrics say so).
	checkDownloadMetrics(t, ds, len(data))
}

// A dfdaemon stopped in the middle of a download resumes from the pieces on disk when it starts
// again on the same data directory.
func TestRestartResumesFromDisk(t *testing.T) {
	data, origin := randomOrigin(t, 16<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sn := runSupernode(ctx, t, supernode.Config{})
	dir := t.TempDir()
	cfg := dfdaemon.Config{Supernode: sn.URL(), Listen: "127.0.0.1:0", DataDir: dir, Allow: loopback, DownloadRate: 4 << 20}

	d1, err := dfdaemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx1, stop1 := context.WithCancel(ctx)
	done1 := make(chan struct{})
	go func() { d1.Run(ctx1); close(done1) }()
	x, err := d1.Download(ctx, dfdaemon.Request{URL: origin.URL + "/f"})
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, time.Minute, "6 MiB from peers", func() bool { return x.BytesFromPeers() >= 6<<20 })
	x.Close()
	stop1()
	<-done1
	got1 := x.BytesFromPeers()
	if got1 >= int64(len(data)) {
		t.Fatalf("first run finished (%d bytes) before it was stopped", got1)
	}

	cfg.DownloadRate = 0
	d2 := runDaemon(ctx, t, cfg)
	y, err := d2.Download(ctx, dfdaemon.Request{URL: origin.URL + "/f"})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	all, err := io.ReadAll(y.NewReader(ctx, 0))
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("resumed content differs (%v)", err)
	}
	if again := y.BytesFromPeers() + y.BytesFromOrigin(); again > int64(len(data))-got1+(1<<20) {
		t.Errorf("after a stop at %d bytes the restart fetched %d more of %d: it did not resume", got1, again, len(data))
	}
}
