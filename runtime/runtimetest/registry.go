package runtimetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxOutput is what the busybox image's default command prints.
const BusyboxOutput = "hello from pouch\n"

// StartRegistry starts Debian's docker-registry on a free loopback port with its storage in a
// temporary directory and returns its host:port. It is stopped when the test ends.
func StartRegistry(t testing.TB) string {
	t.Helper()
	RequireIntegration(t)
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry not found; apt-get install docker-registry")
	}
	dir := t.TempDir()
	host := freeAddr(t)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "data"), host)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			t.Logf("docker-registry log:\n%s", tail(logPath, 30))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return host
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("docker-registry exited at start: %v\n%s", err, tail(logPath, 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s: %v\n%s", host, err, tail(logPath, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Image is an OCI image held in memory: its manifest, config and layer blobs.
type Image struct {
	Manifest []byte
	Digest   digest.Digest
	Blobs    map[digest.Digest][]byte // config and layers
	Layers   []digest.Digest
}

// Busybox builds a runnable two-layer image from the host's static busybox (busybox-static):
// layer one holds /bin/busybox and /bin/sh, layer two a small /etc/pouch-release. Its default
// command is /bin/sh -c "echo hello from pouch".
func Busybox(t testing.TB) *Image {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("static /bin/busybox not found; apt-get install busybox-static")
	}
	layer1 := tarGz(t, []tarEntry{
		{name: "bin/", mode: 0o755, dir: true},
		{name: "bin/busybox", mode: 0o755, data: bb},
		{name: "bin/sh", link: "busybox"},
		{name: "dev/", mode: 0o755, dir: true},
		{name: "proc/", mode: 0o555, dir: true},
		{name: "sys/", mode: 0o555, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
	})
	layer2 := tarGz(t, []tarEntry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/pouch-release", mode: 0o644, data: []byte("pouch test image\n")},
	})
	img := &Image{Blobs: map[digest.Digest][]byte{}}
	var diffIDs []digest.Digest
	var layerDescs []ocispec.Descriptor
	for _, l := range []layer{layer1, layer2} {
		d := digest.FromBytes(l.gz)
		img.Blobs[d] = l.gz
		img.Layers = append(img.Layers, d)
		diffIDs = append(diffIDs, l.diffID)
		layerDescs = append(layerDescs, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(l.gz))})
	}
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg, err := json.Marshal(ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH},
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/bin"},
			Cmd: []string{"/bin/sh", "-c", "echo hello from pouch"},
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgDigest := digest.FromBytes(cfg)
	img.Blobs[cfgDigest] = cfg
	img.Manifest, err = json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cfgDigest, Size: int64(len(cfg))},
		Layers:    layerDescs,
	})
	if err != nil {
		t.Fatal(err)
	}
	img.Digest = digest.FromBytes(img.Manifest)
	return img
}

type tarEntry struct {
	name, link string
	mode       int64
	dir        bool
	data       []byte
}

type layer struct {
	gz     []byte
	diffID digest.Digest
}

func tarGz(t testing.TB, entries []tarEntry) layer {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	mtime := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw.Bytes())
	return layer{gz: gz.Bytes(), diffID: digest.NewDigestFromBytes(digest.SHA256, sum[:])}
}

// Push uploads the image to the plain-HTTP registry at host as repo:tag with the distribution
// API (monolithic blob uploads, then the manifest).
func (img *Image) Push(ctx context.Context, host, repo, tag string) error {
	base := "http://" + host + "/v2/" + repo
	for d, blob := range img.Blobs {
		if err := pushBlob(ctx, base, d, blob); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/manifests/"+tag, bytes.NewReader(img.Manifest))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
	return do(req, http.StatusCreated)
}

func pushBlob(ctx context.Context, base string, d digest.Digest, blob []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload of %s: %s", d, resp.Status)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("upload location for %s: %w", d, err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), bytes.NewReader(blob))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	return do(req, http.StatusCreated)
}

func do(req *http.Request, want int) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", req.Method, (&url.URL{Path: req.URL.Path}).String(), resp.Status, body)
	}
	return nil
}

// PushBusybox builds the busybox image and pushes it to host as repo:tag.
func PushBusybox(t testing.TB, host, repo, tag string) *Image {
	t.Helper()
	img := Busybox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := img.Push(ctx, host, repo, tag); err != nil {
		t.Fatalf("push %s/%s:%s: %v", host, repo, tag, err)
	}
	return img
}
