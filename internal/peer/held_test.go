package peer

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	digest "github.com/opencontainers/go-digest"
)

// A super-seeding server told what a child holds never offers it one of those pieces: the
// child, back from a supernode that died with half the task, gets useful offers at once.
func TestSuperSeedSkipsWhatTheChildHolds(t *testing.T) {
	t.Parallel()
	src := newSeededWith(t, 8<<20, 1<<20, ServerConfig{SuperSeed: true})
	child := newHost(t)
	src.srv.SetHeld(func(c peer.ID, task digest.Digest) func(int) bool {
		if c != child.ID() || task != src.task.Meta().ID {
			return nil
		}
		return func(i int) bool { return i < 6 } // pieces 0-5
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := Dial(ctx, child, info(src.h), src.task.Meta().ID, src.task.PieceCount(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The first offers come at once; taking them brings the next.
	for offered := 0; offered < 2; {
		ev, err := conn.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Kind {
		case EventHave:
			if ev.Index < 6 {
				t.Fatalf("the seed offered piece %d, which the child holds", ev.Index)
			}
			offered++
			if err := conn.Request(ev.Index); err != nil {
				t.Fatal(err)
			}
		case EventPiece:
			if _, err := io.Copy(io.Discard, conn.Body(ev)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
