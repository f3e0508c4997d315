package piece

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestVerify: a holder told it served a bad piece re-hashes it. An intact piece stays; a
// piece whose bytes rotted on disk is dropped (absent in memory and after a reopen), keeps
// its digest, and can be fetched anew from the source.
func TestVerify(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3*MiB+5, Options{})
	f.setDigests(t, f.task)
	f.write(t, f.task, 0, 1, 2, 3)

	if err := f.task.Verify(1); err != nil {
		t.Fatalf("Verify of an intact piece: %v", err)
	}
	if err := f.task.Verify(4); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Verify(4) = %v, want ErrOutOfRange", err)
	}

	data, err := os.OpenFile(filepath.Join(f.dir, dataDir, f.meta.ID.Encoded()), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := data.WriteAt([]byte{^f.data[MiB+10]}, MiB+10); err != nil {
		t.Fatal(err)
	}
	data.Close()

	if err := f.task.Verify(1); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Verify of a rotten piece = %v, want ErrDigestMismatch", err)
	}
	if f.task.Has(1) || f.task.Complete() || f.task.Bitfield().Count() != 3 {
		t.Fatalf("the rotten piece is still present: bitfield %v", f.task.Bitfield().Bytes())
	}
	if f.task.Digest(1) != f.digests[1] {
		t.Fatalf("the digest of the dropped piece was lost")
	}
	if _, err := f.task.PieceReader(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PieceReader of a dropped piece = %v, want ErrNotFound", err)
	}
	if err := f.task.Verify(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Verify of an absent piece = %v, want ErrNotFound", err)
	}

	// The drop is in the index: a reopened store does not serve the piece either.
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, f.dir, Options{})
	task, err := s.Task(f.meta.ID)
	if err != nil {
		t.Fatal(err)
	}
	if task.Has(1) || task.Bitfield().Count() != 3 {
		t.Fatalf("after reopen: bitfield %v", task.Bitfield().Bytes())
	}
	// The source fills it again, checked against the digest it kept.
	if _, err := task.WriteSourcePiece(1, bytes.NewReader(f.piece(1))); err != nil {
		t.Fatal(err)
	}
	f.checkContent(t, task)
}
