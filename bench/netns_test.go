package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/wait"
)

// needNetns skips a test that builds a --netns network where it cannot.
func needNetns(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped under -short: creates network namespaces, veth pairs and tc qdiscs")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: --netns needs root (network namespaces, veth, tc)")
	}
	for _, b := range append([]string{"ip", "tc"}, tools...) {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipped: %s not installed (iproute2, busybox)", b)
		}
	}
}

// leftovers lists the namespaces and links named with pid.
func leftovers(t *testing.T, pid int) []string {
	t.Helper()
	ip, _ := exec.LookPath("ip")
	nss, links, err := (&netnsNet{ip: ip}).list()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, x := range append(nss, links...) {
		if x.pid == pid {
			left = append(left, x.name)
		}
	}
	return left
}

// The caps are tc's: 4 MiB in either direction between a node and the bridge takes at least
// 0.35 s at 8 MB/s (0.52 s exactly), the namespaces have no route out of the subnet, and close
// leaves nothing behind. A correctness check of the caps, not a performance assertion.
func TestNetnsCaps(t *testing.T) {
	needNetns(t, "busybox")
	const size, rate = 4 << 20, 8e6
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := setupNetns(ctx, 2, rate, rate, false)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			n.close()
		}
	}()

	data := bytes.Repeat([]byte("pouch-netns-"), size/12+1)[:size]
	var received atomic.Int64
	ln, err := net.Listen("tcp", netnsHost+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			k, _ := io.Copy(io.Discard, r.Body)
			received.Store(k)
			return
		}
		w.Write(data)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/"
	file := filepath.Join(t.TempDir(), "up")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}

	timed := func(node int, args ...string) time.Duration {
		t.Helper()
		prog, args := n.command(node, "/bin/sh", append([]string{"-c", `exec busybox wget -q -Y off -O /dev/null "$@"`, "wget"}, args...)...)
		start := time.Now()
		if b, err := exec.CommandContext(ctx, prog, args...).CombinedOutput(); err != nil {
			t.Fatalf("node %d: wget %v: %v: %s", node, args, err, b)
		}
		return time.Since(start)
	}
	min := time.Duration(0.35 * float64(time.Second))
	if d := timed(0, url); d < min || d > time.Minute {
		t.Errorf("download of 4 MiB at 8 MB/s took %v, want ≥ %v (the cap on the root-side veth)", d, min)
	} else {
		t.Logf("download: 4 MiB in %v (%.1f MB/s)", d, size/d.Seconds()/1e6)
	}
	if d := timed(1, "--post-file", file, url); d < min || d > time.Minute {
		t.Errorf("upload of 4 MiB at 8 MB/s took %v, want ≥ %v (the cap in the namespace)", d, min)
	} else {
		t.Logf("upload: 4 MiB in %v (%.1f MB/s)", d, size/d.Seconds()/1e6)
	}
	if got := received.Load(); got != size {
		t.Errorf("the server received %d bytes, want %d", got, size)
	}

	// Hermetic: only the subnet is routed in a node's namespace.
	out, err := n.output(n.ip, "-n", n.ns(0), "-4", "route", "show")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "default") || !strings.Contains(out, netnsSubnet) {
		t.Errorf("routes in %s:\n%s", n.ns(0), out)
	}

	srv.Close()
	closed = true
	if err := n.close(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, os.Getpid()); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// A run's setup removes what a killed run (a dead pid) left behind.
func TestNetnsCleansStale(t *testing.T) {
	needNetns(t)
	dead := 0
	for p := 4194000; p > 4000000; p-- {
		if !pidAlive(p) {
			dead = p
			break
		}
	}
	if dead == 0 {
		t.Skip("skipped: found no unused pid")
	}
	stale := &netnsNet{pid: dead, bridge: fmt.Sprintf("pbr%d", dead), nodes: 1}
	stale.ip, _ = exec.LookPath("ip")
	stale.tc, _ = exec.LookPath("tc")
	// A stale run half-built: its bridge, one namespace and veth pair.
	ctx := context.Background()
	for _, args := range [][]string{
		{"link", "add", stale.bridge, "type", "bridge"},
		{"netns", "add", stale.ns(0)},
		{"link", "add", stale.hostVeth(0), "type", "veth", "peer", "name", stale.nodeVeth(0), "netns", stale.ns(0)},
	} {
		if err := stale.run(ctx, stale.ip, args...); err != nil {
			stale.remove(dead)
			t.Fatal(err)
		}
	}
	if left := leftovers(t, dead); len(left) != 3 {
		stale.remove(dead)
		t.Fatalf("stale names %v, want 3", left)
	}
	n, err := setupNetns(ctx, 1, 8e6, 8e6, false)
	if err != nil {
		stale.remove(dead)
		t.Fatal(err)
	}
	if left := leftovers(t, dead); len(left) > 0 {
		t.Errorf("setup left the stale %v", left)
		stale.remove(dead)
	}
	if err := n.close(); err != nil {
		t.Fatal(err)
	}
}

// dfbench run --netns on 3 nodes gets every copy right and removes its network; interrupted
// (SIGINT) in the middle of a run, it removes it too.
func TestDfbenchRunNetns(t *testing.T) {
	needNetns(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "dfbench"), "run", "--netns", "--nodes", "3", "--size", "8MiB",
		"--upload-rate", "8MB", "--download-rate", "8MB", "--out", out)
	b, err := cmd.CombinedOutput()
	t.Logf("dfbench run --netns:\n%s", b)
	if err != nil {
		t.Fatalf("dfbench run --netns: %v", err)
	}
	if left := leftovers(t, cmd.Process.Pid); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	raw, err := os.ReadFile(filepath.Join(out, ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.PerNode) != 3 {
		t.Fatalf("per_node has %d entries", len(res.PerNode))
	}
	for _, n := range res.PerNode {
		if !n.DigestOK {
			t.Errorf("node %+v", n)
		}
	}
	// The caps hold: no node can have its 8 MiB in less than F/d = 1.05 s.
	if res.Max < 0.9 {
		t.Errorf("max %.2fs < F/d: the download cap did not apply", res.Max)
	}

	// Interrupted while the nodes pull (32 MiB at 8 MB/s: at least 4 s).
	cmd = exec.CommandContext(ctx, filepath.Join(binDir, "dfbench"), "run", "--netns", "--nodes", "2", "--size", "32MiB",
		"--upload-rate", "8MB", "--download-rate", "8MB")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Interrupt once a process runs in each node's namespace: the daemons are up and pulling.
	wait.Until(t, 30*time.Second, "a process in each node's namespace", func() bool {
		running := 0
		for _, name := range leftovers(t, pid) { // bridge, 2 veths, 2 namespaces
			if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
				running++
			}
		}
		return running == 2
	})
	cmd.Process.Signal(syscall.SIGINT)
	err = cmd.Wait()
	t.Logf("interrupted dfbench run --netns (%v):\n%s", err, log.String())
	if left := leftovers(t, pid); len(left) > 0 {
		t.Errorf("left behind after SIGINT: %v", left)
	}
}
