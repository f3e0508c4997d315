package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/piece"
)

// TestErrorsRedactSignatures: whatever goes wrong, an error never shows a signed query's
// values, not even those of a redirect's target.
func TestErrorsRedactSignatures(t *testing.T) {
	t.Parallel()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + closed.Addr().String()
	closed.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, dead+"/blob?X-Amz-Signature=secret2", http.StatusTemporaryRedirect)
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	t.Cleanup(srv.Close)
	for _, u := range []string{
		srv.URL + "/forbidden?X-Amz-Signature=secret1",
		srv.URL + "/redirect?X-Amz-Signature=secret1",
		dead + "/x?sig=secret1",
	} {
		_, err := Origin{Client: srv.Client(), URL: u}.Get(context.Background(), 0, -1)
		if err == nil {
			t.Fatalf("%s: no error", u)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows a signature: %v", err)
		}
		var se *StatusError
		if strings.Contains(u, "forbidden") && (!errors.As(err, &se) || se.Status != http.StatusForbidden) {
			t.Errorf("%s: %v, want a 403 StatusError", u, err)
		}
	}
}

// Fill fetches only the pieces Skip does not name, with one Range request per run of them.
func TestFillSkips(t *testing.T) {
	t.Parallel()
	data := make([]byte, 6<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var ranges []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	task := newTask(t, data, piece.Options{NoSync: true})
	skipped := map[int]bool{0: true, 2: true, 3: true}
	o := Origin{Client: srv.Client(), URL: srv.URL, Skip: func(i int) bool { return skipped[i] }}
	if err := o.Fill(context.Background(), task, nil, nil); err != nil {
		t.Fatal(err)
	}
	for i := range task.PieceCount() {
		if task.Has(i) == skipped[i] {
			t.Errorf("piece %d: present %v, skipped %v", i, task.Has(i), skipped[i])
		}
	}
	want := []string{"bytes=1048576-2097151", "bytes=4194304-6291455"}
	if !slices.Equal(ranges, want) {
		t.Errorf("requests %q, want %q", ranges, want)
	}
}

// Fill hands every piece to onPiece once, in order, with its digest, although it reads ahead
// of the pieces waiting for their groups, and returns only after the last call (that each
// waits for its group is piece's TestHoldSourcePieceDoesNotWaitForItsGroup).
func TestFillPublishesDurablePiecesInOrder(t *testing.T) {
	t.Parallel()
	data := make([]byte, 20<<20) // 20 pieces of 1 MiB: more than DurableBytes wait at once
	for i := range data {
		data[i] = byte(i * 13)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	task := newTask(t, data, piece.Options{})
	var got []int
	o := Origin{Client: srv.Client(), URL: srv.URL}
	err := o.Fill(context.Background(), task, nil, func(i int, d digest.Digest) {
		if d != digest.FromBytes(data[i<<20:(i+1)<<20]) {
			t.Errorf("piece %d: digest %s", i, d)
		}
		got = append(got, i) // Fill has returned only after the last call
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := 20; len(got) != want || !slices.IsSorted(got) || got[0] != 0 || got[want-1] != want-1 {
		t.Fatalf("onPiece got %v, want 0 to 19 in order", got)
	}
}

// A spool refuses a response without Content-Length beyond its cap, over every response it
// holds at once, and gives the space back when a spooled body is closed.
func TestSpoolCap(t *testing.T) {
	t.Parallel()
	chunked := func(n int) *http.Response {
		return &http.Response{StatusCode: http.StatusOK, ContentLength: -1, Body: io.NopCloser(bytes.NewReader(make([]byte, n)))}
	}
	s := &Spool{Dir: t.TempDir(), Max: 100}
	first := chunked(60)
	if n, err := s.LengthOrSpool(first); err != nil || n != 60 {
		t.Fatalf("60 bytes under a cap of 100: %d, %v", n, err)
	}
	if _, err := s.LengthOrSpool(chunked(60)); !errors.Is(err, ErrSpoolFull) || !strings.Contains(err.Error(), "100 bytes") {
		t.Fatalf("60 more bytes while 60 are held: %v, want ErrSpoolFull naming the cap", err)
	}
	if s.Used() != 60 {
		t.Fatalf("a refused response still holds %d bytes of the spool", s.Used()-60)
	}
	first.Body.Close()
	if s.Used() != 0 {
		t.Fatalf("%d bytes held after the spooled body was closed", s.Used())
	}
	if n, err := s.LengthOrSpool(chunked(100)); err != nil || n != 100 {
		t.Fatalf("100 bytes once the spool is free: %d, %v", n, err)
	}
}

// newTask is an empty task for data in 1 MiB pieces, in a store of its own closed with the test.
func newTask(t *testing.T, data []byte, opts piece.Options) *piece.Task {
	t.Helper()
	store, err := piece.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	task, err := store.Create(piece.Meta{ID: digest.FromBytes(data), ContentLength: int64(len(data)), PieceSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return task
}
