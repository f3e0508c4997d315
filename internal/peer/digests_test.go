package peer

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/piece"
)

// A child that asks the seed for digests learns each offered piece's digest with its have and
// stores the piece with no other source of digests. On ProtocolCancelID the seed sends them to
// every child (a dfdaemon trusts them from the seed only); a child of an older release that does
// not ask, a parent that does not send digests (not the seed), and a parent of the release
// before 1.1.0, which knows only ProtocolID, exchange plain haves.
func TestSeedSendsDigestsWithItsHaves(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		sends, asks  bool
		child        []protocol.ID // what the child offers; nil: Dial's
		parent       []protocol.ID // what the parent no longer serves (an older release)
		wantDigests  bool
		wantProtocol string
	}{
		{"seed to a child that asks", true, true, nil, nil, true, ProtocolCancelID},
		{"seed to a child that does not ask", true, false, nil, nil, true, ProtocolCancelID},
		{"seed to a child of release 1.1 that asks", true, true, []protocol.ID{ProtocolDigestsID, ProtocolID}, nil, true, ProtocolDigestsID},
		{"seed to a child of release 1.1 that does not ask", true, false, []protocol.ID{ProtocolID}, nil, false, ProtocolID},
		{"seed of release 1.1 to a child that asks", true, true, nil, []protocol.ID{ProtocolCancelID}, true, ProtocolDigestsID},
		{"another parent to a child that asks", false, true, nil, nil, false, ProtocolCancelID},
		{"a parent of release 1.0 to a child that asks", false, true, nil, []protocol.ID{ProtocolCancelID, ProtocolDigestsID}, false, ProtocolID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := newSeededWith(t, 8<<20, 1<<20, ServerConfig{SuperSeed: true, Digests: tc.sends})
			for _, p := range tc.parent {
				src.h.RemoveStreamHandler(p)
			}
			id, n := src.task.Meta().ID, src.task.PieceCount()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			store, err := piece.Open(t.TempDir(), piece.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			dst, err := store.Create(src.task.Meta()) // no digest known
			if err != nil {
				t.Fatal(err)
			}
			var conn *Conn
			if tc.child == nil {
				conn, _, err = Dial(ctx, newHost(t), info(src.h), id, n, tc.asks)
			} else {
				conn, _, err = dial(ctx, newHost(t), info(src.h), id, n, tc.child)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got := string(conn.st.Protocol()); got != tc.wantProtocol {
				t.Errorf("stream speaks %s, want %s", got, tc.wantProtocol)
			}
			ev, err := conn.Next()
			if err != nil {
				t.Fatal(err)
			}
			if ev.Kind != EventHave {
				t.Fatalf("first event %v, want a have", ev.Kind)
			}
			if !tc.wantDigests {
				if ev.Digest != "" {
					t.Fatalf("have of piece %d carries digest %s, want none", ev.Index, ev.Digest)
				}
				return
			}
			if want := src.task.Digest(ev.Index); ev.Digest != want {
				t.Fatalf("have of piece %d carries digest %q, want %s", ev.Index, ev.Digest, want)
			}
			if err := dst.SetDigest(ev.Index, ev.Digest); err != nil {
				t.Fatal(err)
			}
			if err := conn.Request(ev.Index); err != nil {
				t.Fatal(err)
			}
			for {
				ev2, err := conn.Next()
				if err != nil {
					t.Fatal(err)
				}
				if ev2.Kind == EventPiece {
					if err := dst.WritePiece(ev2.Index, conn.Body(ev2)); err != nil {
						t.Fatalf("piece %d checked against the digest from the have: %v", ev2.Index, err)
					}
					return
				}
			}
		})
	}
}

// A parent cannot push digests a child did not ask for, nor a malformed one on a stream that
// asked: either is a protocol error, so the child drops the stream and takes no digest from it.
func TestHostileHaveDigestIsAProtocolError(t *testing.T) {
	t.Parallel()
	const pieces = 4
	task := digest.FromString("task")
	for _, tc := range []struct {
		name   string
		proto  string
		asks   bool
		digest string
	}{
		{"a digest on a stream that did not ask for one", ProtocolID, false, string(digest.FromString("x"))},
		{"a malformed digest on a stream that may cancel", ProtocolCancelID, false, "sha256:not-hex"},
		{"a malformed digest", ProtocolDigestsID, true, "sha256:not-hex"},
		{"a digest of another algorithm", ProtocolDigestsID, true, "sha512:" + strings.Repeat("0", 128)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent := newHost(t)
			parent.SetStreamHandler(protocol.ID(tc.proto), func(st network.Stream) {
				defer st.Close()
				r, w := bufio.NewReader(st), bufio.NewWriter(st)
				if _, n, err := readHeader(r); err != nil || func() error { _, err := readPayload(r, n); return err }() != nil {
					return
				}
				bf := make([]byte, 5)
				binary.BigEndian.PutUint32(bf, pieces)
				payload := binary.BigEndian.AppendUint32(nil, 1)
				if writeFrame(w, msgBitfield, bf) != nil || writeFrame(w, msgHaveDigest, append(payload, tc.digest...)) != nil {
					return
				}
				w.Flush()
				io.Copy(io.Discard, st)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, _, err := Dial(ctx, newHost(t), info(parent), task, pieces, tc.asks)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ev, err := conn.Next()
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("Next = %+v, %v; want ErrProtocol", ev, err)
			}
		})
	}
}
