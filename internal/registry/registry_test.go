package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pouch-p2p/pouch/internal/ociimage"
	"github.com/pouch-p2p/pouch/internal/registry"
)

func image(t *testing.T) *ociimage.Image {
	t.Helper()
	img, err := ociimage.Busybox(2, 64<<10)
	if errors.Is(err, ociimage.ErrNoBusybox) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func get(t *testing.T, method, u, auth string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestOpenRegistryCountsBlobBytes(t *testing.T) {
	t.Parallel()
	r, err := registry.Start(context.Background(), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	img := image(t)
	if err := img.Push(context.Background(), r.URL, "demo/busybox", "latest", "", ""); err != nil {
		t.Fatal(err)
	}
	if err := img.PushIndex(context.Background(), r.URL, "demo/busybox", "multi", "", ""); err != nil {
		t.Fatal(err)
	}
	l := img.Layers[1]
	resp := get(t, http.MethodGet, r.URL+"/v2/demo/busybox/blobs/"+l.Digest.String(), "")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != string(l.Data) {
		t.Fatalf("blob: %s, %d bytes", resp.Status, len(body))
	}
	if got := r.BlobBytes(l.Digest); got != int64(len(l.Data)) {
		t.Errorf("BlobBytes = %d, want %d", got, len(l.Data))
	}
	if r.TotalBlobBytes() != int64(len(l.Data)) || r.Requests() == 0 {
		t.Errorf("TotalBlobBytes = %d, Requests = %d", r.TotalBlobBytes(), r.Requests())
	}
	resp = get(t, http.MethodGet, r.URL+"/v2/demo/busybox/manifests/multi", "")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != img.Index().MediaType {
		t.Errorf("index: %s %s", resp.Status, ct)
	}
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	r, err := registry.Start(context.Background(), registry.Options{Htpasswd: map[string]string{"alice": "secret"}, Public: []string{"pub/img"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	img := image(t)
	ctx := context.Background()
	if err := img.Push(ctx, r.URL, "priv/img", "v1", "alice", "wrong"); err == nil {
		t.Fatal("push with a wrong password succeeded")
	}
	for _, repo := range []string{"priv/img", "pub/img"} {
		if err := img.Push(ctx, r.URL, repo, "v1", "alice", "secret"); err != nil {
			t.Fatal(err)
		}
	}
	resp := get(t, http.MethodGet, r.URL+"/v2/priv/img/manifests/v1", "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("anonymous private pull: %s %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := get(t, http.MethodGet, r.URL+"/v2/pub/img/manifests/v1", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("anonymous public pull: %s", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodGet, r.URL+"/v2/priv/img/manifests/v1", nil)
	req.SetBasicAuth("alice", "secret")
	if resp := get(t, http.MethodGet, req.URL.String(), req.Header.Get("Authorization")); resp.StatusCode != http.StatusOK {
		t.Errorf("authenticated pull: %s", resp.Status)
	}
}

func TestTokenAuth(t *testing.T) {
	t.Parallel()
	r, err := registry.Start(context.Background(), registry.Options{Token: true, Htpasswd: map[string]string{"bob": "pw"}, Public: []string{"pub/img"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	img := image(t)
	ctx := context.Background()
	for _, repo := range []string{"priv/img", "pub/img"} {
		if err := img.Push(ctx, r.URL, repo, "v1", "bob", "pw"); err != nil {
			t.Fatal(err)
		}
	}
	token := func(repo, user, pass string) string {
		q := url.Values{"service": {registry.Service}, "scope": {"repository:" + repo + ":pull"}}
		req, _ := http.NewRequest(http.MethodGet, r.URL+"/token?"+q.Encode(), nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return ""
		}
		var v struct{ Token string }
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return "Bearer " + v.Token
	}
	resp := get(t, http.MethodGet, r.URL+"/v2/priv/img/manifests/v1", "")
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(ch, `realm="`+r.URL+`/token"`) || !strings.Contains(ch, `scope="repository:priv/img:pull"`) {
		t.Errorf("anonymous: %s %q", resp.Status, ch)
	}
	cases := []struct {
		repo, user, pass string
		want             int
	}{
		{"priv/img", "bob", "pw", http.StatusOK},
		{"priv/img", "", "", http.StatusUnauthorized},
		{"pub/img", "", "", http.StatusOK},
	}
	for _, c := range cases {
		resp := get(t, http.MethodGet, r.URL+"/v2/"+c.repo+"/manifests/v1", token(c.repo, c.user, c.pass))
		if resp.StatusCode != c.want {
			t.Errorf("%s as %q: %s, want %d", c.repo, c.user, resp.Status, c.want)
		}
	}
	if tok := token("priv/img", "bob", "nope"); tok != "" {
		t.Error("token server accepted a wrong password")
	}
}
