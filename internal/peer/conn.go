package peer

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/piece"
)

// Conn is a child's stream to one parent for one task.
type Conn struct {
	Peer peer.ID
	st   network.Stream
	r    *bufio.Reader
	mu   sync.Mutex // guards w: requests come from the downloader while the reader runs
	w    *bufio.Writer
}

// EventKind says what a parent sent.
type EventKind int

// The events a child reads from a parent.
const (
	EventHave EventKind = iota + 1
	EventPiece
	EventReject
)

// Event is one message from a parent. For EventPiece, Size bytes of piece data follow and must
// be consumed through Body before the next call to Next. An EventHave from a parent that sends
// digests (ProtocolDigestsID) carries the piece's digest; whether to trust it is the caller's
// call (the supernode's seed only).
type Event struct {
	Kind   EventKind
	Index  int
	Size   int64
	Digest digest.Digest
}

// Dial opens a piece stream to a parent, says hello for the task and returns the parent's
// bitfield. It asks for ProtocolCancelID first and falls back to the older protocols, so that
// a parent of an older release still serves it (without cancels: see CanCancel); with digests
// (the parent is the supernode's seed) it asks for ProtocolDigestsID before ProtocolID, and
// the parent's haves then carry each piece's digest. Offering several protocols costs a round
// trip of negotiation before the hello, which a single protocol does not (it is sent with the
// hello).
func Dial(ctx context.Context, h host.Host, info peer.AddrInfo, task digest.Digest, pieces int, digests bool) (*Conn, piece.Bitfield, error) {
	protocols := []protocol.ID{ProtocolCancelID, ProtocolID}
	if digests {
		protocols = []protocol.ID{ProtocolCancelID, ProtocolDigestsID, ProtocolID}
	}
	return dial(ctx, h, info, task, pieces, protocols)
}

func dial(ctx context.Context, h host.Host, info peer.AddrInfo, task digest.Digest, pieces int, protocols []protocol.ID) (*Conn, piece.Bitfield, error) {
	h.Peerstore().AddAddrs(info.ID, info.Addrs, 10*time.Minute)
	st, err := h.NewStream(ctx, info.ID, protocols...)
	if err != nil {
		return nil, piece.Bitfield{}, fmt.Errorf("open stream to %s: %w", info.ID, err)
	}
	c := &Conn{Peer: info.ID, st: st, r: bufio.NewReaderSize(st, 64<<10), w: bufio.NewWriterSize(st, 4<<10)}
	err = writeFrame(c.w, msgHello, []byte(task))
	if err == nil {
		err = c.w.Flush()
	}
	if err != nil {
		st.Reset()
		return nil, piece.Bitfield{}, fmt.Errorf("hello to %s: %w", info.ID, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetReadDeadline(dl)
	}
	typ, n, err := readHeader(c.r)
	if err != nil {
		st.Reset()
		return nil, piece.Bitfield{}, fmt.Errorf("bitfield from %s: %w", info.ID, err)
	}
	payload, err := readPayload(c.r, n)
	if err != nil {
		st.Reset()
		return nil, piece.Bitfield{}, err
	}
	_ = st.SetReadDeadline(time.Time{})
	switch typ {
	case msgError:
		st.Reset()
		return nil, piece.Bitfield{}, fmt.Errorf("%w: %s: %s", ErrRefused, info.ID, payload)
	case msgBitfield:
	default:
		st.Reset()
		return nil, piece.Bitfield{}, fmt.Errorf("%w: %s answered hello with type %d", ErrProtocol, info.ID, typ)
	}
	if len(payload) < 4 || int(binary.BigEndian.Uint32(payload)) != pieces {
		st.Reset()
		return nil, piece.Bitfield{}, fmt.Errorf("%w: %s has a different piece count for %s", ErrProtocol, info.ID, task)
	}
	bf, err := piece.BitfieldFromBytes(pieces, payload[4:])
	if err != nil {
		st.Reset()
		return nil, piece.Bitfield{}, fmt.Errorf("%w: %s: %w", ErrProtocol, info.ID, err)
	}
	return c, bf, nil
}

// Request asks the parent for piece i.
func (c *Conn) Request(i int) error { return c.send(msgRequest, i) }

// CanCancel says whether the parent speaks ProtocolCancelID, so that Cancel may be called.
func (c *Conn) CanCancel() bool { return c.st.Protocol() == ProtocolCancelID }

// Cancel withdraws the request for piece i, if the parent has not started to send it: the
// parent then answers the request with a reject; otherwise the piece comes as asked. Only a
// parent that CanCancel may be sent one (an older one would take it for a protocol violation).
func (c *Conn) Cancel(i int) error { return c.send(msgCancel, i) }

// send writes one message about piece i to the parent at once.
func (c *Conn) send(typ byte, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := writeIndex(c.w, typ, i); err != nil {
		return err
	}
	return c.w.Flush()
}

// Next reads the next event. Only one goroutine may call Next.
func (c *Conn) Next() (Event, error) {
	typ, n, err := readHeader(c.r)
	if err != nil {
		return Event{}, err
	}
	switch typ {
	case msgHave, msgReject:
		i, err := readIndex(c.r, n)
		kind := EventHave
		if typ == msgReject {
			kind = EventReject
		}
		return Event{Kind: kind, Index: i}, err
	case msgHaveDigest:
		return c.readHaveDigest(n)
	case msgPiece:
		if n < 4 || int64(n)-4 > piece.MaxSize {
			return Event{}, fmt.Errorf("%w: piece frame of %d bytes", ErrProtocol, n)
		}
		var b [4]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return Event{}, err
		}
		return Event{Kind: EventPiece, Index: int(binary.BigEndian.Uint32(b[:])), Size: int64(n) - 4}, nil
	default:
		return Event{}, fmt.Errorf("%w: message type %d from %s", ErrProtocol, typ, c.Peer)
	}
}

// readHaveDigest reads a have with its digest, n bytes, allowed only on a stream that asked
// for digests.
func (c *Conn) readHaveDigest(n uint32) (Event, error) {
	if p := c.st.Protocol(); p != ProtocolDigestsID && p != ProtocolCancelID {
		return Event{}, fmt.Errorf("%w: a have with a digest from %s, which was not asked for", ErrProtocol, c.Peer)
	}
	if n < 4 {
		return Event{}, fmt.Errorf("%w: have of %d bytes", ErrProtocol, n)
	}
	b, err := readPayload(c.r, n)
	if err != nil {
		return Event{}, err
	}
	d, err := digest.Parse(string(b[4:]))
	if err != nil || d.Algorithm() != digest.SHA256 {
		return Event{}, fmt.Errorf("%w: have with a bad digest from %s", ErrProtocol, c.Peer)
	}
	return Event{Kind: EventHave, Index: int(binary.BigEndian.Uint32(b)), Digest: d}, nil
}

// Body returns the reader for the data of the piece event just read.
func (c *Conn) Body(ev Event) io.Reader { return io.LimitReader(c.r, ev.Size) }

// SetReadDeadline bounds the wait for the next bytes from the parent.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.st.SetReadDeadline(t) }

// SetWriteDeadline bounds the writes of the next requests: a parent that stops reading fills
// the stream's window, and a request written then would wait for it forever.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.st.SetWriteDeadline(t) }

// Close ends the stream; Reset is used so a blocked Next returns at once.
func (c *Conn) Close() error { return c.st.Reset() }
