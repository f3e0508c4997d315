package e2e

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/fixture/origin"
)

// dfget without a local dfdaemon starts the dfdaemon binary as its one-shot peer: the secret and
// the origin's credentials never reach the child's command line (which every user can read),
// the child is gone and its temporary store removed when dfget exits, and the content comes from
// the peers. Without a dfdaemon binary, or when the peer cannot start, dfget says why in one line.
func TestDfgetOneShotRunsTheDfdaemonBinary(t *testing.T) {
	const secret = "cluster-s3cret"
	const credential = "Bearer open-s3same"
	data := randomBytes(t, 1<<20+7)
	o := origin.NewFiles(t, map[string][]byte{"/f": data})
	c := startClusterWith(t, 1, []string{"--secret", secret}, "--secret", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := t.TempDir()
	if code, msg := dfget(ctx, o.URL+"/f", "-O", filepath.Join(out, "member"), "--daemon", "http://"+c.daemons[0].HTTP, "--digest", sha(data)); code != 0 {
		t.Fatalf("the member's download: exit %d: %s", code, msg)
	}
	sent := o.Sent.Load()

	t.Run("through a wrapper that records what the child is given", func(t *testing.T) {
		dir := t.TempDir()
		record, tmp := filepath.Join(dir, "record"), filepath.Join(dir, "tmp")
		if err := os.Mkdir(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		wrapper := filepath.Join(dir, "dfdaemon-wrapper")
		script := "#!/bin/sh\nprintf '%s\\n' \"$$\" \"$@\" > " + record + "\nexec " + filepath.Join(binDir, "dfdaemon") + " \"$@\"\n"
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		code, stderr := run(t, []string{"POUCH_DFDAEMON_BIN=" + wrapper, "TMPDIR=" + tmp}, "dfget", o.URL+"/f", "-O", filepath.Join(out, "oneshot"),
			"--supernode", "http://"+c.supernode.HTTP, "--secret", secret, "-H", "Authorization: "+credential,
			"--allow-networks", "127.0.0.0/8", "--digest", sha(data))
		if code != 0 {
			t.Fatalf("one-shot dfget: exit %d: %s", code, stderr)
		}
		if got := fileSHA(t, filepath.Join(out, "oneshot")); got != sha(data) {
			t.Fatalf("one-shot copy %s, want %s", got, sha(data))
		}
		if o.Sent.Load() != sent {
			t.Errorf("the origin sent %d more bytes; the peers held the file", o.Sent.Load()-sent)
		}
		raw, err := os.ReadFile(record)
		if err != nil {
			t.Fatalf("the wrapper did not run: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 2 || lines[1] != "oneshot-peer" {
			t.Fatalf("the child's pid and arguments: %q, want one argument, oneshot-peer", lines)
		}
		if strings.Contains(string(raw), secret) || strings.Contains(string(raw), "s3same") {
			t.Errorf("a secret reached the child's command line: %q", raw)
		}
		pid, _ := strconv.Atoi(lines[0])
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
			t.Errorf("the one-shot peer (pid %d) outlived dfget", pid)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("the one-shot peer left %s in $TMPDIR", left[0].Name())
		}
	})

	t.Run("no dfdaemon binary", func(t *testing.T) {
		dir := t.TempDir()
		alone := filepath.Join(dir, "dfget")
		copyFile(t, filepath.Join(binDir, "dfget"), alone)
		empty := t.TempDir()
		cmd := []string{o.URL + "/f", "-O", filepath.Join(empty, "out"), "--supernode", "http://" + c.supernode.HTTP, "--allow-networks", "127.0.0.0/8"}
		code, stderr := runPath(t, []string{"PATH=" + empty}, alone, cmd...)
		if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "dfget: ") ||
			!strings.Contains(stderr, "no dfdaemon binary") || !strings.Contains(stderr, "--dfdaemon-bin") {
			t.Errorf("exit %d, stderr %q; want exit 1 and one line saying no dfdaemon binary was found and how to name one", code, stderr)
		}
		if left, _ := os.ReadDir(empty); len(left) != 0 {
			t.Errorf("the failed download left %s", left[0].Name())
		}
	})

	t.Run("a binary that is not a one-shot peer", func(t *testing.T) {
		// Another program named dfdaemon (or an older release) that never greets dfget and never
		// exits: dfget must neither hang on it nor leave it running.
		dir := t.TempDir()
		record, tmp := filepath.Join(dir, "record"), filepath.Join(dir, "tmp")
		if err := os.Mkdir(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		impostor := filepath.Join(dir, "dfdaemon")
		if err := os.WriteFile(impostor, []byte("#!/bin/sh\necho $$ > "+record+"\nexec sleep 1000\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		code, stderr := run(t, []string{"POUCH_DFDAEMON_BIN=" + impostor, "TMPDIR=" + tmp}, "dfget", o.URL+"/f", "-O", filepath.Join(dir, "out"),
			"--supernode", "http://"+c.supernode.HTTP, "--allow-networks", "127.0.0.0/8")
		if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, impostor+" is not a dfdaemon of this release") {
			t.Errorf("exit %d, stderr %q; want exit 1 and one line saying %s is not a dfdaemon of this release", code, stderr, impostor)
		}
		raw, err := os.ReadFile(record)
		if err != nil {
			t.Fatalf("the impostor did not run: %v", err)
		}
		pid := strings.TrimSpace(string(raw))
		if st, err := os.ReadFile(filepath.Join("/proc", pid, "stat")); err == nil && !strings.Contains(string(st), ") Z ") {
			t.Errorf("the impostor (pid %s) outlived dfget", pid)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("dfget left %s in $TMPDIR", left[0].Name())
		}
	})

	t.Run("the peer cannot start", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "no-such-ca.pem")
		code, stderr := dfget(ctx, o.URL+"/f", "-O", filepath.Join(t.TempDir(), "out"), "--supernode", "http://"+c.supernode.HTTP,
			"--supernode-ca", missing, "--allow-networks", "127.0.0.0/8")
		if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "dfget: ") || !strings.Contains(stderr, "supernode CA: open "+missing) {
			t.Errorf("exit %d, stderr %q; want exit 1 and one line naming the CA file", code, stderr)
		}
	})
}

// runPath runs the binary at path (not binDir's) with env added, returning its exit code and stderr.
func runPath(t *testing.T, env []string, path string, args ...string) (int, string) {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &stderr
	_ = cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("%s did not run: %s", path, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
