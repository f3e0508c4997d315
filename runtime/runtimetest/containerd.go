// Package runtimetest starts the real processes the runtime's integration tests need: private
// containerd instances (Debian's 1.6 and a 2.x build), a plain Debian docker-registry, and a
// runnable busybox image pushed to it. Every helper skips the test, saying why, under -short,
// when not root, or when a binary is missing; every process is stopped by t.Cleanup.
package runtimetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
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
	// Short paths: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "pouch-ctd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Flavor: f, Address: filepath.Join(dir, "containerd.sock"), Dir: dir}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(configTOML(f, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "containerd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "containerd"), "--config", cfgPath)
	// The flavor's shim must come first on PATH: containerd finds containerd-shim-runc-v2
	// there, and Debian's 1.6 shim fails under containerd 2.
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", f, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		c.killTasks(t)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", f, logPath, tail(logPath, 40))
		}
		unmountUnder(dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited at start: %v\n%s", f, err, tail(logPath, 40))
		default:
		}
		if v, err := version(c.Address); err == nil {
			c.Version = v
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%s did not answer on %s within 30s: %v\n%s", f, c.Address, err, tail(logPath, 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s %s listening on %s", f, c.Version, c.Address)
	return c
}

func configTOML(f Flavor, dir string) string {
	var b strings.Builder
	if f == Containerd1 {
		b.WriteString("version = 2\n")
		b.WriteString(`disabled_plugins = ["io.containerd.grpc.v1.cri"]` + "\n")
	} else {
		b.WriteString("version = 3\n")
		b.WriteString(`disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.nri.v1.nri"]` + "\n")
	}
	fmt.Fprintf(&b, "root = %q\nstate = %q\n", filepath.Join(dir, "root"), filepath.Join(dir, "state"))
	fmt.Fprintf(&b, "\n[grpc]\n  address = %q\n", filepath.Join(dir, "containerd.sock"))
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %q\n", filepath.Join(dir, "containerd.sock.ttrpc"))
	fmt.Fprintf(&b, "\n[debug]\n  address = %q\n", filepath.Join(dir, "debug.sock"))
	b.WriteString("\n[metrics]\n  address = \"\"\n")
	return b.String()
}

func version(address string) (string, error) {
	if _, err := os.Stat(address); err != nil {
		return "", err
	}
	client, err := containerd.New(address, containerd.WithTimeout(time.Second))
	if err != nil {
		return "", err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := client.Version(ctx)
	return v.Version, err
}

// killTasks kills and deletes every task left by a failed test, so no shim outlives the test.
func (c *Containerd) killTasks(t testing.TB) {
	client, err := containerd.New(c.Address, containerd.WithTimeout(2*time.Second))
	if err != nil {
		return
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nss, err := client.NamespaceService().List(ctx)
	if err != nil {
		return
	}
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		cs, err := client.Containers(nctx)
		if err != nil {
			continue
		}
		for _, ctr := range cs {
			task, err := ctr.Task(nctx, nil)
			if err != nil {
				continue
			}
			if _, err := task.Delete(nctx, containerd.WithProcessKill); err != nil {
				t.Logf("%s: delete leftover task %s/%s: %v", c.Flavor, ns, ctr.ID(), err)
			}
		}
	}
}

// unmountUnder unmounts whatever a crashed test left mounted under dir (deepest first).
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
