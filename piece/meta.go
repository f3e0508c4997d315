package piece

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	digest "github.com/opencontainers/go-digest"
)

// Meta is the task metadata.
//
// ID is always a sha256 digest.Digest: a blob's digest, or the sha256 of a URL
// (see the design brief, "Task identity"). Its Encoded() hex is the only thing
// the store ever puts in a file name, and only after Validate.
type Meta struct {
	ID            digest.Digest `json:"id"`
	URL           string        `json:"url,omitempty"` // redacted (taskid.Redact): never a signature
	ContentLength int64         `json:"contentLength"`
	PieceSize     int64         `json:"pieceSize"`
	Digest        digest.Digest `json:"digest,omitempty"` // whole-content digest when known
	// Access says whether the fetch that brought the content from its origin carried
	// credentials. Empty in an index written before it was recorded: unknown, which readers
	// must treat as private with no known origin.
	Access Access `json:"access,omitempty"`
	// Origin is the redacted URL of that fetch: the only place that may authorize a reader of
	// private content.
	Origin string `json:"origin,omitempty"`
	// Rebuilt marks a task recovered from its data file after the index was found damaged
	// (Open): its URL, Access and Origin were lost with the index. Its pieces are only those
	// verified since (against its digest-based ID, or against trusted piece digests), so they are
	// the very bytes the cluster holds under that ID, and the access a trusted party records for
	// that content — the supernode, or an origin's own answer — may be adopted (Create, Task.
	// MakePrivate) even though the task holds pieces. Cleared once the access is known again.
	Rebuilt bool `json:"rebuilt,omitempty"`
}

// Access is who may read a task's content.
type Access string

// The values of Meta.Access.
const (
	// AccessPublic content was fetched without credentials: anyone may read it.
	AccessPublic Access = "public"
	// AccessPrivate content was fetched with credentials (an Authorization or Cookie header, a
	// signed query): only a reader its origin accepts may read it.
	AccessPrivate Access = "private"
)

// Public reports whether anyone may read the task's content; unknown access is not public.
func (m Meta) Public() bool { return m.Access == AccessPublic }

// Validate reports whether m can be stored: a well-formed sha256 ID, a
// non-negative length, a piece size that is a power of two in
// [MinSize, MaxSize], at most MaxPieces pieces, and a well-formed Digest when
// one is given. Errors wrap ErrBadMeta.
func (m Meta) Validate() error {
	if err := validateID(m.ID); err != nil {
		return err
	}
	if m.ContentLength < 0 {
		return fmt.Errorf("%w: task %s: negative content length %d", ErrBadMeta, m.ID, m.ContentLength)
	}
	if !validPieceSize(m.PieceSize) {
		return fmt.Errorf("%w: task %s: piece size %d is not a power of two in [%d, %d]",
			ErrBadMeta, m.ID, m.PieceSize, MinSize, MaxSize)
	}
	if n := m.PieceCount(); n > MaxPieces {
		return fmt.Errorf("%w: task %s: %d pieces, at most %d", ErrBadMeta, m.ID, n, MaxPieces)
	}
	if m.Digest != "" {
		// Any available algorithm: an OCI blob may be addressed by sha512.
		if err := m.Digest.Validate(); err != nil {
			return fmt.Errorf("%w: task %s: content digest %q: %w", ErrBadMeta, m.ID, m.Digest, err)
		}
	}
	return nil
}

// PieceCount is the number of pieces of the task.
func (m Meta) PieceCount() int { return Count(m.ContentLength, m.PieceSize) }

// validateID checks that id is a sha256 digest with a lower-case 64-hex
// encoding, which is what makes id.Encoded() safe to use as a file name.
func validateID(id digest.Digest) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("%w: task id %q: %w", ErrBadMeta, id, err)
	}
	if alg := id.Algorithm(); alg != digest.SHA256 {
		return fmt.Errorf("%w: task id %q: algorithm %s, want sha256", ErrBadMeta, id, alg)
	}
	return nil
}

// rawDigest decodes a sha256 piece digest into its 32 bytes.
func rawDigest(d digest.Digest) ([sha256.Size]byte, error) {
	var raw [sha256.Size]byte
	if err := d.Validate(); err != nil {
		return raw, fmt.Errorf("%w: piece digest %q: %w", ErrBadMeta, d, err)
	}
	if alg := d.Algorithm(); alg != digest.SHA256 {
		return raw, fmt.Errorf("%w: piece digest %q: algorithm %s, want sha256", ErrBadMeta, d, alg)
	}
	if _, err := hex.Decode(raw[:], []byte(d.Encoded())); err != nil {
		return raw, fmt.Errorf("%w: piece digest %q: %w", ErrBadMeta, d, err)
	}
	return raw, nil
}

func digestOf(raw [sha256.Size]byte) digest.Digest {
	return digest.NewDigestFromBytes(digest.SHA256, raw[:])
}
