package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pouch-p2p/pouch/internal/ratelimit"
)

// content generates n pseudo-random bytes from seed (incompressible, reproducible) and returns
// them with their sha256:HEX digest.
func content(n int64, seed uint64) ([]byte, string) {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	s := sha256.Sum256(b)
	return b, "sha256:" + hex.EncodeToString(s[:])
}

// origin is a plain HTTP server for the file workload: it serves one blob at any path, uploads
// at most its rate over all connections together, and counts what it sends.
type origin struct {
	srv   *http.Server
	url   string
	data  []byte
	limit *ratelimit.Limiter
	sent  atomic.Int64
	// perConn caps each request on its own (bytes/s; 0 = none). The baseline sets it to the
	// nodes' download rate: the dfdaemon's --download-rate caps P2P downloads but not its
	// fetches from the origin, and a node's link would.
	perConn atomic.Int64
}

func startOrigin(data []byte, rate int64) (*origin, error) {
	return startOriginOn("127.0.0.1:0", data, rate)
}

// startOriginOn is startOrigin listening on addr.
func startOriginOn(addr string, data []byte, rate int64) (*origin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	o := &origin{url: "http://" + ln.Addr().String(), data: data, limit: ratelimit.New(rate)}
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	go o.srv.Serve(ln)
	return o, nil
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	out := o.limit.Writer(r.Context(), w)
	out = ratelimit.New(o.perConn.Load()).Writer(r.Context(), out)
	http.ServeContent(&countingWriter{ResponseWriter: w, w: out, n: &o.sent}, r, "", time.Time{}, bytes.NewReader(o.data))
}

func (o *origin) close() { o.srv.Shutdown(context.Background()) }

type countingWriter struct {
	http.ResponseWriter
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
