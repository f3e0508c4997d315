package piece

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"

	digest "github.com/opencontainers/go-digest"
)

// Hasher computes a task's whole-content SHA-256 in order while it downloads: each Advance
// hashes the pieces held since the last one, from the first not hashed yet up to the first
// missing. So the check of the whole content when the last piece arrives has only the pieces
// after the last gap left to read, instead of the whole file at once: 16 peers finishing
// together on a 2-core machine read and hashed 128 MiB each at that moment, seconds of CPU
// after their last byte (docs/benchmarks.md, "Where the time goes").
//
// A piece's bytes are fixed once held: they hash to its digest, and a piece dropped by a failed
// sync and written again must hash to it again. A Hasher is used by one goroutine at a time.
type Hasher struct {
	t    *Task
	h    hash.Hash
	next int // the first piece not hashed yet
}

// NewHasher returns a Hasher of t's content, nothing hashed yet.
func (t *Task) NewHasher() *Hasher { return &Hasher{t: t, h: sha256.New()} }

// Advance hashes the held pieces from the first not hashed yet, in order, up to the first
// missing one.
func (h *Hasher) Advance() error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	t := h.t
	for h.next < t.n && t.Has(h.next) {
		off, n := Bounds(h.next, t.length, t.pieceSize)
		if _, err := io.CopyBuffer(h.h, io.NewSectionReader(t.f, off, n), *bp); err != nil {
			return fmt.Errorf("task %s piece %d: sum: %w", t.id, h.next, t.ioErr(err))
		}
		h.next++
	}
	return nil
}

// Sum hashes what is left and returns the whole content's digest; the task must be complete.
func (h *Hasher) Sum() (digest.Digest, error) {
	if err := h.Advance(); err != nil {
		return "", err
	}
	if h.next < h.t.n {
		return "", fmt.Errorf("task %s: sum: piece %d of %d is missing", h.t.id, h.next, h.t.n)
	}
	return digest.NewDigest(digest.SHA256, h.h), nil
}
