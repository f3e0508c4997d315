package taskid

import (
	"net/url"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// FuzzFor: For never panics and is deterministic; an ID is always a valid sha256 digest (the
// content digest itself when one is given), and adding a filtered parameter (a signature) to a
// URL never changes its task.
func FuzzFor(f *testing.F) {
	f.Add("https://h/x.tar?a=1&b=2", "", "")
	f.Add("https://h/x.tar?X-Amz-Signature=abc&X-Amz-Expires=60#frag", "v2", "")
	f.Add("http://[::1]:80/%2e%2e/x", "", "sha256:"+digest.FromString("x").Encoded())
	f.Add("s3://bucket/key;a=b?sig=1&sig=2", "t", "md5:abc")
	f.Fuzz(func(t *testing.T, rawURL, tag, content string) {
		id, err := For(rawURL, tag, digest.Digest(content), DefaultFilter)
		if err != nil {
			return
		}
		if again, err := For(rawURL, tag, digest.Digest(content), DefaultFilter); err != nil || again != id {
			t.Fatalf("For is not deterministic: %s then %s, %v", id, again, err)
		}
		if id.Validate() != nil || id.Algorithm() != digest.SHA256 {
			t.Fatalf("For(%q, %q, %q) = %q: not a sha256 digest", rawURL, tag, content, id)
		}
		if content != "" {
			if id != digest.Digest(content) {
				t.Fatalf("with a content digest the task is %s, want the digest %s", id, content)
			}
			return
		}
		u, err := url.Parse(rawURL)
		if err != nil {
			t.Fatalf("For accepted %q that url.Parse refuses: %v", rawURL, err)
		}
		q := u.Query()
		q.Set("X-Amz-Signature", "deadbeef")
		u.RawQuery = q.Encode()
		if signed, err := For(u.String(), tag, "", DefaultFilter); err != nil || signed != id {
			t.Fatalf("adding a signature to %q changed its task: %s → %s, %v", rawURL, id, signed, err)
		}
	})
}
