package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	digest "github.com/opencontainers/go-digest"
	"go.uber.org/goleak"

	p2p "github.com/pouch-p2p/pouch/internal/peer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestCID(t *testing.T) {
	t.Parallel()
	// The CID IPFS gives the six bytes "foobar" stored as one raw block (`ipfs add --raw-leaves
	// --cid-version 1`): the key of content is the CID of that content.
	c, err := CID(digest.FromString("foobar"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.String(), "bafkreigdvoh7cnza5cwzar65hfdgwpejotszfqx2ha6uuolaofgk54ge6i"; got != want {
		t.Errorf("CID of sha256(foobar) = %s, want %s", got, want)
	}
	if c.Prefix().Codec != 0x55 {
		t.Errorf("codec %#x, want raw (0x55)", c.Prefix().Codec)
	}

	c512, err := CID(digest.SHA512.FromString("foobar"))
	if err != nil {
		t.Fatal(err)
	}
	if c512.Prefix().MhType != 0x13 || c512.Equals(c) {
		t.Errorf("sha512 CID %s has multihash type %#x, want sha2-512 (0x13)", c512, c512.Prefix().MhType)
	}

	for _, bad := range []digest.Digest{"", "sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:" + digest.Digest(slices.Repeat([]byte("z"), 64))} {
		if _, err := CID(bad); !errors.Is(err, ErrDigest) {
			t.Errorf("CID(%q) = %v, want ErrDigest", bad, err)
		}
	}
}

// node is one peer of a test network: a real libp2p host with its DHT running.
type node struct {
	h    host.Host
	d    *DHT
	stop func() // stops the DHT and closes the host; the test's cleanup calls it too
}

func (n node) info() peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()} }

// startNode starts a host (with the cluster secret, if any) and its DHT, stopped at the end of
// the test.
func startNode(t *testing.T, secret string, cfg Config) node {
	t.Helper()
	h, err := p2p.NewHost(p2p.HostConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(h, cfg)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	stop := sync.OnceFunc(func() {
		cancel()
		wg.Wait()
		d.Close()
		h.Close()
	})
	t.Cleanup(stop)
	return node{h: h, d: d, stop: stop}
}

// network starts n peers that all bootstrap from the first.
func network(t *testing.T, n int, secret string) []node {
	first := startNode(t, secret, Config{})
	nodes := []node{first}
	for range n - 1 {
		nodes = append(nodes, startNode(t, secret, Config{Bootstrap: []peer.AddrInfo{first.info()}}))
	}
	return nodes
}

// provide makes n a provider of dg and announces it to the network before returning.
func provide(t *testing.T, n node, dg digest.Digest) {
	t.Helper()
	if err := n.d.Provide(dg); err != nil {
		t.Fatal(err)
	}
	if err := n.d.announce(context.Background(), dg); err != nil {
		t.Fatalf("announce %s: %v", dg, err)
	}
}

func find(t *testing.T, n node, dg digest.Digest) []peer.ID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	found, err := n.d.FindProviders(ctx, dg, 4)
	if err != nil {
		t.Fatal(err)
	}
	var ids []peer.ID
	for _, ai := range found {
		if len(ai.Addrs) == 0 {
			t.Errorf("provider %s came without addresses", ai.ID)
		}
		ids = append(ids, ai.ID)
	}
	return ids
}

// Many real peers in one process: a provider is found by every other one, including those
// that never connected to it, and still after it is gone (its record lives on the peers closest
// to the key); content nobody provides is found nowhere.
func TestFindProviders(t *testing.T) {
	t.Parallel()
	nodes := network(t, 16, "")
	blob := digest.FromString("a layer")
	provider := nodes[7]
	provide(t, provider, blob)

	for i, n := range nodes {
		got := find(t, n, blob)
		if n.h.ID() == provider.h.ID() {
			if len(got) != 0 {
				t.Errorf("the provider finds %v, want nobody but itself (left out)", got)
			}
			continue
		}
		if !slices.Equal(got, []peer.ID{provider.h.ID()}) {
			t.Errorf("node %d finds %v, want the provider %s", i, got, provider.h.ID())
		}
	}
	if got := find(t, nodes[3], digest.FromString("nobody holds this")); len(got) != 0 {
		t.Errorf("content nobody provides: found %v", got)
	}

	// A second provider of the same content: both are found.
	second := nodes[12]
	provide(t, second, blob)
	if got := find(t, nodes[1], blob); len(got) != 2 {
		t.Errorf("two providers: found %v", got)
	}

	// The first provider goes away: its record is on the peers closest to the key, not only on
	// itself, so it is still found (a child then fails to reach it and moves on).
	provider.stop()
	if got := find(t, nodes[1], blob); !slices.Contains(got, provider.h.ID()) || !slices.Contains(got, second.h.ID()) {
		t.Errorf("after the first provider stopped: found %v, want both records", got)
	}
}

// A peer with no bootstrap peer configured joins through one it learned from a schedule.
func TestLearnedPeerBootstraps(t *testing.T) {
	t.Parallel()
	nodes := network(t, 4, "")
	blob := digest.FromString("learned")
	provide(t, nodes[2], blob)

	loner := startNode(t, "", Config{})
	if got := find(t, loner, blob); len(got) != 0 {
		t.Fatalf("a peer that knows nobody found %v", got)
	}
	loner.d.Learn(nodes[0].info())
	if got := find(t, loner, blob); !slices.Equal(got, []peer.ID{nodes[2].h.ID()}) {
		t.Errorf("after learning a peer: found %v, want %s", got, nodes[2].h.ID())
	}
}

// With a cluster secret, a peer without it cannot join, so it never learns who holds what.
func TestOutsiderFindsNothing(t *testing.T) {
	t.Parallel()
	nodes := network(t, 4, "cluster secret")
	blob := digest.FromString("members only")
	provide(t, nodes[1], blob)
	if got := find(t, nodes[3], blob); !slices.Equal(got, []peer.ID{nodes[1].h.ID()}) {
		t.Fatalf("a member found %v, want %s", got, nodes[1].h.ID())
	}
	outsider := startNode(t, "another secret", Config{Bootstrap: []peer.AddrInfo{nodes[0].info()}})
	if got := find(t, outsider, blob); len(got) != 0 {
		t.Errorf("an outsider found %v", got)
	}
	if n := outsider.d.Stats().RoutingTable; n != 0 {
		t.Errorf("an outsider has %d peers in its routing table", n)
	}
}

// A key whose content the node no longer holds is dropped at its next announcement.
func TestKeysNotHeldAreDropped(t *testing.T) {
	t.Parallel()
	held := digest.FromString("held")
	gone := digest.FromString("evicted")
	n := startNode(t, "", Config{Holding: func(d digest.Digest) bool { return d == held }})
	for _, d := range []digest.Digest{held, gone} {
		if err := n.d.Provide(d); err != nil {
			t.Fatal(err)
		}
	}
	n.d.announceDue(context.Background())
	n.d.mu.Lock()
	_, keepsHeld := n.d.keys[held]
	_, keepsGone := n.d.keys[gone]
	n.d.mu.Unlock()
	if !keepsHeld || keepsGone {
		t.Errorf("after an announcement round: provides held=%v evicted=%v, want true false", keepsHeld, keepsGone)
	}
	// Alone, the announcement failed and counts as such; the key stays to be retried.
	if s := n.d.Stats(); s.Provided != 1 || s.Failed != 1 || s.Announced != 0 {
		t.Errorf("stats %+v, want 1 provided, 1 failed announcement", s)
	}
	// Providing a held key again (a cached task read again) does not hurry its next announcement.
	n.d.mu.Lock()
	next := n.d.keys[held]
	n.d.mu.Unlock()
	if err := n.d.Provide(held); err != nil {
		t.Fatal(err)
	}
	n.d.mu.Lock()
	again := n.d.keys[held]
	n.d.mu.Unlock()
	if next.IsZero() || !again.Equal(next) {
		t.Errorf("next announcement %v, after providing again %v: want it unchanged and set", next, again)
	}
	n.d.StopProviding(held)
	if s := n.d.Stats(); s.Provided != 0 {
		t.Errorf("after StopProviding: %d keys provided", s.Provided)
	}
}

// BenchmarkStart is what joining the DHT costs a peer at start: the DHT on an existing host,
// then closed.
func BenchmarkStart(b *testing.B) {
	h, err := p2p.NewHost(p2p.HostConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	for b.Loop() {
		d, err := New(h, Config{})
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

// BenchmarkAnnounce is one provider record put on the peers closest to a key, in a network of
// 16 peers on loopback: what a peer pays for each task it completes, and again every
// Reprovide. Lookups of the key by another peer are reported too.
func BenchmarkAnnounce(b *testing.B) {
	nodes := benchNetwork(b, 16)
	provider, asker := nodes[5], nodes[11]
	var keys []digest.Digest
	for b.Loop() {
		k := digest.FromString(fmt.Sprint("key ", len(keys)))
		keys = append(keys, k)
		if err := provider.d.Provide(k); err != nil {
			b.Fatal(err)
		}
		if err := provider.d.announce(context.Background(), k); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	start := time.Now()
	for _, k := range keys {
		if got, err := asker.d.FindProviders(context.Background(), k, 1); err != nil || len(got) != 1 {
			b.Fatalf("lookup of %s: %v %v", k, got, err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(len(keys)), "µs/lookup")
}

func benchNetwork(b *testing.B, n int) []node {
	var nodes []node
	for i := range n {
		h, err := p2p.NewHost(p2p.HostConfig{})
		if err != nil {
			b.Fatal(err)
		}
		var boot []peer.AddrInfo
		if i > 0 {
			boot = []peer.AddrInfo{nodes[0].info()}
		}
		d, err := New(h, Config{Bootstrap: boot})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { d.Run(ctx) })
		b.Cleanup(func() { cancel(); wg.Wait(); d.Close(); h.Close() })
		nodes = append(nodes, node{h: h, d: d})
	}
	// Every peer joined before the clock starts.
	for _, n := range nodes {
		if !n.d.joined(context.Background()) {
			b.Fatal("a peer did not join")
		}
	}
	return nodes
}
