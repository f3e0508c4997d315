package peer

import (
	"context"
	"fmt"
	"sync"
)

// cancels is what a stream's child may still withdraw (ProtocolCancelID): its requests read and
// not yet taken by the handler, and the piece the handler took and waits to start sending (for
// the upload cap). The stream's request reader adds each request and cancel; the handler takes
// each request in turn and starts it. A cancel for anything else is ignored: the piece is being
// sent, was sent, or was never asked for.
type cancels struct {
	mu      sync.Mutex
	pieces  int
	queued  map[int]int // requests read and not yet taken, by piece
	dropped map[int]int // of those, the cancelled ones
	// credit is the requests read less the cancels read: a child never cancels more than it
	// asked for, so a flood of cancels costs the parent no more than as many requests.
	credit  int
	current int                // the piece taken and not started, or -1
	stop    context.CancelFunc // ends current's wait for its first bytes
}

func newCancels(pieces int) *cancels {
	return &cancels{pieces: pieces, queued: map[int]int{}, dropped: map[int]int{}, current: -1}
}

// request notes a request for piece i, before the handler may take it.
func (q *cancels) request(i int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queued[i]++
	q.credit++
}

// cancel withdraws a request for piece i, if one waits; an error is a child that broke the
// protocol (a piece out of range, more cancels than requests).
func (q *cancels) cancel(i int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if i < 0 || i >= q.pieces {
		return fmt.Errorf("%w: cancel of piece %d of %d", ErrProtocol, i, q.pieces)
	}
	if q.credit == 0 {
		return fmt.Errorf("%w: more cancels than requests", ErrProtocol)
	}
	q.credit--
	switch {
	case q.dropped[i] < q.queued[i]:
		q.dropped[i]++
	case q.current == i:
		q.stop()
		q.current, q.stop = -1, nil
	}
	return nil
}

// take dequeues a request for piece i and says whether to serve it (false: it was cancelled).
func (q *cancels) take(i int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued[i]--; q.queued[i] <= 0 {
		delete(q.queued, i)
	}
	if q.dropped[i] > 0 {
		if q.dropped[i]--; q.dropped[i] == 0 {
			delete(q.dropped, i)
		}
		return false
	}
	return true
}

// begin marks piece i as taken and not started, and returns the context of its wait for the
// first bytes: a cancel ends it.
func (q *cancels) begin(ctx context.Context, i int) context.Context {
	ctx, stop := context.WithCancel(ctx)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.current, q.stop = i, stop
	return ctx
}

// start marks the piece begun as being sent (or given up): a cancel no longer stops it.
func (q *cancels) start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stop != nil {
		q.stop()
	}
	q.current, q.stop = -1, nil
}
