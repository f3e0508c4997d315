package peer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ProtocolID names the piece-exchange protocol on libp2p streams.
const ProtocolID = "/pouch/pieces/1.0.0"

// ProtocolDigestsID is ProtocolID in which a parent that sends digests (ServerConfig.Digests:
// the supernode's seed) announces each piece with its digest (msgHaveDigest), so that a child
// can request it at once rather than wait for the digest from the supernode. A child offers it
// first when it dials the seed; a parent of an older release answers ProtocolID only.
const ProtocolDigestsID = "/pouch/pieces/1.1.0"

// ProtocolCancelID is ProtocolDigestsID in which a child may also withdraw a request
// (msgCancel) that the parent has not started to send: the child then asks another parent
// that holds the piece and idles. A parent that sends digests sends them on it as on
// ProtocolDigestsID. Every child offers it first and falls back to the older protocols, so
// parents and children of any release meet.
const ProtocolCancelID = "/pouch/pieces/1.2.0"

// One stream per (child, parent, task). Every message is a frame: type (1 byte), payload
// length (4 bytes, big endian), payload. The child says hello with the task ID; the parent
// answers with its bitfield and then announces each new piece with a have; the child requests
// pieces by index (and, on ProtocolCancelID, may cancel them) and the parent answers each
// request with the piece or a reject.
const (
	msgHello    byte = 1 // child → parent: task ID
	msgBitfield byte = 2 // parent → child: piece count (u32) and bitfield bytes
	msgHave     byte = 3 // parent → child: piece index (u32)
	msgRequest  byte = 4 // child → parent: piece index (u32)
	msgPiece    byte = 5 // parent → child: piece index (u32), then the piece bytes
	msgReject   byte = 6 // parent → child: piece index (u32) it cannot serve
	msgError    byte = 7 // parent → child: a reason, then the parent closes the stream
	// msgHaveDigest is a have with the piece's digest ("sha256:HEX"), sent only on
	// ProtocolDigestsID streams.
	msgHaveDigest byte = 8 // parent → child: piece index (u32), then the digest
	// msgCancel withdraws a request, sent only on ProtocolCancelID streams. The parent answers
	// a request it drops with a reject, as any request it does not serve; a cancel for a piece
	// not waiting at the parent (already being sent, sent, or never asked for) is ignored.
	msgCancel byte = 9 // child → parent: piece index (u32)
)

// maxControl bounds every message but a piece; a piece is bounded by the task's piece size.
const maxControl = 1 << 20

var (
	// ErrProtocol is a peer that broke the protocol (unknown message, oversized frame).
	ErrProtocol = errors.New("piece protocol violation")
	// ErrRefused is a parent that does not serve the task.
	ErrRefused = errors.New("parent refused the task")
)

func writeFrame(w *bufio.Writer, typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

func writeIndex(w *bufio.Writer, typ byte, i int) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(i))
	return writeFrame(w, typ, b[:])
}

func readHeader(r *bufio.Reader) (typ byte, n uint32, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, err
	}
	return hdr[0], binary.BigEndian.Uint32(hdr[1:]), nil
}

func readPayload(r *bufio.Reader, n uint32) ([]byte, error) {
	if n > maxControl {
		return nil, fmt.Errorf("%w: %d-byte control message", ErrProtocol, n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

func readIndex(r *bufio.Reader, n uint32) (int, error) {
	if n != 4 {
		return 0, fmt.Errorf("%w: index message of %d bytes", ErrProtocol, n)
	}
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint32(b[:])), nil
}
