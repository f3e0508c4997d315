package dfget_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/dfget"
	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/internal/netguard"
)

// A daemon's error answers, before or after the first byte, become dfget's exit codes; a local
// failure of the daemon is a generic failure that says so, not "origin unreachable", and a full
// disk has its own exit code.
func TestDaemonErrorsBecomeExitCodes(t *testing.T) {
	t.Parallel()
	local := apierr.Error{Message: "local failure: write /var/lib/dfdaemon/x: input/output error", Code: apierr.CodeLocal}
	diskFull := apierr.Error{Message: "disk full: write /var/lib/dfdaemon/x: no space left on device", Code: apierr.CodeDiskFull}
	cases := []struct {
		name    string
		answer  apierr.Error
		midway  bool // sent as the trailer after some content, not instead of it
		code    int
		message string
	}{
		{"local failure up front", local, false, dfget.ExitFailure, "dfdaemon: " + local.Message},
		{"local failure midway", local, true, dfget.ExitFailure, "dfdaemon: " + local.Message},
		{"disk full up front", diskFull, false, dfget.ExitDiskFull, "dfdaemon: " + diskFull.Message},
		{"disk full midway", diskFull, true, dfget.ExitDiskFull, "dfdaemon: " + diskFull.Message},
		{"origin 404", apierr.Error{Message: "origin answered 404", Code: apierr.CodeOriginStatus, OriginStatus: 404}, false, dfget.ExitNotFound, "origin answered 404"},
		{"origin broke off midway", apierr.Error{Message: "connection reset", Code: apierr.CodeOriginUnreachable}, true, dfget.ExitOrigin, "connection reset"},
		{"digest mismatch midway", apierr.Error{Message: "content hashes to sha256:aa", Code: apierr.CodeDigestMismatch}, true, dfget.ExitDigestMismatch, "content hashes to sha256:aa"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			daemon := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !c.midway {
					w.WriteHeader(http.StatusInternalServerError)
					json.NewEncoder(w).Encode(c.answer)
					return
				}
				w.Header().Set(dfapi.HeaderSize, "10")
				w.Header().Set("Trailer", dfapi.TrailerError)
				io.WriteString(w, "01234")
				w.Header().Set(dfapi.TrailerError, dfapi.EncodeTrailer(c.answer))
			}))
			defer daemon.Close()
			dir := t.TempDir()
			err := dfget.Run(context.Background(), dfget.Options{URL: "http://origin.example/file", Output: filepath.Join(dir, "out"), Daemon: daemon.URL})
			var e *dfget.Error
			if !errors.As(err, &e) || e.Code != c.code || err.Error() != c.message {
				t.Fatalf("got %v, want exit %d saying %q", err, c.code, c.message)
			}
			var ae *apierr.Error
			if !errors.As(err, &ae) || *ae != c.answer {
				t.Errorf("the daemon's answer is not in the error chain: %v", err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("failed download left %s behind", left[0].Name())
			}
		})
	}
}

// Without a daemon dfget fetches straight from the origin under the daemons' SSRF policy: a
// loopback origin is refused (and receives nothing) unless --allow-networks names it.
func TestDirectModeAppliesTheSSRFPolicy(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "content")
	}))
	defer origin.Close()
	noDaemon := noDaemonURL(t)
	dir := t.TempDir()
	opts := dfget.Options{URL: origin.URL + "/file", Output: filepath.Join(dir, "out"), Daemon: noDaemon}

	err := dfget.Run(context.Background(), opts)
	var e *dfget.Error
	if !errors.As(err, &e) || e.Code != dfget.ExitOrigin || !errors.Is(err, netguard.ErrForbidden) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("direct fetch of a loopback origin: %v; want exit %d, the SSRF policy naming loopback", err, dfget.ExitOrigin)
	}
	if hits.Load() != 0 {
		t.Fatalf("the refused origin received %d requests", hits.Load())
	}

	opts.Networks.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if err := dfget.Run(context.Background(), opts); err != nil {
		t.Fatalf("direct fetch with --allow-networks 127.0.0.0/8: %v", err)
	}
	if got, _ := os.ReadFile(opts.Output); string(got) != "content" {
		t.Fatalf("content %q", got)
	}
}

// Without a daemon nobody else checks the content, so dfget checks --digest itself: content
// that does not match is exit 5 and leaves no file; content that matches is written.
func TestDirectModeChecksTheDigest(t *testing.T) {
	t.Parallel()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "content")
	}))
	defer origin.Close()
	dir := t.TempDir()
	opts := dfget.Options{URL: origin.URL + "/file", Output: filepath.Join(dir, "out"), Daemon: noDaemonURL(t),
		Digest: digest.FromString("other"), Networks: netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}

	err := dfget.Run(context.Background(), opts)
	var e *dfget.Error
	if !errors.As(err, &e) || e.Code != dfget.ExitDigestMismatch || !strings.Contains(err.Error(), "digest mismatch") {
		t.Fatalf("direct fetch with a wrong --digest: %v; want exit %d, digest mismatch", err, dfget.ExitDigestMismatch)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("failed download left %s behind", left[0].Name())
	}

	opts.Digest = digest.FromString("content")
	if err := dfget.Run(context.Background(), opts); err != nil {
		t.Fatalf("direct fetch with the right --digest: %v", err)
	}
	if got, _ := os.ReadFile(opts.Output); string(got) != "content" {
		t.Fatalf("content %q", got)
	}
}

// -O naming a device or a pipe (/dev/null is the common case) writes into it: renaming a
// temporary file over it would replace the device with a regular file, for the whole machine
// when dfget runs as root. A FIFO stands in for the device here.
func TestOutputToAPipeWritesInPlace(t *testing.T) {
	t.Parallel()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "through the pipe")
	}))
	defer origin.Close()
	noDaemon := noDaemonURL(t)
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	read := make(chan string, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			read <- err.Error()
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		read <- string(b)
	}()
	opts := dfget.Options{URL: origin.URL + "/file", Output: fifo, Daemon: noDaemon,
		Networks: netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	if err := dfget.Run(context.Background(), opts); err != nil {
		t.Fatalf("dfget -O %s: %v", fifo, err)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("after the download %s is %v (%v), want the pipe still there", fifo, fi.Mode(), err)
	}
	if got := <-read; got != "through the pipe" {
		t.Fatalf("the pipe's reader got %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(fifo), ".*dfget-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// noDaemonURL is the URL of a local port nothing listens on: dfget finds no daemon there and
// fetches from the origin itself.
func noDaemonURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}
