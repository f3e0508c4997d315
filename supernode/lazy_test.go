package supernode

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pouch-p2p/pouch/internal/httprange"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/source"
	"github.com/pouch-p2p/pouch/piece"
)

// TestWantSet: a span wants the pieces it overlaps, no more; a span inside a wanted one adds
// nothing; past maxWantSpans the set says it is full.
func TestWantSet(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	m := piece.Meta{ContentLength: 10*mib + 5, PieceSize: mib} // 11 pieces, the last of 5 bytes
	var w wantSet
	if grew, full := w.add(snapi.Span{Start: mib - 1, End: 2 * mib}); !grew || full {
		t.Fatalf("first span: grew %v, full %v", grew, full)
	}
	if grew, _ := w.add(snapi.Span{Start: mib, End: mib + 10}); grew {
		t.Error("a span inside a wanted one grew the set")
	}
	for i, want := range []bool{true, true, true, false, false, false, false, false, false, false, false} {
		if got := w.has(i, m); got != want {
			t.Errorf("piece %d wanted: %v, want %v", i, got, want)
		}
	}
	w.add(snapi.Span{Start: 10 * mib, End: 20 * mib}) // past the end: the last piece only
	if !w.has(10, m) || w.has(9, m) {
		t.Errorf("a span past the end: piece 10 %v, piece 9 %v", w.has(10, m), w.has(9, m))
	}
	var full wantSet
	for i := range maxWantSpans {
		full.add(snapi.Span{Start: int64(2 * i), End: int64(2 * i)})
	}
	if grew, isFull := full.add(snapi.Span{Start: 1, End: 1}); grew || !isFull {
		t.Errorf("span %d: grew %v, full %v", maxWantSpans+1, grew, isFull)
	}
}

// TestLazyFirst: a lazy seed's first request is the wanted bytes widened to piece.MinSize
// boundaries, and its answer says the length; a span past the end, or an origin answering other
// bytes, gets the one-byte probe instead; an origin ignoring Range is taken as it answers.
func TestLazyFirst(t *testing.T) {
	t.Parallel()
	const k = piece.MinSize
	data := bytes.Repeat([]byte("pouch"), int(3*k+5)/5) // 3 pieces of MinSize and 1 byte
	total := int64(len(data))
	for _, tc := range []struct {
		name       string
		want       snapi.Span
		serve      func(w http.ResponseWriter, r *http.Request)
		asked      []string
		ranged     *httprange.Range
		wantStatus int
	}{
		{"inside", snapi.Span{Start: k + 10, End: k + 20}, nil,
			[]string{fmt.Sprintf("bytes=%d-%d", k, 2*k-1)}, &httprange.Range{Start: k, End: 2*k - 1}, http.StatusPartialContent},
		{"across the end", snapi.Span{Start: 2*k + 1, End: 1 << 62}, nil,
			[]string{fmt.Sprintf("bytes=%d-%d", 2*k, (int64(1<<62)/k+1)*k-1)}, &httprange.Range{Start: 2 * k, End: total - 1}, http.StatusPartialContent},
		{"past the end", snapi.Span{Start: 4*k + 10, End: 4*k + 20}, nil,
			[]string{fmt.Sprintf("bytes=%d-%d", 4*k, 5*k-1), "bytes=0-0"}, nil, http.StatusPartialContent},
		{"other bytes", snapi.Span{Start: 0, End: 10}, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") == "bytes=0-0" {
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
				return
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 1-%d/%d", k, total))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[1 : k+1])
		}, []string{fmt.Sprintf("bytes=0-%d", k-1), "bytes=0-0"}, nil, http.StatusPartialContent},
		{"range ignored", snapi.Span{Start: 0, End: 10}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Write(data)
		},
			[]string{fmt.Sprintf("bytes=0-%d", k-1)}, nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var asked []string
			var mu sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				asked = append(asked, r.Header.Get("Range"))
				mu.Unlock()
				if tc.serve != nil {
					tc.serve(w, r)
					return
				}
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
			}))
			t.Cleanup(srv.Close)
			resp, ranged, err := lazyFirst(context.Background(), source.Origin{Client: srv.Client(), URL: srv.URL}, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if n, err := source.Length(resp); err != nil || n != total || resp.StatusCode != tc.wantStatus {
				t.Errorf("answer %d, length %d (%v), want %d and %d", resp.StatusCode, n, err, tc.wantStatus, total)
			}
			if (ranged == nil) != (tc.ranged == nil) || ranged != nil && *ranged != *tc.ranged {
				t.Errorf("ranged %v, want %v", ranged, tc.ranged)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(asked, tc.asked) {
				t.Errorf("asked %q, want %q", asked, tc.asked)
			}
		})
	}
}

// TestCoveringBytes: the pieces that cover a span, the last one cut at the content's end.
func TestCoveringBytes(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	m := piece.Meta{ContentLength: 10*mib + 5, PieceSize: mib}
	for _, tc := range []struct {
		want     snapi.Span
		from, to int64
	}{
		{snapi.Span{Start: 0, End: mib - 1}, 0, mib - 1},
		{snapi.Span{Start: mib + mib/2, End: mib + mib/2}, mib, 2*mib - 1},
		{snapi.Span{Start: mib - 1, End: 2 * mib}, 0, 3*mib - 1},
		{snapi.Span{Start: 9*mib + 1, End: 1 << 62}, 9 * mib, 10*mib + 4},
	} {
		if from, to := coveringBytes(tc.want, m); from != tc.from || to != tc.to {
			t.Errorf("%+v: %d-%d, want %d-%d", tc.want, from, to, tc.from, tc.to)
		}
	}
}
