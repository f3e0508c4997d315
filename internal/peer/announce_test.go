package peer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/scheduler/picker"
)

// While a client's stream is open at the seed, preheat streams together hold at most half of
// its pending offers; alone they may hold them all.
func TestBackgroundStreamsLeaveHalfTheSeedToClients(t *testing.T) {
	t.Parallel()
	task := newSeeded(t, 32<<20, 1<<20).task // 32 pieces
	var pending, foreground, active atomic.Int64
	st := &superState{sent: make([]int, task.PieceCount()), offered: make([]int, task.PieceCount()), pending: &pending, foreground: &foreground, active: &active}
	stream := func(background bool) *superAnnouncer {
		a := &superAnnouncer{task: task, st: st, offers: map[int]time.Time{}, quota: picker.SeedPending,
			background: func() bool { return background }}
		a.initial()
		return a
	}
	now := time.Now()
	const all, half = picker.SeedPending, picker.SeedPending / 2

	alone := stream(true)
	if got := len(alone.update(now)); got != all {
		t.Fatalf("a preheat stream alone got %d offers, want all %d", got, all)
	}
	alone.close()

	client := stream(false)
	client.quota = 1
	client.update(now)
	preheat := stream(true)
	if got := len(preheat.update(now)); got != half-1 {
		t.Errorf("with a client stream open a preheat stream got %d offers, want %d (half, less the client's one)", got, half-1)
	}
	other := stream(false)
	if got := len(other.update(now)); got != half {
		t.Errorf("a second client stream got %d offers, want the other half (%d)", got, half)
	}
	client.close()
	other.close()
	if foreground.Load() != 0 {
		t.Fatalf("%d client streams counted after they closed", foreground.Load())
	}
	for i := range preheat.offers {
		preheat.sent(i)
	}
	if got := len(preheat.update(now)); got != all {
		t.Errorf("once the clients left the preheat stream got %d offers, want all %d", got, all)
	}
}

// Four streams that say hello to the seed and never request anything do not starve an honest
// child of the seed's offers: it gets every piece, and it does not have to wait until the idle
// streams have been offered all of them (which is how it got any before idle streams lost their
// share).
func TestIdleStreamsDoNotStarveTheSeed(t *testing.T) {
	t.Parallel()
	src := newSeededWith(t, 32<<20, 1<<20, ServerConfig{SuperSeed: true})
	id, n := src.task.Meta().ID, src.task.PieceCount()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	offered := make([]atomic.Int64, 4)
	for k := range offered {
		conn, _, err := Dial(ctx, newHost(t), info(src.h), id, n, false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		go func() { // reads what the seed offers, requests nothing
			for {
				ev, err := conn.Next()
				if err != nil {
					return
				}
				if ev.Kind == EventHave {
					offered[k].Add(1)
				}
			}
		}()
	}
	wait.Until(t, 30*time.Second, "the idle streams to hold the seed's offers", func() bool {
		for k := range offered {
			if offered[k].Load() < picker.SeedOffers {
				return false
			}
		}
		return true
	})

	store, err := piece.Open(t.TempDir(), piece.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dst := copyMeta(t, src.task, store)
	conn, _, err := Dial(ctx, newHost(t), info(src.h), id, n, false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for got := 0; got < n; {
		ev, err := conn.Next()
		if err != nil {
			t.Fatalf("honest child after %d of %d pieces: %v", got, n, err)
		}
		switch ev.Kind {
		case EventHave:
			if err := conn.Request(ev.Index); err != nil {
				t.Fatal(err)
			}
		case EventPiece:
			if err := dst.WritePiece(ev.Index, conn.Body(ev)); err != nil {
				t.Fatal(err)
			}
			got++
		}
	}
	for k := range offered {
		if o := offered[k].Load(); o >= int64(n) {
			t.Errorf("idle stream %d was offered all %d pieces before the honest child had them", k, o)
		}
	}
}
