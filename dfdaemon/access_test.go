package dfdaemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"github.com/pouch-p2p/pouch/internal/fixture/origin"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/piece"
	"github.com/pouch-p2p/pouch/supernode"
)

// TestPrivateContentRequesters: on a node that holds no copy, a requester without credentials
// is refused with the origin's 401 while one with them, at the same moment, gets the content
// from its peers; once the content is complete on the node, the refusal still holds, and only
// the daemon's own downloads (preheat) skip the check.
func TestPrivateContentRequesters(t *testing.T) {
	data := make([]byte, 8<<20)
	rand.Read(data)
	var sent atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer X" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="r"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet {
			sent.Add(1)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(origin.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sn := runSupernode(ctx, t, supernode.Config{})
	node := func() *dfdaemon.Daemon { return runDaemon(ctx, t, dfdaemon.Config{Supernode: sn.URL()}) }
	url := origin.URL + "/private"
	withAuth := dfdaemon.Request{URL: url, Header: http.Header{"Authorization": {"Bearer X"}}}
	anonymous := dfdaemon.Request{URL: url}

	read := func(d *dfdaemon.Daemon, req dfdaemon.Request, internal bool) error {
		get := d.Download
		if internal {
			get = d.DownloadInternal
		}
		x, err := get(ctx, req)
		if err != nil {
			return err
		}
		defer x.Close()
		got, err := io.ReadAll(x.NewReader(ctx, 0))
		if err == nil && !bytes.Equal(got, data) {
			err = errors.New("content differs")
		}
		return err
	}
	refused := func(err error) bool {
		var e *dfdaemon.Error
		return errors.As(err, &e) && e.OriginStatus == http.StatusUnauthorized && e.Header.Get("WWW-Authenticate") != ""
	}

	if err := read(node(), withAuth, false); err != nil {
		t.Fatal(err)
	}
	b := node()
	var wg sync.WaitGroup
	var errAnon, errAuth error
	wg.Add(2)
	go func() { defer wg.Done(); errAnon = read(b, anonymous, false) }()
	go func() { defer wg.Done(); errAuth = read(b, withAuth, false) }()
	wg.Wait()
	if !refused(errAnon) {
		t.Errorf("anonymous requester: %v, want the origin's 401 with its challenge", errAnon)
	}
	if errAuth != nil {
		t.Errorf("authorized requester: %v", errAuth)
	}
	if err := read(b, anonymous, false); !refused(err) {
		t.Errorf("anonymous requester of complete content: %v, want the origin's 401", err)
	}
	if err := read(b, anonymous, true); err != nil {
		t.Errorf("the daemon's own download of complete content: %v", err)
	}
	if err := read(node(), anonymous, true); err != nil {
		t.Errorf("the daemon's own download on a fresh node: %v", err)
	}
	if n := sent.Load(); n != 1 {
		t.Errorf("origin sent the content %d times, want once", n)
	}
}

// TestUnknownAccessDropped: a task stored before access was recorded is never served; the
// daemon drops it at start and fetches the content again.
func TestUnknownAccessDropped(t *testing.T) {
	data := []byte("a copy of unknown provenance")
	o := origin.NewData(t, data)
	url := o.URL + "/f"
	dir := t.TempDir()
	store, err := piece.Open(filepath.Join(dir, "pieces"), piece.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	id, err := taskid.For(url, "", "", taskid.DefaultFilter)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := store.Create(piece.Meta{ID: id, URL: url, ContentLength: int64(len(data)), PieceSize: piece.MinSize})
	if err == nil {
		_, err = pt.WriteSourcePiece(0, bytes.NewReader(data))
	}
	if err := errors.Join(err, store.Close()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := runDaemon(ctx, t, dfdaemon.Config{DataDir: dir})
	x, err := d.Download(ctx, dfdaemon.Request{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if got, err := io.ReadAll(x.NewReader(ctx, 0)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content: %q, %v", got, err)
	}
	if o.Requests.Load() != 1 {
		t.Errorf("origin asked %d times; want once, the stored copy dropped", o.Requests.Load())
	}
}
