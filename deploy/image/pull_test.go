package image

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	"github.com/pouch-p2p/pouch/deploy/internal/deploytest"
	"github.com/pouch-p2p/pouch/internal/fixture/containerd"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/scrape"
)

// The image as `make image` builds it, pushed to a registry, is pulled through a dfdaemon
// mirror by `pouch pull` on a private containerd (hosts.toml written by `pouch mirror setup`),
// and `pouch run --rm IMAGE supernode --version` prints the version the image was built with.
// The registry serves each blob once: the seed fetched it, the mirror streamed it from P2P.
// The supernode and dfdaemon are the very binaries the image holds.
func TestPullAndRunThroughMirror(t *testing.T) {
	containerd.RequireIntegration(t) // skips, saying why, under -short or when not root
	const version = "v0.0.0-imagetest"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	work := t.TempDir()
	platform := "linux/" + goruntime.GOARCH
	began := time.Now()
	idx, images, err := Build(ctx, Options{
		ModuleDir: deploytest.ModuleDir, Platforms: []string{platform}, Version: version, Revision: "0123abc",
		Source: "https://example.org/pouch", Created: time.Now(), CAFile: "/etc/ssl/certs/ca-certificates.crt", WorkDir: work,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built the image (binaries and layers): %v", time.Since(began).Round(time.Millisecond))
	bins := filepath.Join(work, strings.ReplaceAll(platform, "/", "_"))
	img := images[0]

	for _, flavor := range containerd.Flavors() {
		t.Run(string(flavor), func(t *testing.T) {
			ctd := containerd.StartTest(t, flavor) // skips, naming what to install, when missing
			reg, err := registry.Start(ctx, registry.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { reg.Close() })
			began := time.Now()
			if _, err := Push(ctx, reg.Host+"/pouch", Tag(version), true, Taggable(idx, images)); err != nil {
				t.Fatal(err)
			}
			t.Logf("pushed: %v", time.Since(began).Round(time.Millisecond))
			ref := reg.Host + "/pouch:" + Tag(version)

			root := t.TempDir()
			sn := deploytest.Start(t, "supernode", filepath.Join(bins, "supernode"), "--listen", "127.0.0.1:0",
				"--data-dir", filepath.Join(root, "sn"), "--allow-networks", "127.0.0.0/8")
			df := deploytest.Start(t, "dfdaemon", filepath.Join(bins, "dfdaemon"), "--supernode", "http://"+sn.HTTP,
				"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(root, "df"), "--allow-networks", "127.0.0.0/8",
				"--registry-insecure", reg.Host)

			hosts := filepath.Join(root, "certs.d")
			pouch := func(args ...string) string {
				t.Helper()
				global := []string{"--address", ctd.Address, "--namespace", "pouch-image-test", "--hosts-dir", hosts}
				cmd := exec.CommandContext(ctx, filepath.Join(bins, "pouch"), append(global, args...)...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("pouch %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
				}
				return stdout.String()
			}
			pouch("mirror", "setup", "--mirror", "http://"+df.HTTP, "--registry", "http://"+reg.Host)
			began = time.Now()
			pouch("pull", ref)
			t.Logf("pulled through the mirror: %v", time.Since(began).Round(time.Millisecond))
			out := pouch("run", "--rm", ref, "supernode", "--version")
			if want := "supernode version " + version + " (commit 0123abc, " + goruntime.Version() + ")\n"; out != want {
				t.Errorf("pouch run --rm IMAGE supernode --version printed %q, want %q", out, want)
			}

			// Each blob (config and layers) left the registry exactly once, and the mirror
			// served every layer byte from P2P.
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			var layerBytes int64
			for i, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
				if got := reg.BlobBytes(digest.Digest(d.Digest.String())); got != d.Size {
					t.Errorf("registry sent %d bytes of %s (%d bytes); want exactly once", got, d.Digest, d.Size)
				}
				if i > 0 {
					layerBytes += d.Size
				}
			}
			mf, err := scrape.Get(ctx, "http://"+df.HTTP+"/metrics")
			if err != nil {
				t.Fatal(err)
			}
			if got := mf.Sum("pouch_registryproxy_blob_bytes_total", scrape.Labels{"source": "upstream"}); got != 0 {
				t.Errorf("the mirror streamed %v blob bytes from the registry itself, want 0", got)
			}
			if got := mf.Sum("pouch_registryproxy_blob_bytes_total", scrape.Labels{"source": "p2p"}); got < float64(layerBytes) {
				t.Errorf("the mirror served %v blob bytes from P2P, want at least the layers' %d", got, layerBytes)
			}
		})
	}
}
