package supernode

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/fixture/tlsca"
	"github.com/pouch-p2p/pouch/internal/peerauth"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

func fileOrigin(t *testing.T) *origin.Files {
	return origin.NewData(t, bytes.Repeat([]byte("pouch"), 1000))
}

// A peer speaks only for itself: unsigned calls are refused, and so is a signed call whose body
// names another peer — another member, or the seed.
func TestPeerAPIAcceptsOnlyTheCallersOwnCalls(t *testing.T) {
	s := start(t, Config{Allow: loopback})
	origin := fileOrigin(t)
	a, b := newPeer(t, ""), newPeer(t, "")
	task := snapi.TaskRequest{URL: origin.URL + "/f"}

	for _, path := range []string{snapi.PathRegister, snapi.PathSync, snapi.PathLeave, snapi.PathHeartbeat} {
		status, e, raw := post(t, s.URL()+path, "{}", nil)
		if status != http.StatusUnauthorized || e.Code != apierr.CodeUnauthorized || !strings.Contains(e.Message, peerauth.HeaderPeer) {
			t.Errorf("unsigned call to %s: %d %s, want 401 unauthorized naming the missing header", path, status, raw)
		}
	}

	reg, err := a.client(s.URL()).Register(context.Background(), snapi.RegisterRequest{Task: task, Peer: a.info})
	if err != nil {
		t.Fatal(err)
	}
	seedPeer, ok := reg.Schedule.Seed()
	if !ok {
		t.Fatalf("no seed among the parents %+v", reg.Schedule.Parents)
	}
	seed := seedPeer.ID
	forged := []struct {
		name string
		path string
		body any
	}{
		{"register as the seed", snapi.PathRegister, snapi.RegisterRequest{Task: task, Peer: snapi.Peer{ID: seed, Addrs: b.info.Addrs}}},
		{"register as another peer", snapi.PathRegister, snapi.RegisterRequest{Task: task, Peer: a.info}},
		{"report for another peer", snapi.PathSync, snapi.SyncRequest{Task: reg.Task.ID, Peer: a.info.ID,
			Failures: []snapi.Failure{{Parent: seed, Reason: snapi.FailCorrupt}}}},
		{"make another peer leave", snapi.PathLeave, snapi.LeaveRequest{Task: reg.Task.ID, Peer: a.info.ID}},
		{"heartbeat for the seed", snapi.PathHeartbeat, snapi.HeartbeatRequest{Peer: snapi.Peer{ID: seed, Addrs: b.info.Addrs}}},
	}
	for _, c := range forged {
		status, e, raw := post(t, s.URL()+c.path, c.body, b.signer)
		if status != http.StatusUnauthorized || e.Code != apierr.CodeUnauthorized || !strings.Contains(e.Message, "may only speak for itself") {
			t.Errorf("%s, signed by b: %d %s, want 401 unauthorized", c.name, status, raw)
		}
	}
	if m, err := scrape.Get(context.Background(), s.URL()+"/metrics"); err != nil || m.Sum("pouch_supernode_corrupt_reports_total", nil) != 0 {
		t.Errorf("a forged corrupt report was counted (or metrics failed: %v)", err)
	}
	// a is still registered: b could not make it leave.
	if _, err := a.client(s.URL()).Sync(context.Background(), snapi.SyncRequest{Task: reg.Task.ID, Peer: a.info.ID}); err != nil {
		t.Fatalf("a's own sync after the forgeries: %v", err)
	}
	for _, open := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get(s.URL() + open)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a signature: %d, want 200", open, resp.StatusCode)
		}
	}
}

// With a cluster secret only members join, and a member trusts only answers made with it.
func TestClosedCluster(t *testing.T) {
	s := start(t, Config{Allow: loopback, Secret: "s3cret"})
	origin := fileOrigin(t)
	register := func(p testPeer, base string) error {
		_, err := p.client(base).Register(context.Background(), snapi.RegisterRequest{Task: snapi.TaskRequest{URL: origin.URL + "/f"}, Peer: p.info})
		return err
	}
	if err := register(newPeer(t, "s3cret"), s.URL()); err != nil {
		t.Fatalf("a member: %v", err)
	}
	for _, c := range []struct{ name, secret, want string }{
		{"no secret", "", "membership proof missing"},
		{"another secret", "other", "membership proof does not match"},
	} {
		err := register(newPeer(t, c.secret), s.URL())
		// The answer is made with the supernode's secret, which the outsider cannot check: it
		// sees an unavailable supernode either way, and goes to the origin.
		if !errors.Is(err, snapi.ErrUnavailable) || (c.secret == "" && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want the supernode unavailable (%s)", c.name, err, c.want)
		}
	}
	status, e, _ := post(t, s.URL()+snapi.PathHeartbeat, snapi.HeartbeatRequest{}, newPeer(t, "other").signer)
	if status != http.StatusUnauthorized || !strings.Contains(e.Message, "membership proof does not match") || strings.Contains(e.Message, "s3cret") {
		t.Errorf("another cluster's call: %d %q, want 401 saying the membership proof does not match", status, e.Message)
	}

	// A member facing a supernode without the secret (or a man in the middle that strips the
	// MAC) does not act on its answers.
	open := start(t, Config{Allow: loopback})
	err := register(newPeer(t, "s3cret"), open.URL())
	if !errors.Is(err, snapi.ErrUnavailable) || !errors.Is(err, peerauth.ErrNoMembership) {
		t.Errorf("a member with an open supernode: %v, want unavailable for lack of a membership proof", err)
	}
}

// The API serves TLS; a client that trusts the CA talks to it, one that does not cannot.
func TestTLS(t *testing.T) {
	files := tlsca.Temp(t, "127.0.0.1")
	s := start(t, Config{Allow: loopback, TLSCert: files.Cert, TLSKey: files.Key})
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL %s, want https", s.URL())
	}
	origin := fileOrigin(t)
	p := newPeer(t, "")
	pool, err := snapi.LoadCA(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	req := snapi.RegisterRequest{Task: snapi.TaskRequest{URL: origin.URL + "/f"}, Peer: p.info}
	c := snapi.NewClient(s.URL(), snapi.ClientConfig{Signer: p.signer, RootCAs: pool})
	if _, err := c.Register(context.Background(), req); err != nil {
		t.Fatalf("register over TLS: %v", err)
	}
	var unknown x509.UnknownAuthorityError
	_, err = p.client(s.URL()).Register(context.Background(), req)
	if !errors.Is(err, snapi.ErrUnavailable) || !errors.As(err, &unknown) {
		t.Fatalf("register without the CA: %v, want unavailable for an unknown authority", err)
	}
}

func TestConfigTLSNeedsBothReadableFiles(t *testing.T) {
	t.Parallel()
	files := tlsca.Temp(t, "127.0.0.1")
	dir := filepath.Dir(files.CA)
	for _, c := range []struct {
		name      string
		cert, key string
		ok        bool
	}{
		{"neither", "", "", true},
		{"both", files.Cert, files.Key, true},
		{"certificate only", files.Cert, "", false},
		{"key only", "", files.Key, false},
		{"missing file", files.Cert, filepath.Join(dir, "nope.pem"), false},
		{"not PEM", files.NotPEM, files.Key, false},
		{"key of another certificate", files.CA, files.Key, false},
	} {
		err := Config{DataDir: dir, TLSCert: c.cert, TLSKey: c.key}.WithDefaults().Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v, want ok %v", c.name, err, c.ok)
		}
	}
}

// Without a secret the supernode says once, at start, that the cluster is open.
func TestStartSaysWhenTheClusterIsOpen(t *testing.T) {
	for _, c := range []struct {
		secret string
		warns  int
	}{{"", 1}, {"s3cret", 0}} {
		core, logs := observer.New(zapcore.WarnLevel)
		s, err := New(Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Secret: c.secret}, zap.New(core))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s.Run(ctx)
		if n := logs.FilterMessageSnippet("open cluster").Len(); n != c.warns {
			t.Errorf("secret %q: %d warnings of an open cluster, want %d", c.secret, n, c.warns)
		}
	}
}
