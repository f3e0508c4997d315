package writeback

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Early writeback works on a regular file and says ErrUnsupported where the kernel refuses it
// (a pipe).
func TestStart(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 2<<20), 0); err != nil {
		t.Fatal(err)
	}
	if err := Start(f, 0, 2<<20); err != nil {
		t.Fatalf("regular file: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := Start(w, 0, 1); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("pipe: %v, want ErrUnsupported", err)
	}
}
