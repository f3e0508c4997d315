package supernode

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/pouch-p2p/pouch/internal/snapi"
)

// stalledWriter is a peer that stops reading its answer: its first Write blocks until release
// is closed, as a write to a full socket does.
type stalledWriter struct {
	header  http.Header
	status  int
	body    bytes.Buffer
	writing chan struct{} // closed at the first Write
	release chan struct{}
	once    sync.Once
}

func newStalledWriter() *stalledWriter {
	return &stalledWriter{header: http.Header{}, status: http.StatusOK, writing: make(chan struct{}), release: make(chan struct{})}
}

func (w *stalledWriter) Header() http.Header  { return w.header }
func (w *stalledWriter) WriteHeader(code int) { w.status = code }
func (w *stalledWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { close(w.writing) })
	<-w.release
	return w.body.Write(b)
}

// A peer that stops reading its answer (the registration's carries every piece digest) holds
// nothing other peers wait for: while its answer is being written, the supernode's lock is free
// and another peer registers, syncs and leaves. Register and sync are both checked.
func TestSlowReaderBlocksNoOtherPeer(t *testing.T) {
	s := start(t, Config{Allow: loopback})
	origin := fileOrigin(t)
	slow, other := newPeer(t, ""), newPeer(t, "")
	content := bytes.Repeat([]byte("pouch"), 1000) // fileOrigin's
	treq := snapi.TaskRequest{URL: origin.URL + "/blob", Digest: seeded(t, s, other, origin.URL+"/blob", content)}
	h := s.routes()
	ctx := context.Background()

	for _, c := range []struct {
		path string
		body any
	}{
		{snapi.PathRegister, snapi.RegisterRequest{Task: treq, Peer: slow.info}},
		{snapi.PathSync, func() snapi.SyncRequest {
			reg, err := slow.client(s.URL()).Register(ctx, snapi.RegisterRequest{Task: treq, Peer: slow.info})
			if err != nil {
				t.Fatal(err)
			}
			return snapi.SyncRequest{Task: reg.Task.ID, Peer: slow.info.ID}
		}()},
	} {
		data, err := json.Marshal(c.body)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, c.path, bytes.NewReader(data))
		if _, err := slow.signer.Sign(req, data); err != nil {
			t.Fatal(err)
		}
		w := newStalledWriter()
		served := make(chan struct{})
		go func() { defer close(served); h.ServeHTTP(w, req) }()
		<-w.writing

		// The lock is free while the slow peer's answer is written: any other peer's call gets it.
		locked := !s.mu.TryLock()
		if !locked {
			s.mu.Unlock()
		}
		if locked {
			close(w.release) // let the old code's handler return before failing
			<-served
			t.Fatalf("%s: the supernode's lock is held while a peer's answer is written", c.path)
		}
		oc := other.client(s.URL())
		reg, err := oc.Register(ctx, snapi.RegisterRequest{Task: treq, Peer: other.info})
		if err != nil {
			t.Fatalf("%s: another peer's registration while an answer stalls: %v", c.path, err)
		}
		if _, err := oc.Sync(ctx, snapi.SyncRequest{Task: reg.Task.ID, Peer: other.info.ID, DigestsFrom: len(reg.Task.Digests)}); err != nil {
			t.Fatalf("%s: another peer's sync while an answer stalls: %v", c.path, err)
		}

		close(w.release)
		<-served
		if w.status != http.StatusOK {
			t.Fatalf("%s: the slow peer's answer is %d: %s", c.path, w.status, w.body.String())
		}
		var got struct {
			Task snapi.TaskInfo `json:"task"`
		}
		if err := json.Unmarshal(w.body.Bytes(), &got); err != nil {
			t.Fatalf("%s: the slow peer's answer: %v", c.path, err)
		}
		if got.Task.ID != treq.Digest || got.Task.ContentLength != int64(len(content)) || len(got.Task.Digests) != 1 {
			t.Errorf("%s: the slow peer's answer names task %s of %d bytes with %d digests, want %s of %d bytes with its 1 digest",
				c.path, got.Task.ID, got.Task.ContentLength, len(got.Task.Digests), treq.Digest, len(content))
		}
	}
}
