package source

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
