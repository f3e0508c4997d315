package dfapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/dfapi"
)

func decode(contentType, body string) (dfapi.DownloadRequest, error) {
	r := httptest.NewRequest(http.MethodPost, dfapi.PathDownload, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return dfapi.DecodeRequest(r)
}

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	good := `{"url": "https://origin.example/f", "digest": "sha256:` + strings.Repeat("ab", 32) + `"}`
	cases := []struct {
		name        string
		contentType string
		body        string
		want        error // nil: accepted
	}{
		{"json", "application/json", good, nil},
		{"json with charset", "application/json; charset=utf-8", good, nil},
		{"text/plain (a cross-site form)", "text/plain", good, dfapi.ErrMediaType},
		{"form", "application/x-www-form-urlencoded", good, dfapi.ErrMediaType},
		{"no content type", "", good, dfapi.ErrMediaType},
		{"malformed content type", "application/json;;=", good, dfapi.ErrMediaType},
		{"unknown field", "application/json", `{"url": "http://o/f", "path": "/etc"}`, dfapi.ErrBadRequest},
		{"not json", "application/json", `url=http://o/f`, dfapi.ErrBadRequest},
		{"file url", "application/json", `{"url": "file:///etc/passwd"}`, dfapi.ErrBadRequest},
		{"relative url", "application/json", `{"url": "/f"}`, dfapi.ErrBadRequest},
		{"md5 digest", "application/json", `{"url": "http://o/f", "digest": "md5:abc"}`, dfapi.ErrBadRequest},
		{"too big", "application/json", `{"url": "http://o/f", "tag": "` + strings.Repeat("x", dfapi.MaxBody) + `"}`, dfapi.ErrBadRequest},
	}
	for _, c := range cases {
		_, err := decode(c.contentType, c.body)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// FuzzDecodeRequest: any body and content type is either refused with one of the two errors or
// yields a request the daemon can act on: an absolute http(s) URL, a sha256 digest if any.
func FuzzDecodeRequest(f *testing.F) {
	f.Add("application/json", `{"url": "https://origin.example/f", "header": {"Authorization": ["Bearer x"]}, "tag": "t"}`)
	f.Add("application/json", `{"url": "http://o/f", "digest": "sha256:`+strings.Repeat("0", 64)+`"}`)
	f.Add("text/plain", `{"url": "http://o/f"}`)
	f.Add("application/json; charset=utf-8", `{"url": "gopher://o/f"}`)
	f.Add("application/json", `{"url": "http://[::1]:80/f", "digest": "sha256:../../x"}`)
	f.Fuzz(func(t *testing.T, contentType, body string) {
		req, err := decode(contentType, body)
		if err != nil {
			if !errors.Is(err, dfapi.ErrMediaType) && !errors.Is(err, dfapi.ErrBadRequest) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		u, err := url.Parse(req.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("accepted url %q", req.URL)
		}
		if req.Digest != "" && (req.Digest.Validate() != nil || req.Digest.Algorithm() != digest.SHA256) {
			t.Fatalf("accepted digest %q", req.Digest)
		}
	})
}
