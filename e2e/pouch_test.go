package e2e

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/containerd"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/scrape"
	"github.com/pouch-p2p/pouch/runtime"
	"github.com/pouch-p2p/pouch/runtime/credentials"
	"github.com/pouch-p2p/pouch/runtime/network"
)

// A private image behind a bearer-token registry, pulled by pouch through a real dfdaemon
// mirror: refused without credentials (the mirror relays the registry's challenge), pulled with
// the ones `pouch login` stored, its layer served through the mirror after the dfdaemon's
// authorization check, and run.
func TestPouchPrivateImageThroughMirror(t *testing.T) {
	containerd.RequireIntegration(t)
	ctd := containerd.StartTest(t, containerd.Containerd1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg, err := registry.Start(ctx, registry.Options{Token: true, Htpasswd: map[string]string{"alice": "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	img, err := image.Busybox(1, 1<<20)
	if errors.Is(err, image.ErrNoBusybox) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Push(ctx, reg.URL, "private/app", "1", "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, 1, "--registry-insecure", reg.Host)
	hostsDir := filepath.Join(c.root, "hosts")
	if _, err := runtime.WriteHostsTOML(hostsDir, "http://"+reg.Host, "http://"+c.daemons[0].HTTP); err != nil {
		t.Fatal(err)
	}
	creds := credentials.New(t.TempDir())
	rt, err := runtime.New(ctx, runtime.Config{Address: ctd.Address, Namespace: "pouch-e2e", HostsDir: hostsDir,
		Root: filepath.Join(c.root, "pouch"), CredentialsDir: creds.Dir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	ref := reg.Host + "/private/app:1"

	if _, err := rt.Pull(ctx, ref, nil); !errors.Is(err, runtime.ErrUnauthorized) {
		t.Fatalf("pull without credentials: %v, want ErrUnauthorized", err)
	}
	if _, err := runtime.Login(ctx, hostsDir, creds, reg.Host, "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	got, err := rt.Pull(ctx, ref, &progress)
	if err != nil {
		t.Fatalf("pull after login: %v\n%s", err, progress.String())
	}
	if got.Digest != img.Manifest.Digest {
		t.Errorf("pulled %s, want %s", got.Digest, img.Manifest.Digest)
	}
	if n := metric(t, c.daemons[0], "pouch_dfdaemon_authorization_total", scrape.Labels{"result": "allowed"}); n < 1 {
		t.Errorf("the mirror allowed %v requests, want the pull's blobs", n)
	}
	var stdout bytes.Buffer
	code, err := rt.Run(ctx, runtime.RunOptions{CreateOptions: runtime.CreateOptions{Image: ref, Network: network.None}, Rm: true, Stdout: &stdout})
	if err != nil || code != 0 || stdout.String() != image.BusyboxOutput {
		t.Errorf("run = %d, %v, %q", code, err, stdout.String())
	}
}
