package peer

import (
	"testing"
	"time"
)

// The busy time counts overlapping sends once, and a send still running up to now.
func TestBusyClock(t *testing.T) {
	t.Parallel()
	var c busyClock
	at := func(s float64) time.Time { return time.Unix(0, 0).Add(time.Duration(s * float64(time.Second))) }
	c.enter(at(1))
	c.enter(at(2))
	c.leave(at(3))
	c.leave(at(4)) // busy 1–4
	c.enter(at(10))
	if got := c.seconds(at(12)); got != 5 {
		t.Fatalf("busy %v s, want 5 (1–4 and 10–12)", got)
	}
	c.leave(at(13))
	if got := c.seconds(at(20)); got != 6 {
		t.Fatalf("busy %v s, want 6", got)
	}
}
