package peer

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/scheduler"
)

// While a client's stream is open at the seed, preheat streams together hold at most half of
// its pending offers; alone they may hold them all.
func TestBackgroundStreamsLeaveHalfTheSeedToClients(t *testing.T) {
	t.Parallel()
	task := newSeeded(t, 32<<20, 1<<20).task // 32 pieces
	var pending, foreground atomic.Int64
	st := &superState{sent: make([]int, task.PieceCount()), offered: make([]int, task.PieceCount()), pending: &pending, foreground: &foreground}
	stream := func(background bool) *superAnnouncer {
		a := &superAnnouncer{task: task, st: st, offers: map[int]time.Time{}, quota: scheduler.SuperSeedPending,
			background: func() bool { return background }}
		a.initial()
		return a
	}
	now := time.Now()
	const all, half = scheduler.SuperSeedPending, scheduler.SuperSeedPending / 2

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
