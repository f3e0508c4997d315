package piece

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pouch-p2p/pouch/internal/fixture/damage"
)

// The rebuilt tasks here are shorter than 256 pieces of MinSize, so the rebuild gives them
// pieces of MinSize (SizeFor): the tasks are stored with that size.

// stored is one task written into a store, as the download that brought it left it.
type stored struct {
	meta    Meta
	data    []byte
	digests []digest.Digest
}

func storeTask(t *testing.T, s *Store, meta Meta, data []byte, pieces ...int) stored {
	t.Helper()
	task, err := s.Create(meta)
	if err != nil {
		t.Fatal(err)
	}
	st := stored{meta: meta, data: data}
	for i := range meta.PieceCount() {
		off, n := Bounds(i, meta.ContentLength, meta.PieceSize)
		st.digests = append(st.digests, digest.FromBytes(data[off:off+n]))
	}
	for _, i := range pieces {
		off, n := Bounds(i, meta.ContentLength, meta.PieceSize)
		if err := task.SetDigest(i, st.digests[i]); err != nil {
			t.Fatal(err)
		}
		if err := task.WritePiece(i, bytes.NewReader(data[off:off+n])); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// damagedStore writes a URL task holding pieces of data into a new store, closes it and damages
// its index; it returns the store's directory and the task as stored.
func damagedStore(t *testing.T, data []byte, pieces ...int) (string, stored) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	st := storeTask(t, s, Meta{ID: digest.FromString("url"), ContentLength: int64(len(data)), PieceSize: MinSize, Access: AccessPublic}, data, pieces...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damage.PastMeta(t, filepath.Join(dir, indexFile))
	return dir, st
}

// A store whose index is damaged opens: the index is moved aside, one line says so, a blob
// held complete is served at once with every piece digest, and the pieces of a URL task become
// present — without being written again — as the supernode's digests confirm them.
func TestDamagedIndexIsRebuiltFromTheData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	blobData := content(5*MinSize+17, 1)
	blob := storeTask(t, s, Meta{ID: digest.FromBytes(blobData), ContentLength: int64(len(blobData)), PieceSize: MinSize,
		Digest: digest.FromBytes(blobData), Access: AccessPublic, Origin: "https://registry/v2/a/blobs/x"}, blobData, 0, 1, 2, 3, 4, 5)
	fileData := content(4*MinSize, 2)
	file := storeTask(t, s, Meta{ID: digest.FromString("https://example.com/file"), ContentLength: int64(len(fileData)), PieceSize: MinSize,
		URL: "https://example.com/file", Access: AccessPublic}, fileData, 0, 2)
	halfData := content(3*MinSize, 3)
	half := storeTask(t, s, Meta{ID: digest.FromBytes(halfData), ContentLength: int64(len(halfData)), PieceSize: MinSize,
		Digest: digest.FromBytes(halfData), Access: AccessPublic}, halfData, 1)
	for i := range 200 { // enough tasks for the index to span many pages
		storeTask(t, s, Meta{ID: digest.FromString(string(rune(i))), ContentLength: 0, PieceSize: MinSize, Access: AccessPublic}, nil)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damage.PastMeta(t, filepath.Join(dir, indexFile))

	core, logs := observer.New(zap.InfoLevel)
	s = openStore(t, dir, Options{NoSync: true, Logger: zap.New(core)})
	if lines := logs.FilterMessageSnippet("damaged").All(); len(lines) != 1 {
		t.Errorf("%d log lines about the damage, want exactly one: %v", len(lines), lines)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, indexFile+".damaged-*")); len(aside) != 1 {
		t.Errorf("damaged index kept as %v, want one file", aside)
	}

	got, err := s.Task(blob.meta.ID)
	if err != nil {
		t.Fatalf("the complete blob after the rebuild: %v", err)
	}
	if !got.Complete() || !got.Meta().Rebuilt || got.Meta().Access != "" || got.Meta().Digest != blob.meta.ID {
		t.Fatalf("rebuilt blob: complete %v, meta %+v; want complete, rebuilt, access unknown, digest = ID", got.Complete(), got.Meta())
	}
	for i, d := range blob.digests {
		if got.Digest(i) != d {
			t.Fatalf("piece %d digest %s, want %s", i, got.Digest(i), d)
		}
	}
	// The supernode's answer gives the access back: the bytes are the ones its digests name.
	if _, err := s.Create(Meta{ID: blob.meta.ID, ContentLength: blob.meta.ContentLength, PieceSize: MinSize,
		Access: AccessPublic, Origin: blob.meta.Origin}); err != nil {
		t.Fatal(err)
	}
	if m := got.Meta(); m.Access != AccessPublic || m.Rebuilt {
		t.Errorf("after Create with the supernode's access: %+v, want public and no longer rebuilt", m)
	}

	for _, tc := range []struct {
		name string
		st   stored
		held []int
	}{{"URL task", file, []int{0, 2}}, {"incomplete blob", half, []int{1}}} {
		task, err := s.Task(tc.st.meta.ID)
		if err != nil {
			t.Fatalf("%s after the rebuild: %v", tc.name, err)
		}
		if n := task.Bitfield().Count(); n != 0 {
			t.Fatalf("%s: %d pieces present before any digest is known", tc.name, n)
		}
		for i, d := range tc.st.digests {
			if err := task.SetDigest(i, d); err != nil {
				t.Fatal(err)
			}
		}
		if got := present(task.Bitfield()); !slices.Equal(got, tc.held) {
			t.Errorf("%s: pieces %v present once the digests are known, want %v", tc.name, got, tc.held)
		}
	}
}

// A candidate is dropped when its piece is written, even if the write fails: the bytes found at
// the rebuild are gone, and a digest that matched them must not make the piece present.
func TestCandidateDroppedWhenOverwritten(t *testing.T) {
	t.Parallel()
	data := content(2*MinSize, 4)
	dir, st := damagedStore(t, data, 0, 1)
	s := openStore(t, dir, Options{NoSync: true})
	task, err := s.Task(st.meta.ID)
	if err != nil {
		t.Fatal(err)
	}
	// A source write of other bytes that fails half way (the origin breaks off).
	half := bytes.NewReader(corrupt(data[:MinSize])[:MinSize/2])
	if _, err := task.WriteSourcePiece(0, half); err == nil {
		t.Fatal("a piece cut short was written")
	}
	for i, d := range st.digests {
		if err := task.SetDigest(i, d); err != nil {
			t.Fatal(err)
		}
	}
	if got := present(task.Bitfield()); !slices.Equal(got, []int{1}) {
		t.Fatalf("pieces %v present, want only piece 1: piece 0 was overwritten", got)
	}
}

// Candidates survive a restart before the supernode is asked, but only those whose bytes did
// not change meanwhile.
func TestCandidatesSurviveARestart(t *testing.T) {
	t.Parallel()
	data := content(3*MinSize, 5)
	dir, st := damagedStore(t, data, 0, 1, 2)
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Piece 2 changes on disk while the daemon is stopped.
	f, err := os.OpenFile(filepath.Join(dir, dataDir, st.meta.ID.Encoded()), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("rot"), 2*MinSize+5)
	f.Close()

	s = openStore(t, dir, Options{NoSync: true})
	task, err := s.Task(st.meta.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range st.digests {
		if err := task.SetDigest(i, d); err != nil {
			t.Fatal(err)
		}
	}
	if got := present(task.Bitfield()); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("pieces %v present after a restart, want [0 1] (piece 2 rotted)", got)
	}
}

// present lists the pieces set in b.
func present(b Bitfield) []int {
	var out []int
	for i := range b.Len() {
		if b.Has(i) {
			out = append(out, i)
		}
	}
	return out
}
