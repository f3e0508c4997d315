package dfdaemon

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"
	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/piece"
)

type peerID = peer.ID

// Download is a handle on a running or finished download; Close releases it.
type Download struct {
	d      *Daemon
	dl     *download
	closed bool
}

// Size is the content length.
func (x *Download) Size() int64 { return x.dl.task.Meta().ContentLength }

// TaskID is the task the content is stored under.
func (x *Download) TaskID() digest.Digest { return x.dl.task.Meta().ID }

// Wait blocks until the download is complete and verified, and returns its error.
func (x *Download) Wait(ctx context.Context) error {
	select {
	case <-x.dl.done:
		return x.dl.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// BytesFromPeers and BytesFromOrigin tell where this daemon got the content.
func (x *Download) BytesFromPeers() int64  { return x.dl.fromPeers.Load() }
func (x *Download) BytesFromOrigin() int64 { return x.dl.fromOrigin.Load() }

// Close releases the download: the task may be garbage-collected once nobody holds it.
func (x *Download) Close() {
	if x.closed {
		return
	}
	x.closed = true
	x.d.mu.Lock()
	defer x.d.mu.Unlock()
	if x.d.inUse[x.dl.key]--; x.d.inUse[x.dl.key] <= 0 {
		delete(x.d.inUse, x.dl.key)
	}
	if x.dl.holders--; x.dl.holders == 0 {
		select {
		case x.dl.released <- struct{}{}:
		default:
		}
	}
}

// NewReader streams the content from off as pieces arrive, in order. It returns the download's
// error instead of io.EOF if the content fails its final digest check, so a client never takes a
// wrong blob for a complete one.
func (x *Download) NewReader(ctx context.Context, off int64) io.Reader {
	return &reader{ctx: ctx, dl: x.dl, off: off}
}

type reader struct {
	ctx context.Context
	dl  *download
	off int64
}

func (r *reader) Read(p []byte) (int, error) {
	t := r.dl.task
	meta := t.Meta()
	if r.off >= meta.ContentLength {
		select {
		case <-r.dl.done:
			if r.dl.err != nil {
				return 0, r.dl.err
			}
			return 0, io.EOF
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
	i := int(r.off / meta.PieceSize)
	for !t.Has(i) {
		changed := t.Changed()
		if t.Has(i) {
			break
		}
		r.dl.mu.Lock()
		r.dl.cursor = i
		r.dl.mu.Unlock()
		r.dl.poke()
		select {
		case <-changed:
		case <-t.Done():
			return 0, r.removed(fmt.Errorf("task %s was removed while being read", t.Meta().ID))
		case <-r.dl.done:
			if r.dl.err != nil {
				return 0, r.dl.err
			}
			if !t.Has(i) {
				return 0, fmt.Errorf("%w: piece %d of %s", errNotFetched, i, t.Meta().ID)
			}
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
	end := min(int64(i+1)*meta.PieceSize, meta.ContentLength)
	if int64(len(p)) > end-r.off {
		p = p[:end-r.off]
	}
	n, err := t.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF {
		err = nil
	}
	if errors.Is(err, piece.ErrNotFound) {
		err = r.removed(err)
	}
	return n, err
}

// removed is the error for a task removed under the reader: the download's own failure when it
// removed it (content that failed its digest check is deleted before the download ends), so
// the client learns why.
func (r *reader) removed(err error) error {
	select {
	case <-r.dl.done:
		if r.dl.err != nil {
			return r.dl.err
		}
	case <-r.ctx.Done():
	}
	return err
}
