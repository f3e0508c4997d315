package dfdaemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/supernode"
)

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// bootstrapAddr is d's first libp2p address with its peer ID: a --bootstrap-peers entry.
func bootstrapAddr(d *dfdaemon.Daemon) string { return d.P2PAddrs()[0] + "/p2p/" + d.PeerID() }

// deadSupernode is the URL of a supernode that has stopped.
func deadSupernode(t *testing.T) string {
	ctx, cancel := context.WithCancel(context.Background())
	sn := runSupernode(ctx, t, supernode.Config{})
	url := sn.URL()
	cancel()
	sn.Close()
	return url
}

func fetch(ctx context.Context, d *dfdaemon.Daemon, req dfdaemon.Request) ([]byte, *dfdaemon.Download, error) {
	x, err := d.Download(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	defer x.Close()
	b, err := io.ReadAll(x.NewReader(ctx, 0))
	return b, x, err
}

func lookups(t *testing.T, d *dfdaemon.Daemon, result string) float64 {
	t.Helper()
	m, err := scrape.Gather(d.Metrics())
	if err != nil {
		t.Fatal(err)
	}
	return m.Sum("pouch_dfdaemon_dht_lookups_total", scrape.Labels{"result": result})
}

// With every supernode down, a blob one node holds reaches the others through the DHT without a
// byte from the origin; a blob nobody holds, a URL without a digest, and private content go to
// the origin, once per node.
func TestHoldersFoundWithoutSupernode(t *testing.T) {
	blob, other, file, private := random(9<<20+3), random(3<<20), random(2<<20), random(1<<20)
	o := origin.NewFiles(t, map[string][]byte{"/blob": blob, "/other": other, "/file": file, "/private": private})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	snCtx, stopSN := context.WithCancel(ctx)
	sn := runSupernode(snCtx, t, supernode.Config{})
	a := runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL()})
	for _, req := range []dfdaemon.Request{
		{URL: o.URL + "/blob", Digest: digest.FromBytes(blob)},
		{URL: o.URL + "/file"},
		{URL: o.URL + "/private", Digest: digest.FromBytes(private), Header: http.Header{"Authorization": {"Bearer X"}}},
	} {
		if _, _, err := fetch(ctx, a, req); err != nil {
			t.Fatalf("node A, supernode up: %v", err)
		}
	}
	stopSN()
	sn.Close()
	before := o.Sent.Load()

	// B joins through A, C through B: C finds A through the DHT without knowing it. Their
	// lookups may take up to 30 s: on a loaded machine under the race detector the default 5 s
	// once ran out before B found A (the blob then came from the origin and the test failed);
	// a lookup that finds nobody still ends as soon as the DHT has been asked, not at the bound.
	dht := func(boot *dfdaemon.Daemon) dfdaemon.DHTConfig {
		return dfdaemon.DHTConfig{BootstrapPeers: []string{bootstrapAddr(boot)}, LookupTimeout: 30 * time.Second}
	}
	b := runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL(), DHT: dht(a)})
	c := runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL(), DHT: dht(b)})
	for name, d := range map[string]*dfdaemon.Daemon{"B": b, "C": c} {
		got, x, err := fetch(ctx, d, dfdaemon.Request{URL: o.URL + "/blob", Digest: digest.FromBytes(blob)})
		if err != nil || !bytes.Equal(got, blob) {
			t.Fatalf("node %s: blob differs (%v)", name, err)
		}
		if x.BytesFromOrigin() != 0 || x.BytesFromPeers() != int64(len(blob)) {
			t.Errorf("node %s: %d bytes from peers, %d from the origin; want all from peers", name, x.BytesFromPeers(), x.BytesFromOrigin())
		}
		if lookups(t, d, "found") != 1 {
			t.Errorf("node %s: lookups found = %v, want 1", name, lookups(t, d, "found"))
		}
	}
	if sent := o.Sent.Load() - before; sent != 0 {
		t.Errorf("the origin sent %d bytes for a blob node A holds", sent)
	}

	// What the DHT cannot serve goes to the origin, at most once per node. B asks first; a
	// public blob it then holds is found by C through the DHT.
	for _, tc := range []struct {
		name, path string
		data       []byte
		req        dfdaemon.Request
		resultB    string
		resultC    string
		copies     int64 // from the origin, for both nodes
	}{
		{"nobody holds it", "/other", other, dfdaemon.Request{Digest: digest.FromBytes(other)}, "none", "found", 1},
		{"a URL without a digest", "/file", file, dfdaemon.Request{}, "no-digest", "no-digest", 2},
		{"private content", "/private", private, dfdaemon.Request{Digest: digest.FromBytes(private), Header: http.Header{"Authorization": {"Bearer X"}}}, "none", "none", 2},
	} {
		before := o.Sent.Load()
		tc.req.URL = o.URL + tc.path
		for _, n := range []struct {
			name   string
			d      *dfdaemon.Daemon
			result string
		}{{"B", b, tc.resultB}, {"C", c, tc.resultC}} {
			was := lookups(t, n.d, n.result)
			got, _, err := fetch(ctx, n.d, tc.req)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("%s, node %s: content differs (%v)", tc.name, n.name, err)
			}
			if lookups(t, n.d, n.result) != was+1 {
				t.Errorf("%s, node %s: not counted as a %q lookup", tc.name, n.name, n.result)
			}
		}
		if sent, want := o.Sent.Load()-before, tc.copies*int64(len(tc.data)); sent != want {
			t.Errorf("%s: the origin sent %d bytes for two nodes, want %d (%d copies)", tc.name, sent, want, tc.copies)
		}
	}
}

// A holder that lies — its copy is other bytes under the blob's digest, with piece digests to
// match — cannot make a node keep or serve them: the whole-content check fails, the node holds
// nothing, the holder is no longer asked, and the next request gets the blob from the origin.
func TestLyingHolderIsDistrusted(t *testing.T) {
	blob := random(4<<20 + 1)
	want := digest.FromBytes(blob)
	o := origin.NewFiles(t, map[string][]byte{"/blob": blob})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The liar's store: other bytes of the same length, recorded as the blob, complete and public.
	dir := t.TempDir()
	store, err := piece.Open(filepath.Join(dir, "pieces"), piece.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lie := random(len(blob))
	size := int64(len(lie))
	task, err := store.Create(piece.Meta{ID: want, ContentLength: size, PieceSize: piece.SizeFor(size), Digest: want, Access: piece.AccessPublic})
	if err != nil {
		t.Fatal(err)
	}
	for i := range task.PieceCount() {
		off, n := piece.Bounds(i, size, piece.SizeFor(size))
		if _, err := task.WriteSourcePiece(i, bytes.NewReader(lie[off:off+n])); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()
	liar := runDaemon(ctx, t, dfdaemon.Config{DataDir: dir})

	node := runDaemon(ctx, t, dfdaemon.Config{Supernode: deadSupernode(t), DHT: dfdaemon.DHTConfig{BootstrapPeers: []string{bootstrapAddr(liar)}}})
	req := dfdaemon.Request{URL: o.URL + "/blob", Digest: want}
	got, _, err := fetch(ctx, node, req)
	var derr *dfdaemon.Error
	if !errors.As(err, &derr) || derr.Kind != dfdaemon.ErrDigestMismatch {
		t.Fatalf("from a lying holder: %v (read %d bytes), want a digest mismatch", err, len(got))
	}
	if o.Sent.Load() != 0 {
		t.Fatalf("the origin was asked already")
	}

	got, x, err := fetch(ctx, node, req)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("second request: content differs (%v)", err)
	}
	if x.BytesFromOrigin() != int64(len(blob)) {
		t.Errorf("second request: %d bytes from the origin, %d from peers; the liar must not be asked again", x.BytesFromOrigin(), x.BytesFromPeers())
	}
	if lookups(t, node, "none") != 1 {
		t.Errorf("second lookup: none = %v, want 1 (the liar left out)", lookups(t, node, "none"))
	}
}

// A download whose supernode dies midway, taking the seed (its only parent) with it, is
// finished by a holder found in the DHT rather than by the origin.
func TestStalledDownloadRescuedByHolders(t *testing.T) {
	blob := random(16 << 20)
	want := digest.FromBytes(blob)
	o := origin.NewFiles(t, map[string][]byte{"/blob": blob})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A holds the blob, through a supernode B never talks to.
	a := runDaemon(ctx, t, dfdaemon.Config{Supernode: runSupernode(ctx, t, supernode.Config{}).URL()})
	if _, _, err := fetch(ctx, a, dfdaemon.Request{URL: o.URL + "/blob", Digest: want}); err != nil {
		t.Fatal(err)
	}

	snCtx, stopSN := context.WithCancel(ctx)
	sn := runSupernode(snCtx, t, supernode.Config{})
	b := runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL(), DownloadRate: 4 << 20, StallTimeout: time.Second,
		DHT: dfdaemon.DHTConfig{BootstrapPeers: []string{bootstrapAddr(a)}}})
	x, err := b.Download(ctx, dfdaemon.Request{URL: o.URL + "/blob", Digest: want})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	r := x.NewReader(ctx, 0)
	head := make([]byte, 4<<20)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	if x.BytesFromPeers() >= int64(len(blob)) {
		t.Fatal("B finished before its supernode was stopped")
	}
	stopSN()
	sn.Close()
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(append(head, rest...), blob) {
		t.Fatalf("content differs (%v)", err)
	}
	if x.BytesFromOrigin() != 0 {
		t.Errorf("B took %d bytes from the origin, %d from peers; want all from peers", x.BytesFromOrigin(), x.BytesFromPeers())
	}
	if lookups(t, b, "found") != 1 {
		t.Errorf("lookups found = %v, want 1", lookups(t, b, "found"))
	}
}
