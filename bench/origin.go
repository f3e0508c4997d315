package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
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

// generated is n pseudo-random bytes from seed like content's, made on demand in blocks of
// genBlock, each from its own ChaCha8 stream: an origin of 4 GiB costs no memory (the
// dfdaemon's peak RSS is measured moving such a blob). Bytes differ from content's.
type generated struct {
	n   int64
	key [32]byte
}

const genBlock = 64 << 10

func newGenerated(n int64, seed uint64) *generated {
	g := &generated{n: n}
	binary.LittleEndian.PutUint64(g.key[:8], seed)
	return g
}

// genInMemory is the largest content generate keeps in memory. Generated on every read, the
// origin's content cost ChaCha8 for each 64 KiB block an up to 32 KiB read touched, 0.45 % of a
// run's CPU at N = 16, 128 MiB (the harness's cost, on the nodes' cores); held, a read is a copy
// (0.06 %), for the content's size in dfbench's memory once (128 MiB to 1 GiB in the runs of
// docs/benchmarks.md), filled before the nodes start. Larger content, the 4 GiB of the
// peak-RSS runs, stays generated on demand.
const genInMemory = 1 << 30

// generate returns the content of n bytes from seed and its sha256:HEX digest, which it
// computes by reading it once: into memory up to genInMemory, the same bytes either way.
func generate(n int64, seed uint64) (io.ReaderAt, string, error) {
	g := newGenerated(n, seed)
	h := sha256.New()
	if n <= genInMemory {
		b := make([]byte, n)
		if _, err := g.ReadAt(b, 0); err != nil {
			return nil, "", err
		}
		h.Write(b)
		return bytes.NewReader(b), "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
	}
	if _, err := io.Copy(h, io.NewSectionReader(g, 0, n)); err != nil {
		return nil, "", err
	}
	return g, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// ReadAt fills p from off, generating every block it touches.
func (g *generated) ReadAt(p []byte, off int64) (int, error) {
	block := make([]byte, genBlock)
	n := 0
	for n < len(p) && off < g.n {
		b := off / genBlock
		key := g.key
		binary.LittleEndian.PutUint64(key[8:16], uint64(b))
		rand.NewChaCha8(key).Read(block)
		end := min(genBlock, g.n-b*genBlock)
		k := copy(p[n:], block[off-b*genBlock:end])
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// origin is a plain HTTP server for the file workload: it serves one blob at any path, uploads
// at most its rate over all connections together, and counts what it sends.
type origin struct {
	srv   *http.Server
	url   string
	body  io.ReaderAt
	size  int64
	limit *ratelimit.Limiter
	sent  atomic.Int64
	// perConn caps each request on its own (bytes/s; 0 = none). The baseline sets it to the
	// nodes' download rate: the dfdaemon's --download-rate caps P2P downloads but not its
	// fetches from the origin, and a node's link would.
	perConn atomic.Int64
}

func startOrigin(body io.ReaderAt, size, rate int64) (*origin, error) {
	return startOriginOn("127.0.0.1:0", body, size, rate)
}

// startOriginOn is startOrigin listening on addr.
func startOriginOn(addr string, body io.ReaderAt, size, rate int64) (*origin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	o := &origin{url: "http://" + ln.Addr().String(), body: body, size: size, limit: ratelimit.New(rate)}
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	go o.srv.Serve(ln)
	return o, nil
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	out := o.limit.Writer(r.Context(), w)
	out = ratelimit.New(o.perConn.Load()).Writer(r.Context(), out)
	http.ServeContent(&countingWriter{ResponseWriter: w, w: out, n: &o.sent}, r, "", time.Time{}, io.NewSectionReader(o.body, 0, o.size))
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
