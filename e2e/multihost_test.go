package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/bench"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"github.com/pouch-p2p/pouch/internal/scrape"
)

// The README's commands, run as written on separate hosts, work: the supernode on one host and
// a dfdaemon on each of three others (network namespaces on a bridge, so that no two share a
// loopback), started with the README's flags only — plus --metrics-listen (the README's
// "Watching it"), to read each daemon's bytes by source from the test's host. One dfget per host, all at once: every copy is
// right, the origin sent exactly one, and the daemons got every byte over P2P from the other
// hosts, a good part of it from each other rather than from the seed; then a one-shot dfget. With the defaults before
// this test (P2P on loopback) the same run had the origin send 4 copies, 0 bytes over P2P.
func TestReadmeCommandsAcrossHosts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to put the supernode and the dfdaemons in network namespaces")
	}
	for _, b := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipped: %s not installed (iproute2): the hosts are network namespaces", b)
		}
	}
	const (
		nodes = 3
		size  = 48 << 20
		rate  = 50e6 // every host's upload and download, the supernode's too: the seed alone cannot feed three
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nn, err := bench.SetupNetns(ctx, 1+nodes, rate) // host 0: the supernode; 1..nodes: dfdaemons
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nn.Close(); err != nil {
			t.Errorf("removing the network namespaces: %v", err)
		}
	})
	data := randomBytes(t, size)
	ln, err := net.Listen("tcp", nn.BridgeAddr()+":0")
	if err != nil {
		t.Fatal(err)
	}
	o := origin.NewFilesOn(t, ln, map[string][]byte{"/big.tar": data}, 0)
	url := o.URL + "/big.tar"
	root := t.TempDir()
	on := func(host int, name string, args ...string) *proc {
		prog, a := nn.Command(host, filepath.Join(binDir, name), args...)
		return startProg(t, fmt.Sprintf("%s on host %d", name, host), prog, a...)
	}

	on(0, "supernode", "--listen", "0.0.0.0:8002", "--data-dir", filepath.Join(root, "supernode"))
	daemons := make([]*proc, nodes)
	for i := range daemons {
		daemons[i] = on(1+i, "dfdaemon", "--supernode", "http://"+nn.NodeAddr(0)+":8002", "--data-dir", filepath.Join(root, fmt.Sprint("node", i)),
			"--upload-rate", "100MB", "--metrics-listen", "0.0.0.0:9101")
	}

	var wg sync.WaitGroup
	for i := range daemons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := filepath.Join(root, fmt.Sprintf("big%d.tar", i))
			prog, args := nn.Command(1+i, filepath.Join(binDir, "dfget"), url, "-O", out, "--digest", sha(data))
			cmd := exec.CommandContext(ctx, prog, args...)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("dfget on host %d: %v: %s", 1+i, err, b)
				return
			}
			if got := fileSHA(t, out); got != sha(data) {
				t.Errorf("host %d got %s, want %s", 1+i, got, sha(data))
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	if sent := o.Sent.Load(); sent != size {
		t.Errorf("the origin sent %d bytes (%.2f copies), want exactly one copy (%d)", sent, float64(sent)/size, size)
	}
	var bySource [3]float64 // seed, peer, origin
	for i := range daemons {
		m, err := scrape.Get(ctx, "http://"+net.JoinHostPort(nn.NodeAddr(1+i), "9101")+"/metrics")
		if err != nil {
			t.Fatalf("metrics of host %d: %v", 1+i, err)
		}
		for k, from := range []string{"seed", "peer", "origin"} {
			n := m.Sum("pouch_dfdaemon_download_bytes_total", scrape.Labels{"from": from})
			bySource[k] += n
			t.Logf("host %d: %.1f MiB from %s", 1+i, n/(1<<20), from)
		}
	}
	seed, peer, origin := bySource[0], bySource[1], bySource[2]
	if origin != 0 || seed+peer != nodes*size {
		t.Errorf("the daemons got %.0f bytes from the seed, %.0f from peers, %.0f from the origin; want all %d over P2P", seed, peer, origin, nodes*size)
	}
	// Super-seeding sends each piece out about once: the other copies travel between the hosts.
	if peer < size {
		t.Errorf("the daemons got %.1f MiB from each other, want at least one copy's worth (%d MiB) of the %d MiB", peer/(1<<20), size>>20, nodes*size>>20)
	}

	// The README's one-shot dfget (no local dfdaemon: the dfdaemon binary beside dfget is its
	// peer for one download), on a host whose own dfdaemon keeps its fixed ports: from the peers.
	out := filepath.Join(root, "oneshot.tar")
	prog, args := nn.Command(1, filepath.Join(binDir, "dfget"), url, "-O", out, "--digest", sha(data), "--supernode", "http://"+nn.NodeAddr(0)+":8002")
	if b, err := exec.CommandContext(ctx, prog, args...).CombinedOutput(); err != nil {
		t.Fatalf("one-shot dfget on host 1: %v: %s", err, b)
	}
	if got := fileSHA(t, out); got != sha(data) {
		t.Errorf("the one-shot copy is %s, want %s", got, sha(data))
	}
	if sent := o.Sent.Load(); sent != size {
		t.Errorf("after the one-shot dfget the origin sent %d bytes, want still one copy (%d)", sent, size)
	}
}
