package piece

import (
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// Durability is off the path a piece takes through the mesh. A piece is held — readable,
// servable to children, announced, counted — as soon as its bytes are written to the data file
// and hash to their digest. It becomes durable later, in a group shared with every piece
// written meanwhile: one fdatasync of each data file that has such pieces, then one index
// transaction recording their bits and digests. So the index never names a piece whose bytes
// are not on disk, and a crash forgets only the pieces held but not yet durable, which are
// fetched again. Before, each piece waited for its own fsync and index commit before anyone
// could see it: tens of milliseconds per hop on a shared disk, against 131 ms to move 1 MiB
// at 8 MB/s.
//
// A group starts syncInterval after the first piece that waits for one, at once when a task
// becomes complete or a source write waits for it (WriteSourcePiece), and when the store
// closes. A piece fetched from the origin waits for its group before WriteSourcePiece returns:
// fetching it again after a crash would cost origin bytes, which the seed must not spend twice.
//
// Every held piece of a task is in one of three states: unsynced (its bytes may still be only
// in the page cache), synced but not yet recorded (in durable, not in indexed), and recorded
// (indexed: what the index names).

// syncInterval is the longest a piece waits for its group to start. It bounds what a crash
// forgets (about one interval of pieces) and how often a data file is synced (at most about
// 1/syncInterval times a second, whatever the piece size).
const syncInterval = 200 * time.Millisecond

// SyncStats counts the store's durability work since it was opened.
type SyncStats struct {
	Groups  int64 // groups that synced at least one data file or recorded a piece
	Dropped int64 // held pieces dropped because their data file failed to sync
}

// SyncStats returns what the store's durability groups did.
func (s *Store) SyncStats() SyncStats {
	return SyncStats{Groups: s.syncGroups.Load(), Dropped: s.syncDropped.Load()}
}

// markUnsyncedLocked records that held piece i awaits its group; t.mu must be held.
func (t *Task) markUnsyncedLocked(i int) {
	t.unsynced.Set(i)
	t.unsyncedAt = append(t.unsyncedAt, i)
}

// kickSync arms the next group; now starts it at once (a task just became complete).
func (s *Store) kickSync(now bool) {
	ch := s.syncKick
	if now {
		ch = s.syncUrgent
	}
	select {
	case ch <- struct{}{}:
	default: // already asked
	}
}

// syncNow runs a group that starts after the call and returns its error.
func (s *Store) syncNow() error {
	reply := make(chan error, 1)
	select {
	case s.syncReq <- reply:
	case <-s.quit:
		return ErrClosed
	}
	return <-reply
}

func (s *Store) syncLoop() {
	defer close(s.syncerDone)
	timer := time.NewTimer(syncInterval)
	timer.Stop()
	for {
		var waiters []chan error
		select {
		case <-s.quit:
			// Close makes durable what is held, and says if it could not.
			_, s.closeSyncErr = s.syncGroup()
			return
		case <-s.syncKick:
			// The first piece that waits arms the group's start; those written meanwhile join it.
			timer.Reset(syncInterval)
			if !s.awaitStart(timer, &waiters) {
				continue // closing: the next turn runs the last group
			}
		case <-s.syncUrgent:
		case w := <-s.syncReq:
			waiters = append(waiters, w)
		}
		timer.Stop()
		s.runGroup(waiters)
	}
}

// awaitStart waits for the armed group's start, or for what starts it earlier (a complete task,
// a caller waiting for it), adding that caller to waiters. Kicks meanwhile are for the same
// group. It reports false when the store is closing.
func (s *Store) awaitStart(timer *time.Timer, waiters *[]chan error) bool {
	for {
		select {
		case <-s.syncKick:
		case <-timer.C:
			return true
		case <-s.syncUrgent:
			return true
		case w := <-s.syncReq:
			*waiters = append(*waiters, w)
			return true
		case <-s.quit:
			return false
		}
	}
}

// runGroup runs one group for waiters and every request queued behind them, and arms the next
// if something could not be recorded.
func (s *Store) runGroup(waiters []chan error) {
	for more := true; more; {
		select {
		case w := <-s.syncReq:
			waiters = append(waiters, w)
		default:
			more = false
		}
	}
	retry, err := s.syncGroup()
	for _, w := range waiters {
		w <- err
	}
	if retry {
		s.kickSync(false)
	}
}

// syncGroup makes durable every piece held and not yet durable: each task's data file is
// synced, then what was synced is recorded in one index transaction. It reports whether
// something stays to be recorded (the transaction failed).
func (s *Store) syncGroup() (retry bool, err error) {
	s.mu.RLock()
	tasks := s.snapshot()
	s.mu.RUnlock()
	var errs []error
	var record []*Task
	synced := false
	for _, t := range tasks {
		did, pending, err := t.syncData()
		synced = synced || did
		if err != nil {
			errs = append(errs, err)
		}
		if pending {
			record = append(record, t)
		}
	}
	if len(record) > 0 || synced {
		s.syncGroups.Add(1)
	}
	if len(record) == 0 {
		return false, errors.Join(errs...)
	}
	if err := s.record(record); err != nil {
		err = fmt.Errorf("%w: record synced pieces: %w", ErrIO, err)
		s.recordErr.Store(&err)
		s.log.Error("recording synced pieces in the index: they stay held and are recorded with a later group; new writes fail until then", zap.Error(err))
		return true, errors.Join(append(errs, err)...)
	}
	s.recordErr.Store(nil)
	return false, errors.Join(errs...)
}

// syncData syncs the data file if pieces were written since its last sync, and moves them to
// the pieces to record; a failure drops them. It reports whether it synced, and whether the
// task has pieces to record.
func (t *Task) syncData() (did, pending bool, err error) {
	t.mu.Lock()
	group := t.unsyncedAt
	t.unsyncedAt = nil
	for _, i := range group {
		t.unsynced.Clear(i)
	}
	pending = len(t.unrecorded) > 0
	t.mu.Unlock()
	if len(group) == 0 {
		return false, pending, nil
	}
	if t.s.syncFile != nil {
		err = t.s.syncFile(t.f)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.goneLocked() != nil {
		return true, false, nil // deleted: nothing to record
	}
	if err == nil && t.writebackErr != nil {
		// Some file systems report a failed writeback to sync_file_range alone; the
		// fdatasync that followed succeeding proves nothing about those pages.
		err = fmt.Errorf("early writeback: %w", t.writebackErr)
	}
	t.writebackErr = nil
	if err != nil {
		err = t.syncFailedLocked(group, err)
		return true, len(t.unrecorded) > 0, err
	}
	for _, i := range group {
		// Written again after a drop (Verify) since the group began: the next group has it.
		if t.bits.Has(i) && !t.unsynced.Has(i) && !t.durable.Has(i) {
			t.durable.Set(i)
			t.unrecorded = append(t.unrecorded, i)
		}
	}
	return true, len(t.unrecorded) > 0, nil
}

// syncFailedLocked drops the pieces of a group whose data file failed to sync, and those
// written since; t.mu must be held. After a failed fdatasync the kernel may have let go of the
// dirty pages and reports the failure once only, so a later sync that succeeds proves nothing
// about them: the pieces are dropped (absent, so the download or the next one fetches them
// again) rather than recorded. Writes in progress fail too (see claim and write), and so does
// the next write of the task, so that a download learns its disk failed (a full disk shows
// here first when the file system allocates at writeback).
func (t *Task) syncFailedLocked(group []int, err error) error {
	err = fmt.Errorf("task %s: sync data: %w: %w", t.id, ErrIO, err)
	dropped := 0
	for _, i := range append(group, t.unsyncedAt...) {
		if t.bits.Has(i) && !t.durable.Has(i) {
			t.bits.Clear(i)
			t.have--
			dropped++
		}
		t.unsynced.Clear(i)
	}
	t.unsyncedAt = nil
	t.syncFails++
	t.syncErr = err
	t.lastSyncErr = err
	t.s.syncDropped.Add(int64(dropped))
	t.s.log.Error("syncing a data file failed: the pieces written since its last sync are dropped and will be fetched again",
		zap.Stringer("task", t.id), zap.Int("dropped", dropped), zap.Error(err))
	return err
}

// record writes the bits and digests of the synced pieces of tasks in one transaction.
func (s *Store) record(tasks []*Task) error {
	type recorded struct {
		t *Task
		n int // the first n of t.unrecorded
	}
	var done []recorded
	err := s.db.Update(func(tx *bolt.Tx) error {
		done = done[:0]
		if s.recordFault != nil {
			if err := s.recordFault(); err != nil {
				return err
			}
		}
		for _, t := range tasks {
			b := t.bucket(tx)
			if b == nil {
				continue
			}
			t.mu.Lock()
			recs := slices.Clone(t.unrecorded)
			bits := t.indexed.Clone()
			raw := make([][]byte, len(recs))
			for k, i := range recs {
				// Dropped since (Verify): neither its bit nor its digest goes in.
				if t.bits.Has(i) && t.durable.Has(i) {
					bits.Set(i)
					raw[k] = t.digests[i][:]
				}
			}
			t.mu.Unlock()
			digests, cands := b.Bucket(bucketDigests), b.Bucket(bucketCandidates)
			for k, i := range recs {
				if raw[k] == nil {
					continue
				}
				if err := digests.Put(pieceKey(i), raw[k]); err != nil {
					return err
				}
				if cands != nil {
					if err := cands.Delete(pieceKey(i)); err != nil {
						return err
					}
				}
			}
			if err := b.Put(keyBits, bits.Bytes()); err != nil {
				return err
			}
			done = append(done, recorded{t, len(recs)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range done {
		t := r.t
		t.mu.Lock()
		for _, i := range t.unrecorded[:r.n] {
			if t.bits.Has(i) && t.durable.Has(i) {
				t.indexed.Set(i)
			}
		}
		t.unrecorded = slices.Delete(t.unrecorded, 0, r.n)
		t.mu.Unlock()
	}
	return nil
}

// awaitDurable waits until held piece i is recorded in the index, running a group at once.
func (t *Task) awaitDurable(i int) error {
	err := t.s.syncNow()
	t.mu.Lock()
	gone, indexed, held := t.goneLocked(), t.indexed.Has(i), t.bits.Has(i)
	t.mu.Unlock()
	switch {
	case gone != nil:
		return gone
	case indexed:
		return nil
	case errors.Is(err, ErrClosed):
		return fmt.Errorf("task %s piece %d: %w", t.id, i, ErrClosed)
	case !held:
		return fmt.Errorf("task %s piece %d: dropped: %w", t.id, i, errors.Join(err, ErrIO))
	}
	return fmt.Errorf("task %s piece %d: not recorded: %w", t.id, i, errors.Join(err, ErrIO))
}
