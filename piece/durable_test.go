package piece

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// syncGate stands in for fdatasync: until it is opened, each sync of a data file waits until
// the test lets it finish, with the result the test gives.
type syncGate struct {
	entered chan struct{} // one value per sync that started
	result  chan error    // what the waiting sync returns (nil: it really syncs)
	opened  atomic.Bool   // syncs no longer wait
	done    chan struct{} // closed when the test ends: a failed test does not hang in Close
}

func newSyncGate() *syncGate {
	return &syncGate{entered: make(chan struct{}, 16), result: make(chan error), done: make(chan struct{})}
}

// end lets every sync through for good: register it after the store's Close (cleanups run
// last first), so that a test that failed with a sync waiting does not hang in Close.
func (g *syncGate) end() { g.open(); close(g.done) }

func (g *syncGate) sync(f *os.File) error {
	if !g.opened.Load() {
		select {
		case g.entered <- struct{}{}:
		default: // nobody is counting any more
		}
		select {
		case err := <-g.result:
			if err != nil {
				return err
			}
		case <-g.done:
		}
	}
	return fdatasync(f)
}

// open lets every later sync through, and the one waiting now (if any) when it is told to
// finish; use it where the number of groups depends on timing.
func (g *syncGate) open() { g.opened.Store(true) }

// release lets the next sync finish with err, waiting for it to start.
func (g *syncGate) release(t *testing.T, err error) {
	t.Helper()
	<-g.entered
	g.result <- err
}

// gatedFixture is a fixture whose data file syncs wait for the returned gate.
func gatedFixture(t *testing.T, length int64) (*fixture, *syncGate) {
	g := newSyncGate()
	f := newFixture(t, length, Options{faults: faults{syncFile: g.sync}})
	t.Cleanup(g.end)
	f.setDigests(t, f.task)
	return f, g
}

// inIndex returns the pieces the index names for task, and those whose digest it holds.
func inIndex(t *testing.T, s *Store, task *Task) (named, digests []int) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTasks).Bucket(task.key)
		bits, err := BitfieldFromBytes(task.PieceCount(), b.Get(keyBits))
		if err != nil {
			return err
		}
		named = present(bits)
		return b.Bucket(bucketDigests).ForEach(func(k, _ []byte) error {
			digests = append(digests, int(binary.BigEndian.Uint32(k)))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return named, digests
}

// readPiece reads present piece i of task whole.
func readPiece(t *testing.T, task *Task, i int) []byte {
	t.Helper()
	r, err := task.PieceReader(i)
	if err != nil {
		t.Fatalf("PieceReader(%d): %v", i, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A piece counts as held as soon as it is written and verified: WritePiece returns, Changed
// fires, and it can be read (served, announced) while its data file has not synced and the
// index does not name it.
func TestPieceHeldBeforeItIsDurable(t *testing.T) {
	t.Parallel()
	f, gate := gatedFixture(t, 3*MiB)
	changed := f.task.Changed()
	f.write(t, f.task, 1) // returns although no sync can finish
	<-gate.entered        // its group has begun and waits for the disk

	select {
	case <-changed:
	default:
		t.Fatal("Changed did not fire for a written piece")
	}
	if !f.task.Has(1) || !slices.Equal(present(f.task.Bitfield()), []int{1}) {
		t.Fatalf("held pieces %v, want [1]", present(f.task.Bitfield()))
	}
	if !bytes.Equal(readPiece(t, f.task, 1), f.piece(1)) {
		t.Fatal("the piece read back differs from what was written")
	}
	if named, _ := inIndex(t, f.store, f.task); len(named) != 0 {
		t.Fatalf("the index names pieces %v before their group", named)
	}
	gate.open()
	gate.result <- nil
	f.write(t, f.task, 0, 2)
	if err := f.store.syncNow(); err != nil {
		t.Fatal(err)
	}
	if named, _ := inIndex(t, f.store, f.task); !slices.Equal(named, []int{0, 1, 2}) {
		t.Fatalf("the index names %v, want all", named)
	}
	if !f.task.Complete() {
		t.Fatal("not complete")
	}
	f.checkContent(t, f.task)
}

// The index never names a piece whose bytes are not on disk: while the sync of a group waits,
// a copy of the store (what a crash would leave, the page cache aside) does not hold its
// pieces, and fetches them again; once the sync is done the index names them with their
// digests. A store that recorded a piece before syncing its data fails here.
func TestIndexNamesOnlySyncedPieces(t *testing.T) {
	t.Parallel()
	f, gate := gatedFixture(t, 4*MiB)
	f.write(t, f.task, 0)
	gate.release(t, nil)
	if err := f.store.syncNow(); err != nil { // piece 0 recorded
		t.Fatal(err)
	}
	f.write(t, f.task, 2, 3)
	<-gate.entered // the group of pieces 2 and 3 is syncing

	if named, _ := inIndex(t, f.store, f.task); !slices.Equal(named, []int{0}) {
		t.Fatalf("while pieces 2 and 3 sync, the index names %v, want [0]", named)
	}
	crashed := crashCopy(t, f.dir)

	gate.open()
	gate.result <- nil
	if err := f.store.syncNow(); err != nil {
		t.Fatal(err)
	}
	named, digests := inIndex(t, f.store, f.task)
	slices.Sort(digests)
	if !slices.Equal(named, []int{0, 2, 3}) || !slices.Equal(digests, []int{0, 2, 3}) {
		t.Fatalf("after the group the index names %v with digests of %v, want [0 2 3] and the same", named, digests)
	}

	s := openStore(t, crashed, Options{NoSync: true})
	task, err := s.Task(f.meta.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := present(task.Bitfield()); !slices.Equal(got, []int{0}) {
		t.Fatalf("after the crash the store holds %v, want [0]", got)
	}
	f.setDigests(t, task)
	f.write(t, task, 1, 2, 3) // fetched again
	f.checkContent(t, task)
}

// crashCopy copies the store in dir (its index and data files) as they are on disk now into a
// new directory: what a crash at this moment would leave. The caller must not be committing.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// A failed sync of a data file drops the pieces written since its last good sync: they are
// absent again (never recorded), counted, and fetched anew; the next write of the task fails
// with the disk's error, once; a write under way while the sync failed fails too.
func TestFailedSyncDropsThePieces(t *testing.T) {
	t.Parallel()
	f, gate := gatedFixture(t, 5*MiB)
	f.write(t, f.task, 0)
	gate.release(t, nil)
	if err := f.store.syncNow(); err != nil {
		t.Fatal(err)
	}

	// Piece 4 is being written (half of it arrived) while the group of pieces 1 and 2 fails.
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() { werr <- f.task.WritePiece(4, pr) }()
	half := len(f.piece(4)) / 2
	if _, err := pw.Write(f.piece(4)[:half]); err != nil {
		t.Fatal(err)
	}
	f.write(t, f.task, 1, 2)
	gate.release(t, syscall.EIO)
	if err := f.store.syncNow(); err != nil { // after the failed group: nothing left to sync
		t.Fatal(err)
	}
	if got := present(f.task.Bitfield()); !slices.Equal(got, []int{0}) {
		t.Fatalf("held after the failed sync: %v, want [0]", got)
	}
	if got := f.store.SyncStats().Dropped; got != 2 {
		t.Fatalf("SyncStats().Dropped = %d, want 2", got)
	}
	if _, err := f.task.PieceReader(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PieceReader of a dropped piece = %v, want ErrNotFound", err)
	}
	if _, err := pw.Write(f.piece(4)[half:]); err != nil {
		t.Fatal(err)
	}
	if err := <-werr; !errors.Is(err, ErrIO) || !errors.Is(err, syscall.EIO) || f.task.Has(4) {
		t.Fatalf("a write across the failed sync = %v, present %v; want ErrIO, EIO, absent", err, f.task.Has(4))
	}
	if named, _ := inIndex(t, f.store, f.task); !slices.Equal(named, []int{0}) {
		t.Fatalf("the index names %v, want [0]", named)
	}

	// The sync error was reported to the write under way; the next ones succeed.
	gate.open()
	f.write(t, f.task, 1, 2, 3, 4)
	if err := f.store.syncNow(); err != nil {
		t.Fatal(err)
	}
	if named, _ := inIndex(t, f.store, f.task); !slices.Equal(named, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("the index names %v, want all", named)
	}
	f.checkContent(t, f.task)

	// With no write under way, the next write learns of the failure.
	g := newFixture(t, 2*MiB, Options{faults: faults{syncFile: func(*os.File) error { return syscall.EIO }}})
	g.setDigests(t, g.task)
	g.write(t, g.task, 0)
	_ = g.store.syncNow() // the failed group ran before it or is this one
	if got := g.store.SyncStats().Dropped; got != 1 {
		t.Fatalf("SyncStats().Dropped = %d, want 1", got)
	}
	if err := g.task.WritePiece(1, bytes.NewReader(g.piece(1))); !errors.Is(err, ErrIO) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("the write after a failed sync = %v, want ErrIO and EIO", err)
	}
	if g.task.Has(0) || g.task.Has(1) {
		t.Fatalf("held %v after failed syncs", present(g.task.Bitfield()))
	}
}

// WriteSourcePiece makes its piece present at once but returns only once it is durable.
func TestSourcePieceReturnsWhenDurable(t *testing.T) {
	t.Parallel()
	f, gate := gatedFixture(t, 2*MiB)
	done := make(chan error, 1)
	go func() {
		_, err := f.task.WriteSourcePiece(1, bytes.NewReader(f.piece(1)))
		done <- err
	}()
	<-gate.entered
	if !f.task.Has(1) || !bytes.Equal(readPiece(t, f.task, 1), f.piece(1)) {
		t.Fatal("a source piece is not readable while it syncs")
	}
	select {
	case err := <-done:
		t.Fatalf("WriteSourcePiece returned (%v) before its data file synced", err)
	default:
	}
	gate.result <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if named, digests := inIndex(t, f.store, f.task); !slices.Equal(named, []int{1}) || !slices.Contains(digests, 1) {
		t.Fatalf("after WriteSourcePiece the index names %v with digests %v, want [1]", named, digests)
	}

	// A failed sync: the source piece is absent and the error says so.
	go func() {
		_, err := f.task.WriteSourcePiece(0, bytes.NewReader(f.piece(0)))
		done <- err
	}()
	gate.release(t, syscall.EIO)
	if err := <-done; !errors.Is(err, ErrIO) || !errors.Is(err, syscall.EIO) || f.task.Has(0) {
		t.Fatalf("WriteSourcePiece over a failing disk = %v, present %v; want ErrIO, EIO, absent", err, f.task.Has(0))
	}
}

// HoldSourcePiece returns once its piece is held, its group started: the next piece can be
// written while that group's sync waits for the disk, and AwaitDurable returns only once the
// index names the piece.
func TestHoldSourcePieceDoesNotWaitForItsGroup(t *testing.T) {
	t.Parallel()
	f, gate := gatedFixture(t, 3*MiB)
	if _, err := f.task.HoldSourcePiece(0, bytes.NewReader(f.piece(0))); err != nil {
		t.Fatal(err)
	}
	<-gate.entered // piece 0's group started at once, and its sync waits
	d, err := f.task.HoldSourcePiece(1, bytes.NewReader(f.piece(1)))
	if err != nil || d != digest.FromBytes(f.piece(1)) {
		t.Fatalf("HoldSourcePiece(1) while piece 0 syncs = %s, %v", d, err)
	}
	if !f.task.Has(0) || !f.task.Has(1) {
		t.Fatalf("held pieces %v, want [0 1]", present(f.task.Bitfield()))
	}
	durable := make(chan error, 1)
	go func() { durable <- f.task.AwaitDurable(1) }()
	select {
	case err := <-durable:
		t.Fatalf("AwaitDurable(1) returned (%v) while no sync had finished", err)
	default:
	}
	gate.open()
	gate.result <- nil // piece 0's group; piece 1 is in this one or the next
	if err := <-durable; err != nil {
		t.Fatal(err)
	}
	if named, digests := inIndex(t, f.store, f.task); !slices.Contains(named, 1) || !slices.Contains(digests, 1) {
		t.Fatalf("after AwaitDurable(1) the index names %v with digests %v, want 1 among them", named, digests)
	}
}

// Close makes durable what is held: a piece written just before it is held after a reopen, and
// a Close whose last sync fails says so and leaves the piece unnamed.
func TestCloseSyncsWhatIsHeld(t *testing.T) {
	t.Parallel()
	for _, fail := range []bool{false, true} {
		dir := t.TempDir()
		data := content(2*MiB, 9)
		var syncs int
		s, err := Open(dir, Options{faults: faults{syncFile: func(f *os.File) error {
			syncs++
			if fail {
				return syscall.EIO
			}
			return fdatasync(f)
		}}})
		if err != nil {
			t.Fatal(err)
		}
		st := storeTask(t, s, Meta{ID: digest.FromBytes(data), ContentLength: int64(len(data)), PieceSize: MiB}, data, 1)
		err = s.Close()
		if fail != errors.Is(err, syscall.EIO) || syncs != 1 {
			t.Fatalf("fail=%v: Close = %v after %d syncs, want one sync and its error", fail, err, syncs)
		}
		s = openStore(t, dir, Options{NoSync: true})
		task, err := s.Task(st.meta.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []int{1}
		if fail {
			want = nil
		}
		if got := present(task.Bitfield()); !slices.Equal(got, want) {
			t.Fatalf("fail=%v: held after reopen %v, want %v", fail, got, want)
		}
	}
}

// Every write under way when a sync fails learns it as ErrIO, not only the first to finish: a
// download tells a failing disk from a bad parent by it.
func TestEveryWriteAcrossAFailedSyncFails(t *testing.T) {
	t.Parallel()
	f, gate := gatedFixture(t, 5*MiB)
	pieces := []int{3, 4}
	writers := make([]*io.PipeWriter, len(pieces))
	errs := make([]chan error, len(pieces))
	for k, i := range pieces {
		pr, pw := io.Pipe()
		writers[k], errs[k] = pw, make(chan error, 1)
		go func() { errs[k] <- f.task.WritePiece(i, pr) }()
		if _, err := pw.Write(f.piece(i)[:len(f.piece(i))/2]); err != nil { // under way
			t.Fatal(err)
		}
	}
	f.write(t, f.task, 1)
	gate.release(t, syscall.EIO)
	if err := f.store.syncNow(); err != nil {
		t.Fatal(err)
	}
	for k, i := range pieces {
		if _, err := writers[k].Write(f.piece(i)[len(f.piece(i))/2:]); err != nil {
			t.Fatal(err)
		}
		if err := <-errs[k]; !errors.Is(err, ErrIO) || !errors.Is(err, syscall.EIO) {
			t.Errorf("the write of piece %d across the failed sync = %v, want ErrIO and EIO", i, err)
		}
	}
}

// A second write from the source of a piece another writer holds but has not made durable yet
// returns only once it is durable, as the first does.
func TestSourcePieceAlreadyHeldReturnsWhenDurable(t *testing.T) {
	t.Parallel()
	f, gate := gatedFixture(t, 2*MiB)
	write := func() chan error {
		c := make(chan error, 1)
		go func() { _, err := f.task.WriteSourcePiece(0, bytes.NewReader(f.piece(0))); c <- err }()
		return c
	}
	first := write()
	<-gate.entered // piece 0 is held, its group is syncing
	second := write()
	select {
	case err := <-second:
		t.Fatalf("the second source write returned (%v) before piece 0 was durable", err)
	case <-time.After(200 * time.Millisecond):
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // let this sync and any later one finish
		for {
			select {
			case gate.result <- nil:
			case <-stop:
				return
			}
		}
	}()
	for _, c := range []chan error{first, second} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	if named, _ := inIndex(t, f.store, f.task); !slices.Equal(named, []int{0}) {
		t.Fatalf("the index names %v after both source writes returned, want [0]", named)
	}
}

// While the index cannot record synced pieces, new writes fail with ErrIO (as when every piece
// committed its own transaction) instead of downloading what cannot be kept; once a group
// records again, writes succeed and the held pieces are recorded.
func TestWritesFailWhileTheIndexCannotRecord(t *testing.T) {
	t.Parallel()
	var broken atomic.Bool
	broken.Store(true)
	f := newFixture(t, 3*MiB, Options{faults: faults{recordFault: func() error {
		if broken.Load() {
			return syscall.ENOSPC
		}
		return nil
	}}})
	f.setDigests(t, f.task)
	f.write(t, f.task, 0)
	if err := f.store.syncNow(); !errors.Is(err, ErrIO) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a group whose index transaction fails = %v, want ErrIO and ENOSPC", err)
	}
	if err := f.task.WritePiece(1, bytes.NewReader(f.piece(1))); !errors.Is(err, ErrIO) || !errors.Is(err, syscall.ENOSPC) || f.task.Has(1) {
		t.Fatalf("a write while the index cannot record = %v, present %v; want ErrIO, ENOSPC, absent", err, f.task.Has(1))
	}
	if !f.task.Has(0) {
		t.Fatal("piece 0 is no longer held: its bytes are synced and it waits to be recorded")
	}
	broken.Store(false)
	if err := f.store.syncNow(); err != nil {
		t.Fatal(err)
	}
	f.write(t, f.task, 1, 2)
	if err := f.store.syncNow(); err != nil {
		t.Fatal(err)
	}
	if named, _ := inIndex(t, f.store, f.task); !slices.Equal(named, []int{0, 1, 2}) {
		t.Fatalf("the index names %v, want [0 1 2]", named)
	}
	f.checkContent(t, f.task)
}

// A failed early writeback fails the next group as a failed fdatasync would, even though the
// fdatasync itself succeeds: some file systems report a lost page to sync_file_range alone.
func TestFailedWritebackFailsTheGroup(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	f := newFixture(t, 3*MiB, Options{faults: faults{writeback: func(*os.File, int64, int64) error {
		if fail.Swap(false) {
			return syscall.EIO
		}
		return nil
	}}})
	f.setDigests(t, f.task)
	f.write(t, f.task, 0) // its writeback fails
	_ = f.store.syncNow() // the failed group ran before it or is this one
	if f.task.Has(0) || f.store.SyncStats().Dropped != 1 {
		t.Fatalf("piece 0 held %v, dropped %d; want dropped", f.task.Has(0), f.store.SyncStats().Dropped)
	}
	if named, _ := inIndex(t, f.store, f.task); len(named) != 0 {
		t.Fatalf("the index names %v, want none", named)
	}
	// The task's next write learns of it; then the disk is fine again.
	if err := f.task.WritePiece(1, bytes.NewReader(f.piece(1))); !errors.Is(err, ErrIO) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("the next write = %v, want ErrIO and EIO", err)
	}
	f.write(t, f.task, 0, 1)
	if err := f.store.syncNow(); err != nil {
		t.Fatal(err)
	}
	if named, _ := inIndex(t, f.store, f.task); !slices.Equal(named, []int{0, 1}) {
		t.Fatalf("the index names %v, want [0 1]", named)
	}
}
