package dfdaemon

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/registryproxy"
)

// MirrorBlobs adapts the daemon's downloads to the registry mirror: a blob's task is its
// digest, the requester's Authorization goes to the seed with the URL, and every fetch passes
// the daemon's gate (Download): the mirror has no authorization check of its own.
func (d *Daemon) MirrorBlobs() registryproxy.Blobs { return mirrorBlobs{d} }

// MountMirror builds the registry mirror on this daemon's downloads, SSRF policy and metrics
// registry, and serves it at /v2/ on the local API.
func (d *Daemon) MountMirror(cfg registryproxy.Config) (*registryproxy.Proxy, error) {
	p, err := registryproxy.New(cfg, d.MirrorBlobs(), registryproxy.Options{
		Log: d.log, Registerer: d.metrics.reg, Policy: netguard.Policy{Allow: d.cfg.Allow, Deny: d.cfg.Deny},
	})
	if err != nil {
		return nil, err
	}
	d.Handle("/v2/", p)
	return p, nil
}

type mirrorBlobs struct{ d *Daemon }

var _ registryproxy.Blobs = mirrorBlobs{}

func (m mirrorBlobs) Fetch(ctx context.Context, req registryproxy.BlobRequest) (registryproxy.Blob, error) {
	x, err := m.d.Download(ctx, Request{URL: req.URL, Header: req.Header, Digest: req.Digest, Want: req.Want})
	if err != nil {
		var e *Error
		switch {
		case errors.Is(err, ErrNotShared):
			return nil, fmt.Errorf("%w: %w", registryproxy.ErrNotShared, err)
		case errors.As(err, &e) && errors.Is(err, ErrOriginStatus):
			return nil, &registryproxy.StatusError{Status: e.OriginStatus, Msg: e.Msg, Header: e.Header}
		}
		return nil, err
	}
	return mirrorBlob{x}, nil
}

type mirrorBlob struct{ x *Download }

func (b mirrorBlob) Size() int64 { return b.x.Size() }
func (b mirrorBlob) NewReader(ctx context.Context, off int64) io.Reader {
	return b.x.NewReader(ctx, off)
}
func (b mirrorBlob) Close() { b.x.Close() }
