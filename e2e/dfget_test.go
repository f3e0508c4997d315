package e2e

import (
	"bytes"
	"context"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dfget's failures, each with its exit code and a one-line reason, and never a partial file.
func TestDfgetErrors(t *testing.T) {
	data := randomBytes(t, 3<<20)
	o := origin.NewFiles(t, map[string][]byte{"/file": data})
	stall := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1048576")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stall); slow.Close() })
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + closed.Addr().String() + "/file"
	closed.Close()

	c := startCluster(t, 1)
	daemon := "http://" + c.daemons[0].HTTP
	cases := []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"origin 404", []string{o.URL + "/missing", "--daemon", daemon}, 3, "404"},
		{"origin unreachable", []string{deadURL, "--daemon", daemon}, 4, "connection refused"},
		{"digest mismatch", []string{o.URL + "/file", "--daemon", daemon, "--digest", sha([]byte("other"))}, 5, "digest mismatch"},
		{"timeout", []string{slow.URL + "/slow", "--daemon", daemon, "--timeout", "2s"}, 6, "timed out"},
		{"not a URL", []string{"not-a-url", "--daemon", daemon}, 2, "not an http"},
		{"bad digest", []string{o.URL + "/file", "--digest", "md5:abc"}, 2, "digest"},
		{"two URLs", []string{o.URL + "/file", o.URL + "/file"}, 2, "exactly one URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			code, stderr := dfget(ctx, append(tc.args, "-O", filepath.Join(dir, "out"))...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, stderr)
			}
			if !strings.Contains(stderr, tc.say) {
				t.Errorf("stderr %q does not say %q", stderr, tc.say)
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n"); lines > 0 {
				t.Errorf("want a one-line reason, got %d lines: %s", lines+1, stderr)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("failed download left %d files behind (%s)", len(left), left[0].Name())
			}
		})
	}
	if o.Sent.Load() > int64(len(data)) {
		t.Errorf("origin sent %d bytes for a %d-byte file", o.Sent.Load(), len(data))
	}
}

// A wrong --digest is exit 5 with no file left, whichever side finds it. dfget does not hash
// what a daemon sends: the daemon checks the whole content and ends its answer with the error
// trailer, here the cluster's daemon, a daemon that fetches from the origin itself (its
// supernode does not answer: the mismatch is found after it streamed every byte), and the
// one-shot peer. With no daemon dfget checks the origin's bytes itself.
func TestDfgetDigestMismatch(t *testing.T) {
	data := randomBytes(t, 3<<20)
	o := origin.NewFiles(t, map[string][]byte{"/file": data})
	c := startCluster(t, 1)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	nobody := "http://" + l.Addr().String()
	l.Close()
	lone := start(t, "dfdaemon lone", "--supernode", nobody, "--listen", "127.0.0.1:0",
		"--data-dir", filepath.Join(t.TempDir(), "lone"), "--allow-networks", "127.0.0.0/8", "--log-level", "debug")
	cases := []struct {
		name string
		args []string
	}{
		{"the cluster's daemon", []string{"--daemon", "http://" + c.daemons[0].HTTP}},
		{"a daemon going to the origin", []string{"--daemon", "http://" + lone.HTTP}},
		{"the one-shot peer", []string{"--supernode", "http://" + c.supernode.HTTP, "--allow-networks", "127.0.0.0/8"}},
		{"no daemon", []string{"--daemon", nobody, "--allow-networks", "127.0.0.0/8"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			wrong := sha([]byte(tc.name)) // a task of its own for each case
			code, stderr := dfget(ctx, append([]string{o.URL + "/file", "-O", filepath.Join(dir, "out"), "--digest", wrong}, tc.args...)...)
			if code != 5 || !strings.Contains(stderr, "digest mismatch") {
				t.Errorf("exit %d, want 5 saying digest mismatch; stderr: %s", code, stderr)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("failed download left %d files behind (%s)", len(left), left[0].Name())
			}
		})
	}
	if !strings.Contains(lone.logText(), "download failed midway") {
		t.Errorf("the lone daemon did not report the mismatch in its answer's trailer; its log:\n%s", lone.logText())
	}
}

// What a user does when things work: flags after the URL, stdout, no daemon at all, and a
// one-shot peer with only a supernode.
func TestDfgetModes(t *testing.T) {
	data := randomBytes(t, 5<<20+123)
	o := origin.NewFiles(t, map[string][]byte{"/file": data})
	c := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()

	t.Run("flags after the URL with digest", func(t *testing.T) {
		out := filepath.Join(dir, "a")
		if code, msg := dfget(ctx, o.URL+"/file", "-O", out, "--daemon", "http://"+c.daemons[0].HTTP, "--digest", sha(data)); code != 0 {
			t.Fatalf("exit %d: %s", code, msg)
		}
		if fileSHA(t, out) != sha(data) {
			t.Fatal("content differs")
		}
	})
	t.Run("empty file", func(t *testing.T) {
		empty := origin.NewFiles(t, map[string][]byte{"/empty": {}})
		out := filepath.Join(dir, "empty")
		if code, msg := dfget(ctx, empty.URL+"/empty", "-O", out, "--daemon", "http://"+c.daemons[0].HTTP, "--digest", sha(nil)); code != 0 {
			t.Fatalf("exit %d: %s", code, msg)
		}
		if st, err := os.Stat(out); err != nil || st.Size() != 0 {
			t.Fatalf("empty download: %v, %v", st, err)
		}
	})
	t.Run("origin without Content-Length", func(t *testing.T) {
		chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(data[:1000])
			w.(http.Flusher).Flush() // forces chunked encoding: no length up front
			w.Write(data[1000:])
		}))
		defer chunked.Close()
		out := filepath.Join(dir, "chunked")
		if code, msg := dfget(ctx, chunked.URL+"/x", "-O", out, "--daemon", "http://"+c.daemons[0].HTTP); code != 0 {
			t.Fatalf("exit %d: %s", code, msg)
		}
		if fileSHA(t, out) != sha(data) {
			t.Fatal("content differs")
		}
	})
	t.Run("stdout", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "dfget"), "-O", "-", "--daemon", "http://"+c.daemons[0].HTTP, o.URL+"/file")
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stdout.Bytes(), data) {
			t.Fatalf("stdout has %d bytes, want the %d-byte file", stdout.Len(), len(data))
		}
	})
	t.Run("no daemon: straight from the origin", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		nobody := "http://" + l.Addr().String()
		l.Close()
		out := filepath.Join(dir, "c")
		code, msg := dfget(ctx, o.URL+"/file", "-O", out, "--daemon", nobody, "--allow-networks", "127.0.0.0/8")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, msg)
		}
		if fileSHA(t, out) != sha(data) {
			t.Fatal("content differs")
		}
	})
	t.Run("one-shot peer with a supernode", func(t *testing.T) {
		out := filepath.Join(dir, "d")
		before := o.Sent.Load()
		code, msg := dfget(ctx, o.URL+"/file", "-O", out, "--supernode", "http://"+c.supernode.HTTP, "--allow-networks", "127.0.0.0/8", "--digest", sha(data))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, msg)
		}
		if fileSHA(t, out) != sha(data) {
			t.Fatal("content differs")
		}
		if o.Sent.Load() != before {
			t.Errorf("the one-shot peer made the origin send %d bytes; the seed already had the file", o.Sent.Load()-before)
		}
	})
}
