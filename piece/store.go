package piece

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/boltx"
	"github.com/pouch-p2p/pouch/internal/writeback"
)

const (
	indexFile = "index.db"
	dataDir   = "data"

	// openTimeout bounds the wait for bbolt's file lock, so a second daemon on
	// the same directory fails instead of hanging.
	openTimeout = time.Second
	// flushInterval is how often access times and digests recorded with
	// SetDigest are written to the index. Losing them in a crash costs little:
	// digests are asked from the supernode again and LRU order is approximate.
	flushInterval = 2 * time.Second
	// bufSize is the streaming buffer of piece writes and Sum.
	bufSize = 128 << 10
	// writebackChunk is how many bytes of a piece being written accumulate before the
	// store asks the kernel to start writing them to the disk (see startWriteback).
	writebackChunk = 1 << 20
)

// Index layout: bucket "tasks" holds one bucket per task, named by the hex of
// its ID, with keys "meta" (JSON Meta), "bits" (Bitfield.Bytes), "access"
// (big-endian unix nanoseconds) and a bucket "digests" mapping a big-endian
// uint32 piece index to the raw 32-byte SHA-256.
//
// A task rebuilt after the index was damaged (Meta.Rebuilt) may also have a bucket
// "candidates", laid out like "digests": the hashes of pieces found in its data file, not yet
// verified against a trusted digest.
var (
	bucketTasks      = []byte("tasks")
	bucketDigests    = []byte("digests")
	bucketCandidates = []byte("candidates")
	keyMeta          = []byte("meta")
	keyBits          = []byte("bits")
	keyAccess        = []byte("access")
)

// Options configure a Store.
type Options struct {
	// Logger receives store events (resets on resume, evictions); nil means
	// zap.NewNop().
	Logger *zap.Logger
	// NoSync skips the sync of data files before a piece is recorded as present,
	// and of the index. Only for tests, benchmarks and throwaway caches: after
	// a power loss (not a mere process crash) a piece could then be recorded as
	// present while its bytes never reached the disk.
	NoSync bool

	faults // for the store's own tests
}

// faults are the store's own tests' ways to make its disk fail.
type faults struct {
	syncFile    func(*os.File) error                 // replaces fdatasync of a data file
	writeback   func(f *os.File, off, n int64) error // replaces startWriteback
	recordFault func() error                         // fails the index transaction recording synced pieces
}

// Store is the on-disk piece store: one data file per task plus a bbolt index.
// It is safe for concurrent use.
type Store struct {
	dir    string
	log    *zap.Logger
	db     *bolt.DB
	noSync bool

	// admin serialises Create of a new task, Delete, GC and Close, so that a
	// task ID is never half created while being removed. Piece I/O never
	// takes it.
	admin sync.Mutex

	mu      sync.RWMutex
	tasks   map[digest.Digest]*Task
	closed  bool
	created chan struct{} // closed at the next Create of a new task; nil until asked for

	usage atomic.Int64 // sum of ContentLength of all tasks
	// noWriteback is set when starting writeback early failed once (a file system without
	// sync_file_range): it is then left to the fsync alone, as said in the log.
	noWriteback atomic.Bool
	dirty       atomic.Bool // some task has unflushed access time or digests

	// Durability groups (durable.go). faults.syncFile is fdatasync, nil with NoSync.
	faults
	syncKick     chan struct{}   // cap 1: a piece awaits its group
	syncUrgent   chan struct{}   // cap 1: start a group now (a task is complete)
	syncReq      chan chan error // a group now, and its result
	syncGroups   atomic.Int64
	syncDropped  atomic.Int64
	closeSyncErr error // the last group's, run by Close; read after syncerDone
	// recordErr is the failure of the last group's index transaction, nil once one succeeds:
	// while the index cannot record pieces, new writes fail with it (as they did when each
	// piece committed its own transaction) rather than download what cannot be kept.
	recordErr atomic.Pointer[error]

	quit        chan struct{} // closed by Close: stops syncLoop and flushLoop
	flusherDone chan struct{}
	syncerDone  chan struct{}
}

// TaskInfo describes a task for listings.
type TaskInfo struct {
	Meta       Meta
	Have       int // pieces present
	Pieces     int
	LastAccess time.Time
	Complete   bool
}

// GCPolicy says what GC may evict.
type GCPolicy struct {
	HighWatermark int64         // start evicting when Usage() > High (0 = no quota)
	LowWatermark  int64         // evict until Usage() <= Low (0, or above High, means High)
	TTL           time.Duration // evict tasks not accessed for longer (0 = none)
}

// Open opens (creating if needed) the store in dir: the index at
// dir/index.db and data files under dir/data. It loads every task, which is
// what makes downloads resumable. A task whose data file is missing or shorter
// than its content length loses its pieces (its bitfield is reset) but keeps
// its metadata and piece digests. Index entries that do not validate, and data
// files without an index entry, are removed.
//
// An index that is damaged (it does not open, does not read back, fails bbolt's
// consistency check, or makes bbolt panic while loading) is moved aside to
// index.db.damaged-<time> and rebuilt from the data files (see rebuild), with one
// warning in the log; Open then succeeds. Only an index locked by another process,
// or a disk that cannot be read or written, makes it fail.
func Open(dir string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(filepath.Join(dir, dataDir), 0o700); err != nil {
		return nil, fmt.Errorf("piece: open store: %w", err)
	}
	s := &Store{
		dir:         dir,
		log:         log,
		noSync:      opts.NoSync,
		tasks:       make(map[digest.Digest]*Task),
		faults:      opts.faults,
		syncKick:    make(chan struct{}, 1),
		syncUrgent:  make(chan struct{}, 1),
		syncReq:     make(chan chan error),
		quit:        make(chan struct{}),
		flusherDone: make(chan struct{}),
		syncerDone:  make(chan struct{}),
	}
	if s.syncFile == nil && !opts.NoSync {
		s.syncFile = fdatasync
	}
	path := filepath.Join(dir, indexFile)
	bopts := &bolt.Options{Timeout: openTimeout, NoSync: opts.NoSync}
	db, err := boltx.Open(path, 0o600, bopts)
	if err == nil {
		s.db = db
		if err = boltx.Guard(s.load); err != nil {
			s.discard()
		}
	}
	if errors.Is(err, boltx.ErrDamaged) {
		err = s.recoverIndex(path, bopts, err)
	}
	if err != nil {
		return nil, fmt.Errorf("piece: open index %s: %w", path, err)
	}
	s.removeOrphans()
	go s.flushLoop()
	go s.syncLoop()
	s.kickSync(false) // candidates promoted while loading wait to be recorded
	log.Info("piece store opened", zap.String("dir", dir), zap.Int("tasks", len(s.tasks)), zap.Int64("usage", s.usage.Load()))
	return s, nil
}

// discard closes what a failed load opened: the data files and the index.
func (s *Store) discard() {
	for _, t := range s.tasks {
		_ = t.f.Close()
	}
	clear(s.tasks)
	s.usage.Store(0)
	_ = boltx.Guard(s.db.Close) // a damaged index may panic again while closing
	s.db = nil
}

// recoverIndex moves the damaged index aside, starts a new one and rebuilds it from the data
// files, saying so in one line.
func (s *Store) recoverIndex(path string, bopts *bolt.Options, damage error) error {
	start := time.Now()
	db, aside, err := boltx.Replace(path, 0o600, bopts, start)
	if err != nil {
		return fmt.Errorf("%w (the index was damaged: %w)", err, damage)
	}
	s.db = db
	st, err := s.rebuild()
	if err != nil {
		s.discard()
		return fmt.Errorf("rebuild from the data files: %w", err)
	}
	s.log.Warn("piece index damaged: moved aside and rebuilt from the data files; complete tasks verified against their digest are served at once, the pieces of the others once the supernode's piece digests confirm them",
		zap.String("aside", aside), zap.String("damage", damage.Error()),
		zap.Int("complete", st.complete), zap.Int("partial", st.partial), zap.Int("dropped", st.dropped),
		zap.Int64("bytesRead", st.bytes), zap.Duration("took", time.Since(start)))
	return nil
}

func (s *Store) dataPath(hex string) string { return filepath.Join(s.dir, dataDir, hex) }

// load reads every task from the index, repairing what does not match the
// data files.
func (s *Store) load() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketTasks)
		if err != nil {
			return err
		}
		var drop [][]byte
		err = root.ForEachBucket(func(k []byte) error {
			t, err := s.loadTask(root.Bucket(k), string(k))
			if err != nil {
				s.log.Warn("dropping invalid task from index", zap.ByteString("key", k), zap.Error(err))
				drop = append(drop, slices.Clone(k))
				return nil
			}
			s.tasks[t.id] = t
			s.usage.Add(t.length)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := root.DeleteBucket(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("piece: load index: %w", err)
	}
	return nil
}

func (s *Store) loadTask(b *bolt.Bucket, key string) (*Task, error) {
	t, err := s.loadTaskIndex(b, key)
	if err != nil {
		return nil, err
	}
	if err := t.keepCandidates(b.Bucket(bucketCandidates)); err != nil {
		_ = t.f.Close()
		return nil, err
	}
	for i := range t.candidates {
		if t.known.Has(i) { // its digest came before a restart, the promotion did not reach the index
			t.promoteLocked(i)
		}
	}
	return t, nil
}

func (s *Store) loadTaskIndex(b *bolt.Bucket, key string) (*Task, error) {
	var m Meta
	if err := json.Unmarshal(b.Get(keyMeta), &m); err != nil {
		return nil, fmt.Errorf("%w: meta: %w", ErrBadMeta, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.ID.Encoded() != key {
		return nil, fmt.Errorf("%w: task %s stored under key %q", ErrBadMeta, m.ID, key)
	}
	n := m.PieceCount()
	t := newTask(s, m)

	digests, err := b.CreateBucketIfNotExists(bucketDigests)
	if err != nil {
		return nil, err
	}
	err = digests.ForEach(func(k, v []byte) error {
		if len(k) != 4 || len(v) != sha256.Size {
			return nil
		}
		i := int(binary.BigEndian.Uint32(k))
		if i >= n {
			return nil
		}
		t.digests[i] = [sha256.Size]byte(v)
		t.known.Set(i)
		t.nknown++
		return nil
	})
	if err != nil {
		return nil, err
	}

	log := s.log.With(zap.Stringer("task", m.ID))
	bits, err := BitfieldFromBytes(n, b.Get(keyBits))
	if err != nil {
		log.Warn("resetting unreadable bitfield", zap.Error(err))
		bits = NewBitfield(n)
	}
	// A piece is present only with its digest; the two are persisted together,
	// so a bit without one means the index was damaged.
	for i := range n {
		if bits.Has(i) && !t.known.Has(i) {
			bits = NewBitfield(n)
			log.Warn("resetting bitfield with pieces of unknown digest")
			break
		}
	}

	if v := b.Get(keyAccess); len(v) == 8 {
		t.lastAccess.Store(int64(binary.BigEndian.Uint64(v)))
	} else {
		t.lastAccess.Store(time.Now().UnixNano())
	}

	path := s.dataPath(key)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if fi.Size() < m.ContentLength && bits.Count() > 0 {
		// The file was removed or cut short behind our back: nothing in it can
		// be trusted to be where the bitfield says.
		log.Warn("data file missing or short, resetting pieces",
			zap.Int64("size", fi.Size()), zap.Int64("contentLength", m.ContentLength), zap.Int("had", bits.Count()))
		bits = NewBitfield(n)
	}
	if fi.Size() != m.ContentLength {
		if err := f.Truncate(m.ContentLength); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	if err := b.Put(keyBits, bits.Bytes()); err != nil {
		_ = f.Close()
		return nil, err
	}
	t.f = f
	t.bits, t.durable, t.indexed = bits, bits.Clone(), bits.Clone()
	t.have = bits.Count()
	return t, nil
}

// removeOrphans deletes data files that no index entry refers to, left by a
// crash between creating a file and recording it, or deleting the entry and
// removing the file.
func (s *Store) removeOrphans() {
	entries, err := os.ReadDir(filepath.Join(s.dir, dataDir))
	if err != nil {
		s.log.Warn("listing data files", zap.Error(err))
		return
	}
	known := make(map[string]bool, len(s.tasks))
	for id := range s.tasks {
		known[id.Encoded()] = true
	}
	for _, e := range entries {
		if known[e.Name()] || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, dataDir, e.Name())); err != nil {
			s.log.Warn("removing orphan data file", zap.String("name", e.Name()), zap.Error(err))
			continue
		}
		s.log.Info("removed orphan data file", zap.String("name", e.Name()))
	}
}

// Close makes durable every piece held when it starts (one last group: the
// data files synced, then the pieces recorded; a write that ends while that
// group runs is held but not made durable, and is fetched again after a
// restart), flushes pending index updates and closes every data file and the
// index. Tasks obtained earlier fail with ErrClosed afterwards, and their Done
// channels are closed. Close is idempotent.
func (s *Store) Close() error {
	s.admin.Lock()
	defer s.admin.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.notifyCreatedLocked()
	tasks := s.snapshot()
	s.mu.Unlock()

	close(s.quit)
	<-s.flusherDone
	<-s.syncerDone
	errs := []error{s.closeSyncErr, s.flush()}
	for _, t := range tasks {
		t.retire(stateClosed)
		if err := t.f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("piece: close store: %w", err)
	}
	return nil
}

// snapshot returns the tasks; s.mu must be held.
func (s *Store) snapshot() []*Task {
	tasks := make([]*Task, 0, len(s.tasks))
	for _, t := range s.tasks {
		tasks = append(tasks, t)
	}
	return tasks
}

// Create returns the task m describes, creating it if needed. It is
// idempotent: for an existing task with the same ContentLength and PieceSize
// it returns that task with the pieces it already holds (this is how a
// download resumes), filling in a URL or whole-content Digest the stored
// metadata lacked, and Access and Origin while the task holds no piece (a piece
// stored under unknown access stays so); a different length, piece size or Digest is
// ErrMetaConflict. A new task gets a data file of ContentLength bytes (sparse
// until written).
func (s *Store) Create(m Meta) (*Task, error) {
	return s.CreateLogged(m, s.log.With(zap.Stringer("task", m.ID)))
}

// CreateLogged is Create logging a new task's creation on log, which names the task: the
// download's, whose lines carry its peer and request IDs too, rather than the store's.
func (s *Store) CreateLogged(m Meta, log *zap.Logger) (*Task, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if t, err := s.Task(m.ID); err == nil {
		// ErrNotFound from adopt: deleted meanwhile, so create it afresh.
		if t, err := t.adopt(m); !errors.Is(err, ErrNotFound) {
			return t, err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}

	s.admin.Lock()
	defer s.admin.Unlock()
	s.mu.RLock()
	t, closed := s.tasks[m.ID], s.closed
	s.mu.RUnlock()
	if closed {
		return nil, fmt.Errorf("create task %s: %w", m.ID, ErrClosed)
	}
	if t != nil { // created while we waited for admin
		return t.adopt(m)
	}

	t = newTask(s, m)
	t.lastAccess.Store(time.Now().UnixNano())
	path := s.dataPath(m.ID.Encoded())
	// O_TRUNC: a stray file of the same name holds nothing we can trust.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create task %s: %w: %w", m.ID, ErrIO, err)
	}
	t.f = f
	undo := func(err error) (*Task, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("create task %s: %w: %w", m.ID, ErrIO, err)
	}
	if err := f.Truncate(m.ContentLength); err != nil {
		return undo(err)
	}
	meta, err := json.Marshal(m)
	if err != nil {
		return undo(err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketTasks)
		key := []byte(m.ID.Encoded())
		if root.Bucket(key) != nil { // not in memory, so stale
			if err := root.DeleteBucket(key); err != nil {
				return err
			}
		}
		b, err := root.CreateBucket(key)
		if err != nil {
			return err
		}
		if _, err := b.CreateBucket(bucketDigests); err != nil {
			return err
		}
		return errors.Join(
			b.Put(keyMeta, meta),
			b.Put(keyBits, t.bits.Bytes()),
			b.Put(keyAccess, beTime(t.lastAccess.Load())),
		)
	})
	if err != nil {
		return undo(err)
	}
	s.mu.Lock()
	s.tasks[m.ID] = t
	s.notifyCreatedLocked()
	s.mu.Unlock()
	s.usage.Add(m.ContentLength)
	log.Debug("task created", zap.Int64("contentLength", m.ContentLength),
		zap.Int64("pieceSize", m.PieceSize), zap.Int("pieces", m.PieceCount()))
	return t, nil
}

// Task returns the task with the given ID, or ErrNotFound. It does not count
// as an access; call Touch.
func (s *Store) Task(id digest.Digest) (*Task, error) {
	s.mu.RLock()
	t, closed := s.tasks[id], s.closed
	s.mu.RUnlock()
	if closed {
		return nil, fmt.Errorf("task %s: %w", id, ErrClosed)
	}
	if t == nil {
		return nil, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	return t, nil
}

// Created returns a channel that is closed when the next new task is created, or when the
// store closes (at once if it is closed). Call it before looking the task up with Task, not
// after, so that a creation in between is not missed. It lets a server wait for a task that a
// download is about to create without polling.
func (s *Store) Created() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.created == nil {
		s.created = make(chan struct{})
		if s.closed {
			close(s.created)
		}
	}
	return s.created
}

// notifyCreatedLocked wakes the waiters of Created; s.mu must be held.
func (s *Store) notifyCreatedLocked() {
	if s.created != nil {
		close(s.created)
		s.created = nil
	}
}

// List describes every task, ordered by ID.
func (s *Store) List() []TaskInfo {
	s.mu.RLock()
	tasks := s.snapshot()
	s.mu.RUnlock()
	infos := make([]TaskInfo, 0, len(tasks))
	for _, t := range tasks {
		infos = append(infos, t.info())
	}
	slices.SortFunc(infos, func(a, b TaskInfo) int { return cmp.Compare(a.Meta.ID, b.Meta.ID) })
	return infos
}

// Delete removes a task: its index entry and its data file. A later Task(id)
// is ErrNotFound; holders of the *Task see its Done channel closed and their
// reads and writes fail with ErrNotFound.
func (s *Store) Delete(id digest.Digest) error {
	s.admin.Lock()
	defer s.admin.Unlock()
	return s.deleteLocked(id)
}

// deleteLocked deletes a task; s.admin must be held.
func (s *Store) deleteLocked(id digest.Digest) error {
	s.mu.Lock()
	t, closed := s.tasks[id], s.closed
	if closed {
		s.mu.Unlock()
		return fmt.Errorf("delete task %s: %w", id, ErrClosed)
	}
	if t == nil {
		s.mu.Unlock()
		return fmt.Errorf("delete task %s: %w", id, ErrNotFound)
	}
	delete(s.tasks, id)
	s.mu.Unlock()
	s.usage.Add(-t.length)

	// Retire before touching the index: index writers check the state inside
	// their transaction, so none can recreate the entry after ours removes it.
	t.retire(stateRemoved)
	// Index first, then the file: a crash in between leaves an orphan file,
	// which Open removes, rather than an entry without data.
	err := s.db.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketTasks).DeleteBucket(t.key)
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	errs := []error{err, t.f.Close()}
	if err := os.Remove(s.dataPath(id.Encoded())); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete task %s: %w", id, err)
	}
	return nil
}

// Usage is the number of bytes the store holds: the sum of ContentLength over
// all tasks, complete or not. Data files are sized to their full length when
// created and fill up as the download proceeds, so this is the space the tasks
// will take, which is what a disk quota has to reckon with.
func (s *Store) Usage() int64 { return s.usage.Load() }

// GC evicts tasks, least recently accessed first: every task not accessed for
// longer than p.TTL before now, then, if Usage() > p.HighWatermark, more until
// Usage() <= p.LowWatermark. It never evicts a task for which inUse(id) is
// true (inUse may be nil), nor one accessed while GC runs. It returns the IDs
// evicted, in order. inUse must not call Create, Delete, GC or Close.
func (s *Store) GC(now time.Time, p GCPolicy, inUse func(digest.Digest) bool) ([]digest.Digest, error) {
	s.admin.Lock()
	defer s.admin.Unlock()
	type cand struct {
		id     digest.Digest
		access int64
		t      *Task
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, fmt.Errorf("gc: %w", ErrClosed)
	}
	cands := make([]cand, 0, len(s.tasks))
	for id, t := range s.tasks {
		cands = append(cands, cand{id, t.lastAccess.Load(), t})
	}
	s.mu.RUnlock()
	slices.SortFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.access, b.access), cmp.Compare(a.id, b.id))
	})

	low := p.LowWatermark
	if low <= 0 || low > p.HighWatermark {
		low = p.HighWatermark
	}
	usage := s.usage.Load()
	quota := p.HighWatermark > 0 && usage > p.HighWatermark
	var evicted []digest.Digest
	var errs []error
	for _, c := range cands {
		expired := p.TTL > 0 && now.Sub(time.Unix(0, c.access)) > p.TTL
		over := quota && usage > low
		if !expired && !over {
			break // sorted by access: later tasks are neither expired nor needed
		}
		if inUse != nil && inUse(c.id) {
			continue
		}
		if c.t.lastAccess.Load() != c.access {
			continue // touched since the snapshot: someone just started using it
		}
		if err := s.deleteLocked(c.id); err != nil {
			errs = append(errs, err)
			continue
		}
		usage -= c.t.length
		evicted = append(evicted, c.id)
		s.log.Info("task evicted", zap.Stringer("task", c.id), zap.Bool("expired", expired),
			zap.Time("lastAccess", time.Unix(0, c.access)), zap.Int64("contentLength", c.t.length))
	}
	if err := errors.Join(errs...); err != nil {
		return evicted, fmt.Errorf("gc: %w", err)
	}
	return evicted, nil
}

// flushLoop writes access times and SetDigest digests to the index now and
// then, so Touch and SetDigest stay cheap.
func (s *Store) flushLoop() {
	defer close(s.flusherDone)
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
			if err := s.flush(); err != nil {
				s.log.Warn("flushing piece index", zap.Error(err))
			}
		}
	}
}

// flush writes pending digests and access times of every task in one
// transaction; on failure they stay pending.
func (s *Store) flush() error {
	if !s.dirty.Swap(false) {
		return nil
	}
	type pending struct {
		t      *Task
		idx    []int
		raw    [][sha256.Size]byte
		access int64 // 0: not dirty
	}
	s.mu.RLock()
	tasks := s.snapshot()
	s.mu.RUnlock()
	var work []pending
	for _, t := range tasks {
		p := pending{t: t}
		t.mu.Lock()
		p.idx, t.pending = t.pending, nil
		for _, i := range p.idx {
			p.raw = append(p.raw, t.digests[i])
		}
		t.mu.Unlock()
		if t.accessDirty.Swap(false) {
			p.access = t.lastAccess.Load()
		}
		if len(p.idx) > 0 || p.access != 0 {
			work = append(work, p)
		}
	}
	if len(work) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, p := range work {
			b := p.t.bucket(tx)
			if b == nil {
				continue
			}
			for k, i := range p.idx {
				if err := b.Bucket(bucketDigests).Put(pieceKey(i), p.raw[k][:]); err != nil {
					return err
				}
			}
			if p.access != 0 {
				if err := b.Put(keyAccess, beTime(p.access)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		for _, p := range work {
			p.t.mu.Lock()
			p.t.pending = append(p.t.pending, p.idx...)
			p.t.mu.Unlock()
			if p.access != 0 {
				p.t.accessDirty.Store(true)
			}
		}
		s.dirty.Store(true)
		return fmt.Errorf("piece: flush index: %w", err)
	}
	return nil
}

func pieceKey(i int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(i)) }

func beTime(unixNano int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(unixNano)) }

// startWriteback starts writing [off, off+n) of f to the disk early (see the function of the
// same name). It never fails the write itself: the group's sync before a piece is recorded is
// what makes it durable. A file system that does not support it is said once in the log and
// ends the early starts for the store; a file closed meanwhile (its task deleted) is the
// write's business. Any other failure (an I/O error, a full disk) is returned: the caller's
// task then fails its next group as if the sync had, since a file system may report such a
// failure to this call alone and not to the later fdatasync.
func (s *Store) startWriteback(f *os.File, off, n int64) error {
	if s.noWriteback.Load() {
		return nil
	}
	start := writeback.Start
	if s.writeback != nil {
		start = s.writeback
	}
	err := start(f, off, n)
	switch {
	case err == nil, errors.Is(err, os.ErrClosed):
	case errors.Is(err, errors.ErrUnsupported):
		if !s.noWriteback.Swap(true) {
			s.log.Warn("this file system cannot start writeback early; pieces reach the disk with their group's sync alone", zap.Error(err))
		}
	default:
		return err
	}
	return nil
}
