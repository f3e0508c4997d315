package piece

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func corrupt(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x01
	return c
}

func TestStoreRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		length int64
		source bool // WriteSourcePiece instead of SetDigest + WritePiece
		opts   Options
	}{
		{"peer pieces, short last piece", 6*MiB + 4321, false, Options{}},
		{"source pieces, short last piece", 6*MiB + 4321, true, Options{}},
		{"peer pieces, exact, no sync", 4 * MiB, false, Options{NoSync: true}},
		{"one small piece", 100, false, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.length, tt.opts)
			task := f.task
			if !tt.source {
				f.setDigests(t, task)
			}
			n := task.PieceCount()
			// Every piece from two goroutines at once, in a shuffled order, plus
			// a corrupted copy of each racing the good ones: the store must
			// serialise same-piece writers and never let bad bytes land on a
			// verified piece.
			order := rand.New(rand.NewPCG(1, 2)).Perm(n)
			var wg sync.WaitGroup
			errs := make(chan error, 3*n)
			for _, i := range order {
				for range 2 {
					wg.Go(func() {
						var err error
						if tt.source {
							var d digest.Digest
							d, err = task.WriteSourcePiece(i, bytes.NewReader(f.piece(i)))
							if err == nil && d != f.digests[i] {
								t.Errorf("WriteSourcePiece(%d) = %s, want %s", i, d, f.digests[i])
							}
						} else {
							err = task.WritePiece(i, bytes.NewReader(f.piece(i)))
						}
						if err != nil {
							errs <- err
						}
					})
				}
				if !tt.source {
					wg.Go(func() {
						// Either a mismatch, or nil if the good copy got there first.
						if err := task.WritePiece(i, bytes.NewReader(corrupt(f.piece(i)))); err != nil && !errors.Is(err, ErrDigestMismatch) {
							errs <- err
						}
					})
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("write: %v", err)
			}
			if !task.Complete() || task.Bitfield().Count() != n || task.KnownDigests() != n {
				t.Fatalf("Complete=%v have=%d known=%d, want all %d", task.Complete(), task.Bitfield().Count(), task.KnownDigests(), n)
			}
			for i := range n {
				if d := task.Digest(i); d != f.digests[i] {
					t.Fatalf("Digest(%d) = %s, want %s", i, d, f.digests[i])
				}
				r, err := task.PieceReader(i)
				if err != nil {
					t.Fatalf("PieceReader(%d): %v", i, err)
				}
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, f.piece(i)) {
					t.Fatalf("piece %d read back wrong (err %v)", i, err)
				}
			}
			f.checkContent(t, task)
			if sum, _ := task.Sum(); sum != f.meta.Digest {
				t.Fatalf("Sum = %s, want the content digest %s", sum, f.meta.Digest)
			}
			// Every concurrently committed piece made it to the index.
			if err := f.store.Close(); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, f.dir, tt.opts)
			again, err := s.Task(f.meta.ID)
			if err != nil || !again.Complete() || again.KnownDigests() != n {
				t.Fatalf("after reopen: %v, complete %v, known %d", err, again.Complete(), again.KnownDigests())
			}
			f.checkContent(t, again)
		})
	}
}

func TestWritePieceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		piece   int
		setup   func(t *testing.T, f *fixture)
		reader  func(f *fixture) io.Reader
		wantErr error
		read    int64 // bytes the write must have consumed, -1 = do not check
		present bool  // piece present afterwards
	}{
		{
			name:    "corrupted reader",
			piece:   1,
			setup:   func(t *testing.T, f *fixture) { f.setDigests(t, f.task) },
			reader:  func(f *fixture) io.Reader { return bytes.NewReader(corrupt(f.piece(1))) },
			wantErr: ErrDigestMismatch,
			read:    MiB,
		},
		{
			name:    "unknown digest reads nothing",
			piece:   0,
			reader:  func(f *fixture) io.Reader { return bytes.NewReader(f.piece(0)) },
			wantErr: ErrUnknownDigest,
			read:    0,
		},
		{
			name:    "short reader",
			piece:   2,
			setup:   func(t *testing.T, f *fixture) { f.setDigests(t, f.task) },
			reader:  func(f *fixture) io.Reader { return bytes.NewReader(f.piece(2)[:MiB-1]) },
			wantErr: io.ErrUnexpectedEOF,
			read:    MiB - 1,
		},
		{
			name:    "empty reader",
			piece:   2,
			setup:   func(t *testing.T, f *fixture) { f.setDigests(t, f.task) },
			reader:  func(f *fixture) io.Reader { return bytes.NewReader(nil) },
			wantErr: io.ErrUnexpectedEOF,
			read:    0,
		},
		{
			name:  "reads no more than the piece",
			piece: 2,
			setup: func(t *testing.T, f *fixture) { f.setDigests(t, f.task) },
			reader: func(f *fixture) io.Reader {
				return bytes.NewReader(append(bytes.Clone(f.piece(2)), "trailing"...))
			},
			read:    MiB,
			present: true,
		},
		{
			name:    "out of range",
			piece:   3,
			reader:  func(f *fixture) io.Reader { return bytes.NewReader(nil) },
			wantErr: ErrOutOfRange,
			read:    0,
		},
		{
			name:    "negative index",
			piece:   -1,
			reader:  func(f *fixture) io.Reader { return bytes.NewReader(nil) },
			wantErr: ErrOutOfRange,
			read:    0,
		},
		{
			name: "already present is drained",
			setup: func(t *testing.T, f *fixture) {
				f.setDigests(t, f.task)
				f.write(t, f.task, 0)
			},
			piece:   0,
			reader:  func(f *fixture) io.Reader { return bytes.NewReader(corrupt(f.piece(0))) },
			read:    MiB,
			present: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 3*MiB, Options{NoSync: true})
			if tt.setup != nil {
				tt.setup(t, f)
			}
			r := &countingReader{r: tt.reader(f)}
			err := f.task.WritePiece(tt.piece, r)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("WritePiece(%d) error = %v, want %v", tt.piece, err, tt.wantErr)
			}
			if tt.read >= 0 && r.n != tt.read {
				t.Fatalf("WritePiece read %d bytes, want %d", r.n, tt.read)
			}
			if got := f.task.Has(tt.piece); got != tt.present {
				t.Fatalf("Has(%d) = %v, want %v", tt.piece, got, tt.present)
			}
			if !tt.present {
				if _, err := f.task.PieceReader(tt.piece); err == nil {
					t.Fatalf("PieceReader(%d) of an absent piece succeeded", tt.piece)
				}
			}
			// Whatever happened, the piece can then be written correctly.
			if tt.piece >= 0 && tt.piece < f.task.PieceCount() {
				f.setDigests(t, f.task)
				f.write(t, f.task, tt.piece)
				got, _ := f.task.PieceReader(tt.piece)
				if b, _ := io.ReadAll(got); !bytes.Equal(b, f.piece(tt.piece)) {
					t.Fatalf("piece %d has wrong bytes after a correct write", tt.piece)
				}
			}
		})
	}
}

func TestWriteSourcePieceAgainstKnownDigest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2*MiB, Options{NoSync: true})
	f.setDigests(t, f.task)
	if _, err := f.task.WriteSourcePiece(0, bytes.NewReader(corrupt(f.piece(0)))); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("WriteSourcePiece with changed bytes error = %v, want ErrDigestMismatch", err)
	}
	if f.task.Has(0) {
		t.Fatal("piece 0 present after a mismatching source write")
	}
	d, err := f.task.WriteSourcePiece(0, bytes.NewReader(f.piece(0)))
	if err != nil || d != f.digests[0] {
		t.Fatalf("WriteSourcePiece = %s, %v; want %s", d, err, f.digests[0])
	}
	// Present: drained, and the known digest comes back.
	if d, err := f.task.WriteSourcePiece(0, bytes.NewReader(nil)); err != nil || d != f.digests[0] {
		t.Fatalf("WriteSourcePiece of a present piece = %s, %v; want %s, nil", d, err, f.digests[0])
	}
}

func TestSetDigest(t *testing.T) {
	t.Parallel()
	other := digest.FromString("other")
	tests := []struct {
		name    string
		first   digest.Digest // recorded before, if not empty
		piece   int
		d       digest.Digest
		wantErr error
	}{
		{"new", "", 0, other, nil},
		{"same again", other, 0, other, nil},
		{"different", digest.FromString("x"), 0, other, ErrDigestMismatch},
		{"not sha256", "", 0, digest.SHA512.FromString("x"), ErrBadMeta},
		{"malformed", "", 0, "sha256:zz", ErrBadMeta},
		{"empty", "", 0, "", ErrBadMeta},
		{"out of range", "", 2, other, ErrOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 2*MiB, Options{NoSync: true})
			if tt.first != "" {
				if err := f.task.SetDigest(tt.piece, tt.first); err != nil {
					t.Fatalf("first SetDigest: %v", err)
				}
			}
			err := f.task.SetDigest(tt.piece, tt.d)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("SetDigest error = %v, want %v", err, tt.wantErr)
			}
			want := tt.first
			if tt.wantErr == nil {
				want = tt.d
			}
			if got := f.task.Digest(tt.piece); got != want {
				t.Fatalf("Digest(%d) = %q, want %q", tt.piece, got, want)
			}
		})
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		damage  func(t *testing.T, path string) // applied to the data file while closed
		keepAll bool                            // pieces survive
	}{
		{"intact", nil, true},
		{"data file deleted", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"data file truncated", func(t *testing.T, path string) {
			if err := os.Truncate(path, 2*MiB); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"data file longer", func(t *testing.T, path string) {
			if err := os.Truncate(path, 9*MiB); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 5*MiB+77, Options{})
			// Digests of pieces 0-4 known, pieces 0, 2 and 5 written (5 by the
			// source, so its digest is recorded with the bit).
			for i := range 5 {
				if err := f.task.SetDigest(i, f.digests[i]); err != nil {
					t.Fatal(err)
				}
			}
			f.write(t, f.task, 2, 0)
			if _, err := f.task.WriteSourcePiece(5, bytes.NewReader(f.piece(5))); err != nil {
				t.Fatal(err)
			}
			want := f.task.Bitfield()
			accessed := time.Unix(1_700_000_000, 0)
			f.task.touchAt(accessed)
			if err := f.store.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := f.task.PieceReader(0); !errors.Is(err, ErrClosed) {
				t.Fatalf("PieceReader after Close error = %v, want ErrClosed", err)
			}
			if tt.damage != nil {
				tt.damage(t, filepath.Join(f.dir, dataDir, f.meta.ID.Encoded()))
			}

			s := openStore(t, f.dir, Options{})
			task, err := s.Task(f.meta.ID)
			if err != nil {
				t.Fatalf("Task after reopen: %v", err)
			}
			if !tt.keepAll {
				want = NewBitfield(f.task.PieceCount())
			}
			if got := task.Bitfield(); !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("bitfield after reopen = %x, want %x", got.Bytes(), want.Bytes())
			}
			if got := task.KnownDigests(); got != 6 {
				t.Fatalf("KnownDigests after reopen = %d, want 6", got)
			}
			for i, d := range f.digests {
				if got := task.Digest(i); got != d {
					t.Fatalf("Digest(%d) after reopen = %s, want %s", i, got, d)
				}
			}
			if got := task.LastAccess(); !got.Equal(accessed) {
				t.Fatalf("LastAccess after reopen = %v, want %v", got, accessed)
			}
			if got := task.Meta(); got != f.meta {
				t.Fatalf("Meta after reopen = %+v, want %+v", got, f.meta)
			}
			again, err := s.Create(f.meta)
			if err != nil || again != task {
				t.Fatalf("Create of the resumed task = %p, %v; want %p", again, err, task)
			}
			for i := range task.PieceCount() {
				f.write(t, again, i) // present ones are skipped
			}
			if !again.Complete() {
				t.Fatal("not complete after writing the rest")
			}
			f.checkContent(t, again)
			if info := s.List(); len(info) != 1 || !info[0].Complete || info[0].Have != 6 || info[0].Pieces != 6 {
				t.Fatalf("List = %+v", info)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	base := Meta{ID: digest.FromString("https://example.com/a"), URL: "https://example.com/a", ContentLength: 3 * MiB, PieceSize: MiB}
	tests := []struct {
		name     string
		second   func(m Meta) Meta
		wantErr  error
		wantMeta func(m Meta) Meta // stored meta after the second Create
	}{
		{"same", func(m Meta) Meta { return m }, nil, nil},
		{"adds the content digest", func(m Meta) Meta { m.Digest = digest.FromString("blob"); return m }, nil,
			func(m Meta) Meta { m.Digest = digest.FromString("blob"); return m }},
		{"no URL keeps the URL", func(m Meta) Meta { m.URL = ""; return m }, nil, nil},
		{"adds the access of an empty task", func(m Meta) Meta { m.Access, m.Origin = AccessPrivate, "https://o/a"; return m }, nil,
			func(m Meta) Meta { m.Access, m.Origin = AccessPrivate, "https://o/a"; return m }},
		{"other length", func(m Meta) Meta { m.ContentLength++; return m }, ErrMetaConflict, nil},
		{"other piece size", func(m Meta) Meta { m.PieceSize *= 2; return m }, ErrMetaConflict, nil},
		{"bad meta", func(m Meta) Meta { m.PieceSize = 3 * MiB; return m }, ErrBadMeta, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openStore(t, dir, Options{NoSync: true})
			first, err := s.Create(base)
			if err != nil {
				t.Fatal(err)
			}
			second, err := s.Create(tt.second(base))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("second Create error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && second != first {
				t.Fatal("second Create returned another task")
			}
			want := base
			if tt.wantMeta != nil {
				want = tt.wantMeta(base)
			}
			if got := first.Meta(); got != want {
				t.Fatalf("Meta = %+v, want %+v", got, want)
			}
			if fi, err := os.Stat(filepath.Join(dir, dataDir, base.ID.Encoded())); err != nil || fi.Size() != base.ContentLength {
				t.Fatalf("data file: %v, %v; want %d bytes", fi, err, base.ContentLength)
			}
			// The metadata survives a restart.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openStore(t, dir, Options{NoSync: true})
			task, err := s2.Task(base.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := task.Meta(); got != want {
				t.Fatalf("Meta after reopen = %+v, want %+v", got, want)
			}
		})
	}
}

func TestBadMeta(t *testing.T) {
	t.Parallel()
	good := Meta{ID: digest.FromString("x"), ContentLength: 10, PieceSize: MiB}
	hex := good.ID.Encoded()
	tests := []struct {
		name string
		edit func(m *Meta)
	}{
		{"empty ID", func(m *Meta) { m.ID = "" }},
		{"path traversal", func(m *Meta) { m.ID = "sha256:../../../../etc/passwd" }},
		{"traversal padded to 64", func(m *Meta) { m.ID = digest.Digest("sha256:../" + hex[3:]) }},
		{"slash in hex", func(m *Meta) { m.ID = digest.Digest("sha256:" + hex[:63] + "/") }},
		{"upper-case hex", func(m *Meta) { m.ID = digest.Digest("sha256:" + "ABCDEF" + hex[6:]) }},
		{"sha512", func(m *Meta) { m.ID = digest.SHA512.FromString("x") }},
		{"unknown algorithm", func(m *Meta) { m.ID = digest.Digest("md5:" + hex[:32]) }},
		{"no algorithm", func(m *Meta) { m.ID = digest.Digest(hex) }},
		{"negative length", func(m *Meta) { m.ContentLength = -1 }},
		{"zero piece size", func(m *Meta) { m.PieceSize = 0 }},
		{"piece size not a power of two", func(m *Meta) { m.PieceSize = 3 * MiB }},
		{"piece size too small", func(m *Meta) { m.PieceSize = MinSize / 2 }},
		{"piece size too large", func(m *Meta) { m.PieceSize = MaxSize * 2 }},
		{"too many pieces", func(m *Meta) { m.ContentLength = (MaxPieces + 1) * MiB }},
		{"bad content digest", func(m *Meta) { m.Digest = "sha256:nothex" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := good
			tt.edit(&m)
			if err := m.Validate(); !errors.Is(err, ErrBadMeta) {
				t.Fatalf("Validate(%+v) = %v, want ErrBadMeta", m, err)
			}
			dir := t.TempDir()
			s := openStore(t, dir, Options{NoSync: true})
			if _, err := s.Create(m); !errors.Is(err, ErrBadMeta) {
				t.Fatalf("Create(%+v) = %v, want ErrBadMeta", m, err)
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, dataDir)); len(entries) != 0 {
				t.Fatalf("files created for bad meta: %v", entries)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 2 {
				t.Fatalf("store dir holds %d entries, want index.db and data: %v", len(entries), entries)
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good meta: %v", err)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2*MiB, Options{NoSync: true})
	f.setDigests(t, f.task)
	f.write(t, f.task, 0)
	changed := f.task.Changed()
	if err := f.store.Delete(f.meta.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.task.Done():
	default:
		t.Fatal("Done not closed by Delete")
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed waiters not woken by Delete")
	}
	if _, err := f.store.Task(f.meta.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Task after Delete = %v, want ErrNotFound", err)
	}
	if err := f.store.Delete(f.meta.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, dataDir, f.meta.ID.Encoded())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data file after Delete: %v", err)
	}
	if err := f.task.WritePiece(1, bytes.NewReader(f.piece(1))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("WritePiece on a deleted task = %v, want ErrNotFound", err)
	}
	if _, err := f.task.ReadAt(make([]byte, 10), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadAt on a deleted task = %v, want ErrNotFound", err)
	}
	if f.store.Usage() != 0 || len(f.store.List()) != 0 {
		t.Fatalf("Usage %d, List %v after Delete", f.store.Usage(), f.store.List())
	}
	// A new task of the same ID starts empty, also after a restart.
	task, err := f.store.Create(f.meta)
	if err != nil {
		t.Fatal(err)
	}
	if task == f.task || task.Bitfield().Count() != 0 || task.KnownDigests() != 0 {
		t.Fatal("recreated task inherited the deleted one's state")
	}
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, f.dir, Options{NoSync: true})
	task, err = s.Task(f.meta.ID)
	if err != nil || task.Bitfield().Count() != 0 || task.KnownDigests() != 0 {
		t.Fatalf("recreated task after reopen: %v, have %d, known %d", err, task.Bitfield().Count(), task.KnownDigests())
	}
}

func TestOpenRemovesOrphans(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 10, Options{NoSync: true})
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(f.dir, dataDir, digest.FromString("orphan").Encoded())
	if err := os.WriteFile(orphan, []byte("left by a crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, f.dir, Options{NoSync: true})
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphan data file still there: %v", err)
	}
	if _, err := s.Task(f.meta.ID); err != nil {
		t.Fatalf("indexed task lost: %v", err)
	}
}

func TestEmptyContent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0, Options{NoSync: true})
	if f.task.PieceCount() != 0 || !f.task.Complete() || f.task.Bitfield().Len() != 0 {
		t.Fatalf("empty task: pieces %d, complete %v", f.task.PieceCount(), f.task.Complete())
	}
	f.checkContent(t, f.task)
	if err := f.task.WritePiece(0, bytes.NewReader(nil)); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("WritePiece(0) on empty task = %v, want ErrOutOfRange", err)
	}
}

func TestChanged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(f *fixture) error
	}{
		{"piece written", func(f *fixture) error { return f.task.WritePiece(1, bytes.NewReader(f.piece(1))) }},
		{"source piece written", func(f *fixture) error {
			_, err := f.task.WriteSourcePiece(0, bytes.NewReader(f.piece(0)))
			return err
		}},
		{"digest recorded", func(f *fixture) error { return f.task.SetDigest(0, f.digests[0]) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 2*MiB, Options{NoSync: true})
			if err := f.task.SetDigest(1, f.digests[1]); err != nil {
				t.Fatal(err)
			}
			ch := f.task.Changed()
			select {
			case <-ch:
				t.Fatal("Changed fired before any change")
			default:
			}
			errc := make(chan error, 1)
			go func() { errc <- tt.change(f) }()
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
				t.Fatal("Changed did not fire")
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			next := f.task.Changed()
			if next == ch {
				t.Fatal("Changed returned the fired channel again")
			}
			select {
			case <-next:
				t.Fatal("the next Changed fired without a change")
			default:
			}
		})
	}
}

func TestCreated(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2*MiB, Options{NoSync: true})
	fired := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch := f.store.Created()
	if _, err := f.store.Create(f.meta); err != nil || fired(ch) {
		t.Fatalf("Create of an existing task: %v, fired %v; want no wake-up", err, fired(ch))
	}
	m := Meta{ID: digest.FromString("new"), ContentLength: 10, PieceSize: MiB}
	if _, err := f.store.Create(m); err != nil {
		t.Fatal(err)
	}
	if !fired(ch) {
		t.Fatal("Created did not fire when a new task was created")
	}
	next := f.store.Created()
	if fired(next) {
		t.Fatal("the next Created fired without a creation")
	}
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	if !fired(next) || !fired(f.store.Created()) {
		t.Fatal("Created waiters not woken by Close, or Created after Close not closed")
	}
}

func TestOpenLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	openStore(t, dir, Options{NoSync: true})
	if s, err := Open(dir, Options{NoSync: true}); err == nil {
		_ = s.Close()
		t.Fatal("second Open of the same directory succeeded")
	}
	// A locked index may be sound: it is not taken for a damaged one.
	if aside, _ := filepath.Glob(filepath.Join(dir, indexFile+".damaged-*")); len(aside) != 0 {
		t.Fatalf("a locked index was moved aside: %v", aside)
	}
}

func TestCreateConcurrent(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir(), Options{NoSync: true})
	m := Meta{ID: digest.FromString("same"), ContentLength: 3 * MiB, PieceSize: MiB}
	tasks := make([]*Task, 8)
	var wg sync.WaitGroup
	for k := range tasks {
		wg.Go(func() {
			task, err := s.Create(m)
			if err != nil {
				t.Error(err)
			}
			tasks[k] = task
		})
	}
	wg.Wait()
	for _, task := range tasks {
		if task != tasks[0] {
			t.Fatal("concurrent Create returned different tasks")
		}
	}
	if len(s.List()) != 1 || s.Usage() != m.ContentLength {
		t.Fatalf("List %v, Usage %d", s.List(), s.Usage())
	}
}

func TestOpenDropsInvalidEntries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  string
		meta string
	}{
		{"traversal key and ID", "../../victim", `{"id":"sha256:../../victim","contentLength":1,"pieceSize":1048576}`},
		{"key does not match ID", digest.FromString("a").Encoded(), `{"id":"` + string(digest.FromString("b")) + `","contentLength":1,"pieceSize":1048576}`},
		{"not JSON", digest.FromString("c").Encoded(), `{`},
		{"bad piece size", digest.FromString("d").Encoded(), `{"id":"` + string(digest.FromString("d")) + `","contentLength":1,"pieceSize":5}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			dir := filepath.Join(root, "store")
			victim := filepath.Join(root, "victim")
			if err := os.WriteFile(victim, []byte("not yours"), 0o600); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, dir, Options{NoSync: true})
			good, err := s.Create(Meta{ID: digest.FromString("good"), ContentLength: 10, PieceSize: MiB})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(filepath.Join(dir, indexFile), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				b, err := tx.Bucket(bucketTasks).CreateBucket([]byte(tt.key))
				if err != nil {
					return err
				}
				return b.Put(keyMeta, []byte(tt.meta))
			})
			if err := errors.Join(err, db.Close()); err != nil {
				t.Fatal(err)
			}

			s = openStore(t, dir, Options{NoSync: true})
			if infos := s.List(); len(infos) != 1 || infos[0].Meta.ID != good.Meta().ID {
				t.Fatalf("List after reopen = %+v, want only the good task", infos)
			}
			if b, err := os.ReadFile(victim); err != nil || string(b) != "not yours" {
				t.Fatalf("file outside the store touched: %q, %v", b, err)
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, dataDir)); len(entries) != 1 {
				t.Fatalf("data dir = %v, want the good task's file only", entries)
			}
		})
	}
}

// TestAccess: a task's access is recorded once and survives a restart; an index entry written
// before access was recorded loads as unknown (not public); and a task that holds pieces of
// unknown access does not take one from a later Create.
func TestAccess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, Options{NoSync: true})
	private := Meta{ID: digest.FromString("p"), ContentLength: 10, PieceSize: MiB, Access: AccessPrivate, Origin: "https://o/p"}
	if _, err := s.Create(private); err != nil {
		t.Fatal(err)
	}
	public := private
	public.Access, public.Origin = AccessPublic, "https://evil/p"
	task, err := s.Create(public)
	if err != nil {
		t.Fatal(err)
	}
	if got := task.Meta(); got.Access != AccessPrivate || got.Origin != "https://o/p" || got.Public() {
		t.Errorf("known access replaced by a later Create: %+v", got)
	}

	f := newFixture(t, 2*MiB, Options{NoSync: true})
	f.setDigests(t, f.task)
	f.write(t, f.task, 0)
	held := f.meta
	held.Access, held.Origin = AccessPublic, "https://o/x"
	task, err = f.store.Create(held)
	if err != nil {
		t.Fatal(err)
	}
	if got := task.Meta(); got.Access != "" || got.Public() {
		t.Errorf("pieces of unknown access became %q", got.Access)
	}

	// A credentialed fetch into a public task makes it private, for good.
	pub, err := s.Create(Meta{ID: digest.FromString("q"), ContentLength: 10, PieceSize: MiB, Access: AccessPublic, Origin: "https://o/q"})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.MakePrivate("https://o/q?sig=REDACTED"); err != nil {
		t.Fatal(err)
	}
	if err := task.MakePrivate("https://elsewhere/q"); err != nil {
		t.Fatal(err)
	}
	if m := task.Meta(); m.Access != AccessPrivate || m.Origin != "https://elsewhere/q" {
		t.Errorf("pieces of unknown access made private: %+v", m)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, indexFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	legacy := digest.FromString("legacy")
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketTasks).CreateBucket([]byte(legacy.Encoded()))
		if err != nil {
			return err
		}
		return b.Put(keyMeta, []byte(`{"id":"`+string(legacy)+`","url":"https://o/l","contentLength":1,"pieceSize":1048576}`))
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{NoSync: true})
	for _, tc := range []struct {
		id     digest.Digest
		access Access
	}{{private.ID, AccessPrivate}, {pub.Meta().ID, AccessPrivate}, {legacy, ""}} {
		task, err := s.Task(tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if m := task.Meta(); m.Access != tc.access || m.Public() {
			t.Errorf("after reopen, task %s has access %q (public %v), want %q", tc.id, m.Access, m.Public(), tc.access)
		}
	}
}

// Check passes on an open store and fails with ErrClosed once it is closed.
func TestCheck(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("open store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); !errors.Is(err, ErrClosed) {
		t.Errorf("closed store: %v, want ErrClosed", err)
	}
}
