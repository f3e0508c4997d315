package piece

import "errors"

// Sentinel errors. Operations wrap them with %w together with the task ID and,
// where it applies, the piece index, so test with errors.Is.
var (
	// ErrNotFound: the task or piece is not in the store (or the task was
	// deleted while in use).
	ErrNotFound = errors.New("piece: not found")
	// ErrDigestMismatch: the piece bytes do not hash to the known digest, or a
	// different digest was offered for a piece whose digest is already known.
	ErrDigestMismatch = errors.New("piece: digest mismatch")
	// ErrUnknownDigest: WritePiece was called before the piece digest was
	// recorded with SetDigest; nothing was read from the reader.
	ErrUnknownDigest = errors.New("piece: piece digest not known")
	// ErrMetaConflict: Create with the ID of an existing task but a different
	// content length, piece size or whole-content digest.
	ErrMetaConflict = errors.New("piece: task exists with different metadata")
	// ErrOutOfRange: the piece index is outside the task.
	ErrOutOfRange = errors.New("piece: piece index out of range")
	// ErrBadMeta: invalid metadata (task ID, content length, piece size, a
	// whole-content or piece digest).
	ErrBadMeta = errors.New("piece: invalid metadata")
	// ErrBadBitfield: bytes that do not encode a bitfield of the given length
	// (typically received from a peer).
	ErrBadBitfield = errors.New("piece: invalid bitfield")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("piece: store closed")
	// ErrIO: the store's own disk failed: a data file or the index could not be written,
	// synced or read (disk full, I/O error, read-only file system). The cause stays in the
	// chain, so errors.Is(err, syscall.ENOSPC) tells a full disk. The bytes being written are
	// not to blame: whoever sent them is not at fault.
	ErrIO = errors.New("piece: storage I/O failed")
)
