package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An origin that sends no Content-Length is spooled by the seed within --spool-max; beyond it
// the supernode refuses the task with a message naming the cap, and the dfdaemon fetches the
// file from the origin itself: the download succeeds.
func TestSupernodeSpoolCap(t *testing.T) {
	data := randomBytes(t, 4<<20)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK) // no Content-Length: chunked
		io.Copy(w, bytes.NewReader(data))
	}))
	t.Cleanup(o.Close)
	c := startClusterWith(t, 1, []string{"--spool-max", "1MiB"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "f")
	if code, msg := dfget(ctx, o.URL+"/stream", "-O", out, "--daemon", "http://"+c.daemons[0].HTTP); code != 0 {
		t.Fatalf("dfget: exit %d: %s", code, msg)
	}
	if got := fileSHA(t, out); got != sha(data) {
		t.Fatalf("content %s, want %s", got, sha(data))
	}
	c.supernode.mu.Lock()
	log := c.supernode.log.String()
	c.supernode.mu.Unlock()
	if !strings.Contains(log, "does not fit the spool: cap 1048576 bytes") || !strings.Contains(log, "--spool-max") {
		t.Errorf("the supernode's log does not name the spool cap:\n%s", log)
	}
}
