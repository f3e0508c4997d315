package piece

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// What a data file can be trusted for once its index entry is lost. The file's name is the
// task ID, its size the content length (Create sizes it so), and the piece size follows from
// the length (SizeFor: every peer computes the same). Which pieces were written, and their
// digests, were in the index: the bytes alone say nothing, since a piece never written reads as
// zeros and a piece cut short by a crash as anything. So:
//
//   - a file whose whole content hashes to its task ID is an OCI blob or a --digest task held
//     complete: its ID is its content digest, so every piece is verified by that one hash,
//     and the task is rebuilt complete, its piece digests computed from it;
//   - any other file (a URL task, or a digest task not complete) keeps its data but no piece
//     is present: the hash of each piece is kept as a candidate, and a piece becomes present
//     when the digest the supernode hands out for it (SetDigest, at the next registration)
//     equals its candidate. Nothing unverified is ever served, and nothing verified is
//     fetched again.
//
// Either way the access and origin (who may read it) were lost; the task is marked Rebuilt so
// that the next trusted answer about them is adopted (see Meta.Rebuilt).

// rebuilt counts what a rebuild found.
type rebuilt struct {
	complete, partial, dropped int
	bytes                      int64
}

// rebuild fills the new, empty index from the data files; s.db is open and s.tasks empty.
// A file that cannot be read or recorded is dropped (removeOrphans deletes it); the index
// failing to be written fails the rebuild.
func (s *Store) rebuild() (rebuilt, error) {
	var st rebuilt
	if err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketTasks)
		return err
	}); err != nil {
		return st, err
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, dataDir))
	if err != nil {
		return st, err
	}
	for _, e := range entries {
		id := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if !e.Type().IsRegular() || validateID(id) != nil {
			continue // not a data file of ours: removeOrphans deletes it
		}
		t, n, err := s.rebuildTask(id)
		st.bytes += n
		if err != nil {
			s.log.Debug("data file dropped in the rebuild", zap.Stringer("task", id), zap.Error(err))
			st.dropped++
			continue
		}
		if err := s.db.Update(t.record); err != nil {
			_ = t.f.Close()
			return st, fmt.Errorf("%w: record rebuilt task %s: %w", ErrIO, id, err)
		}
		t.durable, t.indexed = t.bits.Clone(), t.bits.Clone() // synced and recorded above
		s.tasks[id] = t
		s.usage.Add(t.length)
		if t.have == t.n {
			st.complete++
		} else {
			st.partial++
		}
	}
	return st, nil
}

// rebuildTask reads the data file of task id once, hashing each piece and the whole, and
// returns the task as the data proves it, and the bytes read.
func (s *Store) rebuildTask(id digest.Digest) (*Task, int64, error) {
	f, err := os.OpenFile(s.dataPath(id.Encoded()), os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	m := Meta{ID: id, ContentLength: fi.Size(), PieceSize: SizeFor(fi.Size()), Rebuilt: true}
	if err := m.Validate(); err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	t := newTask(s, m)
	t.f = f
	t.lastAccess.Store(fi.ModTime().UnixNano()) // the last write: LRU order, roughly
	pieces, whole, read, err := hashPieces(f, m)
	if err == nil {
		// Whatever crash left these bytes in the page cache, they are what gets verified.
		err = f.Sync()
	}
	if err != nil {
		_ = f.Close()
		return nil, read, err
	}
	if whole == id {
		t.meta.Digest = id
		for i, d := range pieces {
			t.digests[i] = d
			t.known.Set(i)
			t.bits.Set(i)
		}
		t.nknown, t.have = t.n, t.n
		return t, read, nil
	}
	t.candidates = map[int][sha256.Size]byte{}
	zeros := map[int64][sha256.Size]byte{} // by piece length: all but the last share one
	for i, d := range pieces {
		_, n := Bounds(i, m.ContentLength, m.PieceSize)
		z, ok := zeros[n]
		if !ok {
			z = zeroHash(n)
			zeros[n] = z
		}
		if d != z { // all zeros: never written, most likely, and not worth keeping
			t.candidates[i] = d
		}
	}
	return t, read, nil
}

// hashPieces hashes every piece of the file and the whole content, in one read.
func hashPieces(f *os.File, m Meta) (pieces [][sha256.Size]byte, whole digest.Digest, read int64, err error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	all := sha256.New()
	pieces = make([][sha256.Size]byte, m.PieceCount())
	for i := range pieces {
		off, n := Bounds(i, m.ContentLength, m.PieceSize)
		h := sha256.New()
		k, err := io.CopyBuffer(io.MultiWriter(h, all), io.NewSectionReader(f, off, n), *bp)
		read += k
		if err != nil {
			return nil, "", read, fmt.Errorf("%w: read piece %d: %w", ErrIO, i, err)
		}
		h.Sum(pieces[i][:0])
	}
	return pieces, digest.NewDigest(digest.SHA256, all), read, nil
}

// zeroHash is the hash of n zero bytes, which is how a region never written reads.
func zeroHash(n int64) [sha256.Size]byte {
	h := sha256.New()
	var zeros [32 << 10]byte
	for ; n > 0; n -= int64(len(zeros)) {
		h.Write(zeros[:min(n, int64(len(zeros)))])
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// record writes a rebuilt task's index entry.
func (t *Task) record(tx *bolt.Tx) error {
	meta, err := json.Marshal(t.meta)
	if err != nil {
		return err
	}
	b, err := tx.Bucket(bucketTasks).CreateBucket(t.key)
	if err != nil {
		return err
	}
	digests, err := b.CreateBucket(bucketDigests)
	if err != nil {
		return err
	}
	for i := range t.n {
		if t.known.Has(i) {
			if err := digests.Put(pieceKey(i), t.digests[i][:]); err != nil {
				return err
			}
		}
	}
	if len(t.candidates) > 0 {
		c, err := b.CreateBucket(bucketCandidates)
		if err != nil {
			return err
		}
		for i, d := range t.candidates {
			if err := c.Put(pieceKey(i), d[:]); err != nil {
				return err
			}
		}
	}
	return errors.Join(
		b.Put(keyMeta, meta),
		b.Put(keyBits, t.bits.Bytes()),
		b.Put(keyAccess, beTime(t.lastAccess.Load())),
	)
}

// keepCandidates loads the candidates of a rebuilt task (c, nil for others) when its index is
// read again after a restart, keeping only those whose bytes still hash the same: a write may
// have overwritten a piece since, and only the candidate in memory was dropped then.
func (t *Task) keepCandidates(c *bolt.Bucket) error {
	if c == nil {
		return nil
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return c.ForEach(func(k, v []byte) error {
		if len(k) != 4 || len(v) != sha256.Size {
			return nil
		}
		i := int(binary.BigEndian.Uint32(k))
		if i >= t.n || t.bits.Has(i) {
			return nil
		}
		off, n := Bounds(i, t.length, t.pieceSize)
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(t.f, off, n), *bp); err != nil {
			return fmt.Errorf("%w: task %s: read piece %d: %w", ErrIO, t.id, i, err)
		}
		var got [sha256.Size]byte
		h.Sum(got[:0])
		if got == [sha256.Size]byte(v) {
			if t.candidates == nil {
				t.candidates = map[int][sha256.Size]byte{}
			}
			t.candidates[i] = got
		}
		return nil
	})
}
