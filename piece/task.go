package piece

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

type taskState uint8

const (
	stateLive taskState = iota
	stateRemoved
	stateClosed
)

// Task is one stored task: its metadata, piece digests, which pieces are
// present, and its data file. It is safe for concurrent use: pieces may be
// written in any order from several goroutines, and read while others are
// being written.
//
// A piece, once present, is never written again, so readers of present pieces
// need no lock. Present means held: written and verified. It is made durable
// in the background, in groups (see durable.go). Two writers of the same piece are serialised: the second waits
// for the first and then finds the piece present (and drains its reader) or
// tries again.
type Task struct {
	s         *Store
	id        digest.Digest
	key       []byte // index bucket name and data file name: the hex of id
	length    int64
	pieceSize int64
	n         int
	f         *os.File // set before the task is published, never replaced

	lastAccess  atomic.Int64 // unix nanoseconds
	accessDirty atomic.Bool

	mu      sync.Mutex // guards what follows; never held during piece I/O or a transaction
	meta    Meta       // URL and Digest may be filled in by Create
	state   taskState
	bits    Bitfield
	have    int
	digests [][sha256.Size]byte
	known   Bitfield
	nknown  int
	pending []int // digests recorded but not yet in the index
	// candidates are the hashes of pieces found in the data file when the index was rebuilt
	// (Meta.Rebuilt) and not verified yet: SetDigest makes such a piece present when its trusted
	// digest matches. Nil for every other task.
	candidates map[int][sha256.Size]byte
	writing    map[int]chan struct{} // pieces being written, closed when done
	changed    chan struct{}         // nil until someone waits
	done       chan struct{}

	// Durability (durable.go): bits ⊇ durable ⊇ indexed. A piece of bits not in durable is
	// unsynced; one of durable not in indexed waits in unrecorded.
	unsynced     Bitfield // written since the group that syncs it began
	unsyncedAt   []int    // the pieces of unsynced, in the order written (may repeat or be stale)
	durable      Bitfield // synced: its bytes are on disk
	unrecorded   []int    // synced, not yet recorded in the index (may be stale)
	indexed      Bitfield // what the index names
	syncFails    int      // failed syncs of the data file: a write that spans one fails too
	syncErr      error    // the last failed sync, for the next write (once)
	lastSyncErr  error    // the last failed sync, kept: for every write that spanned it
	writebackErr error    // a failed early writeback since the last group: that group fails
}

func newTask(s *Store, m Meta) *Task {
	n := m.PieceCount()
	return &Task{
		s:         s,
		id:        m.ID,
		key:       []byte(m.ID.Encoded()),
		length:    m.ContentLength,
		pieceSize: m.PieceSize,
		n:         n,
		meta:      m,
		bits:      NewBitfield(n),
		unsynced:  NewBitfield(n),
		durable:   NewBitfield(n),
		indexed:   NewBitfield(n),
		digests:   make([][sha256.Size]byte, n),
		known:     NewBitfield(n),
		writing:   make(map[int]chan struct{}),
		done:      make(chan struct{}),
	}
}

// Meta returns the task metadata.
func (t *Task) Meta() Meta {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.meta
}

// PieceCount is the number of pieces.
func (t *Task) PieceCount() int { return t.n }

// Bitfield returns a copy of the set of present pieces.
func (t *Task) Bitfield() Bitfield {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bits.Clone()
}

// Has reports whether piece i is present: verified and written (durable soon after).
func (t *Task) Has(i int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bits.Has(i)
}

// Complete reports whether every piece is present.
func (t *Task) Complete() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.have == t.n
}

// Digest returns the digest of piece i, or "" when it is not known.
func (t *Task) Digest(i int) digest.Digest {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.known.Has(i) {
		return ""
	}
	return digestOf(t.digests[i])
}

// KnownDigests is how many piece digests are known.
func (t *Task) KnownDigests() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nknown
}

// LastAccess is the time of the last access (Create, Touch, a piece written or
// a PieceReader), which orders GC.
func (t *Task) LastAccess() time.Time { return time.Unix(0, t.lastAccess.Load()) }

// Done returns a channel closed when the task is deleted (or evicted) or the
// store is closed. Waiters on Changed should select on it too: no change
// follows it.
func (t *Task) Done() <-chan struct{} { return t.done }

// Changed returns a channel that is closed at the next change: a piece marked
// present or a digest recorded. Call it again afterwards for the following
// change. Check the state after calling Changed, not before, so that a change
// in between is not missed.
func (t *Task) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	return t.changed
}

// notifyLocked wakes the waiters of Changed; t.mu must be held.
func (t *Task) notifyLocked() {
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
}

// Touch records an access, for LRU GC. It only stores a timestamp in memory;
// the index is updated within a few seconds.
func (t *Task) Touch() { t.touchAt(time.Now()) }

func (t *Task) touchAt(now time.Time) {
	t.lastAccess.Store(now.UnixNano())
	t.accessDirty.Store(true)
	t.s.dirty.Store(true)
}

// SetDigest records the trusted digest of piece i (from the supernode). It is
// idempotent for the same value; a different value for a known digest is
// ErrDigestMismatch. The digest is kept in memory at once and reaches the
// index within a few seconds, or with the piece when the piece is written.
//
// In a task rebuilt after the index was damaged (Meta.Rebuilt), a piece whose
// bytes were found in the data file and hash to d becomes present at once:
// nothing needs fetching again.
func (t *Task) SetDigest(i int, d digest.Digest) error {
	if i < 0 || i >= t.n {
		return t.rangeErr(i)
	}
	raw, err := rawDigest(d)
	if err != nil {
		return fmt.Errorf("task %s piece %d: %w", t.id, i, err)
	}
	t.mu.Lock()
	if err := t.goneLocked(); err != nil {
		t.mu.Unlock()
		return err
	}
	if t.known.Has(i) {
		cur := t.digests[i]
		t.mu.Unlock()
		if cur == raw {
			return nil
		}
		return fmt.Errorf("%w: task %s piece %d: digest %s already recorded, offered %s",
			ErrDigestMismatch, t.id, i, digestOf(cur), d)
	}
	t.digests[i] = raw
	t.known.Set(i)
	t.nknown++
	t.pending = append(t.pending, i)
	t.s.dirty.Store(true)
	found := t.promoteLocked(i)
	t.notifyLocked()
	t.mu.Unlock()
	if found {
		t.s.kickSync(false)
	}
	return nil
}

// promoteLocked marks piece i present if the bytes found in the data file when the index was
// rebuilt hash to its now known digest, and reports whether it did; t.mu must be held. The
// rebuild synced the file before keeping the candidate, so the piece is durable and only
// waits to be recorded.
func (t *Task) promoteLocked(i int) bool {
	c, ok := t.candidates[i]
	if !ok {
		return false
	}
	delete(t.candidates, i)
	if c != t.digests[i] || t.bits.Has(i) || t.writing[i] != nil {
		return false
	}
	t.bits.Set(i)
	t.have++
	t.durable.Set(i)
	t.unrecorded = append(t.unrecorded, i)
	return true
}

// WritePiece reads exactly the length of piece i from r and writes it at the
// piece offset while hashing it, through a small buffer. The piece is marked
// present only if its SHA-256 matches the digest recorded with SetDigest.
//
// Errors: ErrUnknownDigest, before anything is read, when the digest is not
// known; ErrDigestMismatch (the piece stays absent) for bad bytes;
// io.ErrUnexpectedEOF when r ends early; ErrOutOfRange; ErrIO when the data
// file cannot be written, or failed to sync while the piece was written or
// since the task's last write (the piece stays absent). If the piece is already
// present, r is drained of the piece length and the result is nil.
//
// When it returns nil the piece is present: written, verified, readable and
// announced by Changed. It is not durable yet: its group syncs the data file
// and records it in the index within about syncInterval (at once when the task
// is complete, and at Close). A crash before then forgets it; a failed sync
// drops it (it is absent again and fetched anew).
func (t *Task) WritePiece(i int, r io.Reader) error {
	_, err := t.write(i, r, false)
	return err
}

// WriteSourcePiece is WritePiece for a trusted source (the seed, or back to
// source from the origin): it computes the digest itself, records it and
// returns it. If a digest was already known for the piece and the bytes do not
// match it, the result is ErrDigestMismatch (the origin changed) and the piece
// stays absent. For a piece already present it drains r and returns the known
// digest.
//
// The piece is present (readable, announced) as soon as it is verified, as
// with WritePiece, but WriteSourcePiece returns only once it is durable,
// starting its group at once: after a crash a piece from the origin would cost
// origin bytes to fetch again, and the seed must fetch each byte once.
func (t *Task) WriteSourcePiece(i int, r io.Reader) (digest.Digest, error) {
	d, err := t.write(i, r, true)
	if err != nil {
		return d, err
	}
	return d, t.AwaitDurable(i)
}

// HoldSourcePiece is WriteSourcePiece without the wait: it returns once the piece is held
// (or, present already, once r is drained), its group started at once, and the caller calls
// AwaitDurable(i) before it counts the piece as fetched. So a fetch can read the next piece
// from the origin while this one's group syncs (source.Fill), instead of leaving the origin's
// stream idle for an fdatasync and an index commit at every piece.
func (t *Task) HoldSourcePiece(i int, r io.Reader) (digest.Digest, error) {
	d, err := t.write(i, r, true)
	if err == nil {
		t.s.kickSync(true)
	}
	return d, err
}

// AwaitDurable waits until held piece i is recorded in the index, running a group at once if
// it is not. It fails with ErrIO if the piece was dropped (its data file failed to sync) or
// could not be recorded, and with ErrClosed when the store closes first.
func (t *Task) AwaitDurable(i int) error {
	if i < 0 || i >= t.n {
		return t.rangeErr(i)
	}
	if err := t.awaitDurable(i); err != nil {
		t.s.log.Error("making a piece from the source durable", zap.Stringer("task", t.id), zap.Int("piece", i), zap.Error(err))
		return err
	}
	return nil
}

// write stores piece i from r; source is a write from the origin (HoldSourcePiece), whose
// digest is computed here rather than checked, and which the caller makes durable.
func (t *Task) write(i int, r io.Reader, source bool) (digest.Digest, error) {
	if i < 0 || i >= t.n {
		return "", t.rangeErr(i)
	}
	off, n := Bounds(i, t.length, t.pieceSize)
	want, wantKnown, present, fails, err := t.claim(i, source)
	if err != nil {
		return "", err
	}
	if present {
		// The caller may be reading a stream of several pieces: consume this
		// one so the stream stays in step. A failure here is the stream's
		// problem, not this piece's, which is good.
		// Held is not durable: another writer's piece may still wait for its group, which
		// a source write's caller waits for.
		_, _ = io.CopyN(io.Discard, r, n)
		return t.Digest(i), nil
	}

	got, err := t.stream(off, n, r)
	if err == nil && wantKnown && got != want {
		err = fmt.Errorf("%w: task %s piece %d: got %s, want %s", ErrDigestMismatch, t.id, i, digestOf(got), digestOf(want))
	}
	if err != nil {
		t.mu.Lock()
		t.releaseLocked(i)
		gone := t.goneLocked()
		t.mu.Unlock()
		if gone != nil {
			return "", gone
		}
		return "", err
	}

	t.mu.Lock()
	t.releaseLocked(i)
	if err := t.goneLocked(); err != nil {
		t.mu.Unlock()
		return "", err
	}
	if t.syncFails != fails {
		// The data file failed to sync while these bytes were written: they may never reach
		// the disk, and no later sync would say so (see syncFailedLocked).
		// Every write that spanned the failure gets its error (syncErr is taken once, maybe
		// by another such write), so a caller can tell a failing disk (ErrIO) from a bad
		// parent.
		err := t.lastSyncErr
		t.syncErr = nil // reported: the next new write need not fail for it
		t.mu.Unlock()
		return "", fmt.Errorf("task %s piece %d: the data file failed to sync while it was written: %w", t.id, i, err)
	}
	if !t.known.Has(i) {
		t.digests[i] = got
		t.known.Set(i)
		t.nknown++
	}
	t.bits.Set(i)
	t.have++
	t.markUnsyncedLocked(i)
	complete := t.have == t.n
	t.notifyLocked()
	t.mu.Unlock()
	t.Touch()

	if !source {
		t.s.kickSync(complete)
	}
	return digestOf(got), nil
}

// claim makes the caller the only writer of piece i, waiting for another
// writer if there is one. It reports the digest to check against (if known),
// or that the piece is already present, and the count of failed syncs of the
// data file so far. A sync that failed since the task's last write fails this
// one, once.
func (t *Task) claim(i int, source bool) (want [sha256.Size]byte, wantKnown, present bool, fails int, err error) {
	for {
		t.mu.Lock()
		if err := t.goneLocked(); err != nil {
			t.mu.Unlock()
			return want, false, false, 0, err
		}
		if t.bits.Has(i) {
			t.mu.Unlock()
			return want, false, true, 0, nil
		}
		if err := t.syncErr; err != nil {
			t.syncErr = nil
			t.mu.Unlock()
			return want, false, false, 0, fmt.Errorf("task %s piece %d: the data file failed to sync since the last write: %w", t.id, i, err)
		}
		if err := t.s.recordErr.Load(); err != nil {
			t.mu.Unlock()
			return want, false, false, 0, fmt.Errorf("task %s piece %d: the index cannot record pieces: %w", t.id, i, *err)
		}
		wantKnown = t.known.Has(i)
		if !source && !wantKnown {
			t.mu.Unlock()
			return want, false, false, 0, fmt.Errorf("%w: task %s piece %d", ErrUnknownDigest, t.id, i)
		}
		busy, ok := t.writing[i]
		if !ok {
			t.writing[i] = make(chan struct{})
			delete(t.candidates, i) // the bytes found at rebuild are about to be overwritten
			want, fails = t.digests[i], t.syncFails
			t.mu.Unlock()
			return want, wantKnown, false, fails, nil
		}
		t.mu.Unlock()
		select {
		case <-busy:
		case <-t.done:
		}
	}
}

// releaseLocked ends the caller's claim on piece i; t.mu must be held.
func (t *Task) releaseLocked(i int) {
	if ch, ok := t.writing[i]; ok {
		close(ch)
		delete(t.writing, i)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// stream copies n bytes from r to the data file at off, hashing them.
func (t *Task) stream(off, n int64, r io.Reader) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	h := sha256.New()
	started := int64(0) // bytes of the piece whose writeback was started
	for done := int64(0); done < n; {
		k, err := io.ReadFull(r, buf[:min(int64(len(buf)), n-done)])
		if k > 0 {
			h.Write(buf[:k])
			if _, werr := t.f.WriteAt(buf[:k], off+done); werr != nil {
				return sum, fmt.Errorf("task %s at offset %d: write data: %w", t.id, off+done, t.ioErr(werr))
			}
			done += int64(k)
			if done-started >= writebackChunk && !t.s.noSync {
				t.noteWriteback(t.s.startWriteback(t.f, off+started, done-started))
				started = done
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // ReadFull says EOF only when it read nothing
			}
			return sum, fmt.Errorf("task %s at offset %d: read piece (%d of %d bytes): %w", t.id, off, done, n, err)
		}
	}
	if started < n && !t.s.noSync {
		// The rest of the piece (all of a piece smaller than writebackChunk): its group's
		// sync then finds it under way too.
		t.noteWriteback(t.s.startWriteback(t.f, off+started, n-started))
	}
	h.Sum(sum[:0])
	return sum, nil
}

// noteWriteback keeps the first failed early writeback for the next group's sync to fail with.
func (t *Task) noteWriteback(err error) {
	if err == nil {
		return
	}
	t.mu.Lock()
	if t.writebackErr == nil {
		t.writebackErr = err
	}
	t.mu.Unlock()
}

// Verify re-reads present piece i and hashes it against its recorded digest, for a holder told
// that it served bad bytes (its disk may have rotted, or someone wrote to the data file). A piece
// that no longer matches is dropped: marked absent in memory and in the index, so it is never
// served again and a source fill (WriteSourcePiece) may fetch it anew; its digest stays known.
// Readers already streaming the piece may see the bad bytes, as they would have without Verify;
// every receiver checks the digest.
//
// Errors: nil when the piece is intact; ErrDigestMismatch (the piece was dropped); ErrNotFound
// when the piece is absent; ErrOutOfRange.
func (t *Task) Verify(i int) error {
	if i < 0 || i >= t.n {
		return t.rangeErr(i)
	}
	t.mu.Lock()
	err, has, want := t.goneLocked(), t.bits.Has(i), t.digests[i]
	t.mu.Unlock()
	if err != nil {
		return err
	}
	if !has {
		return fmt.Errorf("task %s piece %d: %w", t.id, i, ErrNotFound)
	}
	off, n := Bounds(i, t.length, t.pieceSize)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(t.f, off, n), *bp); err != nil {
		return fmt.Errorf("task %s piece %d: verify: %w", t.id, i, t.ioErr(err))
	}
	var got [sha256.Size]byte
	h.Sum(got[:0])
	if got == want {
		return nil
	}
	t.mu.Lock()
	if t.bits.Has(i) {
		t.bits.Clear(i)
		t.have--
	}
	t.durable.Clear(i)
	t.indexed.Clear(i)
	t.mu.Unlock()
	mismatch := fmt.Errorf("%w: task %s piece %d: stored bytes hash to %s, want %s; piece dropped",
		ErrDigestMismatch, t.id, i, digestOf(got), digestOf(want))
	if err := t.persistBits(); err != nil {
		return errors.Join(mismatch, fmt.Errorf("task %s piece %d: record the drop in the index: %w: %w", t.id, i, ErrIO, err))
	}
	return mismatch
}

// persistBits records in the index the pieces it may name (indexed), after a drop.
func (t *Task) persistBits() error {
	return t.s.db.Update(func(tx *bolt.Tx) error {
		b := t.bucket(tx)
		if b == nil {
			return nil
		}
		t.mu.Lock()
		bits := t.indexed.Bytes()
		t.mu.Unlock()
		return b.Put(keyBits, bits)
	})
}

// bucket returns the task's index bucket, or nil if the task was deleted.
// Writers must use it inside their transaction: Delete retires the task
// before its own transaction, so an index write cannot resurrect a deleted
// task (or write into a new task of the same ID).
func (t *Task) bucket(tx *bolt.Tx) *bolt.Bucket {
	t.mu.Lock()
	removed := t.state == stateRemoved
	t.mu.Unlock()
	if removed {
		return nil
	}
	return tx.Bucket(bucketTasks).Bucket(t.key)
}

// PieceReader returns a reader over present piece i; ErrNotFound if absent.
// It counts as an access.
func (t *Task) PieceReader(i int) (*io.SectionReader, error) {
	if i < 0 || i >= t.n {
		return nil, t.rangeErr(i)
	}
	t.mu.Lock()
	err := t.goneLocked()
	has := t.bits.Has(i)
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !has {
		return nil, fmt.Errorf("task %s piece %d: %w", t.id, i, ErrNotFound)
	}
	t.Touch()
	off, n := Bounds(i, t.length, t.pieceSize)
	return io.NewSectionReader(t.f, off, n), nil
}

// ReadAt reads the data file, as io.ReaderAt. Callers only read ranges whose
// pieces are present: other bytes are zeros or unverified.
func (t *Task) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("task %s: read at negative offset %d", t.id, off)
	}
	if off >= t.length {
		return 0, io.EOF
	}
	short := int64(len(p)) > t.length-off
	if short {
		p = p[:t.length-off]
	}
	n, err := t.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return n, t.ioErr(err)
	}
	if err != nil {
		return n, err
	}
	if short {
		return n, io.EOF
	}
	return n, nil
}

// Sum hashes the whole data file with SHA-256, for the whole-blob check after
// completion.
func (t *Task) Sum() (digest.Digest, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(t.f, 0, t.length), *bp); err != nil {
		return "", fmt.Errorf("task %s: sum: %w", t.id, t.ioErr(err))
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

// adopt returns t for Create(m) if m agrees with it, filling in a URL or
// content digest t lacks, and the access of a task that holds no piece yet.
func (t *Task) adopt(m Meta) (*Task, error) {
	t.mu.Lock()
	if err := t.goneLocked(); err != nil {
		t.mu.Unlock()
		return nil, err
	}
	cur := t.meta
	if m.ContentLength != cur.ContentLength || m.PieceSize != cur.PieceSize ||
		(m.Digest != "" && cur.Digest != "" && m.Digest != cur.Digest) {
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: task %s has length %d, piece size %d, digest %q; asked for %d, %d, %q",
			ErrMetaConflict, t.id, cur.ContentLength, cur.PieceSize, cur.Digest, m.ContentLength, m.PieceSize, m.Digest)
	}
	changed := false
	if cur.Digest == "" && m.Digest != "" {
		t.meta.Digest, changed = m.Digest, true
	}
	if cur.URL == "" && m.URL != "" {
		t.meta.URL, changed = m.URL, true
	}
	if cur.Access == "" && m.Access != "" {
		// Only for a task that holds nothing yet, or whose pieces were verified after its index
		// was rebuilt (Meta.Rebuilt): pieces stored while the access was unknown keep it
		// unknown, whatever a later fetch says.
		if t.have == 0 || cur.Rebuilt {
			t.meta.Access, t.meta.Origin, t.meta.Rebuilt, changed = m.Access, m.Origin, false, true
		}
	}
	t.mu.Unlock()
	t.Touch()
	if !changed {
		return t, nil
	}
	if err := t.saveMeta(); err != nil {
		return nil, err
	}
	return t, nil
}

// MakePrivate records that content was fetched into the task with credentials, from origin (a
// redacted URL): a task that was public, or of unknown access, becomes private, and so do the
// pieces it already holds. A task already private keeps its origin, which authorized what
// came first. Access never goes the other way.
func (t *Task) MakePrivate(origin string) error {
	t.mu.Lock()
	if err := t.goneLocked(); err != nil {
		t.mu.Unlock()
		return err
	}
	if t.meta.Access == AccessPrivate {
		t.mu.Unlock()
		return nil
	}
	t.meta.Access, t.meta.Origin, t.meta.Rebuilt = AccessPrivate, origin, false
	t.mu.Unlock()
	return t.saveMeta()
}

// saveMeta writes the task's metadata to the index.
func (t *Task) saveMeta() error {
	err := t.s.db.Update(func(tx *bolt.Tx) error {
		b := t.bucket(tx)
		if b == nil {
			return nil
		}
		t.mu.Lock()
		meta, err := json.Marshal(t.meta)
		t.mu.Unlock()
		if err != nil {
			return err
		}
		return b.Put(keyMeta, meta)
	})
	if err != nil {
		return fmt.Errorf("task %s: update meta: %w: %w", t.id, ErrIO, err)
	}
	return nil
}

func (t *Task) info() TaskInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TaskInfo{
		Meta:       t.meta,
		Have:       t.have,
		Pieces:     t.n,
		LastAccess: t.LastAccess(),
		Complete:   t.have == t.n,
	}
}

// retire marks the task deleted or closed and wakes everyone waiting on it.
func (t *Task) retire(st taskState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != stateLive {
		return
	}
	t.state = st
	close(t.done)
	t.notifyLocked()
}

// goneLocked returns the error for a task that was deleted or whose store was
// closed, or nil; t.mu must be held.
func (t *Task) goneLocked() error {
	switch t.state {
	case stateRemoved:
		return fmt.Errorf("task %s: %w", t.id, ErrNotFound)
	case stateClosed:
		return fmt.Errorf("task %s: %w", t.id, ErrClosed)
	}
	return nil
}

// fileErr turns an error from the data file into ErrNotFound or ErrClosed when
// the file was closed because the task was deleted or the store closed.
func (t *Task) fileErr(err error) error {
	if !errors.Is(err, os.ErrClosed) {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if gone := t.goneLocked(); gone != nil {
		return gone
	}
	return err
}

// ioErr is fileErr for a failure of the task's own file: ErrNotFound or ErrClosed when the task
// went away, else the failure marked ErrIO.
func (t *Task) ioErr(err error) error {
	err = t.fileErr(err)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrIO, err)
}

func (t *Task) rangeErr(i int) error {
	return fmt.Errorf("%w: task %s piece %d of %d", ErrOutOfRange, t.id, i, t.n)
}
