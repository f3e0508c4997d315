package e2e

import (
	"context"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pouch-p2p/pouch/internal/scrape"
)

// bootstrapPeer is a --bootstrap-peers entry for the dfdaemon p with data directory dir: its
// first libp2p address and the peer ID of the identity it keeps there.
func bootstrapPeer(t *testing.T, p *proc, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.P2P) == 0 {
		t.Fatalf("%s printed no libp2p address", p.Name)
	}
	return p.P2P[0] + "/p2p/" + id.String()
}

// With the only supernode killed (SIGKILL), a blob one node holds reaches two others through the
// DHT without a byte from the origin, C finding A through B; a blob nobody holds and a URL
// without a digest go to the origin, at most once per node.
func TestSupernodeDownHoldersFoundInDHT(t *testing.T) {
	const size = 24 << 20
	blob, unheld, file := randomBytes(t, size), randomBytes(t, 8<<20), randomBytes(t, 8<<20)
	o := origin.NewFiles(t, map[string][]byte{"/blob": blob, "/unheld": unheld, "/file": file})
	root, out := t.TempDir(), t.TempDir()
	for _, dir := range []string{"blob", "unheld"} {
		if err := os.Mkdir(filepath.Join(out, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sn := start(t, "supernode", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(root, "sn"), "--allow-networks", "127.0.0.0/8", "--log-level", "debug")
	daemon := func(name string, extra ...string) *proc {
		args := append([]string{"--supernode", "http://" + sn.HTTP, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(root, name),
			"--allow-networks", "127.0.0.0/8", "--log-level", "debug"}, extra...)
		return start(t, "dfdaemon "+name, args...)
	}
	a := daemon("A")
	b := daemon("B", "--bootstrap-peers", bootstrapPeer(t, a, filepath.Join(root, "A")))
	c := daemon("C", "--bootstrap-peers", bootstrapPeer(t, b, filepath.Join(root, "B")))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	get := func(p *proc, path, dst string, args ...string) {
		t.Helper()
		if code, msg := dfget(ctx, append([]string{o.URL + path, "-O", filepath.Join(out, dst), "--daemon", "http://" + p.HTTP}, args...)...); code != 0 {
			t.Fatalf("dfget %s on %s: exit %d: %s", path, p.Name, code, msg)
		}
	}
	get(a, "/blob", "a-blob", "--digest", sha(blob))
	get(a, "/file", "a-file")

	sn.Cmd.Process.Signal(syscall.SIGKILL)
	sn.Cmd.Wait()
	sent, requests := o.Sent.Load(), o.Requests.Load()

	bc := []*proc{b, c}
	codes, msgs := burst(ctx, bc, o.URL+"/blob", filepath.Join(out, "blob"), "--digest", sha(blob))()
	checkCopies(t, codes, msgs, filepath.Join(out, "blob"), blob)
	if got, reqs := o.Sent.Load()-sent, o.Requests.Load()-requests; got != 0 || reqs != 0 {
		t.Errorf("the origin sent %d bytes in %d requests for a blob node A holds; want none", got, reqs)
	}
	for _, p := range bc {
		if got := metric(t, p, "pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "peer"}); got != size {
			t.Errorf("%s got %v bytes from peers, want %d", p.Name, got, size)
		}
		if got := metric(t, p, "pouch_dfdaemon_dht_lookups_total", scrape.Labels{"result": "found"}); got != 1 {
			t.Errorf("%s: %v lookups found holders, want 1", p.Name, got)
		}
	}

	// Nobody holds it: both nodes ask at once, and each goes to the origin (or, if one
	// finishes first, the other finds it) — never more than one copy per node.
	sent = o.Sent.Load()
	codes, msgs = burst(ctx, bc, o.URL+"/unheld", filepath.Join(out, "unheld"), "--digest", sha(unheld))()
	checkCopies(t, codes, msgs, filepath.Join(out, "unheld"), unheld)
	if got := o.Sent.Load() - sent; got < int64(len(unheld)) || got > 2*int64(len(unheld)) {
		t.Errorf("a blob nobody holds: the origin sent %d bytes for two nodes, want one or two copies of %d", got, len(unheld))
	}

	// A URL without a digest: nothing to check a holder's copy against, so the origin, although
	// A holds it.
	sent = o.Sent.Load()
	get(b, "/file", "b-file")
	if got := fileSHA(t, filepath.Join(out, "b-file")); got != sha(file) {
		t.Errorf("B's file: %s, want %s", got, sha(file))
	}
	if got := o.Sent.Load() - sent; got != int64(len(file)) {
		t.Errorf("a URL without a digest: the origin sent %d bytes, want one copy (%d)", got, len(file))
	}
	if got := metric(t, b, "pouch_dfdaemon_dht_lookups_total", scrape.Labels{"result": "no-digest"}); got != 1 {
		t.Errorf("B: %v lookups skipped for want of a digest, want 1", got)
	}
}
