package dfdaemon_test

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/dfapi"
)

// BenchmarkCachedDownload reads a 256 MiB file the daemon already holds through its local API,
// next to the same file served by a plain net/http file server on loopback in the same run.
func BenchmarkCachedDownload(b *testing.B) {
	const size = 256 << 20
	path := filepath.Join(b.TempDir(), "blob")
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) }))
	defer origin.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := runDaemon(ctx, b, dfdaemon.Config{})
	c, err := dfapi.NewClient(d.URL())
	if err != nil {
		b.Fatal(err)
	}
	get := func(b *testing.B) {
		dl, err := c.Download(ctx, dfapi.DownloadRequest{URL: origin.URL + "/blob"})
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, dl.Body)
		dl.Body.Close()
		if n != size {
			b.Fatalf("got %d bytes", n)
		}
	}
	get(b) // fill the cache
	var direct, cached time.Duration
	b.Run("direct-http", func(b *testing.B) {
		b.SetBytes(size)
		start := time.Now()
		for b.Loop() {
			resp, err := http.Get(origin.URL + "/blob")
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		direct = time.Since(start) / time.Duration(b.N)
	})
	b.Run("dfdaemon-cached", func(b *testing.B) {
		b.SetBytes(size)
		start := time.Now()
		for b.Loop() {
			get(b)
		}
		cached = time.Since(start) / time.Duration(b.N)
		if direct > 0 {
			b.ReportMetric(float64(direct)/float64(cached), "x-direct")
		}
	})
}
