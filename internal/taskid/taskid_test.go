package taskid

import (
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
