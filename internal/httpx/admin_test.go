package httpx

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAdmin(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		token  string
		remote string
		auth   func(r *http.Request)
		want   int // 0: allowed
	}{
		{"no token, loopback v4", "", "127.0.0.1:5000", nil, 0},
		{"no token, loopback v6", "", "[::1]:5000", nil, 0},
		{"no token, v4-mapped loopback", "", "[::ffff:127.0.0.1]:5000", nil, 0},
		{"no token, remote", "", "10.0.0.7:5000", nil, http.StatusForbidden},
		{"no token, remote claiming a forwarded loopback", "", "10.0.0.7:5000", func(r *http.Request) { r.Header.Set("X-Forwarded-For", "127.0.0.1") }, http.StatusForbidden},
		{"token, bearer", "s3cret", "10.0.0.7:5000", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }, 0},
		{"token, basic password", "s3cret", "10.0.0.7:5000", func(r *http.Request) { r.SetBasicAuth("admin", "s3cret") }, 0},
		{"token, wrong bearer", "s3cret", "10.0.0.7:5000", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cre") }, http.StatusUnauthorized},
		{"token, missing, even from loopback", "s3cret", "127.0.0.1:5000", nil, http.StatusUnauthorized},
		{"token, empty bearer", "s3cret", "127.0.0.1:5000", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/api/v1/tasks", nil)
			r.RemoteAddr = c.remote
			if c.auth != nil {
				c.auth(r)
			}
			w := httptest.NewRecorder()
			ok := Admin{Token: c.token}.Allow(w, r)
			switch {
			case c.want == 0 && !ok:
				t.Fatalf("refused with %d: %s", w.Code, w.Body)
			case c.want != 0 && ok:
				t.Fatalf("allowed, want %d", c.want)
			case c.want != 0 && w.Code != c.want:
				t.Fatalf("status %d, want %d: %s", w.Code, c.want, w.Body)
			}
		})
	}
}
