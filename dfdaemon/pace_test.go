package dfdaemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/supernode"
)

// While the seed fetches, the supernode answers a long-poll sync at each new digest; a download
// must not answer back at once each time (one sync per piece from every peer), but pace its syncs
// (dfdaemon's syncPace, 250 ms). The origin sends 32 pieces at 16 MB/s, a new digest about every
// 65 ms: unpaced, the download made 32 progress syncs in 2 s.
func TestSyncsArePacedWhileTheSeedFetches(t *testing.T) {
	data := make([]byte, 32<<20)
	rand.Read(data)
	org := origin.NewFilesRate(t, map[string][]byte{"/f": data}, 16e6)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sn := runSupernode(ctx, t, supernode.Config{})

	// A proxy in front of the supernode notes when each progress sync of the download arrives
	// (not the one that reports completion, which is sent at once by design).
	var mu sync.Mutex
	var at []time.Time
	target, err := url.Parse(sn.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == snapi.PathSync {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			var req snapi.SyncRequest
			if json.Unmarshal(body, &req) == nil && !req.Complete {
				mu.Lock()
				at = append(at, time.Now())
				mu.Unlock()
			}
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	d := runDaemon(ctx, t, dfdaemon.Config{Supernode: proxy.URL})
	downloadAll(ctx, t, []*dfdaemon.Daemon{d}, org.URL+"/f", data)

	mu.Lock()
	defer mu.Unlock()
	if len(at) < 3 {
		t.Fatalf("%d progress syncs during a 2 s fetch by the seed; the test needs at least 3", len(at))
	}
	// The pace runs from the start of one sync to the start of the next inside the daemon; one
	// request may reach the proxy later than its start by a varying delay, so single gaps may
	// be shorter than the pace, but the span of them all can be short by one delay only.
	const slack = 100 * time.Millisecond
	span, want := at[len(at)-1].Sub(at[0]), time.Duration(len(at)-1)*250*time.Millisecond-slack
	if span < want {
		t.Fatalf("%d progress syncs within %v: want them at least 250 ms apart on average (%v)", len(at), span, want)
	}
}
