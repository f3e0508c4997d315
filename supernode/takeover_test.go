package supernode

import (
	"bytes"
	"context"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/piece"
)

// holding is what a peer holding pieces of data announces.
func holding(data []byte, held ...int) *snapi.Holding {
	size := piece.SizeFor(int64(len(data)))
	n := piece.Count(int64(len(data)), size)
	bf := piece.NewBitfield(n)
	h := &snapi.Holding{ContentLength: int64(len(data)), PieceSize: size, Access: "public"}
	for _, i := range held {
		bf.Set(i)
	}
	for i := range n {
		if bf.Has(i) {
			off, k := piece.Bounds(i, int64(len(data)), size)
			h.Digests = append(h.Digests, digest.FromBytes(data[off:off+k]))
		}
	}
	h.Bitfield = bf.Bytes()
	return h
}

func (s *Supernode) seedHas(id digest.Digest) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	if t := s.tasks[id]; t != nil && t.ptask != nil {
		for i := range t.ptask.PieceCount() {
			if t.ptask.Has(i) {
				out = append(out, i)
			}
		}
	}
	return out
}

// A supernode taking a task over from announcing peers fetches from the origin only the pieces
// no live peer holds, with Range requests, publishes every digest, and fetches what a peer held
// once that peer leaves.
func TestTakeoverFetchesOnlyWhatNoPeerHolds(t *testing.T) {
	const p = piece.MinSize // every test task here is shorter than 256 pieces of it
	data := make([]byte, 8*p)
	for i := range data {
		data[i] = byte(i / 4093)
	}
	o := origin.NewData(t, data)
	s := start(t, Config{Allow: loopback, TakeoverGrace: 300 * time.Millisecond})
	ps := newPeers(t, s.URL())
	id := digest.FromBytes(data)
	task := snapi.TaskRequest{URL: o.URL + "/blob", Digest: id}
	ctx := context.Background()
	for name, held := range map[string][]int{"a": {0, 1, 2, 3}, "b": {2, 3, 4}} {
		if _, err := ps.client(name).Register(ctx, snapi.RegisterRequest{Task: task, Peer: ps.info(name), Have: len(held), Holding: holding(data, held...)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the seed fetches pieces 5-7", func() bool { return slices.Equal(s.seedHas(id), []int{5, 6, 7}) })
	// The seed publishes a piece's digest just after it is on disk: a peer's next syncs learn all.
	var resp snapi.SyncResponse
	waitFor(t, "the peers learn all 8 digests after the takeover", func() bool {
		var err error
		if resp, err = ps.client("a").Sync(ctx, snapi.SyncRequest{Task: id, Peer: ps.info("a").ID}); err != nil {
			t.Fatal(err)
		}
		return resp.Task.SeedDone && len(resp.Task.Digests) == 8
	})
	for i, d := range resp.Task.Digests {
		off, n := piece.Bounds(i, int64(len(data)), p)
		if d != digest.FromBytes(data[off:off+n]) {
			t.Fatalf("published digest of piece %d is wrong", i)
		}
	}
	if sent := o.Sent.Load(); sent != 3*p+1 {
		t.Errorf("origin sent %d bytes, want the 3 pieces no peer held and a 1-byte probe (%d)", sent, 3*p+1)
	}
	if got, want := o.Ranges(), []string{"bytes=0-0", fmt.Sprintf("bytes=%d-%d", 5*p, 8*p-1)}; !slices.Equal(got, want) {
		t.Errorf("origin requests %q, want %q", got, want)
	}

	// a leaves: pieces 0 and 1 are held by nobody now; b still holds 2-4.
	if err := ps.client("a").Leave(ctx, snapi.LeaveRequest{Task: id, Peer: ps.info("a").ID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the seed fetches what a held alone", func() bool { return slices.Equal(s.seedHas(id), []int{0, 1, 5, 6, 7}) })
	// b completes: nobody downloads any more, and the seed parks without fetching 2-4.
	if _, err := ps.client("b").Sync(ctx, snapi.SyncRequest{Task: id, Peer: ps.info("b").ID, Have: 8, Complete: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the seed parks", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return !s.tasks[id].running
	})
	if sent := o.Sent.Load(); sent != 5*p+1 {
		t.Errorf("origin sent %d bytes in all, want %d", sent, 5*p+1)
	}
}

// A task without a content digest adopts no digest from peers: nothing would check them, so its
// seed fetches every piece itself, as before.
func TestTakeoverOfAURLTaskFetchesEverything(t *testing.T) {
	data := bytes.Repeat([]byte("url task"), int(3*piece.MinSize)/8) // 3 pieces
	o := origin.NewData(t, data)
	s := start(t, Config{Allow: loopback, TakeoverGrace: 100 * time.Millisecond})
	ps := newPeers(t, s.URL())
	resp, err := ps.client("a").Register(context.Background(), snapi.RegisterRequest{
		Task: snapi.TaskRequest{URL: o.URL + "/file"}, Peer: ps.info("a"), Have: 3, Holding: holding(data, 0, 1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the seed holds everything", func() bool { return len(s.seedHas(resp.Task.ID)) == 3 })
}

// The seed's own hash wins over a digest a lone peer announced: the peers learn the origin's.
func TestTakeoverSeedHashWins(t *testing.T) {
	data := bytes.Repeat([]byte("honest"), int(3*piece.MinSize)/6) // 3 pieces
	o := origin.NewData(t, data)
	s := start(t, Config{Allow: loopback, TakeoverGrace: 100 * time.Millisecond})
	ps := newPeers(t, s.URL())
	id := digest.FromBytes(data)
	lie := holding(data, 2)
	lie.Digests[0] = digest.FromString("not piece 2")
	ctx := context.Background()
	if _, err := ps.client("liar").Register(ctx, snapi.RegisterRequest{Task: snapi.TaskRequest{URL: o.URL + "/b", Digest: id}, Peer: ps.info("liar"), Have: 1, Holding: lie}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the seed fetches what nobody holds", func() bool { return slices.Equal(s.seedHas(id), []int{0, 1}) })
	if err := ps.client("liar").Leave(ctx, snapi.LeaveRequest{Task: id, Peer: ps.info("liar").ID}); err != nil {
		t.Fatal(err)
	}
	// a registers as a new downloader: the seed keeps going until it holds everything.
	resp, err := ps.client("a").Register(ctx, snapi.RegisterRequest{Task: snapi.TaskRequest{URL: o.URL + "/b", Digest: id}, Peer: ps.info("a")})
	if err != nil {
		t.Fatal(err)
	}
	want := digest.FromBytes(data[2*piece.MinSize:])
	// The piece is stored before its digest is published: wait for both.
	waitFor(t, "the seed fetches piece 2 and publishes its hash", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		tk := s.tasks[id]
		return tk.ptask.Has(2) && len(tk.digests) == 3 && tk.digests[2] == want
	})
	sr, err := ps.client("a").Sync(ctx, snapi.SyncRequest{Task: id, Peer: ps.info("a").ID})
	if err != nil {
		t.Fatal(err)
	}
	if got := sr.Task.Digests[2]; got != want || resp.Task.ID != id {
		t.Errorf("piece 2 is published as %s, want the origin's %s", got, want)
	}
}
