package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/ratelimit"
	"github.com/pouch-p2p/pouch/piece"
)

// seeded is a host serving one complete task.
type seeded struct {
	h     host.Host
	srv   *Server
	store *piece.Store
	task  *piece.Task
	data  []byte
}

func newSeeded(tb testing.TB, size, pieceSize int64) *seeded {
	return newSeededWith(tb, size, pieceSize, ServerConfig{})
}

func newSeededWith(tb testing.TB, size, pieceSize int64, cfg ServerConfig) *seeded {
	tb.Helper()
	data := make([]byte, size)
	rand.Read(data)
	store, err := piece.Open(tb.TempDir(), piece.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	t, err := store.Create(piece.Meta{ID: digest.FromBytes(data), ContentLength: size, PieceSize: pieceSize})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range t.PieceCount() {
		off, n := piece.Bounds(i, size, pieceSize)
		if _, err := t.WriteSourcePiece(i, bytes.NewReader(data[off:off+n])); err != nil {
			tb.Fatal(err)
		}
	}
	h := newHost(tb)
	srv := NewServer(h, store, cfg)
	tb.Cleanup(srv.Close)
	return &seeded{h: h, srv: srv, store: store, task: t, data: data}
}

func newHost(tb testing.TB) host.Host {
	h, err := NewHost(HostConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func info(h host.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

// fetchAll requests every piece of the task over one stream and writes the verified pieces
// into dst.
func fetchAll(ctx context.Context, h host.Host, parent peer.AddrInfo, dst *piece.Task) error {
	conn, bf, err := Dial(ctx, h, parent, dst.Meta().ID, dst.PieceCount(), false)
	if err != nil {
		return err
	}
	defer conn.Close()
	if !bf.Full() {
		return errors.New("parent is not complete")
	}
	for i := range dst.PieceCount() {
		if err := conn.Request(i); err != nil {
			return err
		}
	}
	for got := 0; got < dst.PieceCount(); {
		ev, err := conn.Next()
		if err != nil {
			return err
		}
		if ev.Kind != EventPiece {
			continue
		}
		if err := dst.WritePiece(ev.Index, conn.Body(ev)); err != nil {
			return err
		}
		got++
	}
	return nil
}

func copyMeta(tb testing.TB, src *piece.Task, store *piece.Store) *piece.Task {
	dst, err := store.Create(src.Meta())
	if err != nil {
		tb.Fatal(err)
	}
	for i := range src.PieceCount() {
		dst.SetDigest(i, src.Digest(i))
	}
	return dst
}

func TestPieceExchange(t *testing.T) {
	t.Parallel()
	src := newSeeded(t, 5<<20+17, 1<<20)
	child := newHost(t)
	store, _ := piece.Open(t.TempDir(), piece.Options{NoSync: true})
	defer store.Close()
	dst := copyMeta(t, src.task, store)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fetchAll(ctx, child, info(src.h), dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := dst.Sum(); got != digest.FromBytes(src.data) {
		t.Fatalf("copied content hashes to %s, want %s", got, digest.FromBytes(src.data))
	}
}

func TestUnknownTaskIsRefused(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	store, _ := piece.Open(t.TempDir(), piece.Options{NoSync: true})
	defer store.Close()
	NewServer(h, store, ServerConfig{TaskWait: 100 * time.Millisecond})
	child := newHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := Dial(ctx, child, info(h), digest.FromString("nothing"), 4, false)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Dial for an unknown task: %v, want ErrRefused", err)
	}
}

func TestCorruptPieceIsRejectedByTheChild(t *testing.T) {
	t.Parallel()
	src := newSeeded(t, 2<<20, 1<<20)
	child := newHost(t)
	// The child believes a different digest for piece 1 than the parent's bytes have.
	store2, _ := piece.Open(t.TempDir(), piece.Options{NoSync: true})
	defer store2.Close()
	bad, _ := store2.Create(src.task.Meta())
	bad.SetDigest(0, src.task.Digest(0))
	bad.SetDigest(1, digest.FromString("not the piece"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := fetchAll(ctx, child, info(src.h), bad)
	if !errors.Is(err, piece.ErrDigestMismatch) {
		t.Fatalf("fetch with a wrong digest: %v, want ErrDigestMismatch", err)
	}
	if bad.Has(1) {
		t.Fatal("a piece that failed its digest was marked present")
	}
}

// watchedStore tells when the server first waits for a task to be created.
type watchedStore struct {
	*piece.Store
	waiting chan struct{}
	once    sync.Once
}

func (w *watchedStore) Created() <-chan struct{} {
	ch := w.Store.Created()
	w.once.Do(func() { close(w.waiting) })
	return ch
}

// serverWaitingForTask starts a server on an empty store and a child whose hello names a task
// the store does not hold yet; it returns once the server waits for that task.
func serverWaitingForTask(t *testing.T, meta piece.Meta) (*Server, *piece.Store, <-chan error) {
	t.Helper()
	store, err := piece.Open(t.TempDir(), piece.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	watched := &watchedStore{Store: store, waiting: make(chan struct{})}
	h := newHost(t)
	srv := NewServer(h, watched, ServerConfig{TaskWait: time.Hour})
	t.Cleanup(srv.Close)
	child := newHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	dialed := make(chan error, 1)
	go func() {
		conn, _, err := Dial(ctx, child, info(h), meta.ID, meta.PieceCount(), false)
		if err == nil {
			conn.Close()
		}
		dialed <- err
	}()
	<-watched.waiting
	return srv, store, dialed
}

// TestHelloWaitsForTheTask: a hello that comes a moment before the task is created is answered
// when it is created, however long TaskWait is.
func TestHelloWaitsForTheTask(t *testing.T) {
	t.Parallel()
	meta := piece.Meta{ID: digest.FromString("soon"), ContentLength: 3 << 20, PieceSize: 1 << 20}
	_, store, dialed := serverWaitingForTask(t, meta)
	if _, err := store.Create(meta); err != nil {
		t.Fatal(err)
	}
	if err := <-dialed; err != nil {
		t.Fatalf("Dial while the task was being created: %v", err)
	}
}

// TestCloseEndsTaskWait: closing the server ends a hello waiting for its task, long before
// TaskWait.
func TestCloseEndsTaskWait(t *testing.T) {
	t.Parallel()
	meta := piece.Meta{ID: digest.FromString("never"), ContentLength: 3 << 20, PieceSize: 1 << 20}
	srv, _, dialed := serverWaitingForTask(t, meta)
	srv.Close()
	switch err := <-dialed; {
	case err == nil:
		t.Fatal("Dial succeeded against a closed server")
	case timedOut(err):
		t.Fatalf("the hello went on waiting after Close, until the child gave up: %v", err)
	}
}

// timedOut says whether err is a read deadline: the test's guard against a hang, never the
// behaviour a test expects.
func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestCloseStopsUploads: closing the server stops a piece in flight to a child, here one that
// would take a quarter of an hour at the upload cap, and returns once its handler has.
func TestCloseStopsUploads(t *testing.T) {
	t.Parallel()
	const pieceSize = 4 << 20
	src := newSeededWith(t, pieceSize, pieceSize, ServerConfig{Limiter: ratelimit.New(4 << 10)})
	child := newHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, _, err := Dial(ctx, child, info(src.h), src.task.Meta().ID, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Request(0); err != nil {
		t.Fatal(err)
	}
	ev, err := conn.Next()
	for err == nil && ev.Kind != EventPiece {
		ev, err = conn.Next()
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	type result struct {
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		n, err := io.Copy(io.Discard, conn.Body(ev))
		got <- result{n, err}
	}()
	src.srv.Close()
	switch r := <-got; {
	case r.n >= pieceSize:
		t.Fatalf("the child got the whole piece (%d bytes) although the server closed", r.n)
	case timedOut(r.err):
		t.Fatalf("the upload went on after Close, until the child gave up: %v", r.err)
	}
}

// BenchmarkPieceStream moves a 64 MiB task (4 MiB pieces) over one libp2p stream (TCP, TLS,
// yamux), verifying and storing every piece, next to the same bytes over raw TCP. Both ends run
// in this process, so cpu-s/GB (the process's CPU time per GB moved, both ends together) is
// what a loaded machine's throughput follows. "fsync" stores as a dfdaemon does, each piece
// fsynced before it is recorded; the others skip that, to measure the CPU alone.
func BenchmarkPieceStream(b *testing.B) {
	const size, ps = 64 << 20, 4 << 20
	src := newSeeded(b, size, ps)
	for _, bc := range []struct {
		name string
		opts piece.Options
	}{
		{"libp2p-verified", piece.Options{NoSync: true}},
		{"libp2p-verified-fsync", piece.Options{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			child := newHost(b)
			store, _ := piece.Open(b.TempDir(), bc.opts)
			defer store.Close()
			b.SetBytes(size)
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				store.Delete(src.task.Meta().ID)
				dst := copyMeta(b, src.task, store)
				b.StartTimer()
				c0 := processCPU(b)
				if err := fetchAll(context.Background(), child, info(src.h), dst); err != nil {
					b.Fatal(err)
				}
				cpu += processCPU(b) - c0
			}
			reportCPU(b, cpu, size)
		})
	}
	raw := rawServer(b, src.task, size)
	b.Run("raw-tcp", func(b *testing.B) {
		b.SetBytes(size)
		c0 := processCPU(b)
		for b.Loop() {
			raw.fetch(b)
		}
		reportCPU(b, processCPU(b)-c0, size)
	})
	// paired times one raw transfer and one verified transfer (no fsync) back to back in each
	// iteration and reports verified ÷ raw throughput over all of them: on a machine whose load
	// changes between sub-benchmarks, the pairs see the same load.
	b.Run("paired", func(b *testing.B) {
		child := newHost(b)
		store, _ := piece.Open(b.TempDir(), piece.Options{NoSync: true})
		defer store.Close()
		b.SetBytes(2 * size)
		var tRaw, tVerified time.Duration
		for b.Loop() {
			b.StopTimer()
			store.Delete(src.task.Meta().ID)
			dst := copyMeta(b, src.task, store)
			b.StartTimer()
			start := time.Now()
			raw.fetch(b)
			mid := time.Now()
			if err := fetchAll(context.Background(), child, info(src.h), dst); err != nil {
				b.Fatal(err)
			}
			tRaw, tVerified = tRaw+mid.Sub(start), tVerified+time.Since(mid)
		}
		b.ReportMetric(tRaw.Seconds()/tVerified.Seconds(), "verified/raw")
	})
}

// rawTCP serves a task's bytes over plain TCP, one copy per connection.
type rawTCP struct {
	addr string
	size int64
}

func rawServer(b *testing.B, task *piece.Task, size int64) *rawTCP {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.Copy(c, io.NewSectionReader(task, 0, size))
			c.Close()
		}
	}()
	return &rawTCP{addr: l.Addr().String(), size: size}
}

// fetch reads one copy.
func (r *rawTCP) fetch(b *testing.B) {
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if n, _ := io.Copy(io.Discard, c); n != r.size {
		b.Fatalf("got %d bytes", n)
	}
}

// processCPU is the CPU time (user and system) this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports cpu, spent over b.N transfers of size bytes, per GB moved.
func reportCPU(b *testing.B, cpu time.Duration, size int64) {
	b.ReportMetric(cpu.Seconds()/(float64(b.N)*float64(size)/1e9), "cpu-s/GB")
}

// One peer that opens more streams than its share is refused the extra ones; another peer is
// still served in full.
func TestPeerStreamLimitHoldsOnePeerOnly(t *testing.T) {
	t.Parallel()
	limits := DefaultLimits(RoleSeed)
	limits.PeerStreamsIn = 3
	h, err := NewHost(HostConfig{Role: RoleSeed, Limits: &limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	src := newSeeded(t, 4<<20, 1<<20)
	srv := NewServer(h, src.store, ServerConfig{})
	t.Cleanup(srv.Close)
	id, n := src.task.Meta().ID, src.task.PieceCount()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	greedy := newHost(t)
	opened := 0
	for range 2 * limits.PeerStreamsIn {
		conn, _, err := Dial(ctx, greedy, info(h), id, n, false)
		if err != nil {
			continue
		}
		t.Cleanup(func() { conn.Close() })
		opened++
	}
	if opened == 0 || opened > limits.PeerStreamsIn {
		t.Errorf("one peer opened %d streams, its limit is %d", opened, limits.PeerStreamsIn)
	}
	store, err := piece.Open(t.TempDir(), piece.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := fetchAll(ctx, newHost(t), info(h), copyMeta(t, src.task, store)); err != nil {
		t.Fatalf("another peer, while the greedy one holds its streams: %v", err)
	}
}
