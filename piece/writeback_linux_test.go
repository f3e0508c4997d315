package piece

import (
	"os"
	"path/filepath"
	"testing"
)

// A closed file (a deleted task) neither fails early writeback nor turns it off for the store;
// a file where the kernel refuses it (a pipe) does (internal/writeback tests the call itself).
func TestStartWriteback(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 2<<20), 0); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

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
