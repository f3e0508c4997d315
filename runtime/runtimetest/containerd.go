// Package runtimetest starts the real processes the runtime's integration tests need: private
// containerd instances (Debian's 1.6 and a 2.x build), a plain Debian docker-registry, and a
// runnable busybox image pushed to it. Every helper skips the test, saying why, under -short,
// when not root, or when a binary is missing; every process is stopped by t.Cleanup.
package runtimetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pouch-p2p/pouch/runtime"
)

// Flavor is a containerd major version the tests run against.
type Flavor string

// The containerd flavors.
const (
	// Containerd1 is Debian's containerd 1.6 in /usr/bin.
	Containerd1 Flavor = "containerd1"
	// Containerd2 is containerd 2.x from $POUCH_CONTAINERD2 or /opt/containerd2/bin, installed by
	// runtime/testdata/install-containerd2.sh.
	Containerd2 Flavor = "containerd2"
)

// Flavors lists every flavor, for table tests.
func Flavors() []Flavor { return []Flavor{Containerd1, Containerd2} }

// InstallScript is the script that installs containerd 2, relative to the repository root.
const InstallScript = "runtime/testdata/install-containerd2.sh"

// BinDir returns the directory holding the flavor's containerd, ctr and shim.
func BinDir(f Flavor) string {
	if f == Containerd1 {
		return "/usr/bin"
	}
	if d := os.Getenv("POUCH_CONTAINERD2"); d != "" {
		return d
	}
	return "/opt/containerd2/bin"
}

// Containerd is a private containerd started for one test.
type Containerd struct {
	Flavor  Flavor
	Address string // gRPC socket
	Version string // as containerd reports it
	Dir     string // root, state and sockets live under it
}

// RequireIntegration skips the test under -short or when not root.
func RequireIntegration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts containerd and a registry; skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("integration test: containerd and runc need root")
	}
}

// StartContainerd starts a containerd of flavor f with its own root, state and sockets in a new
// temporary directory, waits until it answers, and stops it (killing leftover tasks first) when
// the test ends. It skips the test when the flavor's binaries are missing.
func StartContainerd(t testing.TB, f Flavor) *Containerd {
	t.Helper()
	RequireIntegration(t)
	bin := BinDir(f)
	for _, name := range []string{"containerd", "containerd-shim-runc-v2"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			if f == Containerd2 {
				t.Skipf("%s: %s not found in %s; install it with %s (or set POUCH_CONTAINERD2)", f, name, bin, InstallScript)
			}
			t.Skipf("%s: %s not found in %s; apt-get install containerd runc", f, name, bin)
		}
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not found on PATH; apt-get install runc")
	}
	p, err := runtime.StartPrivate(bin, f == Containerd2)
	if err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	c := &Containerd{Flavor: f, Address: p.Address, Version: p.Version, Dir: p.Dir}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", f, p.LogPath(), p.Tail(40))
		}
		if err := p.Stop(); err != nil {
			t.Logf("%s: stop: %v", f, err)
		}
	})
	t.Logf("%s %s listening on %s", f, c.Version, c.Address)
	return c
}

func tail(path string, n int) string { return runtime.TailFile(path, n) }
