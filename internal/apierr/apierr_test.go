package apierr_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pouch-p2p/pouch/internal/apierr"
)

func TestRead(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status int
		body   string
		want   apierr.Error
		ours   bool
	}{
		{"api answer", 502, `{"error":"origin answered 404","code":"origin_status","originStatus":404}`,
			apierr.Error{Message: "origin answered 404", Code: apierr.CodeOriginStatus, OriginStatus: 404}, true},
		{"code without message", 500, `{"code":"internal"}`, apierr.Error{Message: `{"code":"internal"}`, Code: apierr.CodeInternal}, true},
		{"a proxy's page", 502, "<html>Bad Gateway</html>\n", apierr.Error{Message: "<html>Bad Gateway</html>"}, false},
		{"json that is not ours", 404, `{"message":"no"}`, apierr.Error{Message: `{"message":"no"}`}, false},
		{"empty body", 503, "", apierr.Error{Message: "Service Unavailable"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			resp := &http.Response{StatusCode: c.status, Body: io.NopCloser(strings.NewReader(c.body))}
			got, ours := apierr.Read(resp)
			if got != c.want || ours != c.ours {
				t.Errorf("Read = %+v, %v; want %+v, %v", got, ours, c.want, c.ours)
			}
		})
	}
}
