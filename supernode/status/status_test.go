package status_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/supernode/status"
)

// The snapshot shows a running download: the task with the seed part-way, the dfdaemon
// downloading, bytes from the origin and from the seed; the dfdaemon among the peers with its
// throughput; and, once the origin lets go, the task complete. The signed URL is shown
// redacted.
func TestSnapshotShowsRunningDownload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := startRunning(t, ctx)

	st := waitTask(t, ctx, r, func(task status.Task) bool {
		return task.Downloading == 1 && task.SeedBytes > 0
	})
	task := st.Tasks[0]
	if task.ID != r.task.String() || task.Size != size || task.SeedDone || !task.Seeding || task.OriginBytes != size/2 {
		t.Errorf("task while the origin holds the second half: %+v", task)
	}
	if strings.Contains(task.URL, secretSig) || !strings.Contains(task.URL, "REDACTED") {
		t.Errorf("task URL %q: want the signature redacted", task.URL)
	}
	if !st.Supernode.Ready || st.Supernode.PeerID == "" || st.Supernode.OriginBytes != size/2 {
		t.Errorf("supernode: %+v", st.Supernode)
	}
	if len(st.Peers) != 1 || st.Peers[0].ID != r.daemon.PeerID() || st.Peers[0].Health != status.HealthOK ||
		st.Peers[0].Received != task.SeedBytes || st.Peers[0].ReceiveBps <= 0 || st.Peers[0].Tasks != 1 {
		t.Errorf("peers: %+v", st.Peers)
	}

	r.release()
	if err := <-r.done; err != nil {
		t.Fatalf("download: %v", err)
	}
	st = waitTask(t, ctx, r, func(task status.Task) bool { return task.Complete == 1 && task.SeedDone })
	task = st.Tasks[0]
	if task.Downloading != 0 || task.Seeding || task.OriginBytes != size || task.SeedBytes+task.PeerBytes != size {
		t.Errorf("task complete: %+v", task)
	}
}

// The page, its script and the snapshot are admin views: without the token they answer 401
// with a Basic challenge (so a browser asks for it), with it as the Basic password 200; the page
// loads only its own script and style.
func TestStatusPageNeedsAdmin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := startRunning(t, ctx)
	defer r.release()
	for _, path := range []string{"/", "/ui/status.js", "/ui/status.css", status.PathStatus} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.sn.URL()+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), ","), "Basic") {
			t.Errorf("GET %s without the token: %s %v", path, resp.Status, resp.Header.Values("WWW-Authenticate"))
		}
		req.Header.Set("Authorization", basicAuth())
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with the token: %s", path, resp.Status)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if strings.Contains(string(body), secretSig) {
			t.Errorf("GET %s shows the URL's signature", path)
		}
	}
	// The page itself.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.sn.URL()+"/", nil)
	req.Header.Set("Authorization", basicAuth())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), `src="ui/status.js"`) {
		t.Errorf("GET /: %s %q", resp.Header.Get("Content-Type"), page)
	}
}
