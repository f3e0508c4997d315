package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/containerd"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/runtime"
	"github.com/pouch-p2p/pouch/runtime/network"
)

// upstream is a registry name that does not resolve: an image named after it can only be
// pulled through the mirror its hosts.toml names.
const upstream = "pouch-upstream.invalid"

func TestNewMissingSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	_, err := runtime.New(context.Background(), runtime.Config{Address: sock})
	if !errors.Is(err, runtime.ErrDaemonUnavailable) {
		t.Fatalf("err = %v, want ErrDaemonUnavailable", err)
	}
	if !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("error %q does not name the socket %s and say it is missing", err, sock)
	}
}

func TestNewStaleSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody listens
	start := time.Now()
	_, err = runtime.New(context.Background(), runtime.Config{Address: sock, DialTimeout: 3 * time.Second})
	if !errors.Is(err, runtime.ErrDaemonUnavailable) || !strings.Contains(err.Error(), sock) {
		t.Fatalf("err = %v, want ErrDaemonUnavailable naming %s", err, sock)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("New took %s on a dead socket", d)
	}
}

func TestNormalizeRef(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"busybox":                       "docker.io/library/busybox:latest",
		"127.0.0.1:5000/a/b:1":          "127.0.0.1:5000/a/b:1",
		"quay.io/x/y":                   "quay.io/x/y:latest",
		upstream + "/pouch/busybox:1.0": upstream + "/pouch/busybox:1.0",
	} {
		got, err := runtime.NormalizeRef(in)
		if err != nil || got != want {
			t.Errorf("NormalizeRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := runtime.NormalizeRef("library/BusyBox"); err == nil {
		t.Error("NormalizeRef accepted an upper-case repository")
	}
}

// TestContainerd pulls the busybox image through a hosts dir whose hosts.toml points at a
// plain registry, runs it and round-trips images/ps/rm/rmi, on containerd 1.6 and 2.x.
func TestContainerd(t *testing.T) {
	containerd.RequireIntegration(t)
	reg := registry.StartDocker(t)
	img := image.PushBusybox(t, reg, "pouch/busybox", "1.0")
	hostsDir := t.TempDir()
	mirror := "http://" + reg
	if _, err := runtime.WriteHostsTOML(hostsDir, upstream, mirror); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.WriteHostsTOML(hostsDir, runtime.DefaultRegistry, mirror); err != nil {
		t.Fatal(err)
	}
	for _, flavor := range containerd.Flavors() {
		t.Run(string(flavor), func(t *testing.T) {
			ctd := containerd.StartTest(t, flavor)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rt, err := runtime.New(ctx, runtime.Config{Address: ctd.Address, Namespace: "pouch-test", HostsDir: hostsDir, Root: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			ref := upstream + "/pouch/busybox:1.0"

			t.Run("pull", func(t *testing.T) {
				var progress bytes.Buffer
				got, err := rt.Pull(ctx, ref, &progress)
				if err != nil {
					t.Fatalf("%v\nprogress:\n%s", err, progress.String())
				}
				if got.Name != ref || got.Digest != img.Manifest.Digest {
					t.Errorf("pulled %s %s, want %s %s", got.Name, got.Digest, ref, img.Manifest.Digest)
				}
				for _, l := range img.Layers {
					short := l.Digest.Algorithm().String() + ":" + l.Digest.Encoded()[:12]
					if !strings.Contains(progress.String(), short+": done") {
						t.Errorf("progress has no done line for layer %s:\n%s", short, progress.String())
					}
				}
				// The _default entry serves a registry without its own directory.
				other := "other-upstream.invalid/pouch/busybox:1.0"
				if _, err := rt.Pull(ctx, other, nil); err != nil {
					t.Fatalf("pull %s through _default: %v", other, err)
				}
				if err := rt.RemoveImage(ctx, other); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("run --rm", func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				code, err := rt.Run(ctx, runtime.RunOptions{CreateOptions: noNet(ref), Rm: true, Stdout: &stdout, Stderr: &stderr})
				if err != nil || code != 0 {
					t.Fatalf("Run = %d, %v; stderr %q", code, err, stderr.String())
				}
				if stdout.String() != image.BusyboxOutput {
					t.Errorf("stdout = %q, want %q", stdout.String(), image.BusyboxOutput)
				}
				assertContainers(t, ctx, rt)
			})

			t.Run("exit code and stderr", func(t *testing.T) {
				var stderr bytes.Buffer
				code, err := rt.Run(ctx, runtime.RunOptions{CreateOptions: noNet(ref, "sh", "-c", "echo oops >&2; exit 3"), Rm: true, Stderr: &stderr})
				if err != nil || code != 3 {
					t.Fatalf("Run = %d, %v; want exit code 3", code, err)
				}
				if stderr.String() != "oops\n" {
					t.Errorf("stderr = %q, want %q", stderr.String(), "oops\n")
				}
			})

			t.Run("round trip", func(t *testing.T) {
				code, err := rt.Run(ctx, runtime.RunOptions{CreateOptions: named(noNet(ref, "sh", "-c", "exit 7"), "keep")})
				if err != nil || code != 7 {
					t.Fatalf("Run = %d, %v", code, err)
				}
				if _, err := rt.Run(ctx, runtime.RunOptions{CreateOptions: named(noNet(ref), "keep")}); !errors.Is(err, runtime.ErrContainerExists) {
					t.Errorf("second run named keep: err = %v, want ErrContainerExists", err)
				}
				assertContainers(t, ctx, rt, runtime.Container{Names: "keep", Image: ref, State: "exited", ExitCode: 7})
				imgs, err := rt.Images(ctx)
				if err != nil || len(imgs) != 1 || imgs[0].Name != ref || imgs[0].Size <= 0 {
					t.Fatalf("Images = %+v, %v; want only %s", imgs, err, ref)
				}
				if err := rt.RemoveImage(ctx, ref); !errors.Is(err, runtime.ErrImageInUse) {
					t.Errorf("rmi of an image in use: err = %v, want ErrImageInUse", err)
				}
				if err := rt.RemoveContainer(ctx, "keep"); err != nil {
					t.Fatal(err)
				}
				if err := rt.RemoveContainer(ctx, "keep"); !errors.Is(err, runtime.ErrContainerNotFound) {
					t.Errorf("second rm: err = %v, want ErrContainerNotFound", err)
				}
				assertContainers(t, ctx, rt)
				if err := rt.RemoveImage(ctx, ref); err != nil {
					t.Fatal(err)
				}
				if err := rt.RemoveImage(ctx, ref); !errors.Is(err, runtime.ErrImageNotFound) {
					t.Errorf("second rmi: err = %v, want ErrImageNotFound", err)
				}
				if imgs, err := rt.Images(ctx); err != nil || len(imgs) != 0 {
					t.Errorf("Images after rmi = %+v, %v", imgs, err)
				}
				// Run pulls what is missing.
				var stdout bytes.Buffer
				if code, err := rt.Run(ctx, runtime.RunOptions{CreateOptions: noNet(ref), Rm: true, Stdout: &stdout}); err != nil || code != 0 || stdout.String() != image.BusyboxOutput {
					t.Errorf("Run after rmi = %d, %v, %q", code, err, stdout.String())
				}
			})

			t.Run("unknown image", func(t *testing.T) {
				missing := reg + "/pouch/nothere:1"
				if _, err := rt.Pull(ctx, missing, nil); !errors.Is(err, runtime.ErrImageNotFound) {
					t.Errorf("Pull(%s): err = %v, want ErrImageNotFound", missing, err)
				}
				if _, err := rt.Run(ctx, runtime.RunOptions{CreateOptions: noNet(missing), Rm: true}); !errors.Is(err, runtime.ErrImageNotFound) {
					t.Errorf("Run(%s): err = %v, want ErrImageNotFound", missing, err)
				}
				assertContainers(t, ctx, rt)
			})
		})
	}
}

func assertContainers(t *testing.T, ctx context.Context, rt *runtime.Runtime, want ...runtime.Container) {
	t.Helper()
	got, err := rt.Containers(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Containers = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Names != want[i].Names || got[i].Image != want[i].Image || got[i].State != want[i].State || got[i].ExitCode != want[i].ExitCode {
			t.Errorf("container %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// noNet runs image (with args replacing its command) without a network: these tests need no
// CNI plugins.
func noNet(image string, args ...string) runtime.CreateOptions {
	return runtime.CreateOptions{Image: image, Args: args, Network: network.None}
}

func named(o runtime.CreateOptions, name string) runtime.CreateOptions {
	o.Name = name
	return o
}
