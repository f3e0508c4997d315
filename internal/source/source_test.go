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
	srv, requests := rangeOrigin(t, data)
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
	if ranges := requests(); !slices.Equal(ranges, want) {
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

// rangeOrigin serves data with Range support and returns the Range header of every request it
// got, in order.
func rangeOrigin(t *testing.T, data []byte) (*httptest.Server, func() []string) {
	t.Helper()
	var ranges []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ranges)
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

// A lazy seed's first answer holds part of the pieces it wants: FillFrom takes them from Around,
// which asks for the bytes before and after that answer, and the origin sends the pieces once,
// each verified by the hash of exactly its bytes.
func TestFillFromAround(t *testing.T) {
	t.Parallel()
	data := make([]byte, 6<<20)
	for i := range data {
		data[i] = byte(i * 11)
	}
	srv, requests := rangeOrigin(t, data)
	task := newTask(t, data, piece.Options{NoSync: true})
	const mib = 1 << 20
	o := Origin{Client: srv.Client(), URL: srv.URL, Skip: func(i int) bool { return i != 2 && i != 3 }}
	ctx := context.Background()
	resp, err := o.Get(ctx, 2*mib+mib/2, 3*mib+mib/2-1) // inside pieces 2 and 3
	if err != nil {
		t.Fatal(err)
	}
	body := o.Around(ctx, resp.Body, 2*mib+mib/2, 3*mib+mib/2-1, 2*mib, 4*mib-1, int64(len(data)))
	digests := map[int]digest.Digest{}
	if err := o.FillFrom(ctx, task, body, 2*mib, func(i int, d digest.Digest) { digests[i] = d }); err != nil {
		t.Fatal(err)
	}
	for i := range task.PieceCount() {
		if want := i == 2 || i == 3; task.Has(i) != want {
			t.Errorf("piece %d present %v", i, task.Has(i))
		}
	}
	for _, i := range []int{2, 3} {
		if want := digest.FromBytes(data[i*mib : (i+1)*mib]); digests[i] != want {
			t.Errorf("piece %d: digest %s, want %s", i, digests[i], want)
		}
	}
	want := []string{"bytes=2621440-3670015", "bytes=2097152-2621439", "bytes=3670016-4194303"}
	if ranges := requests(); !slices.Equal(ranges, want) {
		t.Errorf("requests %q, want %q (the answer, then the bytes before and after it, once)", ranges, want)
	}
}

// Around takes from the origin only an answer for exactly the bytes it asked for, of the length
// it knows: another range, another length, a 200 or a short body fail the stream.
func TestAroundRefusesOtherBytes(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789"), 100)
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter, r *http.Request)
	}{
		{"other range", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 1-100/1000")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[1:101])
		}},
		{"other length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 0-99/2000")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[:100])
		}},
		{"range ignored", func(w http.ResponseWriter, r *http.Request) { w.Write(data) }},
		{"short body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 0-99/1000")
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[:50])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(tc.serve))
			t.Cleanup(srv.Close)
			o := Origin{Client: srv.Client(), URL: srv.URL}
			// The answer held bytes 100-199; the stream wants 0-199.
			body := o.Around(context.Background(), io.NopCloser(bytes.NewReader(data[100:200])), 100, 199, 0, 199, 1000)
			defer body.Close()
			got, err := io.ReadAll(body)
			if err == nil {
				t.Fatalf("read %d bytes and no error", len(got))
			}
			if len(got) > 0 && !bytes.Equal(got, data[:len(got)]) {
				t.Errorf("read other bytes before the error: %q", got)
			}
		})
	}
}
