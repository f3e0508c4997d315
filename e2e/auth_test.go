package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/fixture/tlsca"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/peerauth"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

// logs is what a daemon has written on stderr so far.
func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// newSigner is a peer identity of the test's own, signing as a member of the cluster with secret
// ("" for none).
func newSigner(t *testing.T, secret string) *peerauth.Signer {
	t.Helper()
	s, err := peerauth.GenerateSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// call is one raw request to the supernode's API, kept so that it can be sent again as is.
type call struct {
	url    string
	header http.Header
	body   []byte
}

// signedCall builds a POST of body to url, signed by signer (nil: unsigned).
func signedCall(t *testing.T, url string, body any, signer *peerauth.Signer) call {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	if signer != nil {
		if _, err := signer.Sign(req, data); err != nil {
			t.Fatal(err)
		}
	}
	return call{url: url, header: req.Header, body: data}
}

// send sends c and returns the status, the error body (for a non-2xx) and the raw answer.
func (c call) send(t *testing.T) (int, apierr.Error, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(c.body))
	req.Header = c.header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e apierr.Error
	if resp.StatusCode/100 != 2 {
		json.Unmarshal(data, &e)
	}
	return resp.StatusCode, e, data
}

// With a cluster secret, the supernode's API refuses whoever cannot prove membership, a
// member speaking for another peer (the seed's ID, which every schedule shows), and a call
// replayed as is; a dfdaemon holding the secret downloads through P2P, and one without it still
// gets its file, from the origin.
func TestForgedRegistrationIsRefused(t *testing.T) {
	const size = 8 << 20
	const secret = "cluster-s3cret"
	data := randomBytes(t, size)
	o := origin.NewFiles(t, map[string][]byte{"/f": data})
	c := startClusterWith(t, 1, []string{"--secret", secret}, "--secret", secret)
	api := "http://" + c.supernode.HTTP
	task := snapi.TaskRequest{URL: o.URL + "/f", Digest: digest.Digest(sha(data))}
	addrs := []string{"/ip4/127.0.0.1/tcp/9"}

	// An outsider, signing with its own key but without the secret.
	outsider := newSigner(t, "")
	status, e, raw := signedCall(t, api+snapi.PathRegister, snapi.RegisterRequest{Task: task, Peer: snapi.Peer{ID: outsider.Peer(), Addrs: addrs}}, outsider).send(t)
	if status != http.StatusUnauthorized || e.Code != apierr.CodeUnauthorized || !strings.Contains(e.Message, "membership proof missing") {
		t.Fatalf("registration without membership proof: %d %s, want 401 unauthorized", status, raw)
	}
	// No signature at all.
	status, e, raw = signedCall(t, api+snapi.PathRegister, snapi.RegisterRequest{Task: task, Peer: snapi.Peer{ID: outsider.Peer(), Addrs: addrs}}, nil).send(t)
	if status != http.StatusUnauthorized || e.Code != apierr.CodeUnauthorized || !strings.Contains(e.Message, "not signed") {
		t.Fatalf("unsigned registration: %d %s, want 401 unauthorized", status, raw)
	}

	// A member registers for itself, and learns the seed's ID from its schedule.
	member := newSigner(t, secret)
	honest := signedCall(t, api+snapi.PathRegister, snapi.RegisterRequest{Task: task, Peer: snapi.Peer{ID: member.Peer(), Addrs: addrs}}, member)
	status, _, raw = honest.send(t)
	if status != http.StatusOK {
		t.Fatalf("a member's own registration: %d %s", status, raw)
	}
	var reg snapi.RegisterResponse
	if err := json.Unmarshal(raw, &reg); err != nil {
		t.Fatal(err)
	}
	seedPeer, ok := reg.Schedule.Seed()
	if !ok {
		t.Fatalf("no seed in the schedule %+v", reg.Schedule)
	}
	seed := seedPeer.ID

	// The member claims the seed's ID in the body, signing with its own key.
	status, e, raw = signedCall(t, api+snapi.PathRegister, snapi.RegisterRequest{Task: task, Peer: snapi.Peer{ID: seed, Addrs: addrs}}, member).send(t)
	if status != http.StatusUnauthorized || e.Code != apierr.CodeUnauthorized || !strings.Contains(e.Message, "may only speak for itself") {
		t.Fatalf("registration as the seed: %d %s, want 401 unauthorized", status, raw)
	}
	// ... or puts the seed's ID in the header of a call it signed.
	asSeed := signedCall(t, api+snapi.PathRegister, snapi.RegisterRequest{Task: task, Peer: snapi.Peer{ID: seed, Addrs: addrs}}, member)
	asSeed.header.Set(peerauth.HeaderPeer, seed)
	if status, e, raw = asSeed.send(t); status != http.StatusUnauthorized || e.Code != apierr.CodeUnauthorized {
		t.Fatalf("registration with the seed's ID in the header: %d %s, want 401 unauthorized", status, raw)
	}
	// The honest registration, sent again byte for byte.
	status, e, raw = honest.send(t)
	if status != http.StatusUnauthorized || e.Code != apierr.CodeUnauthorized || !strings.Contains(e.Message, "replayed") {
		t.Fatalf("replayed registration: %d %s, want 401 unauthorized", status, raw)
	}

	// A dfdaemon holding the secret downloads through P2P.
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if code, msg := dfget(ctx, o.URL+"/f", "-O", filepath.Join(out, "member"), "--daemon", "http://"+c.daemons[0].HTTP, "--digest", sha(data)); code != 0 {
		t.Fatalf("member's download: exit %d: %s", code, msg)
	}
	if got := fileSHA(t, filepath.Join(out, "member")); got != sha(data) {
		t.Fatalf("member's copy %s, want %s", got, sha(data))
	}
	if got := metric(t, c.daemons[0], "pouch_dfdaemon_download_bytes_total", map[string]string{"source": "peer"}); got != size {
		t.Errorf("the member got %v bytes from peers, want all %d", got, size)
	}
	if o.Sent.Load() != size {
		t.Errorf("origin sent %d bytes, want %d (once, to the seed)", o.Sent.Load(), size)
	}

	// A dfdaemon without the secret is refused by the supernode and goes to the origin itself:
	// its download still succeeds, and its log says why.
	stranger := start(t, "dfdaemon without the secret", "--supernode", api, "--listen", "127.0.0.1:0",
		"--data-dir", filepath.Join(c.root, "stranger"), "--allow-networks", "127.0.0.0/8", "--log-level", "debug")
	if code, msg := dfget(ctx, o.URL+"/f", "-O", filepath.Join(out, "stranger"), "--daemon", "http://"+stranger.HTTP, "--digest", sha(data)); code != 0 {
		t.Fatalf("stranger's download: exit %d: %s", code, msg)
	}
	if got := fileSHA(t, filepath.Join(out, "stranger")); got != sha(data) {
		t.Fatalf("stranger's copy %s, want %s", got, sha(data))
	}
	if log := stranger.logs(); !strings.Contains(log, "membership proof missing") || !strings.Contains(log, "going to the origin") {
		t.Errorf("the stranger's log does not say it was refused and went to the origin:\n%s", log)
	}
	if o.Sent.Load() != 2*size {
		t.Errorf("origin sent %d bytes, want %d (the seed, then the stranger)", o.Sent.Load(), 2*size)
	}
}

// The supernode serves TLS with a certificate from a private CA. Peers that trust the CA
// (--supernode-ca) download through P2P, the origin serving the file once; a dfdaemon that
// trusts another CA cannot reach the supernode, so it fetches from the origin itself — the
// download still succeeds — and its log names the x509 failure.
func TestSupernodeTLS(t *testing.T) {
	const size = 8 << 20
	data := randomBytes(t, size)
	o := origin.NewFiles(t, map[string][]byte{"/f": data})
	root := t.TempDir()
	files := tlsca.Temp(t, "127.0.0.1")
	other := tlsca.Temp(t, "127.0.0.1")
	wrongCA := other.CA

	sn := start(t, "supernode", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(root, "sn"), "--allow-networks", "127.0.0.0/8",
		"--tls-cert", files.Cert, "--tls-key", files.Key, "--log-level", "debug")
	api := "https://" + sn.HTTP
	daemon := func(name, caFile string) *proc {
		return start(t, "dfdaemon "+name, "--supernode", api, "--supernode-ca", caFile, "--listen", "127.0.0.1:0",
			"--data-dir", filepath.Join(root, name), "--allow-networks", "127.0.0.0/8", "--log-level", "debug")
	}
	daemons := []*proc{daemon("node0", files.CA), daemon("node1", files.CA)}

	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	codes, msgs := burst(ctx, daemons, o.URL+"/f", out, "--digest", sha(data))()
	checkCopies(t, codes, msgs, out, data)
	for _, d := range daemons {
		if got := metric(t, d, "pouch_dfdaemon_download_bytes_total", map[string]string{"source": "peer"}); got != size {
			t.Errorf("%s got %v bytes from peers, want all %d", d.Name, got, size)
		}
	}
	if o.Sent.Load() != size {
		t.Fatalf("origin sent %d bytes, want %d (once, to the seed)", o.Sent.Load(), size)
	}

	// dfget's one-shot peer trusts the CA too.
	if code, msg := dfget(ctx, o.URL+"/f", "-O", filepath.Join(out, "oneshot"), "--supernode", api, "--supernode-ca", files.CA,
		"--digest", sha(data), "--allow-networks", "127.0.0.0/8"); code != 0 {
		t.Fatalf("one-shot dfget over TLS: exit %d: %s", code, msg)
	}
	if got := fileSHA(t, filepath.Join(out, "oneshot")); got != sha(data) {
		t.Fatalf("one-shot copy %s, want %s", got, sha(data))
	}
	if o.Sent.Load() != size {
		t.Errorf("origin sent %d bytes after the one-shot peer, want still %d", o.Sent.Load(), size)
	}

	// A dfdaemon that trusts another CA.
	wrong := daemon("wrong-ca", wrongCA)
	if code, msg := dfget(ctx, o.URL+"/f", "-O", filepath.Join(out, "wrong"), "--daemon", "http://"+wrong.HTTP); code != 0 {
		t.Fatalf("download on the node with the wrong CA: exit %d: %s", code, msg)
	}
	if got := fileSHA(t, filepath.Join(out, "wrong")); got != sha(data) {
		t.Fatalf("copy on the node with the wrong CA %s, want %s", got, sha(data))
	}
	log := wrong.logs()
	if !strings.Contains(log, "no supernode answers, going to the origin") || !strings.Contains(log, "x509: certificate signed by unknown authority") {
		t.Errorf("the log of the node with the wrong CA does not name the x509 failure and the fallback:\n%s", log)
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "going to the origin") {
			t.Logf("what the user sees: %s", line)
		}
	}
	if got := metric(t, wrong, "pouch_dfdaemon_download_bytes_total", map[string]string{"source": "origin"}); got != size {
		t.Errorf("the node with the wrong CA got %v bytes from the origin, want %d", got, size)
	}
}

// nonLoopbackIPv4 is an IPv4 address of this machine that is not loopback, or "".
func nonLoopbackIPv4() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// adminCall sends method url with an Authorization header (if any) and returns the status.
func adminCall(t *testing.T, method, url, auth string) (int, string) {
	t.Helper()
	status, body, _ := request(t, method, url, auth)
	return status, string(body)
}

// registerTask makes the supernode hold a task (a signed registration) and waits until its seed
// is done, so that it can be deleted; it returns the task's ID.
func registerTask(t *testing.T, base, url string) string {
	t.Helper()
	s := newSigner(t, "")
	c := snapi.NewClient(base, snapi.ClientConfig{Signer: s})
	reg, err := c.Register(context.Background(), snapi.RegisterRequest{Task: snapi.TaskRequest{URL: url}, Peer: snapi.Peer{ID: s.Peer(), Addrs: []string{"/ip4/127.0.0.1/tcp/9"}}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		sr, err := c.Sync(context.Background(), snapi.SyncRequest{Task: reg.Task.ID, Peer: s.Peer(), WaitMillis: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if sr.Task.SeedDone {
			return reg.Task.ID.String()
		}
		if time.Now().After(deadline) {
			t.Fatal("the seed did not finish within 30s")
		}
	}
}

// The admin views (task listing, one task, deletion): without an admin token only loopback
// clients may use them; with one, everyone needs it.
func TestAdminViews(t *testing.T) {
	ip := nonLoopbackIPv4()
	if ip == "" {
		t.Skip("this machine has no non-loopback IPv4 address: a remote client cannot be shown to be refused")
	}
	o := origin.NewFiles(t, map[string][]byte{"/a": randomBytes(t, 1<<20), "/b": randomBytes(t, 1<<20)})
	root := t.TempDir()
	supernode := func(t *testing.T, name string, args ...string) (remote, local string) {
		p := start(t, "supernode "+name, append([]string{"--listen", "0.0.0.0:0", "--p2p-listen", "/ip4/0.0.0.0/tcp/0", "--data-dir", filepath.Join(root, name), "--allow-networks", "127.0.0.0/8"}, args...)...)
		_, port, err := net.SplitHostPort(p.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		return "http://" + net.JoinHostPort(ip, port), "http://" + net.JoinHostPort("127.0.0.1", port)
	}

	t.Run("no token", func(t *testing.T) {
		remote, local := supernode(t, "sn-no-token")
		id := registerTask(t, local, o.URL+"/a")
		for _, c := range []struct{ method, path string }{
			{http.MethodGet, snapi.PathTasks},
			{http.MethodGet, snapi.PathTasks + "/" + id},
			{http.MethodDelete, snapi.PathTasks + "/" + id},
		} {
			status, body := adminCall(t, c.method, remote+c.path, "")
			if status != http.StatusForbidden || !strings.Contains(body, "--admin-token") {
				t.Errorf("%s %s from %s: %d %s, want 403 saying how to enable it", c.method, c.path, ip, status, body)
			}
		}
		if status, body := adminCall(t, http.MethodGet, local+snapi.PathTasks, ""); status != http.StatusOK || !strings.Contains(body, id) {
			t.Errorf("GET %s from loopback: %d %s, want 200 listing %s", snapi.PathTasks, status, body, id)
		}
		if status, body := deleteTask(t, local+snapi.PathTasks+"/"+id, ""); status != http.StatusNoContent {
			t.Errorf("DELETE from loopback: %d %s, want 204", status, body)
		}
		if status, _ := adminCall(t, http.MethodGet, local+snapi.PathTasks+"/"+id, ""); status != http.StatusNotFound {
			t.Errorf("the deleted task still answers %d", status)
		}
	})

	t.Run("token", func(t *testing.T) {
		const token = "admin-t0ken"
		remote, local := supernode(t, "sn-token", "--admin-token", token)
		id := registerTask(t, local, o.URL+"/b")
		for _, c := range []struct{ name, base, auth string }{
			{"remote, no token", remote, ""},
			{"remote, wrong token", remote, "Bearer not-" + token},
			{"loopback, no token", local, ""},
		} {
			for _, m := range []string{http.MethodGet, http.MethodDelete} {
				path := snapi.PathTasks + "/" + id
				if status, body := adminCall(t, m, c.base+path, c.auth); status != http.StatusUnauthorized || strings.Contains(body, token) {
					t.Errorf("%s: %s %s: %d %s, want 401", c.name, m, path, status, body)
				}
			}
		}
		if status, body := adminCall(t, http.MethodGet, remote+snapi.PathTasks, "Bearer "+token); status != http.StatusOK || !strings.Contains(body, id) {
			t.Errorf("GET %s from %s with the token: %d %s, want 200 listing %s", snapi.PathTasks, ip, status, body, id)
		}
		if status, body := deleteTask(t, remote+snapi.PathTasks+"/"+id, "Bearer "+token); status != http.StatusNoContent {
			t.Errorf("DELETE from %s with the token: %d %s, want 204", ip, status, body)
		}
		if status, _ := adminCall(t, http.MethodGet, remote+snapi.PathTasks+"/"+id, "Bearer "+token); status != http.StatusNotFound {
			t.Errorf("the deleted task still answers %d", status)
		}
	})
}

// deleteTask deletes a task as an operator would: a 409 says its seed is still finishing (it
// checks the whole content against its digest after the last piece), so it asks again.
func deleteTask(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	var status int
	var body string
	wait.Until(t, 30*time.Second, "the seed lets its task be deleted", func() bool {
		status, body = adminCall(t, http.MethodDelete, url, auth)
		return status != http.StatusConflict
	})
	return status, body
}
