package reqid

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	for id, ok := range map[string]bool{
		"abc-123": true, "a.b_c:d": true, strings.Repeat("a", MaxLen): true, New(): true,
		"": false, strings.Repeat("a", MaxLen+1): false, "a b": false, "a\nb": false, "a\"b": false, "é": false,
	} {
		if err := Check(id); (err == nil) != ok {
			t.Errorf("Check(%q) = %v", id, err)
		}
	}
}

func TestFromRequestAndForward(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	id, err := FromRequest(r)
	if err != nil || len(id) != 32 {
		t.Fatalf("no header: %q, %v", id, err)
	}
	r.Header.Set(Header, "job-7")
	if id, err := FromRequest(r); err != nil || id != "job-7" {
		t.Errorf("header job-7: %q, %v", id, err)
	}
	r.Header.Set(Header, "x y")
	if _, err := FromRequest(r); err == nil {
		t.Error("a bad header was accepted")
	}
	out, _ := http.NewRequestWithContext(With(context.Background(), "job-7"), http.MethodPost, "http://x/", nil)
	Forward(out)
	if got := out.Header.Get(Header); got != "job-7" {
		t.Errorf("forwarded %q", got)
	}
}
