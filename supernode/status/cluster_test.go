package status_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/supernode"
	"github.com/pouch-p2p/pouch/supernode/status"
)

const (
	adminToken = "status-test-token"
	// secretSig is the signature of the pre-signed URL the download uses: the page must never
	// show it.
	secretSig = "d3adb33fsignature"
	size      = 4 << 20 // four 1 MiB pieces
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// running is a supernode and a dfdaemon with a download still running: the origin
// (origin.Held) sends the first half of the content and holds the rest until release is called.
type running struct {
	sn      *supernode.Supernode
	daemon  *dfdaemon.Daemon
	task    digest.Digest
	url     string // the download's URL, signature included
	origin  string // the origin's base URL
	release func()
	done    chan error // the download's outcome, once released
}

// runUntilCleanup runs a daemon until ctx ends or the test does, and waits for it to return
// before the test is over (TestMain checks that no goroutine outlives the tests).
func runUntilCleanup(ctx context.Context, t *testing.T, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// startRunning starts the cluster and a download through the dfdaemon's local API (what dfget
// does) of a pre-signed URL, and returns once the supernode schedules the dfdaemon for it.
func startRunning(t *testing.T, ctx context.Context) *running {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	origin := origin.NewHeld(t, data)
	sn, err := supernode.New(supernode.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Allow: loopback, AdminToken: adminToken}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(ctx, t, sn.Run)
	d, err := dfdaemon.New(dfdaemon.Config{Supernode: sn.URL(), Listen: "127.0.0.1:0", DataDir: t.TempDir(), Allow: loopback,
		StallTimeout: time.Minute, Heartbeat: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(ctx, t, d.Run)
	u := origin.URL + "/models/weights.bin?X-Amz-Signature=" + secretSig + "&X-Amz-Expires=300"
	id, err := taskid.For(u, "", "", taskid.DefaultFilter)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dfapi.NewClient(d.URL())
	if err != nil {
		t.Fatal(err)
	}
	r := &running{sn: sn, daemon: d, task: id, url: u, origin: origin.URL, release: origin.Release, done: make(chan error, 1)}
	dl, err := c.Download(ctx, dfapi.DownloadRequest{URL: u})
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	go func() {
		defer dl.Body.Close()
		got, err := io.ReadAll(dl.Body)
		if err == nil && !bytes.Equal(got, data) {
			err = io.ErrUnexpectedEOF
		}
		r.done <- err
	}()
	return r
}

// snapshot reads the status JSON with the admin token as a browser sends it: the password of
// Basic auth.
func snapshot(t *testing.T, ctx context.Context, base string) status.Status {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+status.PathStatus, nil)
	req.Header.Set("Authorization", basicAuth())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", status.PathStatus, resp.Status)
	}
	var st status.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func basicAuth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminToken))
}

// waitTask polls the snapshot until the task satisfies ok, and returns that snapshot.
func waitTask(t *testing.T, ctx context.Context, r *running, ok func(status.Task) bool) status.Status {
	t.Helper()
	var st status.Status
	wait.Until(t, time.Minute, "the task in the expected state", func() bool {
		st = snapshot(t, ctx, r.sn.URL())
		for _, task := range st.Tasks {
			if task.ID == r.task.String() && ok(task) {
				return true
			}
		}
		return false
	})
	return st
}
