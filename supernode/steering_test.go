package supernode

import (
	"bytes"
	"context"
	"errors"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/piece"
)

// goodOrigin serves data at /good, 404 elsewhere.
func goodOrigin(t *testing.T, data []byte) *origin.Files {
	return origin.NewFiles(t, map[string][]byte{"/good": data})
}

// metric reads one of s's metrics. Gathering runs the gauges, which take s.mu: never call it
// with s.mu held.
func (s *Supernode) metric(t *testing.T, name string, labels scrape.Labels) float64 {
	t.Helper()
	f, err := scrape.Gather(s.metrics.reg)
	if err != nil {
		t.Fatal(err)
	}
	return f.Sum(name, labels)
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.Until(t, 20*time.Second, what, cond)
}

// A digest registered first with a dead URL: the seed fails. The next registration, with a good
// URL and its own headers, retries the seed and takes the task out of "back to source": peers
// get the seed as parent and the origin serves the content once. The headers are not kept.
func TestFailedSeedIsRetriedAndClearsBackToSource(t *testing.T) {
	data := bytes.Repeat([]byte("retry"), 400_000)
	o := goodOrigin(t, data)
	s := start(t, Config{Allow: loopback})
	ps := newPeers(t, s.URL())
	ctx := context.Background()
	d := digest.FromBytes(data)

	_, err := ps.client("a").Register(ctx, snapi.RegisterRequest{Task: snapi.TaskRequest{URL: o.URL + "/dead", Digest: d}, Peer: ps.info("a")})
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.CodeOriginStatus || ae.OriginStatus != 404 {
		t.Fatalf("register with a dead URL: %v, want the origin's 404", err)
	}
	good := snapi.TaskRequest{URL: o.URL + "/good", Digest: d, Header: http.Header{"Authorization": {"Bearer secret"}}}
	for _, name := range []string{"b", "c"} {
		resp, err := ps.client(name).Register(ctx, snapi.RegisterRequest{Task: good, Peer: ps.info(name)})
		if err != nil {
			t.Fatalf("register %s with the good URL: %v", name, err)
		}
		if resp.Schedule.BackToSource || !slices.ContainsFunc(resp.Schedule.Parents, func(p snapi.Peer) bool { return p.Seed }) {
			t.Fatalf("peer %s after the seed's retry: %+v; want the seed as parent, not back to source", name, resp.Schedule)
		}
	}
	waitFor(t, "the seed completes", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.tasks[d].done && !s.tasks[d].running
	})
	if n := o.Hits("/good"); n != 1 {
		t.Errorf("the origin served the content %d times, want once", n)
	}
	s.mu.Lock()
	h := s.tasks[d].req.Header
	s.mu.Unlock()
	if h != nil {
		t.Errorf("the seed is done but the request's headers are still in memory: %v", h)
	}
}

// Tasks whose seed failed before storing anything are bounded in number and expire.
func TestFailedTasksAreBoundedAndExpire(t *testing.T) {
	o := goodOrigin(t, nil)
	s := start(t, Config{Allow: loopback, MaxFailedTasks: 3, FailedTaskTTL: 100 * time.Millisecond, PeerTTL: 200 * time.Millisecond})
	ps := newPeers(t, s.URL())
	tasks := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.tasks)
	}
	for i := range 6 {
		_, err := ps.client("a").Register(context.Background(), snapi.RegisterRequest{
			Task: snapi.TaskRequest{URL: o.URL + "/dead/" + string(rune('a'+i)), Header: http.Header{"Cookie": {"x"}}}, Peer: ps.info("a")})
		if err == nil {
			t.Fatal("a dead URL registered")
		}
		if n := tasks(); n > 3 {
			t.Fatalf("%d failed tasks remembered, bound is 3", n)
		}
	}
	waitFor(t, "failed tasks expire", func() bool { return tasks() == 0 })
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.sched.Stats(); st.Tasks != 0 {
		t.Errorf("the scheduler still holds %d tasks of forgotten failures", st.Tasks)
	}
}

// Corrupt reports: only from a peer scheduled to that parent and with a piece index; the seed is
// never blocked for others, its piece is re-hashed, and dropped and refetched only when its
// stored copy really fails its digest.
func TestCorruptReportsAboutTheSeed(t *testing.T) {
	data := bytes.Repeat([]byte("seed!"), 900_000) // 4.5 MB (4.3 MiB): 9 pieces of 512 KiB
	o := goodOrigin(t, data)
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir, Allow: loopback})
	ps := newPeers(t, s.URL())
	ctx := context.Background()
	task := snapi.TaskRequest{URL: o.URL + "/good", Digest: digest.FromBytes(data)}
	for _, name := range []string{"a", "b", "c"} {
		if _, err := ps.client(name).Register(ctx, snapi.RegisterRequest{Task: task, Peer: ps.info(name)}); err != nil {
			t.Fatal(err)
		}
	}
	id := task.Digest
	waitFor(t, "the seed completes", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.tasks[id].done && !s.tasks[id].running
	})
	seed := string(s.seedID())
	sync := func(peer string, f ...snapi.Failure) snapi.SyncResponse {
		t.Helper()
		resp, err := ps.client(peer).Sync(ctx, snapi.SyncRequest{Task: id, Peer: ps.info(peer).ID, Failures: f})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	hasSeed := func(r snapi.SyncResponse) bool {
		return slices.ContainsFunc(r.Schedule.Parents, func(p snapi.Peer) bool { return p.ID == seed })
	}
	verdict := func(v string) float64 {
		return s.metric(t, "pouch_supernode_failure_reports_total", scrape.Labels{"reason": "corrupt", "verdict": v})
	}

	// No piece index, or one out of range: ignored.
	sync("a", snapi.Failure{Parent: seed, Reason: snapi.FailCorrupt}, snapi.CorruptPiece(seed, 99))
	if verdict("ignored") != 2 || verdict("counted") != 0 {
		t.Fatalf("reports without a valid piece: ignored %v, counted %v", verdict("ignored"), verdict("counted"))
	}
	// A parent a was never given: ignored.
	sync("a", snapi.CorruptPiece(ps.info("nobody").ID, 0))
	if verdict("ignored") != 3 {
		t.Fatalf("report about a stranger: ignored %v", verdict("ignored"))
	}
	// a reports the seed's intact piece 1: a loses the seed, nobody else does, nothing dropped.
	if r := sync("a", snapi.CorruptPiece(seed, 1)); hasSeed(r) {
		t.Fatalf("a still has the seed it reported corrupt: %+v", r.Schedule)
	}
	waitFor(t, "the seed's piece 1 is re-hashed", func() bool {
		s.mu.Lock()
		checking := s.tasks[id].checking[1]
		s.mu.Unlock()
		return verdict("counted") == 1 && !checking
	})
	if r := sync("b"); !hasSeed(r) {
		t.Fatalf("b lost the seed after a's report: %+v", r.Schedule)
	}
	if n := s.metric(t, "pouch_supernode_seed_pieces_dropped_total", nil); n != 0 {
		t.Fatalf("an intact piece was dropped (%v)", n)
	}

	// The seed's piece 2 rots on disk; b reports it: dropped and fetched again from the origin.
	files, _ := filepath.Glob(filepath.Join(dir, "pieces", "data", "*"))
	if len(files) != 1 {
		t.Fatalf("want the seed's one data file, found %v", files)
	}
	f, err := os.OpenFile(files[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := 2*piece.SizeFor(int64(len(data))) + 7 // in piece 2
	if _, err := f.WriteAt([]byte{^data[off]}, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := o.Hits("/good")
	sync("b", snapi.CorruptPiece(seed, 2))
	waitFor(t, "the rotten piece is dropped and refetched", func() bool {
		s.mu.Lock()
		settled := !s.tasks[id].checking[2] && !s.tasks[id].running && s.tasks[id].ptask.Complete()
		s.mu.Unlock()
		return settled && s.metric(t, "pouch_supernode_seed_pieces_dropped_total", nil) == 1
	})
	if o.Hits("/good") != before+1 {
		t.Errorf("the origin was asked %d times for the refetch, want once", o.Hits("/good")-before)
	}
	got, err := s.tasks[id].ptask.Sum()
	if err != nil || got != id {
		t.Fatalf("after the refetch the seed's copy hashes to %s (%v), want %s", got, err, id)
	}
	if r := sync("c"); !hasSeed(r) {
		t.Fatalf("c lost the seed after two reporters: the seed must never be blocked by reports: %+v", r.Schedule)
	}
}

// peers gives each name a test uses its own libp2p identity, and a client that signs as it: the
// supernode takes a call about a peer only from that peer.
type peers struct {
	t    *testing.T
	base string
	m    map[string]testPeer
}

func newPeers(t *testing.T, base string) *peers {
	return &peers{t: t, base: base, m: map[string]testPeer{}}
}

func (p *peers) get(name string) testPeer {
	tp, ok := p.m[name]
	if !ok {
		tp = newPeer(p.t, "")
		p.m[name] = tp
	}
	return tp
}

func (p *peers) info(name string) snapi.Peer { return p.get(name).info }

func (p *peers) client(name string) *snapi.Client { return p.get(name).client(p.base) }
