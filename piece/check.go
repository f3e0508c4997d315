package piece

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Check reports whether the store is usable: it is open and its index answers a read. A
// daemon's readiness probe calls it; it costs one read transaction.
func (s *Store) Check() error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTasks) == nil {
			return fmt.Errorf("%w: the index has no tasks bucket", ErrBadMeta)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("piece: index %s: %w", s.dir, err)
	}
	return nil
}
