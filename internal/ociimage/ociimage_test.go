package ociimage_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pouch-p2p/pouch/internal/ociimage"
)

func TestBusybox(t *testing.T) {
	t.Parallel()
	img, err := ociimage.Busybox(3, 1000)
	if errors.Is(err, ociimage.ErrNoBusybox) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(img.Manifest.Data, &m); err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(img.Config.Data, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 4 || len(cfg.RootFS.DiffIDs) != 4 || m.Config.Digest != img.Config.Digest {
		t.Fatalf("manifest %+v, diff_ids %v", m, cfg.RootFS.DiffIDs)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || cfg.Config.Cmd[2] != "echo hello from pouch" {
		t.Errorf("config %+v", cfg)
	}
	var extra int64
	for i, l := range img.Layers {
		if l.Digest != digest.FromBytes(l.Data) || m.Layers[i].Digest != l.Digest || m.Layers[i].Size != int64(len(l.Data)) {
			t.Errorf("layer %d: descriptor does not match", i)
		}
		raw := l.Data
		if l.MediaType == ocispec.MediaTypeImageLayerGzip {
			zr, err := gzip.NewReader(bytes.NewReader(l.Data))
			if err != nil {
				t.Fatal(err)
			}
			if raw, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if digest.FromBytes(raw) != cfg.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: diff_id does not match", i)
		}
		tr := tar.NewReader(bytes.NewReader(raw))
		names := map[string]string{}
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names[h.Name] = h.Linkname
			if i > 0 {
				extra += h.Size
			}
		}
		if i == 0 {
			for _, n := range []string{"bin/busybox", "bin/sh", "bin/echo", "bin/cat", "bin/ls", "bin/sleep", "bin/true"} {
				if _, ok := names[n]; !ok {
					t.Errorf("layer 0 lacks %s", n)
				}
			}
			if names["bin/sh"] != "busybox" {
				t.Errorf("bin/sh links to %q", names["bin/sh"])
			}
		}
	}
	if extra != 1000 {
		t.Errorf("extra layers hold %d bytes, want 1000", extra)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(img.Index().Data, &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != img.Manifest.Digest {
		t.Errorf("index %+v: %v", idx, err)
	}
	if img.TotalSize() <= 1000 {
		t.Errorf("TotalSize = %d", img.TotalSize())
	}
}
