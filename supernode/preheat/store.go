package preheat

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pouch-p2p/pouch/internal/boltx"
)

// DBFile is the store's file name in the supernode's data directory.
const DBFile = "preheat.db"

var bucketJobs = []byte("jobs")

// Store keeps jobs in bbolt, one JSON document per job, so a restarted supernode shows every
// job and resumes the unfinished ones. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
	// damage says why the file found at open was damaged, and aside where it went; empty when
	// it was sound.
	damage, aside string
}

// OpenStore opens (creating if needed) dir/preheat.db. A damaged file (see boltx.Open) is moved
// aside and a new, empty one used instead: the jobs are lost, the supernode starts (Damaged).
func OpenStore(dir string) (*Store, error) {
	path := filepath.Join(dir, DBFile)
	opts := &bolt.Options{Timeout: 5 * time.Second}
	s := &Store{}
	db, err := boltx.Open(path, 0o600, opts)
	if errors.Is(err, boltx.ErrDamaged) {
		s.damage = err.Error()
		db, s.aside, err = boltx.Replace(path, 0o600, opts, time.Now())
	}
	if err != nil {
		return nil, fmt.Errorf("preheat: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketJobs)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("preheat: %s: %w", path, err)
	}
	s.db = db
	return s, nil
}

// Damaged says, when the file found at open was damaged, why and where it was moved; both are
// empty when it was sound.
func (s *Store) Damaged() (damage, aside string) { return s.damage, s.aside }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Put writes the job, replacing what was stored under its ID.
func (s *Store) Put(j *Job) error {
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).Put([]byte(j.ID), data)
	})
}

// Delete removes jobs by ID.
func (s *Store) Delete(ids ...string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		for _, id := range ids {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Load returns every stored job. A document that does not decode is skipped and reported in
// bad, so one damaged record does not hide the others.
func (s *Store) Load() (jobs []*Job, bad []string, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil || j.ID != string(k) {
				bad = append(bad, string(k))
				return nil
			}
			jobs = append(jobs, &j)
			return nil
		})
	})
	return jobs, bad, err
}
