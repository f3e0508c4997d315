package taskid

import (
	"net/http"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

func TestFor(t *testing.T) {
	t.Parallel()
	base, err := For("https://h/x.tar?a=1&b=2", "", "", DefaultFilter)
	if err != nil {
		t.Fatal(err)
	}
	same := []string{
		"https://h/x.tar?b=2&a=1",
		"https://h/x.tar?a=1&b=2&X-Amz-Signature=abc&X-Amz-Expires=60",
		"https://h/x.tar?a=1&b=2#frag",
	}
	for _, u := range same {
		got, err := For(u, "", "", DefaultFilter)
		if err != nil || got != base {
			t.Errorf("For(%q) = %s, %v; want the same task as the base URL %s", u, got, err, base)
		}
	}
	differ := map[string]string{"https://h/x.tar?a=1&b=3": "", "https://h/y.tar?a=1&b=2": "", "https://h/x.tar?a=1&b=2 ": "v2"}
	for u, tag := range differ {
		got, _ := For(u, tag, "", DefaultFilter)
		if got == base {
			t.Errorf("For(%q, tag %q) = base task; want a different one", u, tag)
		}
	}
	d := digest.FromString("content")
	if got, err := For("https://h/x", "", d, DefaultFilter); err != nil || got != d {
		t.Errorf("digest task = %s, %v; want %s", got, err, d)
	}
	for _, bad := range []digest.Digest{"sha256:../../etc", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha512:" + digest.Digest(make([]byte, 0))} {
		if _, err := For("https://h/x", "", bad, DefaultFilter); err == nil {
			t.Errorf("For with digest %q: want an error", bad)
		}
	}
	for _, bad := range []string{"", "not a url", "/relative/path"} {
		if _, err := For(bad, "", "", DefaultFilter); err == nil {
			t.Errorf("For(%q): want an error", bad)
		}
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"https://h/x.tar", "https://h/x.tar"},
		{"https://h/x.tar?b=2&a=1", "https://h/x.tar?a=1&b=2"},
		{"https://s3.example.com/b/k?X-Amz-Signature=abc&X-Amz-Expires=60&v=1",
			"https://s3.example.com/b/k?X-Amz-Expires=REDACTED&X-Amz-Signature=REDACTED&v=1"},
		{"https://h/x?x-amz-signature=abc", "https://h/x?x-amz-signature=REDACTED"},
		{"https://h/x?sig=1&sig=2", "https://h/x?sig=REDACTED&sig=REDACTED"},
		{"https://user:secret@H.example/x#frag", "https://user:REDACTED@h.example/x"},
		{"https://user@h/x", "https://user@h/x"},
		{"http://[::1]:80/%zz", Redacted},
	} {
		if got := Redact(tc.in, DefaultFilter); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	a := Redact("https://h/x?X-Amz-Signature=good&a=1", DefaultFilter)
	if b := Redact("https://h/x?a=1&X-Amz-Signature=bad", DefaultFilter); a != b {
		t.Errorf("two signatures of one URL redact differently: %q, %q", a, b)
	}
	if b := Redact("https://h/x?a=1", DefaultFilter); a == b {
		t.Errorf("a signed and an unsigned URL redact alike: %q", a)
	}
}

func TestCredentialed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url    string
		header http.Header
		want   bool
	}{
		{"https://h/x", nil, false},
		{"https://h/x?a=1", http.Header{"Accept": {"*/*"}, "user-agent": {"curl"}}, false},
		{"https://h/x", http.Header{"Authorization": {"Bearer X"}}, true},
		{"https://h/x", http.Header{"authorization": {"Bearer X"}}, true}, // as JSON decodes it
		{"https://h/x", http.Header{"Proxy-Authorization": {"Basic eA=="}}, true},
		{"https://h/x", http.Header{"Cookie": {"s=1"}}, true},
		{"https://h/x", http.Header{"X-Api-Key": {"k"}}, true},
		{"https://h/x", http.Header{"Authorization": {}}, false},
		{"https://h/x?X-Amz-Signature=abc", nil, true},
		{"https://h/x?se=2030-01-01&sig=abc", nil, true},
		{"https://u:p@h/x", nil, true},
	} {
		if got := Credentialed(tc.url, tc.header, DefaultFilter); got != tc.want {
			t.Errorf("Credentialed(%q, %v) = %v, want %v", tc.url, tc.header, got, tc.want)
		}
	}
}
