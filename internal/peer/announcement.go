package peer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/piece"
)

// AnnounceProtocolID names the protocol by which a peer that found holders of some content
// without a supernode (through the DHT) asks each of them what it holds: the task's size,
// access and piece digests, which the supernode would otherwise have told it. One request per
// stream: the asker sends a hello with the task ID, the holder answers with an announcement or
// an error and closes the stream.
const AnnounceProtocolID = "/pouch/announce/1.0.0"

// msgAnnouncement carries an Announcement as JSON (holder → asker).
const msgAnnouncement byte = 8

// announceTimeout bounds one exchange on either side.
const announceTimeout = 10 * time.Second

// Announcement is what a holder says of a complete task. Nothing in it is trusted on its own:
// the asker checks the pieces against these digests, and the whole content against the digest
// it asked for, before it keeps or serves any of it.
type Announcement struct {
	ID            digest.Digest   `json:"id"`
	ContentLength int64           `json:"contentLength"`
	PieceSize     int64           `json:"pieceSize"`
	Digest        digest.Digest   `json:"digest"` // the whole content's
	Access        piece.Access    `json:"access"`
	Digests       []digest.Digest `json:"digests"` // every piece's, in order
}

// check reports an announcement that cannot describe task: another ID, a piece size other than
// the one every peer computes for that length, a digest per piece missing or malformed.
func (a Announcement) check(task digest.Digest) error {
	m := piece.Meta{ID: a.ID, ContentLength: a.ContentLength, PieceSize: a.PieceSize, Digest: a.Digest, Access: a.Access}
	switch {
	case a.ID != task:
		return fmt.Errorf("announcement for %s, asked for %s", a.ID, task)
	case a.Digest == "":
		return fmt.Errorf("announcement for %s without a content digest", task)
	case a.Access != piece.AccessPublic && a.Access != piece.AccessPrivate:
		return fmt.Errorf("announcement for %s with access %q", task, a.Access)
	case m.Validate() != nil:
		return m.Validate()
	case a.PieceSize != piece.SizeFor(a.ContentLength):
		return fmt.Errorf("announcement for %s: piece size %d, every peer uses %d for %d bytes", task, a.PieceSize, piece.SizeFor(a.ContentLength), a.ContentLength)
	case len(a.Digests) != m.PieceCount():
		return fmt.Errorf("announcement for %s: %d piece digests for %d pieces", task, len(a.Digests), m.PieceCount())
	}
	for i, d := range a.Digests {
		if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
			return fmt.Errorf("announcement for %s: piece %d digest %q is not sha256", task, i, d)
		}
	}
	return nil
}

// ServeAnnouncements makes s answer announcement requests too, from the same store and for as
// long as it serves pieces: a complete task whose meta offer accepts is announced to any peer
// that asks (with a cluster secret, every peer on the host is a member); anything else is
// refused.
func (s *Server) ServeAnnouncements(offer func(piece.Meta) bool) {
	s.h.SetStreamHandler(AnnounceProtocolID, func(st network.Stream) { s.announce(st, offer) })
}

func (s *Server) announce(st network.Stream, offer func(piece.Meta) bool) {
	if !s.enter() {
		st.Reset()
		return
	}
	defer s.handlers.Done()
	defer context.AfterFunc(s.ctx, func() { st.Reset() })()
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(announceTimeout))
	r, w := bufio.NewReader(st), bufio.NewWriter(st)
	id, err := readHello(r)
	if err != nil {
		st.Reset()
		return
	}
	typ, payload := msgAnnouncement, []byte(nil)
	a, err := s.announcement(id, offer)
	if err == nil {
		payload, err = json.Marshal(a)
	}
	if err == nil && len(payload) > maxControl {
		err = fmt.Errorf("task %s has too many pieces to announce", a.ID)
	}
	if err != nil {
		typ, payload = msgError, []byte(err.Error())
	}
	if writeFrame(w, typ, payload) != nil || w.Flush() != nil {
		st.Reset()
	}
}

// readHello reads the task ID a stream opens with.
func readHello(r *bufio.Reader) (digest.Digest, error) {
	typ, n, err := readHeader(r)
	if err != nil {
		return "", err
	}
	if typ != msgHello {
		return "", fmt.Errorf("%w: stream opened with message type %d", ErrProtocol, typ)
	}
	raw, err := readPayload(r, n)
	return digest.Digest(raw), err
}

// announcement describes task id, if it is complete and offered.
func (s *Server) announcement(id digest.Digest, offer func(piece.Meta) bool) (Announcement, error) {
	if err := id.Validate(); err != nil {
		return Announcement{}, fmt.Errorf("bad task id: %w", err)
	}
	t, err := s.tasks.Task(id)
	if err != nil {
		return Announcement{}, fmt.Errorf("task %s not held", id)
	}
	m := t.Meta()
	if !t.Complete() || !offer(m) {
		return Announcement{}, fmt.Errorf("task %s not offered", id)
	}
	a := Announcement{ID: m.ID, ContentLength: m.ContentLength, PieceSize: m.PieceSize, Digest: m.Digest, Access: m.Access,
		Digests: make([]digest.Digest, t.PieceCount())}
	for i := range a.Digests {
		a.Digests[i] = t.Digest(i)
	}
	return a, nil
}

// Ask asks the holder info what it holds of task. An error wraps ErrRefused when the holder
// does not offer it, ErrProtocol when the answer cannot describe task.
func Ask(ctx context.Context, h host.Host, info peer.AddrInfo, task digest.Digest) (Announcement, error) {
	ctx, cancel := context.WithTimeout(ctx, announceTimeout)
	defer cancel()
	h.Peerstore().AddAddrs(info.ID, info.Addrs, 10*time.Minute)
	st, err := h.NewStream(ctx, info.ID, AnnounceProtocolID)
	if err != nil {
		return Announcement{}, fmt.Errorf("open announcement stream to %s: %w", info.ID, err)
	}
	defer st.Reset() // after the answer, nothing else is read or written
	defer context.AfterFunc(ctx, func() { st.Reset() })()
	r, w := bufio.NewReader(st), bufio.NewWriter(st)
	if err := writeFrame(w, msgHello, []byte(task)); err != nil || w.Flush() != nil {
		return Announcement{}, fmt.Errorf("ask %s for %s: %w", info.ID, task, err)
	}
	typ, n, err := readHeader(r)
	if err != nil {
		return Announcement{}, fmt.Errorf("announcement from %s: %w", info.ID, err)
	}
	payload, err := readPayload(r, n)
	if err != nil {
		return Announcement{}, fmt.Errorf("announcement from %s: %w", info.ID, err)
	}
	switch typ {
	case msgError:
		return Announcement{}, fmt.Errorf("%w: %s: %s", ErrRefused, info.ID, payload)
	case msgAnnouncement:
	default:
		return Announcement{}, fmt.Errorf("%w: %s answered with type %d", ErrProtocol, info.ID, typ)
	}
	var a Announcement
	if err := json.Unmarshal(payload, &a); err != nil {
		return Announcement{}, fmt.Errorf("%w: announcement from %s: %w", ErrProtocol, info.ID, err)
	}
	if err := a.check(task); err != nil {
		return Announcement{}, fmt.Errorf("%w: %s: %w", ErrProtocol, info.ID, err)
	}
	return a, nil
}
