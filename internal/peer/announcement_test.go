package peer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/piece"
)

// holderTask stores content as a task addressed by its digest, with the given access, holding
// the first have pieces.
func holderTask(t *testing.T, store *piece.Store, size int64, access piece.Access, have int) (*piece.Task, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	id := digest.FromBytes(data)
	task, err := store.Create(piece.Meta{ID: id, ContentLength: size, PieceSize: piece.SizeFor(size), Digest: id, Access: access})
	if err != nil {
		t.Fatal(err)
	}
	for i := range min(have, task.PieceCount()) {
		off, n := piece.Bounds(i, size, task.Meta().PieceSize)
		if _, err := task.WriteSourcePiece(i, bytes.NewReader(data[off:off+n])); err != nil {
			t.Fatal(err)
		}
	}
	return task, data
}

func TestAnnouncement(t *testing.T) {
	t.Parallel()
	store, err := piece.Open(t.TempDir(), piece.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const all = piece.MaxPieces
	public, _ := holderTask(t, store, 3<<20+5, piece.AccessPublic, all)
	private, _ := holderTask(t, store, 1<<20, piece.AccessPrivate, all)
	partial, _ := holderTask(t, store, 2<<20, piece.AccessPublic, 1)

	holder := newHost(t)
	srv := NewServer(holder, store, ServerConfig{})
	defer srv.Close()
	srv.ServeAnnouncements(piece.Meta.Public)
	asker := newHost(t)
	ctx := context.Background()

	a, err := Ask(ctx, asker, info(holder), public.Meta().ID)
	if err != nil {
		t.Fatal(err)
	}
	m := public.Meta()
	if a.ID != m.ID || a.Digest != m.Digest || a.ContentLength != m.ContentLength || a.PieceSize != m.PieceSize || a.Access != piece.AccessPublic {
		t.Errorf("announcement %+v does not match the task %+v", a, m)
	}
	var want []digest.Digest
	for i := range public.PieceCount() {
		want = append(want, public.Digest(i))
	}
	if !slices.Equal(a.Digests, want) {
		t.Errorf("piece digests %v, want %v", a.Digests, want)
	}

	for name, id := range map[string]digest.Digest{
		"not offered (private)": private.Meta().ID,
		"incomplete":            partial.Meta().ID,
		"not held":              digest.FromString("nobody"),
	} {
		if _, err := Ask(ctx, asker, info(holder), id); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", name, err)
		}
	}

	// Closed: the protocol is no longer served.
	srv.Close()
	if _, err := Ask(ctx, asker, info(holder), public.Meta().ID); err == nil || errors.Is(err, ErrProtocol) {
		t.Errorf("after Close: %v, want the stream refused", err)
	}
}

// A holder that lies about the shape of a task is caught before anything is fetched.
func TestAnnouncementShapeChecked(t *testing.T) {
	t.Parallel()
	id := digest.FromString("content")
	good := Announcement{ID: id, ContentLength: 3 * piece.MinSize, PieceSize: piece.MinSize, Digest: id, Access: piece.AccessPublic,
		Digests: []digest.Digest{digest.FromString("0"), digest.FromString("1"), digest.FromString("2")}}
	for name, mutate := range map[string]func(*Announcement){
		"another task":         func(a *Announcement) { a.ID = digest.FromString("other") },
		"odd piece size":       func(a *Announcement) { a.PieceSize = 2 * piece.MinSize; a.Digests = a.Digests[:2] },
		"missing piece digest": func(a *Announcement) { a.Digests = a.Digests[:2] },
		"bad piece digest":     func(a *Announcement) { a.Digests[1] = "sha256:zz" },
		"unknown access":       func(a *Announcement) { a.Access = "" },
		"no content digest":    func(a *Announcement) { a.Digest = "" },
		"negative length":      func(a *Announcement) { a.ContentLength = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lie := good
			lie.Digests = slices.Clone(good.Digests)
			mutate(&lie)
			liar := newHost(t)
			liar.SetStreamHandler(AnnounceProtocolID, func(st network.Stream) {
				defer st.Close()
				r, w := bufio.NewReader(st), bufio.NewWriter(st)
				if _, n, err := readHeader(r); err != nil || func() error { _, err := readPayload(r, n); return err }() != nil {
					return
				}
				b, _ := json.Marshal(lie)
				writeFrame(w, msgAnnouncement, b)
				w.Flush()
			})
			if _, err := Ask(context.Background(), newHost(t), info(liar), id); !errors.Is(err, ErrProtocol) {
				t.Errorf("%v, want ErrProtocol", err)
			}
		})
	}
	// The unmutated announcement passes the same check.
	if err := good.check(id); err != nil {
		t.Errorf("a well-formed announcement: %v", err)
	}
}
