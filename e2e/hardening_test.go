package e2e

import (
	"context"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

// fakePeer is a peer that speaks the supernode API directly, with a real libp2p identity (it
// signs its calls, as the supernode requires) but no libp2p host behind its address.
func fakePeer(t *testing.T, supernode string) (*snapi.Client, snapi.Peer) {
	t.Helper()
	s := newSigner(t, "")
	return snapi.NewClient(supernode, snapi.ClientConfig{Signer: s}), snapi.Peer{ID: s.Peer(), Addrs: []string{"/ip4/127.0.0.1/tcp/9"}}
}

// checkFromPeers asserts that a daemon got all its bytes over P2P, none from the origin.
func checkFromPeers(t *testing.T, p *proc, size float64) {
	t.Helper()
	if got := metric(t, p, "pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "peer"}); got != size {
		t.Errorf("%s got %v bytes from peers, want %v", p.Name, got, size)
	}
	if n := metric(t, p, "pouch_dfdaemon_back_to_source_total", nil); n != 0 {
		t.Errorf("%s went back to source %v times", p.Name, n)
	}
}

// A forged "corrupt" report: a peer that joined the task reports the seed and an honest
// complete parent as corrupt. One reporter blocks them for itself only, and the seed is never
// blocked: later peers still get both as parents, and the origin sends the content once.
func TestForgedCorruptReport(t *testing.T) {
	const size = 16 << 20
	data := randomBytes(t, size)
	o := origin.NewFiles(t, map[string][]byte{"/f.bin": data})
	c := startCluster(t, 3)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u := o.URL + "/f.bin"

	if code, msg := dfget(ctx, u, "-O", filepath.Join(out, "0"), "--daemon", "http://"+c.daemons[0].HTTP, "--digest", sha(data)); code != 0 {
		t.Fatalf("node 0: exit %d: %s", code, msg)
	}
	honestUpload := metric(t, c.daemons[0], "pouch_dfdaemon_upload_bytes_total", nil)

	sn, liar := fakePeer(t, "http://"+c.supernode.HTTP)
	reg, err := sn.Register(ctx, snapi.RegisterRequest{Task: snapi.TaskRequest{URL: u, Digest: digest.Digest(sha(data))}, Peer: liar})
	if err != nil {
		t.Fatalf("the fake peer registers: %v", err)
	}
	var seed, honest string
	for _, p := range reg.Schedule.Parents {
		switch {
		case p.Seed:
			seed = p.ID
		default:
			honest = p.ID
		}
	}
	if seed == "" || honest == "" {
		t.Fatalf("the fake peer was not given both the seed and node 0 as parents: %+v", reg.Schedule.Parents)
	}
	if _, err := sn.Sync(ctx, snapi.SyncRequest{Task: reg.Task.ID, Peer: liar.ID,
		Failures: []snapi.Failure{snapi.CorruptPiece(seed, 0), snapi.CorruptPiece(honest, 1)}}); err != nil {
		t.Fatalf("the fake peer's report: %v", err)
	}

	wait := burst(ctx, c.daemons[1:], u, out, "--digest", sha(data))
	codes, msgs := wait()
	checkCopies(t, codes, msgs, out, data)
	for _, d := range c.daemons[1:] {
		checkFromPeers(t, d, size)
	}
	if sent := o.Sent.Load(); sent != size {
		t.Errorf("the origin sent %.2f× the content; want once", float64(sent)/size)
	}
	if up := metric(t, c.daemons[0], "pouch_dfdaemon_upload_bytes_total", nil); up <= honestUpload {
		t.Errorf("the honest parent uploaded nothing after the forged report: it was blocked for everyone")
	}
	counted := metric(t, c.supernode, "pouch_supernode_failure_reports_total", scrape.Labels{"reason": "corrupt", "verdict": "counted"})
	if counted != 2 {
		t.Errorf("the supernode counted %v corrupt reports, want the fake peer's 2 (for itself only)", counted)
	}
	if n := metric(t, c.supernode, "pouch_supernode_seed_pieces_dropped_total", nil); n != 0 {
		t.Errorf("the seed dropped %v intact pieces after a forged report", n)
	}
}

// A digest pre-registered with a dead URL must not send every later peer back to the origin:
// the next registration, with a good URL, retries the seed, and later peers get the content
// over P2P; the origin sends it once.
func TestPreRegisteredDeadURL(t *testing.T) {
	const size = 12 << 20
	data := randomBytes(t, size)
	o := origin.NewFiles(t, map[string][]byte{"/good.bin": data})
	c := startCluster(t, 3)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	code, msg := dfget(ctx, o.URL+"/dead.bin", "-O", filepath.Join(out, "dead"), "--daemon", "http://"+c.daemons[0].HTTP, "--digest", sha(data))
	if code != 3 {
		t.Fatalf("the dead URL: exit %d, want 3 (not found): %s", code, msg)
	}
	for i := 1; i < 3; i++ {
		if code, msg := dfget(ctx, o.URL+"/good.bin", "-O", filepath.Join(out, fmt.Sprint(i)), "--daemon", "http://"+c.daemons[i].HTTP, "--digest", sha(data)); code != 0 {
			t.Fatalf("node %d, good URL: exit %d: %s", i, code, msg)
		}
		if got := fileSHA(t, filepath.Join(out, fmt.Sprint(i))); got != sha(data) {
			t.Fatalf("node %d: content %s", i, got)
		}
		checkFromPeers(t, c.daemons[i], size)
	}
	if sent := o.Sent.Load(); sent != size {
		t.Errorf("the origin sent %.2f× the content; want once (by the retried seed)", float64(sent)/size)
	}
}

// A one-shot dfget (no daemon) cannot make the seed fetch what the SSRF policy refuses: the
// supernode refuses loopback, metadata, and loopback hidden in IPv4-mapped, NAT64 and 6to4
// addresses; dfget exits 4 saying why, and the target receives nothing. The one-shot peer is
// told to allow everything itself, so the refusal is the supernode's.
func TestOneShotSSRFThroughTheSeed(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("internal secret"))
	}))
	t.Cleanup(target.Close)
	port := target.Listener.Addr().(*net.TCPAddr).Port
	sn := start(t, "supernode", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "debug")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, u := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/x", port),
		"http://169.254.169.254/latest/meta-data/",
		fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/x", port),
		fmt.Sprintf("http://[64:ff9b::7f00:1]:%d/x", port),
		fmt.Sprintf("http://[2002:7f00:1::]:%d/x", port),
	} {
		t.Run(url.PathEscape(u), func(t *testing.T) {
			dir := t.TempDir()
			code, stderr := dfget(ctx, u, "-O", filepath.Join(dir, "out"), "--supernode", "http://"+sn.HTTP,
				"--allow-networks", "0.0.0.0/0,::/0")
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if last := lines[len(lines)-1]; code != 4 || !strings.HasPrefix(last, "dfget: ") || !strings.Contains(last, "SSRF policy") {
				t.Errorf("exit %d, want 4 and a last line naming the SSRF policy; stderr: %s", code, stderr)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the target received %d requests", n)
	}
}

// The dfdaemon's local listener refuses a text/plain download call (a cross-site form post) and
// a request under a foreign Host (DNS rebinding); dfget itself is served.
func TestLocalAPIRefusesCrossSiteRequests(t *testing.T) {
	data := randomBytes(t, 1<<20)
	o := origin.NewFiles(t, map[string][]byte{"/f": data})
	c := startCluster(t, 1)
	api := "http://" + c.daemons[0].HTTP
	body := `{"url": "` + o.URL + `/f"}`
	post := func(contentType, host string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, api+"/api/v1/download", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("text/plain", ""); s != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain download call: %d, want 415", s)
	}
	_, port, _ := net.SplitHostPort(c.daemons[0].HTTP)
	if s := post("application/json", "rebind.attacker.example:"+port); s != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d, want 421", s)
	}
	req, _ := http.NewRequest(http.MethodGet, api+"/v2/", nil)
	req.Host = "rebind.attacker.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("the mirror under a foreign Host: %d, want 421", resp.StatusCode)
	}
	if o.Requests.Load() != 0 {
		t.Errorf("a refused call reached the origin (%d requests)", o.Requests.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "f")
	if code, msg := dfget(ctx, o.URL+"/f", "-O", out, "--daemon", api); code != 0 || fileSHA(t, out) != sha(data) {
		t.Fatalf("dfget through the guarded API: exit %d: %s", code, msg)
	}
}
