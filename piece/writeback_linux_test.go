package piece

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Early writeback works on a regular file, says ErrUnsupported where the kernel refuses it (a
// pipe), and a closed file (a deleted task) neither fails nor turns it off for the store.
func TestStartWriteback(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 2<<20), 0); err != nil {
		t.Fatal(err)
	}
	if err := startWriteback(f, 0, 2<<20); err != nil {
		t.Fatalf("regular file: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := startWriteback(w, 0, 1); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("pipe: %v, want ErrUnsupported", err)
	}

	s := openStore(t, t.TempDir(), Options{})
	f.Close()
	s.startWriteback(f, 0, 1<<20)
	if s.noWriteback.Load() {
		t.Fatal("a closed file turned early writeback off")
	}
	s.startWriteback(w, 0, 1)
	if !s.noWriteback.Load() {
		t.Fatal("a file that cannot do it left early writeback on")
	}
}
