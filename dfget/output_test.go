package dfget

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// An output written in pieces has the writeback of every full writebackEvery bytes started as it
// goes (on Linux), and the committed file holds every byte.
func TestOutputStartsWritebackAsItWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "out")
	o, err := createOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.abort()
	data := bytes.Repeat([]byte("0123456789abcdef"), (2*writebackEvery+12345)/16)
	for b := data; len(b) > 0; {
		k := min(len(b), 100_000)
		if _, err := o.Write(b[:k]); err != nil {
			t.Fatal(err)
		}
		b = b[k:]
	}
	if runtime.GOOS == "linux" && !o.noWriteback {
		if o.started < 2*writebackEvery || o.started > o.written {
			t.Errorf("writeback started for %d of %d bytes, want at least %d", o.started, o.written, 2*writebackEvery)
		}
	}
	if err := o.commit(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("committed file: %d bytes (%v), want %d", len(got), err, len(data))
	}
}
