package piece

import (
	bolt "go.etcd.io/bbolt"
)

// Piece records are committed in groups: one goroutine per store takes the
// index updates of every writer that is waiting and applies them in a single
// transaction (one fsync). A lone writer is committed at once, and writers
// that arrive while a commit is running share the next one. bbolt's own
// db.Batch coalesces too, but by waiting MaxBatchDelay before every commit,
// which here cut one writer of 4 MiB pieces from ~900 to ~270 MB/s (default
// 10 ms) and still cost ~30% at 2 ms.

type commitReq struct {
	fn   func(*bolt.Tx) error // must be idempotent: it may run twice
	err  error
	done chan struct{}
}

// commit runs fn in a write transaction shared with concurrent callers and
// returns when that transaction is committed.
func (s *Store) commit(fn func(*bolt.Tx) error) error {
	req := &commitReq{fn: fn, done: make(chan struct{})}
	select {
	case s.commits <- req: // unbuffered: the committer has taken it
	case <-s.quit:
		return ErrClosed
	}
	<-req.done
	return req.err
}

func (s *Store) commitLoop() {
	defer close(s.committerDone)
	var batch []*commitReq
	for {
		select {
		case req := <-s.commits:
			batch = append(batch[:0], req)
		case <-s.quit:
			return
		}
	more:
		for {
			select {
			case req := <-s.commits:
				batch = append(batch, req)
			default:
				break more
			}
		}
		s.runBatch(batch)
		clear(batch)
	}
}

func (s *Store) runBatch(batch []*commitReq) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, r := range batch {
			if err := r.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(batch) > 1 {
		// Do not let one failing update fail the others: retry each alone.
		for _, r := range batch {
			r.err = s.db.Update(r.fn)
		}
	} else {
		for _, r := range batch {
			r.err = err
		}
	}
	for _, r := range batch {
		close(r.done)
	}
}
