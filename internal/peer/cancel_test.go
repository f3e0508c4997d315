package peer

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/ratelimit"
	"github.com/pouch-p2p/pouch/piece"
)

// A child's cancel drops its request queued behind a piece at a slow parent: the parent
// answers it with a reject and never sends it, and the piece then comes from another parent
// that holds it, verified; a cancel of the piece being sent changes nothing.
func TestCancelMovesAQueuedRequestToAnotherParent(t *testing.T) {
	t.Parallel()
	const size, pieceSize = 4 << 20, 2 << 20
	// A sends at 1 MB/s: piece 0 takes about 1.8 s after its first chunk, and piece 1 waits
	// behind it meanwhile. B serves the same store from another host, uncapped.
	a := newSeededWith(t, size, pieceSize, ServerConfig{Limiter: ratelimit.New(1 << 20)})
	bh := newHost(t)
	b := NewServer(bh, a.store, ServerConfig{})
	t.Cleanup(b.Close)
	store, err := piece.Open(t.TempDir(), piece.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dst := copyMeta(t, a.task, store)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	child := newHost(t)
	id, n := a.task.Meta().ID, a.task.PieceCount()

	ca, _, err := Dial(ctx, child, info(a.h), id, n, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	if !ca.CanCancel() {
		t.Fatalf("stream to A speaks %s, want %s", ca.st.Protocol(), ProtocolCancelID)
	}
	if err := ca.Request(0); err != nil {
		t.Fatal(err)
	}
	if err := ca.Request(1); err != nil {
		t.Fatal(err)
	}
	ev := nextPiece(t, ca)
	if ev.Index != 0 {
		t.Fatalf("A sent piece %d first, want 0", ev.Index)
	}
	// Piece 0 is being sent and piece 1 waits behind it.
	if err := ca.Cancel(1); err != nil {
		t.Fatal(err)
	}
	if err := ca.Cancel(0); err != nil {
		t.Fatal(err)
	}
	if err := dst.WritePiece(0, ca.Body(ev)); err != nil {
		t.Fatalf("piece 0 from A, cancelled while it was sent: %v", err)
	}
	ev, err = ca.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != EventReject || ev.Index != 1 {
		t.Fatalf("A answered the cancelled request with %+v, want a reject of piece 1", ev)
	}
	if got := a.srv.PiecesServed(); got != 1 {
		t.Errorf("A served %d pieces, want 1 (piece 0 only)", got)
	}
	if got := a.srv.Uploaded(); got != pieceSize {
		t.Errorf("A uploaded %d bytes, want %d (piece 0 only)", got, pieceSize)
	}

	cb, _, err := Dial(ctx, child, info(bh), id, n, false)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	if err := cb.Request(1); err != nil {
		t.Fatal(err)
	}
	ev = nextPiece(t, cb)
	if err := dst.WritePiece(ev.Index, cb.Body(ev)); err != nil || ev.Index != 1 {
		t.Fatalf("piece %d from B: %v; want piece 1, verified", ev.Index, err)
	}
	if got, _ := dst.Sum(); got != digest.FromBytes(a.data) {
		t.Fatalf("content hashes to %s, want %s", got, digest.FromBytes(a.data))
	}
}

// nextPiece reads a parent's events up to a piece.
func nextPiece(t *testing.T, c *Conn) Event {
	t.Helper()
	for {
		ev, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == EventPiece {
			return ev
		}
		if ev.Kind == EventReject {
			t.Fatalf("piece %d rejected", ev.Index)
		}
	}
}

// A cancel the protocol does not allow ends the stream: on a stream of an older protocol, for
// a piece out of range, more cancels than requests, a malformed frame. The request in flight
// is not sent whole.
func TestHostileCancelEndsTheStream(t *testing.T) {
	t.Parallel()
	const size, pieceSize = 4 << 20, 2 << 20
	src := newSeededWith(t, size, pieceSize, ServerConfig{Limiter: ratelimit.New(1 << 20)})
	id, n := src.task.Meta().ID, src.task.PieceCount()
	for _, tc := range []struct {
		name  string
		proto []protocol.ID
		send  func(c *Conn) error
	}{
		{"a cancel on a stream of release 1.1", []protocol.ID{ProtocolDigestsID}, func(c *Conn) error { return c.Cancel(1) }},
		{"a cancel on a stream of release 1.0", []protocol.ID{ProtocolID}, func(c *Conn) error { return c.Cancel(1) }},
		{"a piece out of range", nil, func(c *Conn) error { return c.Cancel(n) }},
		{"the largest index", nil, func(c *Conn) error { return c.Cancel(1<<32 - 1) }},
		{"more cancels than requests", nil, func(c *Conn) error {
			for range 3 { // one request (piece 0) was sent
				if err := c.Cancel(1); err != nil {
					return err
				}
			}
			return nil
		}},
		{"a cancel of 8 bytes", nil, func(c *Conn) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			if err := writeFrame(c.w, msgCancel, make([]byte, 8)); err != nil {
				return err
			}
			return c.w.Flush()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			proto := tc.proto
			if proto == nil {
				proto = []protocol.ID{ProtocolCancelID}
			}
			c, _, err := dial(ctx, newHost(t), info(src.h), id, n, proto)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Request(0); err != nil {
				t.Fatal(err)
			}
			ev := nextPiece(t, c)
			if err := tc.send(c); err != nil {
				t.Fatal(err)
			}
			// Piece 0 takes about 1.8 s more at the parent's cap: the stream ends before it
			// is whole.
			if k, err := io.Copy(io.Discard, c.Body(ev)); err == nil && k == ev.Size {
				t.Fatalf("piece 0 arrived whole (%d bytes) after a hostile cancel", k)
			}
		})
	}
}

// The queue of what a child may cancel: a cancel drops one waiting request for the piece, or
// stops the wait of the piece taken and not started; anything else is ignored; and it never
// counts more cancels than requests.
func TestCancels(t *testing.T) {
	t.Parallel()
	q := newCancels(8)
	for _, i := range []int{1, 2, 1} {
		q.request(i)
	}
	for _, i := range []int{1, 3} { // 3 was not asked for: ignored
		if err := q.cancel(i); err != nil {
			t.Fatal(err)
		}
	}
	if q.take(1) {
		t.Error("the first request for piece 1 was served after a cancel")
	}
	if !q.take(2) || !q.take(1) {
		t.Error("a request not cancelled was dropped")
	}

	// The piece taken waits for the cap: a cancel ends its wait.
	q.request(4)
	if !q.take(4) {
		t.Fatal("piece 4 dropped")
	}
	ctx := q.begin(context.Background(), 4)
	if err := q.cancel(4); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Error("a cancel did not end the wait of the piece not started")
	}
	q.start()

	// Once started, it is sent whole.
	q.request(5)
	q.take(5)
	ctx = q.begin(context.Background(), 5)
	q.start()
	if err := q.cancel(5); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != context.Canceled { // start released it; the cancel did nothing more
		t.Error("begin's context not released by start")
	}
	if len(q.queued) != 0 || len(q.dropped) != 0 {
		t.Errorf("left queued %v, dropped %v; want none", q.queued, q.dropped)
	}
	// Five requests, four cancels so far: one more is ignored, and the next is a protocol
	// violation.
	if err := q.cancel(2); err != nil {
		t.Fatal(err)
	}
	if err := q.cancel(2); !errors.Is(err, ErrProtocol) {
		t.Errorf("a cancel beyond the requests: %v, want ErrProtocol", err)
	}
	for _, i := range []int{-1, 8} {
		if err := q.cancel(i); !errors.Is(err, ErrProtocol) {
			t.Errorf("cancel of piece %d of 8: %v, want ErrProtocol", i, err)
		}
	}
}
