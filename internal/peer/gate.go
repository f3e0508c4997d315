package peer

import (
	"context"
	"sync"
	"time"

	"github.com/pouch-p2p/pouch/scheduler/picker"
)

// uploadGate orders a server's sends in progress under its upload cap by [picker.Lead]: the
// oldest send to a child that has had fewer than picker.FirstPieces pieces on its stream goes
// alone, the others wait before each chunk; with none, they all share the cap. A lead that
// stops moving — a child that does not read, or reads slowly because its download is shared —
// is passed: a waiter goes on once the lead has sent nothing for stall (two chunks' time at
// the cap), so a child cannot hold the parent's upload by asking and not reading.
type uploadGate struct {
	stall time.Duration

	mu      sync.Mutex
	sends   []*gateSend   // in the order they started
	changed chan struct{} // closed at the next change of sends
}

// gateSend is one piece being sent: sent is how many pieces its stream carried before it.
type gateSend struct {
	sent  int
	moved time.Time // when it last passed the gate
}

// newUploadGate returns the gate for an upload cap of rate bytes per second, or nil (every
// send goes at once) when there is no cap: then nothing is shared that an order would change.
func newUploadGate(rate float64) *uploadGate {
	if rate <= 0 {
		return nil
	}
	return &uploadGate{stall: time.Duration(2 * sendChunk / rate * float64(time.Second))}
}

// start enters a send whose stream carried sent pieces before it.
func (g *uploadGate) start(sent int, now time.Time) *gateSend {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := &gateSend{sent: sent, moved: now}
	g.sends = append(g.sends, s)
	g.notify()
	return s
}

// end removes s.
func (g *uploadGate) end(s *gateSend) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, x := range g.sends {
		if x == s {
			g.sends = append(g.sends[:k], g.sends[k+1:]...)
			break
		}
	}
	g.notify()
}

func (g *uploadGate) notify() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// wait returns when s may send its next chunk: it is the lead, there is none, or the lead has
// stalled; or with ctx's error.
func (g *uploadGate) wait(ctx context.Context, s *gateSend) error {
	if g == nil {
		return nil
	}
	for {
		g.mu.Lock()
		now := time.Now()
		k := picker.Lead(len(g.sends), func(k int) int { return g.sends[k].sent })
		if k < 0 || g.sends[k] == s {
			s.moved = now
			g.mu.Unlock()
			return nil
		}
		idle := now.Sub(g.sends[k].moved)
		if idle >= g.stall {
			g.mu.Unlock()
			return nil
		}
		if g.changed == nil {
			g.changed = make(chan struct{})
		}
		ch := g.changed
		g.mu.Unlock()
		t := time.NewTimer(g.stall - idle)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}
