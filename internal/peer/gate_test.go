package peer

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/ratelimit"
	"github.com/pouch-p2p/pouch/piece"
)

// The oldest send to a starting child goes alone while it moves; the others go once it ends,
// or once it has not moved for the gate's stall; with no starting child, all go at once.
func TestUploadGate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		g := newUploadGate(2 << 20) // a chunk is 0.125 s at the cap, the stall 0.25 s
		ctx := context.Background()
		old := g.start(5, time.Now())
		if err := g.wait(ctx, old); err != nil {
			t.Fatal(err) // no starting child: it goes
		}
		lead := g.start(0, time.Now())
		done := make(chan time.Time, 1)
		go func() {
			if err := g.wait(ctx, old); err != nil {
				t.Error(err)
			}
			done <- time.Now()
		}()
		begin := time.Now()
		for range 8 { // the lead moves every 0.1 s for 0.8 s, then ends
			time.Sleep(100 * time.Millisecond)
			if err := g.wait(ctx, lead); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if len(done) > 0 {
				t.Fatalf("an established child's send went while the lead moved")
			}
		}
		g.end(lead)
		if at := <-done; at.Sub(begin) != 800*time.Millisecond {
			t.Fatalf("the established child's send went %v after the lead started, want when it ended (0.8 s)", at.Sub(begin))
		}

		// A lead that stops moving is passed after the stall.
		stalled := g.start(0, time.Now())
		begin = time.Now()
		if err := g.wait(ctx, old); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(begin); got != g.stall {
			t.Fatalf("passed a stalled lead after %v, want the stall %v", got, g.stall)
		}
		// A waiter's context ends its wait.
		g.wait(ctx, stalled) // the lead moves again
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := g.wait(cctx, old); err == nil {
			t.Fatal("a cancelled wait returned no error")
		}
		g.end(stalled)
		g.end(old)
		if len(g.sends) != 0 {
			t.Fatalf("%d sends left after every end", len(g.sends))
		}
	})
	if newUploadGate(0) != nil {
		t.Fatal("a gate without an upload cap")
	}
}

// TestStalledChildDoesNotHoldTheUpload: a child that asks for a piece and never reads it is a
// starting child, so its send leads the parent's upload; it must not hold that upload from
// another child until its write deadline (two minutes): the other child gets the whole task.
func TestStalledChildDoesNotHoldTheUpload(t *testing.T) {
	t.Parallel()
	const pieceSize = 1 << 20
	src := newSeededWith(t, 4*pieceSize, pieceSize, ServerConfig{Limiter: ratelimit.New(8 << 20)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hostile := newHost(t)
	conn, _, err := Dial(ctx, hostile, info(src.h), src.task.Meta().ID, src.task.PieceCount(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Request(0); err != nil {
		t.Fatal(err)
	}
	for src.srv.BusySeconds() == 0 { // its send has started, and leads
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		time.Sleep(time.Millisecond)
	}
	child := newHost(t)
	store, _ := piece.Open(t.TempDir(), piece.Options{NoSync: true})
	defer store.Close()
	dst := copyMeta(t, src.task, store)
	if err := fetchAll(ctx, child, info(src.h), dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := dst.Sum(); got != digest.FromBytes(src.data) {
		t.Fatalf("copied content hashes to %s, want %s", got, digest.FromBytes(src.data))
	}
}
