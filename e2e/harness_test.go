// Package e2e runs Pouch's real binaries as separate processes on loopback and checks what a
// user would: the bytes and digests of every copy, exit codes, and what reached the origin.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/daemon"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/scrape"
)

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped under -short: these tests build and start real supernode/dfdaemon/dfget processes")
		os.Exit(0)
	}
	daemon.BuildMain(m, "..", &binDir, "supernode", "dfdaemon", "dfget", "pouch", "dfbench")
}

// proc is a daemon started for a test, its stderr kept to print when the test fails.
type proc struct {
	*daemon.Proc
	log *bytes.Buffer
	mu  *sync.Mutex
}

// logText is what the daemon has logged so far.
func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

type lockedBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// start runs a daemon binary, its P2P host on loopback unless args say otherwise, and waits
// for its ready line.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startProg(t, name, filepath.Join(binDir, strings.Fields(name)[0]), daemon.LoopbackP2P(args)...)
}

// startProg runs prog with args as the daemon called name and waits for its ready line.
func startProg(t *testing.T, name, prog string, args ...string) *proc {
	t.Helper()
	p := &proc{log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	var err error
	p.Proc, err = daemon.Start(context.Background(), name, prog, args, lockedBuffer{p.mu, p.log})
	t.Cleanup(func() {
		if p.Proc != nil {
			p.Kill()
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("--- %s log ---\n%s", name, p.log.String())
			p.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func fileSHA(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return sha(b)
}

// cluster is a supernode and n dfdaemons on loopback.
type cluster struct {
	root      string
	supernode *proc
	daemons   []*proc
	// The flags each was started with, so that a test can start it again on its data dir.
	supernodeArgs []string
	daemonArgs    [][]string
}

// restartDaemon kills dfdaemon i and starts it again on the same data directory; hurt, when not
// nil, runs while it is stopped.
func (c *cluster) restartDaemon(t *testing.T, i int, hurt func()) {
	t.Helper()
	c.daemons[i].Kill()
	if hurt != nil {
		hurt()
	}
	c.daemons[i] = start(t, c.daemons[i].Name, c.daemonArgs[i]...)
}

// restartSupernode kills the supernode and starts it again on the same data directory; it must
// have been started on a fixed address (--listen freePort), which the daemons keep calling.
func (c *cluster) restartSupernode(t *testing.T) {
	t.Helper()
	c.supernode.Kill()
	c.supernode = start(t, c.supernode.Name, c.supernodeArgs...)
}

func (c *cluster) daemonDir(i int) string { return filepath.Join(c.root, fmt.Sprintf("node%d", i)) }

func startCluster(t *testing.T, n int, daemonArgs ...string) *cluster {
	return startClusterWith(t, n, nil, daemonArgs...)
}

// startClusterWith passes extra flags to the supernode too.
func startClusterWith(t *testing.T, n int, supernodeArgs []string, daemonArgs ...string) *cluster {
	t.Helper()
	root := t.TempDir()
	c := &cluster{root: root}
	c.supernodeArgs = append([]string{"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(root, "sn"), "--allow-networks", "127.0.0.0/8", "--log-level", "debug"}, supernodeArgs...)
	c.supernode = start(t, "supernode", c.supernodeArgs...)
	for i := range n {
		c.addDaemon(t, c.daemonDir(i), daemonArgs...)
	}
	return c
}

// addDaemon starts one more dfdaemon of the cluster, on data directory dir.
func (c *cluster) addDaemon(t *testing.T, dir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--supernode", "http://" + c.supernode.HTTP, "--listen", "127.0.0.1:0",
		"--data-dir", dir, "--allow-networks", "127.0.0.0/8", "--log-level", "debug"}, extra...)
	p := start(t, fmt.Sprintf("dfdaemon %d", len(c.daemons)), args...)
	c.daemonArgs = append(c.daemonArgs, args)
	c.daemons = append(c.daemons, p)
	return p
}

// startDaemons starts n dfdaemons under root (node0, node1, ...) on the supernodes of list,
// every one capped at rate up and down.
func startDaemons(t *testing.T, root, list string, n int, rate string) []*proc {
	t.Helper()
	var daemons []*proc
	for i := range n {
		daemons = append(daemons, start(t, fmt.Sprintf("dfdaemon %d", i), "--supernode", list, "--listen", "127.0.0.1:0",
			"--data-dir", filepath.Join(root, fmt.Sprint("node", i)), "--allow-networks", "127.0.0.0/8",
			"--upload-rate", rate, "--download-rate", rate, "--log-level", "debug"))
	}
	return daemons
}

// dfget runs the dfget binary and returns its exit code and stderr.
func dfget(ctx context.Context, args ...string) (int, string) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "dfget"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		return -1, fmt.Sprintf("%v: %s", err, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// burst runs dfget for url on every daemon at the same moment, node i writing out/i, and
// returns each exit code and stderr. wg lets the caller act while the downloads run.
func burst(ctx context.Context, daemons []*proc, url, out string, args ...string) (wait func() ([]int, []string)) {
	var wg sync.WaitGroup
	codes := make([]int, len(daemons))
	msgs := make([]string, len(daemons))
	for i, d := range daemons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], msgs[i] = dfget(ctx, append([]string{url, "-O", filepath.Join(out, fmt.Sprint(i)), "--daemon", "http://" + d.HTTP}, args...)...)
		}()
	}
	return func() ([]int, []string) { wg.Wait(); return codes, msgs }
}

// checkCopies asserts that every node but those in skip exited 0 with the right content.
func checkCopies(t *testing.T, codes []int, msgs []string, out string, data []byte, skip ...int) {
	t.Helper()
	for i := range codes {
		if slices.Contains(skip, i) {
			continue
		}
		if codes[i] != 0 {
			t.Fatalf("dfget on node %d: exit %d: %s", i, codes[i], msgs[i])
		}
		if got := fileSHA(t, filepath.Join(out, fmt.Sprint(i))); got != sha(data) {
			t.Errorf("node %d: content %s, want %s", i, got, sha(data))
		}
	}
}

// waitBytes waits until daemon p has downloaded at least n bytes.
func waitBytes(t *testing.T, p *proc, n float64) {
	t.Helper()
	wait.Until(t, 30*time.Second, fmt.Sprintf("%s to get %v bytes", p.Name, n), func() bool {
		return metric(t, p, "pouch_dfdaemon_download_bytes_total", nil) >= n
	})
}

// metric sums the series of one metric on a daemon's /metrics that carry labels (nil: all).
func metric(t *testing.T, p *proc, name string, labels scrape.Labels) float64 {
	t.Helper()
	m, err := scrape.Get(context.Background(), "http://"+p.HTTP+"/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", p.Name, err)
	}
	return m.Sum(name, labels)
}

// originCopies is how many copies of size bytes the origin sent since before.
func originCopies(o *origin.Files, before int64, size int) float64 {
	return float64(o.Sent.Load()-before) / float64(size)
}
