package supernode

import (
	"context"
	"crypto/rand"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/health"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/supernode/status"
)

func randomData(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func (s *Supernode) families(t *testing.T) scrape.Families {
	t.Helper()
	f, err := scrape.Gather(s.metrics.reg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func peerOf(st status.Status, id string) status.Peer {
	for _, p := range st.Peers {
		if p.ID == id {
			return p
		}
	}
	return status.Peer{}
}

// What peers report moves the metrics and the status page: bytes received from the seed and
// from another peer, per task and per peer with their rates; a failure report that counted
// marks its parent failing; a peer not heard from for half the peer TTL is late.
func TestReportsOnTheStatusPage(t *testing.T) {
	data := randomData(2 << 20)
	origin := goodOrigin(t, data)
	s := start(t, Config{Allow: loopback, PeerTTL: 2 * time.Second})
	task := snapi.TaskRequest{URL: origin.URL + "/good"}
	a, b := newPeer(t, ""), newPeer(t, "")
	ctx := context.Background()
	reg, err := a.client(s.URL()).Register(ctx, snapi.RegisterRequest{Task: task, Peer: a.info})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the seed holds the task", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.tasks[reg.Task.ID].done
	})
	// a holds everything (it says so), so b gets it as a parent beside the seed.
	if _, err := a.client(s.URL()).Sync(ctx, snapi.SyncRequest{Task: reg.Task.ID, Peer: a.info.ID, Have: 2, Complete: true, DigestsFrom: 2}); err != nil {
		t.Fatal(err)
	}
	regB, err := b.client(s.URL()).Register(ctx, snapi.RegisterRequest{Task: task, Peer: b.info})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(regB.Schedule.Parents, func(p snapi.Peer) bool { return p.ID == a.info.ID }) {
		t.Fatalf("b was not given a as a parent: %+v", regB.Schedule.Parents)
	}
	seed := string(s.seedID())
	_, err = b.client(s.URL()).Sync(ctx, snapi.SyncRequest{Task: reg.Task.ID, Peer: b.info.ID, Have: 1, DigestsFrom: 2,
		Transfers: []snapi.Transfer{{Parent: seed, Bytes: 1 << 20, Millis: 10}, {Parent: a.info.ID, Bytes: 1 << 20, Millis: 10}},
		Failures:  []snapi.Failure{{Parent: a.info.ID, Reason: snapi.FailTimeout}}})
	if err != nil {
		t.Fatal(err)
	}

	m := s.families(t)
	if m.Sum("pouch_supernode_reported_bytes_total", scrape.Labels{"from": "seed"}) != 1<<20 || m.Sum("pouch_supernode_reported_bytes_total", scrape.Labels{"from": "peer"}) != 1<<20 {
		t.Errorf("reported bytes: seed %v, peer %v", m.Sum("pouch_supernode_reported_bytes_total", scrape.Labels{"from": "seed"}), m.Sum("pouch_supernode_reported_bytes_total", scrape.Labels{"from": "peer"}))
	}
	if m.Sum("pouch_supernode_schedule_decisions_total", scrape.Labels{"call": "register"}) != 2 || m.Count("pouch_supernode_schedule_seconds", scrape.Labels{"call": "sync"}) != 2 {
		t.Errorf("decisions: %v on register, %d timed on sync", m.Sum("pouch_supernode_schedule_decisions_total", scrape.Labels{"call": "register"}),
			m.Count("pouch_supernode_schedule_seconds", scrape.Labels{"call": "sync"}))
	}
	if m.Sum("pouch_supernode_scheduler_events_total", scrape.Labels{"event": "failure"}) != 1 {
		t.Errorf("scheduler failures: %v", m.Sum("pouch_supernode_scheduler_events_total", scrape.Labels{"event": "failure"}))
	}

	st := s.snapshot()
	if len(st.Tasks) != 1 || st.Tasks[0].SeedBytes != 1<<20 || st.Tasks[0].PeerBytes != 1<<20 || st.Tasks[0].OriginBytes != int64(len(data)) ||
		!st.Tasks[0].SeedDone || st.Tasks[0].Complete != 1 || st.Tasks[0].Downloading != 1 {
		t.Errorf("task: %+v", st.Tasks)
	}
	pa, pb := peerOf(st, a.info.ID), peerOf(st, b.info.ID)
	if pb.Received != 2<<20 || pb.ReceiveBps <= 0 || pb.Health != status.HealthOK {
		t.Errorf("peer b: %+v", pb)
	}
	if pa.Sent != 1<<20 || pa.SendBps <= 0 || pa.Failures != 1 || pa.Health != status.HealthFailing || !strings.Contains(pa.Why, "failure report") {
		t.Errorf("peer a: %+v", pa)
	}
	if st.Supernode.SeedUploadBps <= 0 || !st.Supernode.Ready || st.PeersTotal != 2 {
		t.Errorf("supernode: %+v, %d peers", st.Supernode, st.PeersTotal)
	}

	// b keeps syncing; a falls silent and turns late before it expires.
	waitFor(t, "a turns late", func() bool {
		if _, err := b.client(s.URL()).Sync(ctx, snapi.SyncRequest{Task: reg.Task.ID, Peer: b.info.ID, Have: 1, DigestsFrom: 2}); err != nil {
			t.Fatal(err)
		}
		return peerOf(s.snapshot(), a.info.ID).Health == status.HealthLate
	})
	if p := peerOf(s.snapshot(), b.info.ID); p.Health != status.HealthOK {
		t.Errorf("b, which syncs: %+v", p)
	}
}

// Preheat jobs are counted as created and by the state they end in, and shown by state; their
// seeds are counted by result with the origin's bytes, one piece time per piece and the store's
// size.
func TestPreheatAndSeedMetrics(t *testing.T) {
	data := randomData(2 << 20) // four pieces of 512 KiB
	origin := goodOrigin(t, data)
	s := start(t, Config{Allow: loopback})
	good := createJob(t, s, snapi.PreheatRequest{URL: origin.URL + "/good"})
	bad := createJob(t, s, snapi.PreheatRequest{URL: origin.URL + "/missing"})
	waitJob(t, s, good.ID, nil)
	waitJob(t, s, bad.ID, nil)
	m := s.families(t)
	for _, miss := range m.Unmet(
		scrape.Want("pouch_supernode_preheat_jobs_created_total", nil, 2),
		scrape.Want("pouch_supernode_preheat_jobs_ended_total", scrape.Labels{"state": "SUCCESS"}, 1),
		scrape.Want("pouch_supernode_preheat_jobs_ended_total", scrape.Labels{"state": "FAILED"}, 1),
		scrape.Want("pouch_supernode_preheat_jobs", scrape.Labels{"state": "SUCCESS"}, 1),
		scrape.Want("pouch_supernode_preheat_jobs", scrape.Labels{"state": "FAILED"}, 1),
		scrape.Want("pouch_supernode_preheat_jobs", scrape.Labels{"state": "RUNNING"}, 0),
		scrape.Want("pouch_supernode_seeds_total", scrape.Labels{"result": "success"}, 1),
		scrape.Want("pouch_supernode_seeds_total", scrape.Labels{"result": "failed"}, 1),
		scrape.Want("pouch_supernode_origin_bytes_total", nil, float64(len(data))),
		scrape.Want("pouch_supernode_store_bytes", nil, float64(len(data))),
	) {
		t.Errorf("%s", miss)
	}
	if n, want := m.Count("pouch_supernode_seed_piece_seconds", nil), piece.Count(int64(len(data)), piece.SizeFor(int64(len(data)))); n != uint64(want) {
		t.Errorf("%d seed piece times, want one per piece (%d)", n, want)
	}
	if st := s.snapshot(); len(st.Preheats) != 2 || st.Preheats[0].ID != bad.ID {
		t.Errorf("status page preheats: %+v", st.Preheats)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := scrape.Probe(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// The supernode is ready once it serves with its store open, not before Run nor after Close,
// and names the failing checks. With MetricsListen its metrics and probes are served there too,
// and nothing else.
func TestReadiness(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := health.Failing(s.ready.Run(context.Background())); !slices.Equal(got, []string{"api"}) {
		t.Errorf("before Run, failing: %v, want [api]", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	metrics := "http://" + s.MetricsAddr()
	waitFor(t, "ready", func() bool {
		code, _ := get(t, s.URL()+"/readyz")
		return code == http.StatusOK
	})
	if code, body := get(t, metrics+"/readyz"); code != http.StatusOK || body != "[+]store ok\n[+]api ok\n[+]p2p ok\nready\n" {
		t.Errorf("/readyz on the metrics listener: %d %q", code, body)
	}
	for _, base := range []string{metrics, s.URL()} {
		if code, body := get(t, base+"/metrics"); code != http.StatusOK || !strings.Contains(body, "pouch_supernode_tasks") {
			t.Errorf("%s/metrics: %d", base, code)
		}
		if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
			t.Errorf("%s/healthz: %d", base, code)
		}
	}
	for _, path := range []string{"/", snapi.PathTasks, status.PathStatus} {
		if code, _ := get(t, metrics+path); code != http.StatusNotFound {
			t.Errorf("%s on the metrics listener: %d, want 404", path, code)
		}
	}
	cancel()
	<-done
	if got := health.Failing(s.ready.Run(context.Background())); !slices.Equal(got, []string{"store", "api", "p2p"}) {
		t.Errorf("after Run, failing: %v, want [store api p2p]", got)
	}
}

// Garbage collection of the seed's store is counted: the runs, the evicted task and its bytes,
// the store emptied; the quota is exported.
func TestGCMetrics(t *testing.T) {
	data := randomData(2 << 20)
	origin := goodOrigin(t, data)
	s := start(t, Config{Allow: loopback, GC: GCConfig{High: 1 << 30, TTL: time.Millisecond, Interval: 50 * time.Millisecond}})
	p := newPeer(t, "")
	id := seeded(t, s, p, origin.URL+"/good", data)
	if err := p.client(s.URL()).Leave(context.Background(), snapi.LeaveRequest{Task: id, Peer: p.info.ID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the seed's task is evicted", func() bool {
		return s.families(t).Sum("pouch_supernode_gc_evicted_tasks_total", nil) == 1
	})
	m := s.families(t)
	for _, miss := range m.Unmet(
		scrape.Want("pouch_supernode_gc_evicted_bytes_total", nil, float64(len(data))),
		scrape.Want("pouch_supernode_store_bytes", nil, 0),
		scrape.Want("pouch_supernode_store_quota_bytes", nil, 1<<30),
		scrape.Want("pouch_supernode_gc_runs_total", scrape.Labels{"result": "error"}, 0),
		scrape.Want("pouch_supernode_spool_bytes", nil, 0),
	) {
		t.Errorf("%s", miss)
	}
	if m.Sum("pouch_supernode_gc_runs_total", scrape.Labels{"result": "ok"}) == 0 {
		t.Error("no garbage collection counted")
	}
}
