package supernode

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/peerauth"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/piece"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func start(t *testing.T, cfg Config) *Supernode {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// testPeer is a peer with a real libp2p identity, as the supernode requires of every caller.
type testPeer struct {
	signer *peerauth.Signer
	info   snapi.Peer
}

func newPeer(t *testing.T, secret string) testPeer {
	t.Helper()
	s, err := peerauth.GenerateSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	return testPeer{signer: s, info: snapi.Peer{ID: s.Peer(), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}}
}

func (p testPeer) client(base string) *snapi.Client {
	return snapi.NewClient(base, snapi.ClientConfig{Signer: p.signer})
}

// post sends body (a string is sent as is) signed by signer (nil: unsigned).
func post(t *testing.T, url string, body any, signer *peerauth.Signer) (int, apierr.Error, []byte) {
	t.Helper()
	var data []byte
	if s, ok := body.(string); ok {
		data = []byte(s)
	} else {
		data, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	if signer != nil {
		if _, err := signer.Sign(req, data); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	var e apierr.Error
	json.Unmarshal(buf.Bytes(), &e)
	return resp.StatusCode, e, buf.Bytes()
}

func TestRegisterRejectsBadInput(t *testing.T) {
	s := start(t, Config{Allow: loopback})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	defer origin.Close()
	a := newPeer(t, "")
	cases := []struct {
		name   string
		body   any
		status int
		code   apierr.Code
	}{
		{"malformed json", `{"task": `, 400, apierr.CodeBadRequest},
		{"unknown field", `{"task": {"url": "http://x/y"}, "peer": {"id": "` + a.info.ID + `", "addrs": ["/ip4/1.2.3.4/tcp/1"]}, "evil": 1}`, 400, apierr.CodeBadRequest},
		{"file url", snapi.RegisterRequest{Task: snapi.TaskRequest{URL: "file:///etc/passwd"}, Peer: a.info}, 400, apierr.CodeBadRequest},
		{"no peer", snapi.RegisterRequest{Task: snapi.TaskRequest{URL: origin.URL + "/x"}}, 400, apierr.CodeBadRequest},
		{"bad digest", snapi.RegisterRequest{Task: snapi.TaskRequest{URL: origin.URL + "/x", Digest: "sha256:../../etc"}, Peer: a.info}, 400, apierr.CodeBadRequest},
		{"claims to be a seed", snapi.RegisterRequest{Task: snapi.TaskRequest{URL: origin.URL + "/x"}, Peer: snapi.Peer{ID: a.info.ID, Addrs: a.info.Addrs, Seed: true}}, 400, apierr.CodeBadRequest},
		{"origin 404", snapi.RegisterRequest{Task: snapi.TaskRequest{URL: origin.URL + "/x"}, Peer: a.info}, 502, apierr.CodeOriginStatus},
	}
	for _, c := range cases {
		status, e, raw := post(t, s.URL()+snapi.PathRegister, c.body, a.signer)
		if status != c.status || e.Code != c.code {
			t.Errorf("%s: %d %s (%s), want %d %s", c.name, status, e.Code, raw, c.status, c.code)
		}
	}
	if _, e, _ := post(t, s.URL()+snapi.PathRegister, snapi.RegisterRequest{Task: snapi.TaskRequest{URL: origin.URL + "/x"}, Peer: a.info}, a.signer); e.OriginStatus != 404 {
		t.Errorf("origin 404 reported as originStatus %d", e.OriginStatus)
	}
	status, e, _ := post(t, s.URL()+snapi.PathSync, snapi.SyncRequest{Task: digest.FromString("x"), Peer: a.info.ID}, a.signer)
	if status != 404 || e.Code != apierr.CodeNotFound {
		t.Errorf("sync of an unknown task: %d %s, want 404 not_found", status, e.Code)
	}
}

func TestLoopbackOriginIsRefusedByDefault(t *testing.T) {
	s := start(t, Config{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }))
	defer origin.Close()
	a := newPeer(t, "")
	status, e, _ := post(t, s.URL()+snapi.PathRegister, snapi.RegisterRequest{Task: snapi.TaskRequest{URL: origin.URL + "/x"}, Peer: a.info}, a.signer)
	if status != http.StatusForbidden || e.Code != apierr.CodeForbidden || !strings.Contains(e.Message, "loopback") {
		t.Fatalf("register of a loopback origin: %d %s %q, want 403 forbidden naming loopback", status, e.Code, e.Message)
	}
}

func TestSeedPublishesDigestsAndSurvivesRestart(t *testing.T) {
	data := bytes.Repeat([]byte("pouch"), 700_000) // 3.5 MB: 7 pieces of 512 KiB
	size := piece.SizeFor(int64(len(data)))
	pieces := piece.Count(int64(len(data)), size)
	var hits atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	defer origin.Close()
	dir := t.TempDir()
	a := newPeer(t, "")
	req := snapi.RegisterRequest{Task: snapi.TaskRequest{URL: origin.URL + "/f", Digest: digest.FromBytes(data)}, Peer: a.info}

	register := func(s *Supernode) snapi.RegisterResponse {
		c := a.client(s.URL())
		resp, err := c.Register(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	s := start(t, Config{DataDir: dir, Allow: loopback})
	resp := register(s)
	if resp.Task.ID != digest.FromBytes(data) || resp.Task.ContentLength != int64(len(data)) || resp.Task.PieceSize != size {
		t.Fatalf("task info %+v", resp.Task)
	}
	// Long-poll until the seed has every digest.
	c := a.client(s.URL())
	var known []digest.Digest
	for deadline := time.Now().Add(10 * time.Second); len(known) < pieces && time.Now().Before(deadline); {
		sr, err := c.Sync(context.Background(), snapi.SyncRequest{Task: resp.Task.ID, Peer: req.Peer.ID, DigestsFrom: len(known), WaitMillis: 1000})
		if err != nil {
			t.Fatal(err)
		}
		known = append(known, sr.Task.Digests...)
	}
	for i, d := range known {
		off := i * int(size)
		end := min(off+int(size), len(data))
		if d != digest.FromBytes(data[off:end]) {
			t.Fatalf("piece %d digest %s is not the sha256 of the piece", i, d)
		}
	}

	// A second supernode on the same data dir serves the complete task without the origin.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	hitsBefore := hits.Load()
	s2 := start(t, Config{DataDir: dir, Allow: loopback})
	resp2 := register(s2)
	if !resp2.Task.SeedDone || len(resp2.Task.Digests) != pieces || hits.Load() != hitsBefore {
		t.Fatalf("after restart: seedDone=%v digests=%d origin hits +%d; want a complete task and no origin fetch", resp2.Task.SeedDone, len(resp2.Task.Digests), hits.Load()-hitsBefore)
	}
}
