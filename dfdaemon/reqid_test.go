package dfdaemon

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pouch-p2p/pouch/internal/reqid"
)

// The local listener answers with the client's request ID, makes one when there is none, and
// refuses a bad one; the handler sees the same ID in its context.
func TestRequestIDHeader(t *testing.T) {
	t.Parallel()
	var seen string
	h := withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = reqid.From(r.Context()) }))
	for _, tc := range []struct {
		sent   string
		status int
	}{{"job-7", http.StatusOK}, {"", http.StatusOK}, {"bad id", http.StatusBadRequest}} {
		seen = ""
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.sent != "" {
			r.Header.Set(reqid.Header, tc.sent)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got := w.Header().Get(reqid.Header)
		switch {
		case w.Code != tc.status:
			t.Errorf("%q: status %d, want %d", tc.sent, w.Code, tc.status)
		case tc.status == http.StatusOK && (got != seen || got == "" || tc.sent != "" && got != tc.sent):
			t.Errorf("%q: answered %q, handler saw %q", tc.sent, got, seen)
		}
	}
}
