package boltx

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/damage"
	"github.com/pouch-p2p/pouch/internal/fixture/leak"
	bolt "go.etcd.io/bbolt"
)

func TestMain(m *testing.M) { leak.VerifyTestMain(m) }

// filled writes a bbolt file with nested buckets over many pages, as the piece index has.
func filled(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "index.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucket([]byte("tasks"))
		if err != nil {
			return err
		}
		for i := range 64 {
			b, err := root.CreateBucket(fmt.Appendf(nil, "task-%03d", i))
			if err != nil {
				return err
			}
			for j := range 64 {
				if err := b.Put(fmt.Appendf(nil, "k%03d", j), make([]byte, 32)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSoundFileOpens(t *testing.T) {
	t.Parallel()
	db, err := Open(filled(t), 0o600, nil)
	if err != nil {
		t.Fatalf("a sound file: %v", err)
	}
	db.Close()
}

func TestDamagedFilesAreNamedSo(t *testing.T) {
	t.Parallel()
	for name, hurt := range map[string]func(*testing.T, string){
		"pages past the meta pages overwritten": func(t *testing.T, path string) { damage.PastMeta(t, path) },
		"one page in the middle overwritten": func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			damage.Pages(t, path, fi.Size()/int64(os.Getpagesize())/2, 1)
		},
		"cut short": func(t *testing.T, path string) {
			if err := os.Truncate(path, 3*int64(os.Getpagesize())); err != nil {
				t.Fatal(err)
			}
		},
		"meta pages overwritten": func(t *testing.T, path string) {
			junk := make([]byte, 2*os.Getpagesize())
			rand.Read(junk)
			if err := os.WriteFile(path, junk, 0o600); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filled(t)
			hurt(t, path)
			db, err := Open(path, 0o600, &bolt.Options{Timeout: time.Second})
			if !errors.Is(err, ErrDamaged) {
				if db != nil {
					db.Close()
				}
				t.Fatalf("Open of a damaged file: %v, want ErrDamaged", err)
			}
			t.Logf("%v", err)
			db, aside, err := Replace(path, 0o600, nil, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := os.Stat(aside); err != nil {
				t.Errorf("the damaged file is not kept at %s: %v", aside, err)
			}
			if err := db.View(func(tx *bolt.Tx) error {
				if tx.Bucket([]byte("tasks")) != nil {
					return errors.New("the new file holds the old buckets")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A file locked by another opener may be sound: it is not called damaged.
func TestLockedFileIsNotDamaged(t *testing.T) {
	t.Parallel()
	path := filled(t)
	db, err := Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = Open(path, 0o600, &bolt.Options{Timeout: 50 * time.Millisecond})
	if err == nil || errors.Is(err, ErrDamaged) {
		t.Fatalf("second Open of a locked file: %v, want a timeout that is not ErrDamaged", err)
	}
}
