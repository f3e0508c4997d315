package lifecycle

import (
	"context"
	"time"
)

// Sleep waits d and says true, or says false as soon as ctx ends: the pause of a loop that
// must stop with its daemon (or its run) without waiting out the rest of the pause.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
