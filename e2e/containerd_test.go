package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/containerd"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/runtime"
	"github.com/pouch-p2p/pouch/runtime/network"
)

// Three nodes, each with its own containerd pointed (hosts.toml) at its own dfdaemon mirror, pull
// the same image at the same moment: every pull succeeds, the upstream registry serves each blob
// exactly once for the whole cluster, every blob reaches every node over P2P (never from the
// upstream directly), and the pulled image runs. Once per containerd flavor (1.6 and 2.x).
func TestContainerdPullThroughMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts containerd, a registry, a supernode and dfdaemons; skipped under -short")
	}
	containerd.RequireIntegration(t) // skips, saying why, when not root
	const (
		nodes      = 3
		extraBytes = 16 << 20
	)
	img, err := image.Busybox(1, extraBytes)
	if errors.Is(err, image.ErrNoBusybox) {
		t.Skip(err) // the image must run
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, flavor := range containerd.Flavors() {
		t.Run(string(flavor), func(t *testing.T) {
			began := time.Now()
			defer func() { t.Logf("%s: %v", flavor, time.Since(began).Round(time.Millisecond)) }()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()

			// Containerds first: StartTest skips the subtest, naming what to install, when
			// the flavor's binaries are missing, before anything else is started.
			ctrs := make([]*containerd.Instance, nodes)
			for i := range ctrs {
				ctrs[i] = containerd.StartTest(t, flavor)
			}

			// A fresh registry per flavor, so its byte counters are this run's alone.
			reg, err := registry.Start(ctx, registry.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { reg.Close() })
			if err := img.Push(ctx, reg.URL, "demo/busybox", "latest", "", ""); err != nil {
				t.Fatalf("push: %v", err)
			}
			ref := reg.Host + "/demo/busybox:latest"

			c := startCluster(t, nodes, "--registry-insecure", reg.Host)

			rts := make([]*runtime.Runtime, nodes)
			for i := range rts {
				hostsDir := filepath.Join(c.root, fmt.Sprintf("hosts%d", i))
				if _, err := runtime.WriteHostsTOML(hostsDir, "http://"+reg.Host, "http://"+c.daemons[i].HTTP); err != nil {
					t.Fatal(err)
				}
				rt, err := runtime.New(ctx, runtime.Config{Address: ctrs[i].Address, Namespace: "pouch-e2e", HostsDir: hostsDir, Root: filepath.Join(c.root, fmt.Sprintf("pouch%d", i))})
				if err != nil {
					t.Fatalf("node %d: %v", i, err)
				}
				t.Cleanup(func() { rt.Close() })
				rts[i] = rt
			}

			// The three pulls, released at the same moment.
			var (
				wg       sync.WaitGroup
				release  = make(chan struct{})
				errs     = make([]error, nodes)
				images   = make([]runtime.Image, nodes)
				progress = make([]bytes.Buffer, nodes)
			)
			for i, rt := range rts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-release
					images[i], errs[i] = rt.Pull(ctx, ref, &progress[i])
				}()
			}
			pullStart := time.Now()
			close(release)
			wg.Wait()
			t.Logf("3 concurrent pulls of %s: %v", ref, time.Since(pullStart).Round(time.Millisecond))
			for i, err := range errs {
				if err != nil {
					t.Fatalf("pull on node %d (%s): %v\nprogress:\n%s", i, flavor, err, progress[i].String())
				}
				if images[i].Digest != img.Manifest.Digest {
					t.Errorf("node %d: pulled manifest %s, want %s", i, images[i].Digest, img.Manifest.Digest)
				}
			}

			// The upstream served every blob exactly once for the whole cluster.
			var total int64
			for _, b := range img.Blobs() {
				total += int64(len(b.Data))
				if got := reg.BlobBytes(b.Digest); got != int64(len(b.Data)) {
					t.Errorf("registry sent %d bytes of %s (%s, %d bytes); want exactly once",
						got, b.Digest, b.MediaType, len(b.Data))
				}
			}
			if got := reg.TotalBlobBytes(); got != total {
				t.Errorf("registry sent %d blob bytes in all; the image's blobs are %d bytes", got, total)
			}
			if got := metric(t, c.supernode, "pouch_supernode_origin_bytes_total", nil); got != float64(total) {
				t.Errorf("seed fetched %v bytes from the origin, want %d", got, total)
			}

			// Every mirror served every blob from P2P, nothing from the upstream directly, and
			// every daemon got its pieces from peers (the seed or another daemon), never the origin.
			for _, d := range c.daemons {
				if got := metric(t, d, "pouch_registryproxy_blob_bytes_total", scrape.Labels{"source": "upstream"}); got != 0 {
					t.Errorf("%s: mirror streamed %v blob bytes from the upstream, want 0 (all through P2P)", d.Name, got)
				}
				if got := metric(t, d, "pouch_registryproxy_fallbacks_total", nil); got != 0 {
					t.Errorf("%s: mirror fell back to the upstream %v times", d.Name, got)
				}
				if got := metric(t, d, "pouch_registryproxy_blob_bytes_total", scrape.Labels{"source": "p2p"}); got < float64(total) {
					t.Errorf("%s: mirror served %v blob bytes from P2P, want at least the image's %d", d.Name, got, total)
				}
				if got := metric(t, d, "pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "peer"}); got < float64(total) {
					t.Errorf("%s: downloaded %v bytes from peers, want at least the image's %d", d.Name, got, total)
				}
				if got := metric(t, d, "pouch_dfdaemon_download_bytes_total", scrape.Labels{"source": "origin"}); got != 0 {
					t.Errorf("%s: downloaded %v bytes from the origin itself, want 0", d.Name, got)
				}
				if got := metric(t, d, "pouch_dfdaemon_back_to_source_total", nil); got != 0 {
					t.Errorf("%s: went back to source %v times", d.Name, got)
				}
			}

			// The image pulled through the mirror runs.
			var stdout, stderr bytes.Buffer
			code, err := rts[0].Run(ctx, runtime.RunOptions{CreateOptions: runtime.CreateOptions{Image: ref, Network: network.None}, Rm: true, Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatalf("run on node 0: %v\nstderr: %s", err, stderr.String())
			}
			if code != 0 || stdout.String() != image.BusyboxOutput {
				t.Errorf("run on node 0: exit %d, stdout %q, stderr %q; want exit 0, stdout %q",
					code, stdout.String(), stderr.String(), image.BusyboxOutput)
			}
			if got := reg.TotalBlobBytes(); got != total {
				t.Errorf("after the run the registry had sent %d blob bytes, want still %d", got, total)
			}
		})
	}
}
