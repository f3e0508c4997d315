package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/bench"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/fixture/tlsca"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

const preheatRepo, preheatTag = "team/app", "1.0"

// preheatRegistry serves a random image of layers layers and size bytes as team/app:1.0, with
// the auth and blob rate opts asks for.
func preheatRegistry(t *testing.T, opts registry.Options, layers int, size int64, user, pass string) (*registry.Registry, *image.Image) {
	t.Helper()
	reg := registry.StartTest(t, opts)
	return reg, image.PushRandom(t, reg.URL, preheatRepo, preheatTag, layers, size, user, pass)
}

func blobsSize(img *image.Image) int64 {
	var n int64
	for _, b := range img.Blobs() {
		n += int64(len(b.Data))
	}
	return n
}

// supernodeCLI runs `supernode ARGS...` (a preheat command) with stdin and the environment
// given, and returns its exit code, stdout and stderr.
func supernodeCLI(ctx context.Context, t *testing.T, stdin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "supernode"), args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("supernode %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// checkEveryBlobOnce asserts that the registry has sent each of img's blobs exactly once.
func checkEveryBlobOnce(t *testing.T, reg *registry.Registry, img *image.Image, when string) {
	t.Helper()
	for _, b := range img.Blobs() {
		if got := reg.BlobBytes(b.Digest); got != int64(len(b.Data)) {
			t.Errorf("%s: the registry sent %d bytes of %s (%d bytes), want exactly once", when, got, b.Digest, len(b.Data))
		}
	}
}

// Scope all-peers on three dfdaemons: `supernode preheat --wait` exits 0 once every node holds
// every layer; the registry sent each blob once (to the seed), and a pull through each node's
// mirror afterwards sends no blob byte from the registry.
func TestPreheatAllPeersThenPullsSendNothing(t *testing.T) {
	reg, img := preheatRegistry(t, registry.Options{}, 3, 24<<20, "", "")
	c := startClusterWith(t, 3, []string{"--registry-insecure", reg.Host}, "--registry-insecure", reg.Host, "--heartbeat", "200ms")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ref := reg.Host + "/" + preheatRepo + ":" + preheatTag
	code, stdout, stderr := supernodeCLI(ctx, t, "", nil, "preheat", "--server", "http://"+c.supernode.HTTP,
		"--scope", "all-peers", "--wait", "--interval", "200ms", ref)
	if code != 0 {
		t.Fatalf("supernode preheat --wait: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// Not a terminal: one line per change, ending with every task on 3 of 3 peers.
	for _, b := range img.Blobs() {
		if want := b.Digest.Encoded()[:12]; !strings.Contains(stderr, want) {
			t.Errorf("the progress does not name %s:\n%s", want, stderr)
		}
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "job ") || !strings.Contains(last, "SUCCESS "+ref) ||
		strings.Count(stderr, "SUCCESS") != len(img.Blobs())+1 || strings.Count(stderr, "peers 3/3") != len(img.Blobs()) {
		t.Errorf("the progress does not show each task ending on 3/3 peers, then the job SUCCESS:\n%s", stderr)
	}
	checkEveryBlobOnce(t, reg, img, "after the preheat")
	total := blobsSize(img)
	for _, d := range c.daemons {
		if got := metric(t, d, "pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "peer"}); got != float64(total) {
			t.Errorf("%s got %v bytes from peers during the preheat, want the image's %d", d.Name, got, total)
		}
	}
	for _, d := range c.daemons {
		if err := bench.PullImage(ctx, "http://"+d.HTTP, reg.Host, preheatRepo, preheatTag, img); err != nil {
			t.Fatalf("pull through %s: %v", d.Name, err)
		}
		if got := metric(t, d, "pouch_registryproxy_blob_bytes_total", scrape.Labels{"source": "upstream"}); got != 0 {
			t.Errorf("%s: the mirror streamed %v blob bytes from the registry", d.Name, got)
		}
	}
	checkEveryBlobOnce(t, reg, img, "after a pull through every mirror")
	if got := reg.TotalBlobBytes(); got != total {
		t.Errorf("the registry sent %d blob bytes in all, want the image's %d once", got, total)
	}
}

// Scope seed: the first pull after the preheat sends no blob byte from the registry.
func TestPreheatSeedThenFirstPullSendsNothing(t *testing.T) {
	reg, img := preheatRegistry(t, registry.Options{}, 2, 8<<20, "", "")
	c := startClusterWith(t, 1, []string{"--registry-insecure", reg.Host}, "--registry-insecure", reg.Host)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, stdout, stderr := supernodeCLI(ctx, t, "", nil, "preheat", "--server", "http://"+c.supernode.HTTP, "--wait",
		reg.Host+"/"+preheatRepo+":"+preheatTag)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	checkEveryBlobOnce(t, reg, img, "after the preheat")
	if err := bench.PullImage(ctx, "http://"+c.daemons[0].HTTP, reg.Host, preheatRepo, preheatTag, img); err != nil {
		t.Fatal(err)
	}
	checkEveryBlobOnce(t, reg, img, "after the first pull")
}

// A registry with token auth: credentials on stdin or in the docker config work; a wrong
// password ends the job FAILED, and `supernode preheat --wait` exits non-zero saying why.
func TestPreheatPrivateRegistry(t *testing.T) {
	const user, pass = "alice", "pr3heat-pw"
	reg, img := preheatRegistry(t, registry.Options{Htpasswd: map[string]string{user: pass}, Token: true}, 2, 4<<20, user, pass)
	c := startClusterWith(t, 2, []string{"--registry-insecure", reg.Host}, "--registry-insecure", reg.Host, "--heartbeat", "200ms")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ref := reg.Host + "/" + preheatRepo + ":" + preheatTag
	server := "http://" + c.supernode.HTTP
	noDockerConfig := []string{"DOCKER_CONFIG=" + t.TempDir()}

	const wrong = "wr0ng-pw-7d1"
	code, _, stderr := supernodeCLI(ctx, t, wrong+"\n", noDockerConfig, "preheat", "--server", server, "--username", user, "--password-stdin", "--wait", ref)
	if code == 0 || !strings.Contains(stderr, "FAILED") || !strings.Contains(stderr, "refused the credentials") {
		t.Errorf("with a wrong password: exit %d, stderr:\n%s\nwant non-zero and FAILED saying the registry refused the credentials", code, stderr)
	}
	if strings.Contains(stderr, wrong) {
		t.Errorf("the password shows in the output:\n%s", stderr)
	}
	if code, stdout, stderr := supernodeCLI(ctx, t, pass+"\n", noDockerConfig, "preheat", "--server", server, "--username", user,
		"--password-stdin", "--scope", "all-peers", "--wait", ref); code != 0 {
		t.Fatalf("with the password on stdin: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	checkEveryBlobOnce(t, reg, img, "after the preheat")

	// The docker config's credentials for the registry, as `docker login` writes them.
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	cfg := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, reg.Host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := supernodeCLI(ctx, t, "", []string{"DOCKER_CONFIG=" + dir}, "preheat", "--server", server, "--wait", ref); code != 0 {
		t.Fatalf("with the docker config: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// Every node pulls the private image through its mirror with the credentials, and the
	// registry sends nothing more.
	for _, d := range c.daemons {
		if err := pullPrivate(ctx, d, reg, img, user, pass); err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
	}
	checkEveryBlobOnce(t, reg, img, "after the pulls")

	for _, d := range append([]*proc{c.supernode}, c.daemons...) {
		d.mu.Lock()
		leaked := strings.Contains(d.log.String(), pass) || strings.Contains(d.log.String(), wrong)
		d.mu.Unlock()
		if leaked {
			t.Errorf("%s logged a password", d.Name)
		}
	}
}

// pullPrivate pulls img through d's mirror as containerd would with credentials: the mirror
// answers 401 with the registry's challenge; a bearer token from the registry's token server
// then gets every blob.
func pullPrivate(ctx context.Context, d *proc, reg *registry.Registry, img *image.Image, user, pass string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.URL+"/token?service="+registry.Service+"&scope=repository:"+preheatRepo+":pull", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.Token == "" {
		return fmt.Errorf("token server: %s: %v", resp.Status, err)
	}
	return bench.PullImageWith(ctx, "http://"+d.HTTP, reg.Host, preheatRepo, preheatTag, img, "Bearer "+tok.Token)
}

// freePort returns a loopback address nobody listens on, for a daemon that must come back at
// the same address.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A supernode killed during an all-peers job and started again on the same data directory
// resumes the job: `supernode preheat --wait`, still waiting, exits 0 once every node holds
// every layer.
func TestPreheatSurvivesSupernodeRestart(t *testing.T) {
	reg, img := preheatRegistry(t, registry.Options{BlobRate: 2 << 20}, 2, 8<<20, "", "")
	addr := freePort(t)
	snArgs := []string{"--listen", addr, "--registry-insecure", reg.Host}
	c := startClusterWith(t, 2, snArgs, "--registry-insecure", reg.Host, "--heartbeat", "200ms")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server := "http://" + addr
	cl := snapi.NewAdminClient(server, "")

	cli := exec.CommandContext(ctx, filepath.Join(binDir, "supernode"), "preheat", "--server", server, "--scope", "all-peers",
		"--wait", "--interval", "100ms", reg.Host+"/"+preheatRepo+":"+preheatTag)
	var mu sync.Mutex
	var stdout, stderr bytes.Buffer
	cli.Stdout, cli.Stderr = lockedBuffer{&mu, &stdout}, lockedBuffer{&mu, &stderr}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	said := func() string {
		mu.Lock()
		defer mu.Unlock()
		return stderr.String()
	}
	// Kill the supernode once the seed holds part of the image, and start it again once the
	// waiting CLI has found it gone.
	var id string
	wait.Until(t, 30*time.Second, "the seed to hold part of the image", func() bool {
		jobs, err := cl.Preheats(ctx)
		if err == nil && len(jobs) == 1 {
			for _, pt := range jobs[0].Progress.Tasks {
				if pt.SeedBytes > 0 && pt.SeedBytes < pt.Size {
					id = jobs[0].ID
				}
			}
		}
		return id != ""
	})
	c.supernode.Kill()
	wait.Until(t, 30*time.Second, "the waiting CLI to say the supernode is unreachable", func() bool {
		return strings.Contains(said(), "supernode unreachable, still waiting")
	})
	c.restartSupernode(t)

	if err := cli.Wait(); err != nil {
		t.Fatalf("supernode preheat --wait across the restart: %v\nstdout: %s\nstderr: %s", err, stdout.String(), said())
	}
	job, err := cl.Preheat(ctx, id)
	if err != nil || job.State != snapi.StateSuccess {
		t.Fatalf("after the restart: %v %+v", err, job)
	}
	for _, pt := range job.Progress.Tasks {
		if pt.PeersDone != 2 || pt.PeersTotal != 2 {
			t.Errorf("task %s on %d of %d peers", pt.Digest, pt.PeersDone, pt.PeersTotal)
		}
	}
	// The restarted seed resumed from the pieces it had kept.
	if sent, size := reg.TotalBlobBytes(), blobsSize(img); sent >= 2*size {
		t.Errorf("the registry sent %d bytes for a %d-byte image across the restart", sent, size)
	}
	before := reg.TotalBlobBytes()
	for _, d := range c.daemons {
		if err := bench.PullImage(ctx, "http://"+d.HTTP, reg.Host, preheatRepo, preheatTag, img); err != nil {
			t.Fatalf("pull through %s: %v", d.Name, err)
		}
	}
	if got := reg.TotalBlobBytes(); got != before {
		t.Errorf("the pulls after the preheat made the registry send %d blob bytes", got-before)
	}
}

// `supernode preheat` without --wait prints the job id; `cancel` ends it FAILED; `list` shows it.
func TestPreheatCancelAndList(t *testing.T) {
	reg, _ := preheatRegistry(t, registry.Options{BlobRate: 256 << 10}, 2, 8<<20, "", "")
	c := startClusterWith(t, 1, []string{"--registry-insecure", reg.Host}, "--registry-insecure", reg.Host)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	server := "http://" + c.supernode.HTTP
	code, stdout, stderr := supernodeCLI(ctx, t, "", nil, "preheat", "--server", server, reg.Host+"/"+preheatRepo+":"+preheatTag)
	id := strings.TrimSpace(stdout)
	if code != 0 || len(id) != 24 {
		t.Fatalf("exit %d, stdout %q, stderr %s; want the job id", code, stdout, stderr)
	}
	if code, stdout, stderr = supernodeCLI(ctx, t, "", nil, "preheat", "cancel", "--server", server, id); code != 0 || !strings.Contains(stdout, "FAILED") {
		t.Fatalf("cancel: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if code, _, stderr = supernodeCLI(ctx, t, "", nil, "preheat", "cancel", "--server", server, id); code == 0 || !strings.Contains(stderr, "already ended") {
		t.Errorf("a second cancel: exit %d, stderr %s; want a failure saying the job has ended", code, stderr)
	}
	code, stdout, _ = supernodeCLI(ctx, t, "", nil, "preheat", "list", "--server", server)
	if code != 0 || !strings.Contains(stdout, id) || !strings.Contains(stdout, "cancelled by the operator") {
		t.Errorf("list: exit %d\n%s", code, stdout)
	}
}

// Bad input is refused at once with the reason; a registry's 404 ends the job FAILED.
func TestPreheatBadInputCLI(t *testing.T) {
	reg, _ := preheatRegistry(t, registry.Options{}, 1, 1<<10, "", "")
	sn := start(t, "supernode", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--registry-insecure", reg.Host)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	server := "http://" + sn.HTTP
	for _, tc := range []struct {
		args []string
		text string
	}{
		{[]string{"--platform", "linux/z80", "busybox"}, "unknown architecture"},
		{[]string{"Not//A Reference"}, "reference"},
		{[]string{"http://169.254.169.254/latest/meta-data/"}, "link-local"},
		{[]string{reg.Host + "/" + preheatRepo + ":" + preheatTag}, "loopback"}, // --allow-networks not given
		{[]string{"--username", "u", "busybox"}, "--password-stdin"},
	} {
		args := append([]string{"preheat", "--server", server, "--wait"}, tc.args...)
		code, stdout, stderr := supernodeCLI(ctx, t, "", []string{"DOCKER_CONFIG=" + t.TempDir()}, args...)
		if code == 0 || stdout != "" || !strings.Contains(stderr, tc.text) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want a refusal naming %q and no job", tc.args, code, stdout, stderr, tc.text)
		}
	}
}

// The preheat commands reach a supernode that serves https, trusting --supernode-ca.
func TestPreheatCLIOverTLS(t *testing.T) {
	files := tlsca.Temp(t, "127.0.0.1")
	sn := start(t, "supernode", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--tls-cert", files.Cert, "--tls-key", files.Key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := "https://" + sn.HTTP
	if code, stdout, stderr := supernodeCLI(ctx, t, "", nil, "preheat", "list", "--server", server, "--supernode-ca", files.CA); code != 0 || !strings.HasPrefix(stdout, "ID") {
		t.Errorf("list over TLS with the CA: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, stderr := supernodeCLI(ctx, t, "", nil, "preheat", "list", "--server", server); code == 0 || !strings.Contains(stderr, "certificate") {
		t.Errorf("list over TLS without the CA: exit %d, stderr %q; want a refusal naming the certificate", code, stderr)
	}
}
