package dfdaemon_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"io"
	"net/http"
	"testing"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/supernode"
)

// BenchmarkTinyDownload is the fixed cost of a small download through P2P: every iteration is a
// new task (a new URL), so it pays registration, the seed's origin fetch, a libp2p connection
// and the piece transfer. Compare with direct-http in the same run.
func BenchmarkTinyDownload(b *testing.B) {
	for _, size := range []int{1, 1 << 20} {
		data := bytes.Repeat([]byte{'x'}, size)
		o := origin.NewData(b, data)
		ctx, cancel := context.WithCancel(context.Background())
		sn := runSupernode(ctx, b, supernode.Config{})
		d := runDaemon(ctx, b, dfdaemon.Config{Supernode: sn.URL()})
		i := 0
		b.Run(fmt.Sprintf("p2p-%dB", size), func(b *testing.B) {
			for b.Loop() {
				i++
				x, err := d.Download(ctx, dfdaemon.Request{URL: fmt.Sprintf("%s/f?i=%d", o.URL, i)})
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, x.NewReader(ctx, 0)); err != nil || n != int64(size) {
					b.Fatalf("%d bytes, %v", n, err)
				}
				x.Close()
			}
		})
		b.Run(fmt.Sprintf("direct-http-%dB", size), func(b *testing.B) {
			for b.Loop() {
				resp, err := http.Get(o.URL + "/f")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
		cancel()
		o.Close()
	}
}
