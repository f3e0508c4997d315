package piece

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

const MiB = int64(1) << 20

// content returns n deterministic pseudo-random bytes.
func content(n int64, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// fixture is a store in a temp dir with one task and its content.
type fixture struct {
	dir     string
	store   *Store
	task    *Task
	meta    Meta
	data    []byte
	digests []digest.Digest
}

func newFixture(t testing.TB, length int64, opts Options) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), data: content(length, byte(length))}
	f.meta = Meta{
		ID:            digest.FromBytes(f.data),
		ContentLength: length,
		PieceSize:     MiB,
		Digest:        digest.FromBytes(f.data),
	}
	for i := range f.meta.PieceCount() {
		f.digests = append(f.digests, digest.FromBytes(f.piece(i)))
	}
	f.store = openStore(t, f.dir, opts)
	task, err := f.store.Create(f.meta)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	f.task = task
	return f
}

func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func (f *fixture) piece(i int) []byte {
	off, n := Bounds(i, f.meta.ContentLength, f.meta.PieceSize)
	return f.data[off : off+n]
}

func (f *fixture) setDigests(t testing.TB, task *Task) {
	t.Helper()
	for i, d := range f.digests {
		if err := task.SetDigest(i, d); err != nil {
			t.Fatalf("SetDigest(%d): %v", i, err)
		}
	}
}

func (f *fixture) write(t testing.TB, task *Task, pieces ...int) {
	t.Helper()
	for _, i := range pieces {
		if err := task.WritePiece(i, bytes.NewReader(f.piece(i))); err != nil {
			t.Fatalf("WritePiece(%d): %v", i, err)
		}
	}
}

// checkContent reads the whole task back and compares it with f.data.
func (f *fixture) checkContent(t testing.TB, task *Task) {
	t.Helper()
	got := make([]byte, len(f.data)+10)
	n, err := task.ReadAt(got, 0)
	if n != len(f.data) || !errors.Is(err, io.EOF) {
		t.Fatalf("ReadAt past the end = %d, %v; want %d, EOF", n, err, len(f.data))
	}
	if !bytes.Equal(got[:n], f.data) {
		t.Fatalf("ReadAt returned different bytes")
	}
	sum, err := task.Sum()
	if err != nil {
		t.Fatalf("Sum: %v", err)
	}
	if want := digest.Digest("sha256:" + hexSum(f.data)); sum != want {
		t.Fatalf("Sum = %s, want %s", sum, want)
	}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return digest.NewDigestFromBytes(digest.SHA256, s[:]).Encoded()
}

func bitsOf(n int, set ...int) Bitfield {
	b := NewBitfield(n)
	for _, i := range set {
		b.Set(i)
	}
	return b
}
