package preheat

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DBFile is the store's file name in the supernode's data directory.
const DBFile = "preheat.db"

var bucketJobs = []byte("jobs")

// Store keeps jobs in bbolt, one JSON document per job, so a restarted supernode shows every
// job and resumes the unfinished ones. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// OpenStore opens (creating if needed) dir/preheat.db.
func OpenStore(dir string) (*Store, error) {
	path := filepath.Join(dir, DBFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
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
	return &Store{db: db}, nil
}

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
