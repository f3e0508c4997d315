// Package boltx opens bbolt files that may be damaged. bbolt trusts its file: a page
// overwritten with garbage makes it panic while reading (at Open when it is the freelist, later
// when it is a branch or leaf page), and a file cut short makes it fault on the pages past the
// end; a daemon that simply opens its index then dies at every start. Open turns all of this
// into ErrDamaged, checked once at open time, and Replace moves such a file aside (kept for
// forensics, named with the time) and starts a new one. What to rebuild is the caller's business.
//
// It imports nothing of Pouch.
package boltx

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is a bbolt file that does not open, or opens but does not read back.
var ErrDamaged = errors.New("bbolt file damaged")

// checkLimit bounds the files that get bbolt's own consistency check (tx.Check: every page
// reachable once, freelist consistent, keys in order): it costs a walk of the whole file, a few
// milliseconds for the few MiB an index usually takes. Larger files get the walk of Guard only.
const checkLimit = 64 << 20

// Open opens the bbolt file at path (creating it if needed) and checks it: the file is at least
// as long as its page count says, every bucket and key reads back, and, for files up to 64 MiB,
// bbolt's consistency check passes. A file that fails — bbolt's own refusal (ErrInvalid,
// ErrChecksum, ErrVersionMismatch), a panic while reading a page, a fault past the end of a
// file cut short, an inconsistency — is an error wrapping ErrDamaged, and the file is closed.
// Other failures (the file lock held by another process: bolt.ErrTimeout, permissions) are
// returned as they are: the file may be sound.
func Open(path string, mode os.FileMode, opts *bolt.Options) (*bolt.DB, error) {
	var db *bolt.DB
	err := Guard(func() error {
		var err error
		db, err = bolt.Open(path, mode, opts)
		return err
	})
	if err != nil {
		// A panic inside bolt.Open leaves its file open: one descriptor lost, once per damaged start.
		switch {
		case errors.Is(err, ErrDamaged):
		case errors.Is(err, bolt.ErrInvalid), errors.Is(err, bolt.ErrChecksum), errors.Is(err, bolt.ErrVersionMismatch):
			err = fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := check(db); err != nil {
		_ = Guard(db.Close)
		if !errors.Is(err, ErrDamaged) {
			err = fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return nil, fmt.Errorf("check %s: %w", path, err)
	}
	return db, nil
}

// check reads the whole file once in this goroutine, where a damaged page is recovered, before
// bbolt's own check, which runs on a goroutine of its own where nothing could recover it.
func check(db *bolt.DB) error {
	fi, err := os.Stat(db.Path())
	if err != nil {
		return err
	}
	return Guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if fi.Size() < tx.Size() {
				return fmt.Errorf("the file is %d bytes, its %d pages need %d", fi.Size(), tx.Size()/int64(db.Info().PageSize), tx.Size())
			}
			if err := walk(tx.Cursor()); err != nil {
				return err
			}
			if fi.Size() > checkLimit {
				return nil
			}
			var first error
			for err := range tx.Check() { // drained to the end: its goroutine reads the file until then
				if first == nil {
					first = err
				}
			}
			return first
		})
	})
}

// walk visits every key of the bucket under c and of its nested buckets.
func walk(c *bolt.Cursor) error {
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			continue
		}
		b := c.Bucket().Bucket(k)
		if b == nil {
			return fmt.Errorf("bucket %q does not open", k)
		}
		if err := walk(b.Cursor()); err != nil {
			return err
		}
	}
	return nil
}

// Guard runs fn and turns a panic in it — bbolt's reaction to a damaged page — or a memory fault
// — reading the mapped file past its end — into an error wrapping ErrDamaged. Run every first
// read of a file that Open has not checked under it, in the same goroutine.
func Guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrDamaged, p)
		}
	}()
	return fn()
}

// Replace moves the damaged file at path aside, to path.damaged-<UTC time>, where it stays for
// forensics, and opens a new empty file in its place. It returns the new database and where the
// old file went.
func Replace(path string, mode os.FileMode, opts *bolt.Options, now time.Time) (db *bolt.DB, aside string, err error) {
	aside = path + ".damaged-" + now.UTC().Format("20060102T150405.000Z")
	if err := os.Rename(path, aside); err != nil {
		return nil, "", fmt.Errorf("move damaged %s aside: %w", path, err)
	}
	db, err = bolt.Open(path, mode, opts)
	if err != nil {
		return nil, aside, fmt.Errorf("open a new %s: %w", path, err)
	}
	return db, aside, nil
}
