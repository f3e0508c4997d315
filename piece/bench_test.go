package piece

import (
	"bytes"
	"crypto/sha256"
	"io"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

const benchPieceSize = 4 << 20

func BenchmarkSHA256Piece(b *testing.B) {
	p := content(benchPieceSize, 1)
	b.SetBytes(benchPieceSize)
	for b.Loop() {
		sha256.Sum256(p)
	}
}

// benchTask creates a task of n 4 MiB pieces with all digests known.
func benchTask(b *testing.B, s *Store, seed byte, n int, p []byte) *Task {
	b.Helper()
	d := digest.FromBytes(p)
	task, err := s.Create(Meta{
		ID:            digest.FromBytes([]byte{seed, byte(n)}),
		ContentLength: int64(n) * benchPieceSize,
		PieceSize:     benchPieceSize,
	})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := task.SetDigest(i, d); err != nil {
			b.Fatal(err)
		}
	}
	return task
}

// BenchmarkStoreWritePiece writes 4 MiB pieces with `writers` goroutines at
// once (each iteration writes one piece per writer), as a downloader pulling
// from several parents does.
func BenchmarkStoreWritePiece(b *testing.B) {
	for _, bc := range []struct {
		name    string
		writers int
		opts    Options
	}{
		{"fsync/writers=1", 1, Options{}},
		{"fsync/writers=4", 4, Options{}},
		{"nosync/writers=1", 1, Options{NoSync: true}},
		{"nosync/writers=4", 4, Options{NoSync: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const pieces = 32
			s := openStore(b, b.TempDir(), bc.opts)
			p := content(benchPieceSize, 2)
			var task *Task
			seed, next := byte(0), pieces
			b.SetBytes(int64(bc.writers) * benchPieceSize)
			for b.Loop() {
				if next+bc.writers > pieces {
					// The writes return before their pieces are durable: the
					// time counts the groups that sync and record them too.
					if err := s.syncNow(); err != nil {
						b.Fatal(err)
					}
					// A fresh task, so that every write is a real one; the old
					// one is deleted to keep the page cache and disk small.
					b.StopTimer()
					if task != nil {
						if err := s.Delete(task.Meta().ID); err != nil {
							b.Fatal(err)
						}
					}
					seed++
					task, next = benchTask(b, s, seed, pieces, p), 0
					b.StartTimer()
				}
				var wg sync.WaitGroup
				for w := range bc.writers {
					wg.Go(func() {
						if err := task.WritePiece(next+w, bytes.NewReader(p)); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
				next += bc.writers
			}
		})
	}
}

func BenchmarkStoreReadPiece(b *testing.B) {
	const pieces = 16
	s := openStore(b, b.TempDir(), Options{NoSync: true})
	p := content(benchPieceSize, 3)
	task := benchTask(b, s, 1, pieces, p)
	for i := range pieces {
		if err := task.WritePiece(i, bytes.NewReader(p)); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 128<<10)
	b.SetBytes(benchPieceSize)
	i := 0
	for b.Loop() {
		r, err := task.PieceReader(i % pieces)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
