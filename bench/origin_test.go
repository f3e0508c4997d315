package bench

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
)

// Generated content reads the same at any offset and in any chunking, ends at its size, and
// has the digest generate reports; held in memory, it is the bytes generated on demand; another
// seed gives other bytes.
func TestGenerated(t *testing.T) {
	t.Parallel()
	const n = 3*genBlock + 1234
	g, sum, err := generate(n, 5)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := io.ReadAll(io.NewSectionReader(g, 0, n))
	if err != nil || len(whole) != n {
		t.Fatalf("read %d bytes, %v", len(whole), err)
	}
	h := sha256.Sum256(whole)
	if "sha256:"+hex.EncodeToString(h[:]) != sum {
		t.Fatal("digest does not match the bytes")
	}
	for _, c := range []struct{ off, len int64 }{{0, 1}, {genBlock - 3, 10}, {2*genBlock + 7, genBlock + 100}, {n - 5, 5}} {
		p := make([]byte, c.len)
		if k, err := g.ReadAt(p, c.off); k != len(p) || (err != nil && err != io.EOF) || !bytes.Equal(p, whole[c.off:c.off+c.len]) {
			t.Errorf("ReadAt(%d bytes at %d) = %d, %v, or other bytes", c.len, c.off, k, err)
		}
	}
	if k, err := g.ReadAt(make([]byte, 10), n-4); k != 4 || err != io.EOF {
		t.Errorf("ReadAt across the end = %d, %v; want 4, EOF", k, err)
	}
	onDemand, err := io.ReadAll(io.NewSectionReader(newGenerated(n, 5), 0, n))
	if err != nil || !bytes.Equal(onDemand, whole) {
		t.Errorf("generated on demand: %d bytes (%v), or other bytes than held in memory", len(onDemand), err)
	}
	other, _, _ := generate(n, 6)
	p := make([]byte, 64)
	other.ReadAt(p, 0)
	if bytes.Equal(p, whole[:64]) {
		t.Error("another seed gave the same bytes")
	}
}
