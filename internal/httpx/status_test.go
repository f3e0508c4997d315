package httpx_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pouch-p2p/pouch/internal/httpx"
)

func TestStatusWriter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		handle func(w http.ResponseWriter)
		status int
		body   string
		out    bool // the body goes to Out, not to the ResponseWriter
	}{
		{"nothing written", func(w http.ResponseWriter) {}, http.StatusOK, "", false},
		{"body only, through Out", func(w http.ResponseWriter) { w.Write([]byte("hello")) }, http.StatusOK, "hello", true},
		{"status then body", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound); w.Write([]byte("gone")) }, http.StatusNotFound, "gone", false},
		{"the first status counts", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusPartialContent)
			w.WriteHeader(http.StatusInternalServerError) // superfluous: net/http ignores it too
		}, http.StatusPartialContent, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			var out strings.Builder
			sw := &httpx.StatusWriter{ResponseWriter: rec}
			if tc.out {
				sw.Out = &out
			}
			tc.handle(sw)
			if sw.Status() != tc.status || sw.Written() != int64(len(tc.body)) {
				t.Errorf("Status %d, Written %d; want %d, %d", sw.Status(), sw.Written(), tc.status, len(tc.body))
			}
			if got := rec.Body.String() + out.String(); got != tc.body {
				t.Errorf("body %q, want %q", got, tc.body)
			}
		})
	}
}
