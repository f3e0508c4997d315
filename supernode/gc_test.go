package supernode

import (
	"bytes"
	"context"
	"errors"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/supernode/preheat"
)

// seeded registers peer for url and waits until the seed holds the whole task.
func seeded(t *testing.T, s *Supernode, p testPeer, url string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	if _, err := p.client(s.URL()).Register(context.Background(), snapi.RegisterRequest{Task: snapi.TaskRequest{URL: url, Digest: d}, Peer: p.info}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the seed holds "+url, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.tasks[d].done && !s.tasks[d].running
	})
	return d
}

func (s *Supernode) known(id digest.Digest) bool {
	s.mu.Lock()
	_, ok := s.tasks[id]
	s.mu.Unlock()
	_, err := s.store.Task(id)
	return ok && err == nil
}

// GC evicts the seed's tasks past their TTL, or least recently used above the quota, but never
// one in use: a peer still downloading it, or an unfinished preheat job naming it. A task whose
// peers are all complete is not in use: they serve it themselves. An evicted task is fetched
// again by the next registration.
func TestGCKeepsTasksInUse(t *testing.T) {
	files := map[string][]byte{"/done": bytes.Repeat([]byte("d"), 2<<20), "/busy": bytes.Repeat([]byte("b"), 2<<20), "/job": bytes.Repeat([]byte("j"), 2<<20)}
	o := origin.NewFiles(t, files)
	s := start(t, Config{Allow: loopback})
	ps := newPeers(t, s.URL())
	done := seeded(t, s, ps.get("a"), o.URL+"/done", files["/done"])
	busy := seeded(t, s, ps.get("b"), o.URL+"/busy", files["/busy"])
	job := seeded(t, s, ps.get("c"), o.URL+"/job", files["/job"])
	// a and c completed their downloads; b is still downloading.
	for _, x := range []struct {
		peer string
		task digest.Digest
	}{{"a", done}, {"c", job}} {
		if _, err := ps.client(x.peer).Sync(context.Background(), snapi.SyncRequest{Task: x.task, Peer: ps.info(x.peer).ID, Have: 2, Complete: true}); err != nil {
			t.Fatal(err)
		}
	}
	s.preheat.mu.Lock()
	s.preheat.jobs["running"] = &jobRun{job: &preheat.Job{ID: "running", State: snapi.StateRunning, Tasks: []preheat.Task{{ID: job}}}, changed: make(chan struct{})}
	s.preheat.mu.Unlock()

	s.collect(time.Now().Add(time.Hour), piece.GCPolicy{TTL: time.Minute})
	if s.known(done) {
		t.Error("a task past its TTL whose peers are all complete was kept")
	}
	if !s.known(busy) {
		t.Error("a task a peer is still downloading was evicted")
	}
	if !s.known(job) {
		t.Error("a task an unfinished preheat job names was evicted")
	}

	seeded(t, s, ps.get("d"), o.URL+"/done", files["/done"])
	if n := o.Hits("/done"); n != 2 {
		t.Errorf("the evicted task was fetched %d times, want twice (once again after the eviction)", n)
	}
}

// Above the high watermark, GC evicts the least recently used tasks not in use until the store is
// under the low one.
func TestGCQuota(t *testing.T) {
	files := map[string][]byte{"/old": bytes.Repeat([]byte("o"), 2<<20), "/new": bytes.Repeat([]byte("n"), 2<<20)}
	o := origin.NewFiles(t, files)
	s := start(t, Config{Allow: loopback})
	ps := newPeers(t, s.URL())
	old := seeded(t, s, ps.get("a"), o.URL+"/old", files["/old"])
	time.Sleep(10 * time.Millisecond) // the store orders by access time
	recent := seeded(t, s, ps.get("a"), o.URL+"/new", files["/new"])
	for _, id := range []digest.Digest{old, recent} {
		ps.client("a").Sync(context.Background(), snapi.SyncRequest{Task: id, Peer: ps.info("a").ID, Have: 2, Complete: true})
	}
	s.collect(time.Now(), piece.GCPolicy{HighWatermark: 3 << 20, LowWatermark: 2 << 20})
	if s.known(old) || !s.known(recent) {
		t.Errorf("over the quota: old kept %v, recent kept %v; want the least recently used evicted only", s.known(old), s.known(recent))
	}
	if u := s.store.Usage(); u > 2<<20 {
		t.Errorf("store holds %d bytes after GC, low watermark %d", u, 2<<20)
	}
}

// An origin without Content-Length is spooled within --spool-max: beyond it the registration is
// refused with a message naming the cap, the peer takes the supernode as unavailable (it goes
// to the next one or to the origin itself), and later registrations do not spool it again.
func TestSpoolCap(t *testing.T) {
	data := bytes.Repeat([]byte("chunked!"), 1<<18) // 2 MiB
	var gets atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.WriteHeader(http.StatusOK) // no Content-Length: chunked
		io.Copy(w, bytes.NewReader(data))
	}))
	t.Cleanup(o.Close)
	s := start(t, Config{Allow: loopback, SpoolMax: 1 << 20})
	a := newPeer(t, "")
	req := snapi.RegisterRequest{Task: snapi.TaskRequest{URL: o.URL + "/stream"}, Peer: a.info}
	status, e, _ := post(t, s.URL()+snapi.PathRegister, req, a.signer)
	if status != http.StatusInsufficientStorage || e.Code != apierr.CodeLocal || !strings.Contains(e.Message, "cap 1048576 bytes") || !strings.Contains(e.Message, "--spool-max") {
		t.Fatalf("register beyond the spool cap: %d %s %q; want 507 local naming the cap and --spool-max", status, e.Code, e.Message)
	}
	if _, err := a.client(s.URL()).Register(context.Background(), req); !errors.Is(err, snapi.ErrUnavailable) {
		t.Errorf("the client sees %v, want the supernode unavailable", err)
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("the origin was asked %d times, want once: a refused content is not spooled again", n)
	}
	if u := s.spool.Used(); u != 0 {
		t.Errorf("%d bytes still counted as spooled", u)
	}
}
