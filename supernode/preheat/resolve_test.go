package preheat_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	goruntime "runtime"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/supernode/preheat"
)

var loopback = netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

// startRegistry serves an image as repo:latest (a manifest) and repo:multi (an index).
func startRegistry(t *testing.T, opts registry.Options, user, pass string) (*registry.Registry, *image.Image) {
	t.Helper()
	reg := registry.StartTest(t, opts)
	img := image.PushRandom(t, reg.URL, "team/app", "latest", 3, 96<<10, user, pass)
	if err := img.PushIndex(context.Background(), reg.URL, "team/app", "multi", user, pass); err != nil {
		t.Fatal(err)
	}
	return reg, img
}

func newRegistry(t *testing.T, reg *registry.Registry, ref, user, pass string) *preheat.Registry {
	t.Helper()
	r, err := preheat.NewRegistry(reg.Host+"/"+ref, preheat.RegistryOptions{
		Client: loopback.Client(), Insecure: []string{reg.Host}, Username: user, Password: pass,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var here = ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH}

// fetch GETs a blob with the headers Authorize gave, as the seed does.
func fetch(t *testing.T, url string, h http.Header) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header = h
	resp, err := loopback.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s with the authorized headers: %s", url, resp.Status)
	}
	data, _ := io.ReadAll(resp.Body)
	return data
}

func TestResolveAndAuthorize(t *testing.T) {
	t.Parallel()
	users := map[string]string{"alice": "s3cret"}
	for _, tc := range []struct {
		name string
		opts registry.Options
	}{
		{"open", registry.Options{}},
		{"basic", registry.Options{Htpasswd: users}},
		{"token", registry.Options{Htpasswd: users, Token: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			user, pass := "", ""
			if len(tc.opts.Htpasswd) > 0 {
				user, pass = "alice", "s3cret"
			}
			reg, img := startRegistry(t, tc.opts, user, pass)
			ctx := context.Background()
			for _, tag := range []string{"latest", "multi"} {
				r := newRegistry(t, reg, "team/app:"+tag, user, pass)
				got, err := r.Resolve(ctx, here)
				if err != nil {
					t.Fatalf("%s: %v", tag, err)
				}
				if got.Manifest.Digest != img.Manifest.Digest {
					t.Errorf("%s: manifest %s, want %s", tag, got.Manifest.Digest, img.Manifest.Digest)
				}
				want := img.Blobs()
				if len(got.Blobs) != len(want) {
					t.Fatalf("%s: %d blobs, want %d", tag, len(got.Blobs), len(want))
				}
				for i, b := range got.Blobs {
					if b.Digest != want[i].Digest || b.Size != int64(len(want[i].Data)) {
						t.Errorf("%s: blob %d is %s (%d bytes), want %s (%d)", tag, i, b.Digest, b.Size, want[i].Digest, len(want[i].Data))
					}
					if wantURL := reg.URL + "/v2/team/app/blobs/" + want[i].Digest.String(); b.URL != wantURL {
						t.Errorf("blob URL %s, want %s", b.URL, wantURL)
					}
				}
				h, err := r.Authorize(ctx, got.Blobs[1])
				if err != nil {
					t.Fatalf("%s: authorize: %v", tag, err)
				}
				if data := fetch(t, got.Blobs[1].URL, h); string(data) != string(want[1].Data) {
					t.Errorf("%s: the blob fetched with the authorized headers differs", tag)
				}
			}
		})
	}
}

func TestResolveFailures(t *testing.T) {
	t.Parallel()
	users := map[string]string{"alice": "s3cret"}
	token, _ := startRegistry(t, registry.Options{Htpasswd: users, Token: true}, "alice", "s3cret")
	basic, _ := startRegistry(t, registry.Options{Htpasswd: users}, "alice", "s3cret")
	open, _ := startRegistry(t, registry.Options{}, "", "")
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		reg        *registry.Registry
		ref        string
		user, pass string
		platform   ocispec.Platform
		want       error
		text       string
	}{
		{"token wrong password", token, "team/app:latest", "alice", "wrong", here, preheat.ErrUnauthorized, ""},
		{"token no credentials", token, "team/app:latest", "", "", here, preheat.ErrUnauthorized, ""},
		{"basic wrong password", basic, "team/app:latest", "alice", "wrong", here, preheat.ErrUnauthorized, ""},
		{"basic no credentials", basic, "team/app:latest", "", "", here, preheat.ErrUnauthorized, ""},
		{"unknown tag", open, "team/app:nope", "", "", here, preheat.ErrNotFound, ""},
		{"unknown repository", open, "team/other:latest", "", "", here, preheat.ErrNotFound, ""},
		{"platform not in index", open, "team/app:multi", "", "", ocispec.Platform{OS: "windows", Architecture: "arm64"}, preheat.ErrNoPlatform, "linux/" + goruntime.GOARCH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistry(t, tc.reg, tc.ref, tc.user, tc.pass)
			_, err := r.Resolve(ctx, tc.platform)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), tc.reg.Host) {
				t.Errorf("error %q should name the reference and %q", err, tc.text)
			}
			if tc.pass != "" && strings.Contains(err.Error(), tc.pass) {
				t.Errorf("error %q shows the password", err)
			}
			t.Log(err)
		})
	}
}
