package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pouch-p2p/pouch/internal/httpx"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/pouch-p2p/pouch/internal/fixture/containerd"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/runtime"
)

// world is one private containerd with the busybox image in a registry reached through
// hosts.toml, and the global flags that point pouch at them with its own root and a bridge
// network of the test's own (name and range), removed at the end.
type world struct {
	t      *testing.T
	global []string
	ref    string
	root   string
}

func newWorld(t *testing.T, flavor containerd.Flavor, bridge, subnet string) *world {
	t.Helper()
	ctd := containerd.StartTest(t, flavor) // skips, saying what is missing
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Skip("CNI plugins missing in /usr/lib/cni: apt-get install containernetworking-plugins")
	}
	reg := busyboxRegistry(t, registry.Options{}, "pouch/busybox", "1.0", "")
	hostsDir := t.TempDir()
	if _, err := runtime.WriteHostsTOML(hostsDir, "http://"+reg.Host, reg.URL); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, ref: reg.Host + "/pouch/busybox:1.0", root: t.TempDir()}
	w.global = []string{"--address", ctd.Address, "--namespace", "pouch-svc", "--hosts-dir", hostsDir,
		"--root", w.root, "--bridge", bridge, "--subnet", subnet, "--config", t.TempDir(), "--log-level", "error"}
	t.Cleanup(func() {
		// Containers first (their network is torn down), then the bridge the plugin made.
		out, _, _ := w.pouch("ps", "-a", "-q")
		for _, name := range strings.Fields(out) {
			if _, _, err := w.pouch("rm", "-f", name); err != nil {
				t.Errorf("cleanup: rm -f %s: %v", name, err)
			}
		}
		_ = exec.Command("ip", "link", "del", bridge).Run()
		unmountUnder(t, w.root) // what a failed rm left, so the temporary directory goes
	})
	return w
}

// busyboxRegistry starts an embedded registry and pushes the busybox image to it as repo:tag,
// as user (with the password opts.Htpasswd gives them; "" for none). It skips the test when
// busybox-static is missing.
func busyboxRegistry(t *testing.T, opts registry.Options, repo, tag, user string) *registry.Registry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img, err := image.Busybox(0, 0)
	if errors.Is(err, image.ErrNoBusybox) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if err := img.Push(ctx, reg.URL, repo, tag, user, opts.Htpasswd[user]); err != nil {
		t.Fatal(err)
	}
	return reg
}

// with returns the world for subtest t, so its failures are t's.
func (w *world) with(t *testing.T) *world {
	c := *w
	c.t = t
	return &c
}

// pouch runs pouch in this process with the world's global flags.
func (w *world) pouch(args ...string) (stdout, stderr string, err error) {
	w.t.Helper()
	return pouch(w.t, append(append([]string{}, w.global...), args...)...)
}

// must runs pouch and fails the test on an error.
func (w *world) must(args ...string) string {
	w.t.Helper()
	out, stderr, err := w.pouch(args...)
	if err != nil {
		w.t.Fatalf("pouch %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// process runs pouch as a child process, for its exit status.
func (w *world) process(args ...string) (code int, stdout, stderr string) {
	w.t.Helper()
	return pouchProcess(w.t, append(append([]string{}, w.global...), args...)...)
}

func (w *world) inspect(name string) runtime.Details {
	w.t.Helper()
	var ds []runtime.Details
	if err := json.Unmarshal([]byte(w.must("inspect", name)), &ds); err != nil || len(ds) != 1 {
		w.t.Fatalf("inspect %s: %v (%d entries)", name, err, len(ds))
	}
	return ds[0]
}

// followLogs runs logs -f in the background; the returned function waits for it to end (the
// container stopped for good) and returns what it printed.
func (w *world) followLogs(name string) func() (string, error) {
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, _, err := pouch(w.t, append(append([]string{}, w.global...), "logs", "-f", name)...)
		done <- result{out, err}
	}()
	return func() (string, error) {
		select {
		case r := <-done:
			return r.out, r.err
		case <-time.After(time.Minute):
			return "", errors.New("logs -f did not end within a minute of the container stopping")
		}
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServices runs services as a docker user would, on containerd 1.6 and 2.x: a web server
// published on the host, detached containers with their logs, stop and restart policies,
// volumes, environment, limits, exec, a terminal, and docker's exit codes.
func TestServices(t *testing.T) {
	containerd.RequireIntegration(t)
	for i, flavor := range containerd.Flavors() {
		t.Run(string(flavor), func(t *testing.T) {
			began := time.Now()
			defer func() { t.Logf("%s: %v", flavor, time.Since(began).Round(time.Millisecond)) }()
			w := newWorld(t, flavor, fmt.Sprintf("pouchtest%d", i), fmt.Sprintf("10.214.%d.0/24", i)) // not 10.213/16: the netns fixture's
			t.Run("publish", w.testPublish)
			t.Run("detached logs and stop", w.testDetached)
			t.Run("restart policy", w.testRestart)
			t.Run("volumes", w.testVolumes)
			t.Run("env", w.testEnv)
			t.Run("memory", w.testMemory)
			t.Run("exec", w.testExec)
			t.Run("tty", w.testTTY)
			t.Run("flags and exit codes", w.testFlags)
			t.Run("after a reboot", w.testReboot)
		})
	}
}

// get fetches u until it answers 200 (the server may still be starting) and returns the body.
func (w *world) get(t *testing.T, u, container string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(u)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body)
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			logs, _, _ := w.pouch("logs", container)
			t.Fatalf("GET %s: %v\ncontainer log:\n%s", u, err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const httpdScript = "mkdir -p /www && echo hello-web > /www/index.html && httpd -f -p 80 -h /www"

// A busybox httpd published with -p answers an HTTP client on the host; rm -f takes its
// network away.
func (w *world) testPublish(t *testing.T) {
	w = w.with(t)
	port := freePort(t)
	id := strings.TrimSpace(w.must("run", "-d", "--name", "web", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), w.ref, "sh", "-c", httpdScript))
	if id != "web" {
		t.Errorf("run -d printed %q, want the container's ID web", id)
	}
	u := fmt.Sprintf("http://127.0.0.1:%d/index.html", port)
	if body := w.get(t, u, "web"); body != "hello-web\n" {
		t.Errorf("GET %s = %q, want %q", u, body, "hello-web\n")
	}
	d := w.inspect("web")
	if !d.State.Running || d.NetworkSettings.IPAddress == "" || d.HostConfig.NetworkMode != "bridge" {
		t.Errorf("inspect: running %v, IP %q, network %q", d.State.Running, d.NetworkSettings.IPAddress, d.HostConfig.NetworkMode)
	}
	if ps := w.must("ps"); !strings.Contains(ps, fmt.Sprintf("127.0.0.1:%d->80/tcp", port)) || !strings.Contains(ps, "Up ") {
		t.Errorf("ps does not show web up with its port:\n%s", ps)
	}
	if nets := w.must("network", "ls"); !strings.Contains(nets, "bridge") || !strings.Contains(nets, d.NetworkSettings.IPAddress[:strings.LastIndex(d.NetworkSettings.IPAddress, ".")]) {
		t.Errorf("network ls:\n%s", nets)
	}
	w.must("rm", "-f", "web")
	if _, err := os.Stat(d.NetworkSettings.SandboxKey); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rm left the network namespace %s: %v", d.NetworkSettings.SandboxKey, err)
	}
	if resp, err := http.Get(u); err == nil {
		resp.Body.Close()
		t.Errorf("GET %s after rm: %s, want a refused connection", u, resp.Status)
	}
	leases, _ := filepath.Glob(filepath.Join(w.root, "network", "ipam", "*", d.NetworkSettings.IPAddress))
	if len(leases) != 0 {
		t.Errorf("rm left the address lease %v", leases)
	}
}

// run -d prints the ID; logs -f follows until stop; stop delivers the stop signal (the trap
// runs) and records the exit code; a container that ignores it is killed after -t.
func (w *world) testDetached(t *testing.T) {
	w = w.with(t)
	w.must("run", "-d", "--name", "talker", "--network", "none", w.ref,
		"sh", "-c", `trap "echo bye; exit 3" TERM; echo started; echo to-stderr >&2; while true; do sleep 0.1; done`)
	wait := w.followLogs("talker")
	waitFor(t, "talker's first line", func() bool { out, _, _ := w.pouch("logs", "talker"); return out == "started\n" })
	w.must("stop", "talker")
	out, err := wait()
	if err != nil || out != "started\nbye\n" {
		t.Errorf("logs -f = %q, %v; want started and bye", out, err)
	}
	_, stderr, _ := w.pouch("logs", "talker")
	if stderr != "to-stderr\n" {
		t.Errorf("logs: stderr %q, want to-stderr", stderr)
	}
	if d := w.inspect("talker"); d.State.Status != "exited" || d.State.ExitCode != 3 || d.RestartCount != 0 {
		t.Errorf("after stop: %+v, restarts %d; want exited with 3", d.State, d.RestartCount)
	}
	if out := w.must("logs", "--tail", "1", "talker"); out != "bye\n" {
		t.Errorf("logs --tail 1 = %q", out)
	}
	// start runs it again, its log continued.
	w.must("start", "talker")
	waitFor(t, "talker's second start", func() bool { out, _, _ := w.pouch("logs", "talker"); return strings.Count(out, "started") == 2 })
	if d := w.inspect("talker"); !d.State.Running {
		t.Errorf("after start: %+v", d.State)
	}
	w.must("kill", "-s", "TERM", "talker")
	waitFor(t, "talker to exit after kill -s TERM", func() bool { return w.inspect("talker").State.Status == "exited" })
	w.must("restart", "-t", "1", "talker")
	if st := w.must("inspect", "--format", "{{.State.Status}} {{.HostConfig.NetworkMode}}", "talker"); st != "running none\n" {
		t.Errorf("inspect --format after restart = %q", st)
	}
	w.must("rm", "-f", "talker")

	// create, then start: the container's first run.
	if id := w.must("create", "--name", "made", "--network", "none", w.ref, "echo", "made"); id != "made\n" {
		t.Errorf("create printed %q", id)
	}
	if st := w.inspect("made").State.Status; st != "created" {
		t.Errorf("a created container is %q", st)
	}
	w.must("start", "made")
	if out, err := w.followLogs("made")(); err != nil || out != "made\n" {
		t.Errorf("logs -f of made = %q, %v", out, err)
	}

	// sleep as PID 1 ignores SIGTERM: stop kills it after -t.
	w.must("run", "-d", "--name", "stubborn", "--network", "none", w.ref, "sleep", "1000")
	start := time.Now()
	w.must("stop", "-t", "1", "stubborn")
	if took := time.Since(start); took < time.Second {
		t.Errorf("stop -t 1 of a container ignoring SIGTERM returned after %v, before its second", took)
	}
	if d := w.inspect("stubborn"); d.State.ExitCode != 137 {
		t.Errorf("stubborn's exit code %d, want 137 (killed)", d.State.ExitCode)
	}
	w.must("rm", "made", "stubborn")
}

// on-failure:2 restarts twice then gives up; a stopped container is not restarted by always.
func (w *world) testRestart(t *testing.T) {
	w = w.with(t)
	w.must("run", "-d", "--name", "flaky", "--network", "none", "--restart", "on-failure:2", w.ref, "sh", "-c", "echo run; exit 1")
	out, err := w.followLogs("flaky")()
	if err != nil || out != "run\nrun\nrun\n" {
		t.Errorf("logs -f of flaky = %q, %v; want three runs", out, err)
	}
	if d := w.inspect("flaky"); d.RestartCount != 2 || d.State.Status != "exited" || d.State.ExitCode != 1 {
		t.Errorf("flaky: restarts %d, state %+v; want 2 restarts and exited 1", d.RestartCount, d.State)
	}

	w.must("run", "-d", "--name", "forever", "--network", "none", "--restart", "always", w.ref, "sleep", "1000")
	w.must("stop", "-t", "0", "forever")
	if _, err := w.followLogs("forever")(); err != nil { // ends once its supervisor is gone
		t.Error(err)
	}
	if d := w.inspect("forever"); d.State.Status != "exited" || d.RestartCount != 0 {
		t.Errorf("forever after stop: %+v, restarts %d; want exited, never restarted", d.State, d.RestartCount)
	}
	// always restarts a container that exits by itself, even with 0.
	w.must("run", "-d", "--name", "looper", "--network", "none", "--restart", "always", w.ref, "sh", "-c", "echo tick")
	waitFor(t, "looper's third run", func() bool { out, _, _ := w.pouch("logs", "looper"); return strings.Count(out, "tick") >= 3 })
	// In the foreground pouch exits with the first run's code; the supervisor restarts.
	if code, out, _ := w.process("run", "--name", "fg", "--network", "none", "--restart", "on-failure:1", w.ref, "sh", "-c", "echo fg; exit 2"); code != 2 || out != "fg\n" {
		t.Errorf("foreground run with a restart policy: exit %d, stdout %q; want 2 and one line", code, out)
	}
	if out, err := w.followLogs("fg")(); err != nil || out != "fg\nfg\n" {
		t.Errorf("logs -f of fg = %q, %v; want the first run and one restart", out, err)
	}
	if d := w.inspect("fg"); d.RestartCount != 1 || d.State.ExitCode != 2 {
		log, _ := os.ReadFile(filepath.Join(w.root, "containers", "fg", "supervisor.log"))
		t.Errorf("fg: restarts %d, exit %d; supervisor log:\n%s", d.RestartCount, d.State.ExitCode, log)
	}
	w.must("rm", "-f", "flaky", "forever", "looper", "fg")
}

// -v writes are seen on the host; :ro refuses them; a named volume outlives its containers
// and cannot be removed while one mounts it.
func (w *world) testVolumes(t *testing.T) {
	w = w.with(t)
	host := filepath.Join(t.TempDir(), "data")
	w.must("run", "--rm", "--network", "none", "-v", host+":/data", w.ref, "sh", "-c", "echo written > /data/f")
	if b, err := os.ReadFile(filepath.Join(host, "f")); err != nil || string(b) != "written\n" {
		t.Errorf("host file = %q, %v", b, err)
	}
	if code, _, _ := w.process("run", "--rm", "--network", "none", "-v", host+":/data:ro", w.ref, "sh", "-c", "echo no > /data/g"); code == 0 {
		t.Error("a write to a :ro volume succeeded")
	}
	if _, err := os.Stat(filepath.Join(host, "g")); err == nil {
		t.Error("a write to a :ro volume reached the host")
	}
	w.must("volume", "create", "keep")
	w.must("run", "--name", "writer", "--network", "none", "-v", "keep:/v", w.ref, "sh", "-c", "echo kept > /v/f")
	if out := w.must("run", "--rm", "--network", "none", "-v", "keep:/v:ro", w.ref, "cat", "/v/f"); out != "kept\n" {
		t.Errorf("second container read %q from the volume", out)
	}
	if ls := w.must("volume", "ls"); !strings.Contains(ls, "keep") {
		t.Errorf("volume ls:\n%s", ls)
	}
	if _, _, err := w.pouch("volume", "rm", "keep"); err == nil || !strings.Contains(err.Error(), "writer") {
		t.Errorf("volume rm of a mounted volume: %v; want a refusal naming writer", err)
	}
	w.must("rm", "writer")
	w.must("volume", "rm", "keep")
	if ls := w.must("volume", "ls"); strings.Contains(ls, "keep") {
		t.Errorf("volume ls after rm:\n%s", ls)
	}
}

// -e and --env-file, and -e KEY taking pouch's own value.
func (w *world) testEnv(t *testing.T) {
	w = w.with(t)
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# settings\nA=from-file\nB=b with spaces\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POUCH_TEST_PASSED", "from-pouch")
	out := w.must("run", "--rm", "--network", "none", "--env-file", envFile, "-e", "A=from-flag", "-e", "POUCH_TEST_PASSED",
		w.ref, "sh", "-c", `echo "$A|$B|$POUCH_TEST_PASSED|$PATH"`)
	if want := "from-flag|b with spaces|from-pouch|/bin\n"; out != want {
		t.Errorf("env: %q, want %q", out, want)
	}
	// -i feeds pouch's stdin to the container, and its end closes the container's.
	var stdout, stderr bytes.Buffer
	args := append(append([]string{"pouch"}, w.global...), "run", "-i", "--rm", "--network", "none", w.ref, "cat")
	if err := run(context.Background(), args, strings.NewReader("piped\n"), &stdout, &stderr); err != nil || stdout.String() != "piped\n" {
		t.Errorf("run -i cat = %q, %v (stderr %q)", stdout.String(), err, stderr.String())
	}
}

// --memory is enforced: an allocation beyond it is killed (137), one within it is not.
func (w *world) testMemory(t *testing.T) {
	w = w.with(t)
	code, _, stderr := w.process("run", "--rm", "--network", "none", "-m", "16m", w.ref, "sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1")
	if code != 137 {
		t.Errorf("64 MiB buffer under -m 16m: exit %d (stderr %q), want 137", code, stderr)
	}
	code, _, stderr = w.process("run", "--rm", "--network", "none", "-m", "64m", "--cpus", "0.5", "--pids-limit", "20", w.ref,
		"sh", "-c", "dd if=/dev/zero of=/dev/null bs=8M count=1")
	if code != 0 {
		t.Errorf("8 MiB buffer under -m 64m: exit %d (stderr %q), want 0", code, stderr)
	}
}

// exec runs in the running container, with its exit code and environment.
func (w *world) testExec(t *testing.T) {
	w = w.with(t)
	// -dit: a shell on a terminal nobody types into, its prompt kept in the log.
	w.must("run", "-dit", "--name", "box", "--network", "none", "-e", "FROM_RUN=r", w.ref, "sh")
	waitFor(t, "box's prompt in its log", func() bool { out, _, _ := w.pouch("logs", "box"); return strings.Contains(out, "# ") })
	code, out, stderr := w.process("exec", "-e", "FROM_EXEC=e", "box", "sh", "-c", `echo "$(hostname) $FROM_RUN $FROM_EXEC"; exit 4`)
	if code != 4 || out != "box r e\n" {
		t.Errorf("exec: exit %d, stdout %q, stderr %q; want 4 and %q", code, out, stderr, "box r e\n")
	}
	var stdout bytes.Buffer
	args := append(append([]string{"pouch"}, w.global...), "exec", "-i", "box", "cat")
	if err := run(context.Background(), args, strings.NewReader("to exec\n"), &stdout, io.Discard); err != nil || stdout.String() != "to exec\n" {
		t.Errorf("exec -i cat = %q, %v", stdout.String(), err)
	}
	if code, _, _ := w.process("exec", "box", "nosuchcommand"); code != exitCommandNotFound {
		t.Errorf("exec of a missing command: exit %d, want %d", code, exitCommandNotFound)
	}
	w.must("rm", "-f", "box")
	if code, _, stderr := w.process("exec", "box", "true"); code != exitPouchFailed || !strings.Contains(stderr, "box") {
		t.Errorf("exec in a removed container: exit %d, stderr %q", code, stderr)
	}
}

// -it gives the container a terminal of the caller's size, and keys reach it.
func (w *world) testTTY(t *testing.T) {
	w = w.with(t)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, w.global...), "run", "-it", "--rm", "--network", "none", w.ref, "sh")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "POUCH_TEST_RUN_MAIN=1", "POUCH_TEST_ARGS="+strings.Join(args, "\x1f"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = ttyProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var out lockedBuf
	go io.Copy(&out, ptmx)
	waitFor(t, "the shell's prompt", func() bool { return strings.Contains(out.String(), "# ") })
	if _, err := ptmx.Write([]byte("stty size; tty; exit 3\r")); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err = <-errc:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("pouch run -it did not exit; terminal:\n%s", out.String())
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("pouch run -it: %v, want exit status 3; terminal:\n%s", err, out.String())
	}
	if s := out.String(); !strings.Contains(s, "40 100") || !strings.Contains(s, "/dev/pts/") {
		t.Errorf("terminal does not show the size 40 100 and a pts:\n%s", s)
	}
}

// --read-only, -w, -u, --entrypoint, and docker's exit codes for pouch's own failures.
func (w *world) testFlags(t *testing.T) {
	w = w.with(t)
	out := w.must("run", "--rm", "--network", "none", "--read-only", "-w", "/tmp", "-u", "1000:1000", "--entrypoint", "/bin/sh",
		w.ref, "-c", "pwd; id -u; touch /x 2>/dev/null || echo read-only")
	if want := "/tmp\n1000\nread-only\n"; out != want {
		t.Errorf("flags: %q, want %q", out, want)
	}
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{w.ref, "nosuchcommand"}, exitCommandNotFound},
		{[]string{"--entrypoint", "/tmp", w.ref}, exitCannotExecute},
		{[]string{"--memory", "lots", w.ref}, exitPouchFailed},
		{[]string{"--restart", "sometimes", w.ref}, exitPouchFailed},
		{[]string{"-p", "80", w.ref}, exitPouchFailed},
		{[]string{"--pull", "never", w.ref + "-absent"}, exitPouchFailed},
		{[]string{w.ref, "sh", "-c", "exit 42"}, 42},
	} {
		code, _, stderr := w.process(append([]string{"run", "--rm", "--network", "none"}, tt.args...)...)
		if code != tt.code {
			t.Errorf("run %v: exit %d, want %d; stderr %q", tt.args, code, tt.code, stderr)
		}
		if tt.code >= exitPouchFailed && tt.code <= exitCommandNotFound && (strings.Count(stderr, "\n") > 2 || !strings.HasPrefix(lastLine(stderr), "pouch: ")) {
			t.Errorf("run %v: stderr %q, want one line saying what failed", tt.args, stderr)
		}
	}
	if out, _, _ := w.pouch("ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("failed runs with --rm left containers: %q", out)
	}
}

// After a reboot the pinned network namespace and the NAT rules are gone, while the address
// leases (under the root) stay: start sets the network up again (the port answers again), and
// rm cleans up what is left.
func (w *world) testReboot(t *testing.T) {
	w = w.with(t)
	port := freePort(t)
	u := fmt.Sprintf("http://127.0.0.1:%d/index.html", port)
	w.must("run", "-d", "--name", "survivor", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), w.ref, "sh", "-c", httpdScript)
	w.get(t, u, "survivor")
	w.must("stop", "-t", "0", "survivor")
	w.must("run", "-d", "--name", "crashed", w.ref, "sleep", "1000")
	w.must("stop", "-t", "0", "crashed")
	for _, name := range []string{"survivor", "crashed"} {
		d := w.inspect(name)
		if err := exec.Command("umount", d.NetworkSettings.SandboxKey).Run(); err != nil {
			t.Fatalf("umount %s: %v", d.NetworkSettings.SandboxKey, err)
		}
		os.Remove(d.NetworkSettings.SandboxKey)
		dropNATRules(t, d.NetworkSettings.IPAddress)
	}
	w.must("start", "survivor")
	if body := w.get(t, u, "survivor"); body != "hello-web\n" {
		t.Errorf("after the restart: %q", body)
	}
	ip := w.inspect("crashed").NetworkSettings.IPAddress
	w.must("rm", "crashed")
	w.must("rm", "-f", "survivor")
	if leases, _ := filepath.Glob(filepath.Join(w.root, "network", "ipam", "*", "10.*")); len(leases) != 0 {
		t.Errorf("rm left address leases %v (crashed had %s)", leases, ip)
	}
	if left, _ := os.ReadDir(filepath.Join(w.root, "network", "netns")); len(left) != 0 {
		t.Errorf("rm left namespace files %v", left)
	}
	// A range that overlaps the host's addresses is refused before anything is made.
	code, _, stderr := w.process("--subnet", "127.0.0.0/24", "run", "--rm", w.ref, "true")
	if code != exitPouchFailed || !strings.Contains(stderr, "overlaps") || !strings.Contains(stderr, "--subnet") {
		t.Errorf("run on a range holding 127.0.0.1: exit %d, stderr %q", code, stderr)
	}
}

// dropNATRules removes the masquerading rules of ip, as a reboot empties the NAT table.
func dropNATRules(t *testing.T, ip string) {
	t.Helper()
	out, err := exec.Command("iptables", "-t", "nat", "-L", "POSTROUTING", "-n", "--line-numbers").Output()
	if err != nil {
		t.Fatalf("iptables: %v", err)
	}
	lines := strings.Split(string(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- { // from the last, so the numbers stay right
		f := strings.Fields(lines[i])
		if len(f) < 5 || f[4] != ip || !strings.HasPrefix(f[1], "CNI-") {
			continue
		}
		for _, args := range [][]string{{"-D", "POSTROUTING", f[0]}, {"-F", f[1]}, {"-X", f[1]}} {
			if out, err := exec.Command("iptables", append([]string{"-t", "nat"}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("iptables -t nat %v: %v: %s", args, err, out)
			}
		}
	}
}

// unmountUnder unmounts every mount below dir (network namespaces pinned there).
func unmountUnder(t *testing.T, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			t.Errorf("cleanup: %s was still mounted", f[4])
			_ = exec.Command("umount", "-l", f[4]).Run()
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestPrivateImage pulls an image of a registry that wants a bearer token, through a mirror
// that relays its challenge (as the dfdaemon does): refused without credentials, pulled after
// pouch login with them reaching the registry's token server, never with a wrong password.
func TestPrivateImage(t *testing.T) {
	containerd.RequireIntegration(t)
	ctd := containerd.StartTest(t, containerd.Containerd1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := busyboxRegistry(t, registry.Options{Token: true, Htpasswd: map[string]string{"alice": "s3cret"}}, "private/app", "1", "alice")
	// The mirror passes requests and answers through, the registry's 401 included.
	upstream, _ := url.Parse(reg.URL)
	var mirrored atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	mirror := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := &httpx.StatusWriter{ResponseWriter: rw}
		proxy.ServeHTTP(rec, r)
		if rec.Status() == http.StatusOK && strings.Contains(r.URL.Path, "/blobs/") {
			mirrored.Add(1)
		}
	}))
	t.Cleanup(mirror.Close)
	hostsDir := t.TempDir()
	if _, err := runtime.WriteHostsTOML(hostsDir, "http://"+reg.Host, mirror.URL); err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	global := []string{"--address", ctd.Address, "--namespace", "pouch-private", "--hosts-dir", hostsDir, "--root", t.TempDir(), "--config", cfgDir, "--log-level", "error"}
	p := func(stdin string, args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, append(append([]string{"pouch"}, global...), args...), strings.NewReader(stdin), &out, &errb)
		return out.String(), errb.String(), err
	}
	ref := reg.Host + "/private/app:1"

	_, _, err := p("", "pull", ref)
	if err == nil || !errors.Is(err, runtime.ErrUnauthorized) || !strings.Contains(err.Error(), "pouch login "+reg.Host) {
		t.Fatalf("pull without credentials: %v; want unauthorized, saying to log in to %s", err, reg.Host)
	}
	if _, _, err := p("wrong\n", "login", "-u", "alice", "--password-stdin", reg.Host); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("login with a wrong password: %v, want unauthorized", err)
	}
	out, _, err := p("s3cret\n", "login", "-u", "alice", "--password-stdin", reg.Host)
	if err != nil || out != "Login Succeeded\n" {
		t.Fatalf("login = %q, %v", out, err)
	}
	cfg, err := os.ReadFile(filepath.Join(cfgDir, "config.json"))
	if err != nil || !strings.Contains(string(cfg), reg.Host) {
		t.Fatalf("config.json = %s, %v; want an entry for %s", cfg, err, reg.Host)
	}
	if _, _, err := p("", "pull", ref); err != nil {
		t.Fatalf("pull after login: %v", err)
	}
	if mirrored.Load() == 0 {
		t.Error("no blob came through the mirror")
	}
	if out, _, err := p("", "run", "--rm", "--network", "none", ref); err != nil || out != image.BusyboxOutput {
		t.Errorf("run of the private image = %q, %v", out, err)
	}
	if out, _, err := p("", "logout", reg.Host); err != nil || !strings.Contains(out, reg.Host) {
		t.Errorf("logout = %q, %v", out, err)
	}
	if _, _, err := p("", "logout", reg.Host); err == nil {
		t.Error("a second logout succeeded")
	}
	// The image is present, but pull asks the registry again, now without credentials.
	if _, _, err := p("", "pull", ref); !errors.Is(err, runtime.ErrUnauthorized) {
		t.Errorf("pull after logout: %v, want unauthorized", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
