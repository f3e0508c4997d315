package supernode

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/piece"
)

// TestAccessRecordedAndURLsRedacted: a task whose seed fetched with credentials (a header, a
// signed query) is private, the others public; peers learn it with the redacted origin, and
// no signature is stored, listed or sent in an error.
func TestAccessRecordedAndURLsRedacted(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/public",
			r.URL.Path == "/bearer" && r.Header.Get("Authorization") == "Bearer X",
			r.URL.Path == "/signed" && r.URL.Query().Get("X-Amz-Signature") == "good":
			w.Write([]byte("content of " + r.URL.Path))
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer origin.Close()
	s := start(t, Config{Allow: loopback})
	p := newPeer(t, "")
	c := p.client(s.URL())
	for _, tc := range []struct {
		name   string
		task   snapi.TaskRequest
		access piece.Access
		origin string
	}{
		{"public", snapi.TaskRequest{URL: origin.URL + "/public"}, piece.AccessPublic, origin.URL + "/public"},
		{"bearer", snapi.TaskRequest{URL: origin.URL + "/bearer", Header: http.Header{"authorization": {"Bearer X"}}}, piece.AccessPrivate, origin.URL + "/bearer"},
		{"signed", snapi.TaskRequest{URL: origin.URL + "/signed?X-Amz-Signature=good&v=1"}, piece.AccessPrivate, origin.URL + "/signed?X-Amz-Signature=REDACTED&v=1"},
	} {
		resp, err := c.Register(context.Background(), snapi.RegisterRequest{Task: tc.task, Peer: p.info})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.Task.Access != string(tc.access) || resp.Task.Origin != tc.origin {
			t.Errorf("%s: access %q origin %q, want %q %q", tc.name, resp.Task.Access, resp.Task.Origin, tc.access, tc.origin)
		}
	}
	_, err := c.Register(context.Background(), snapi.RegisterRequest{Task: snapi.TaskRequest{URL: origin.URL + "/other?X-Amz-Signature=wrongsig"}, Peer: p.info})
	if err == nil || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "wrongsig") {
		t.Errorf("refused signed fetch: %v; want a 403 without the signature", err)
	}

	for _, info := range s.store.List() {
		if strings.Contains(info.Meta.URL, "good") || strings.Contains(info.Meta.Origin, "good") {
			t.Errorf("stored meta keeps a signature: %+v", info.Meta)
		}
	}
	resp, err := http.Get(s.URL() + snapi.PathTasks)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var list []TaskStatus
	if err := json.Unmarshal(body, &list); err != nil || len(list) != 4 {
		t.Fatalf("task list: %v, %s", err, body)
	}
	if strings.Contains(string(body), "good") || strings.Contains(string(body), "wrongsig") {
		t.Errorf("task list shows a signature: %s", body)
	}
}

// TestLegacyTaskIsPrivate: a task the seed stored before access was recorded is served as
// private content of the URL it was fetched from.
func TestLegacyTaskIsPrivate(t *testing.T) {
	dir := t.TempDir()
	store, err := piece.Open(filepath.Join(dir, "pieces"), piece.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("fetched by an older seed")
	signed := "http://origin.example/f?X-Amz-Signature=old"
	id, err := taskid.For(signed, "", "", taskid.DefaultFilter)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := store.Create(piece.Meta{ID: id, URL: signed, ContentLength: int64(len(data)), PieceSize: piece.MinSize})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pt.WriteSourcePiece(0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	s := start(t, Config{DataDir: dir})
	p := newPeer(t, "")
	resp, err := p.client(s.URL()).Register(context.Background(), snapi.RegisterRequest{Task: snapi.TaskRequest{URL: signed}, Peer: p.info})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Task.Access != string(piece.AccessPrivate) || resp.Task.Origin != "http://origin.example/f?X-Amz-Signature=REDACTED" || !resp.Task.SeedDone {
		t.Errorf("legacy task: %+v, want complete, private, with its redacted URL as origin", resp.Task)
	}
}
