package dfdaemon_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/supernode"
)

// dfget's one-shot peer: the local API served on one connection, through the API's own client;
// the daemon ends, closed, when the client closes the connection, with no listener of its own.
func TestServeConnServesOneClientAndEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sn := runSupernode(ctx, t, supernode.Config{})
	data, o := randomOrigin(t, 300<<10)
	cfg := dfdaemon.OneShotConfig(dfapi.OneShot{Supernode: sn.URL(), DataDir: t.TempDir(), Allow: loopback})
	cfg.P2PListen = "/ip4/127.0.0.1/tcp/0" // this test's hosts are all loopback
	d, err := dfdaemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Addr() != "" {
		t.Fatalf("the one-shot peer listens on %s; it must serve its client's connection only", d.Addr())
	}
	ours, theirs := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- d.ServeConn(ctx, theirs) }()

	dials := 0
	c := &dfapi.Client{Base: "http://localhost", HTTP: &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			dials++
			return ours, nil
		},
		DisableKeepAlives: true,
	}}}
	dl, err := c.Download(ctx, dfapi.DownloadRequest{URL: o.URL + "/f"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(dl.Body)
	dl.Body.Close()
	if err != nil || !bytes.Equal(got, data) || dl.Size != int64(len(data)) {
		t.Fatalf("read %d bytes (size %d), %v; want the %d-byte content", len(got), dl.Size, err, len(data))
	}
	if dials != 1 {
		t.Errorf("%d connections, want 1", dials)
	}
	ours.Close()
	if err := <-served; err != nil {
		t.Fatalf("ServeConn after the client left: %v", err)
	}
}
