package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/containerd"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/runtime"
)

// TestMain lets a test run the real main in a child process (the test binary itself), so the
// process exit status is checked, not only the error run returns.
func TestMain(m *testing.M) {
	// The runtime runs this binary as a detached container's logger and supervisor.
	runtime.HelperMain(os.Args)
	if os.Getenv("POUCH_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"pouch"}, strings.Split(os.Getenv("POUCH_TEST_ARGS"), "\x1f")...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// pouchProcess runs pouch with args in a child process and returns its exit status and output.
func pouchProcess(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "POUCH_TEST_RUN_MAIN=1", "POUCH_TEST_ARGS="+strings.Join(args, "\x1f"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func pouch(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	err = run(ctx, append([]string{"pouch"}, args...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

func TestMissingSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	code, _, stderr := pouchProcess(t, "--address", sock, "ps")
	if code != exitPouchFailed {
		t.Errorf("exit status %d, want %d", code, exitPouchFailed)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], sock) || !strings.Contains(lines[0], "start containerd") {
		t.Errorf("stderr = %q, want one line naming %s and saying containerd must run", stderr, sock)
	}
}

func TestMirrorSetup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, _, err := pouch(t, "mirror", "setup", "--hosts-dir", dir, "--mirror", "http://127.0.0.1:65001",
		"--registry", "docker.io", "--registry", "_default")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"wrote " + filepath.Join(dir, "docker.io", "hosts.toml"),
		"wrote " + filepath.Join(dir, "_default", "hosts.toml"),
		"[plugins.\"io.containerd.grpc.v1.cri\".registry]\n    config_path = \"" + dir + "\"",
		"[plugins.\"io.containerd.cri.v1.images\".registry]\n    config_path = \"" + dir + "\"",
		"--hosts-dir " + dir,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, reg := range []string{"docker.io", "_default"} {
		if _, err := os.Stat(filepath.Join(dir, reg, "hosts.toml")); err != nil {
			t.Error(err)
		}
	}
	// The global --hosts-dir is the default for mirror setup.
	dir2 := t.TempDir()
	if _, _, err := pouch(t, "--hosts-dir", dir2, "mirror", "setup", "--mirror", "http://127.0.0.1:65001"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "_default", "hosts.toml")); err != nil {
		t.Error(err)
	}
	if _, _, err := pouch(t, "mirror", "setup", "--hosts-dir", dir, "--mirror", "127.0.0.1:65001"); err == nil {
		t.Error("a mirror without a scheme was accepted")
	}
}

// TestCLI drives every command against a private containerd 1.6 and a plain registry reached
// only through the hosts.toml that "pouch mirror setup" writes.
func TestCLI(t *testing.T) {
	containerd.RequireIntegration(t)
	reg := registry.StartDocker(t)
	image.PushBusybox(t, reg, "pouch/busybox", "1.0")
	ctd := containerd.StartTest(t, containerd.Containerd1)
	hostsDir := t.TempDir()
	const upstream = "pouch-upstream.invalid"
	ref := upstream + "/pouch/busybox:1.0"
	if _, _, err := pouch(t, "mirror", "setup", "--hosts-dir", hostsDir, "--mirror", "http://"+reg, "--registry", upstream); err != nil {
		t.Fatal(err)
	}
	global := []string{"--address", ctd.Address, "--namespace", "pouch-cli", "--hosts-dir", hostsDir, "--root", t.TempDir()}
	p := func(args ...string) (string, string, error) { return pouch(t, append(global, args...)...) }

	out, _, err := p("pull", ref)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, ": done ") != 2 || !strings.Contains(out, "pulled "+ref) {
		t.Errorf("pull output lacks a line per layer and a summary:\n%s", out)
	}

	code, stdout, stderr := pouchProcess(t, append(global, "run", "--rm", "--network", "none", ref)...)
	if code != 0 || stdout != image.BusyboxOutput {
		t.Errorf("pouch run --rm: status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = pouchProcess(t, append(global, "run", "--rm", "--network", "none", ref, "sh", "-c", "echo oops >&2; exit 3")...)
	if code != 3 || stderr != "oops\n" {
		t.Errorf("pouch run --rm ... exit 3: status %d, stderr %q; want 3 and %q", code, stderr, "oops\n")
	}

	if _, _, err := p("run", "--name", "web", "--network", "none", ref); err != nil {
		t.Fatal(err)
	}
	out, _, err = p("ps", "-a")
	if err != nil || !strings.Contains(out, "web") || !strings.Contains(out, "Exited (0)") {
		t.Errorf("ps -a = %q, %v; want web Exited (0)", out, err)
	}
	if out, _, err := p("ps"); err != nil || strings.Contains(out, "web") {
		t.Errorf("ps = %q, %v; want no stopped container", out, err)
	}
	out, _, err = p("images")
	if err != nil || !strings.Contains(out, ref) {
		t.Errorf("images = %q, %v; want %s", out, err, ref)
	}
	if _, _, err := p("rmi", ref); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("rmi of an image in use: %v", err)
	}
	if out, _, err := p("rm", "web"); err != nil || out != "web\n" {
		t.Errorf("rm web = %q, %v", out, err)
	}
	if out, _, err := p("rmi", ref); err != nil || out != ref+"\n" {
		t.Errorf("rmi = %q, %v", out, err)
	}
	if out, _, err := p("ps", "-a"); err != nil || strings.Count(out, "\n") != 1 {
		t.Errorf("ps -a after rm = %q, %v; want only the header", out, err)
	}

	missing := reg + "/pouch/nothere:1"
	code, _, stderr = pouchProcess(t, append(global, "run", "--rm", "--network", "none", missing)...)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if want := "pouch: image not found: " + missing; code != exitPouchFailed || lines[len(lines)-1] != want {
		t.Errorf("run of a missing image: status %d, stderr %q; want %d and a last line %q", code, stderr, exitPouchFailed, want)
	}
}
