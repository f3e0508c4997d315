package supernode

import (
	"context"
	"errors"
	"math"
	"net/http"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/httprange"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/internal/source"
	"github.com/pouch-p2p/pouch/piece"
)

// wantSet is what the peers of a lazily read task want of it: the byte spans their
// registrations named (snapi.RegisterRequest.Want). The seed fetches only the pieces that
// overlap one, each run of them with a Range request of its own.
type wantSet struct {
	spans []snapi.Span
}

// maxWantSpans bounds a task's spans: past it the task is fetched whole, as a registration
// without Want would have it (a lazy reader of that many spans reads most of the content).
const maxWantSpans = 256

// add records span; it reports whether the set grew, and false with full when the set would
// pass maxWantSpans.
func (w *wantSet) add(sp snapi.Span) (grew, full bool) {
	for _, have := range w.spans {
		if have.Start <= sp.Start && sp.End <= have.End {
			return false, false
		}
	}
	if len(w.spans) >= maxWantSpans {
		return false, true
	}
	w.spans = append(w.spans, sp)
	return true, false
}

// has says whether piece i of content m overlaps a wanted span.
func (w *wantSet) has(i int, m piece.Meta) bool {
	off, n := piece.Bounds(i, m.ContentLength, m.PieceSize)
	for _, sp := range w.spans {
		if sp.Start < off+n && sp.End >= off {
			return true
		}
	}
	return false
}

// wants records what a registration wants of t (nil: the whole content) and wakes a waiting
// seed when that is more than before. Only a task created by a lazy read, or left incomplete
// in the store, is lazy; one registration without Want makes it whole for good. The caller
// holds s.mu.
func (s *Supernode) wants(t *task, want *snapi.Span) {
	if t.lazy == nil {
		return
	}
	if want == nil {
		t.lazy = nil
		t.notify()
		return
	}
	grew, full := t.lazy.add(*want)
	if full {
		s.log.Info("a lazily read task was asked for too many spans: the seed fetches it whole", zapTask(t.id))
		t.lazy = nil
	}
	if grew || full {
		t.notify()
	}
}

// skips says whether the seed need not fetch piece i from the origin: a live peer holds it
// with its trusted digest, or no peer wants it (a lazy read), and no preheat needs the seed to
// hold it. The caller holds s.mu.
func (s *Supernode) skips(t *task, i int) bool {
	if t.wantAll {
		return false
	}
	return t.holdings != nil && t.holdings.Covered(i) || t.lazy != nil && !t.lazy.has(i, t.meta)
}

// ahead is the trusted digests known past the published prefix t.digests: pieces fetched out
// of order for lazy reads. The caller holds s.mu.
func (t *task) ahead() []snapi.PieceDigest {
	if t.ptask == nil || t.holdings == nil {
		return nil
	}
	var out []snapi.PieceDigest
	for i := len(t.digests); i < t.ptask.PieceCount(); i++ {
		if d := t.holdings.Trusted(i); d != "" {
			out = append(out, snapi.PieceDigest{Index: i, Digest: digest.Digest(d)})
		}
	}
	return out
}

// lazyFirst is the seed's first request of a lazy task, made before the length (hence the piece
// size) is known: the wanted bytes, widened to piece.MinSize boundaries, which are piece
// boundaries at any length (every piece size is a power-of-two multiple of it). Its answer says
// the length, as a one-byte probe would, and carries the covering pieces, or part of them when
// pieces are larger (source.Origin.Around asks for the rest): a first read costs one round trip
// to the origin, not a probe and then the pieces. ranged is the bytes a 206 answer carries; nil
// for a 200 (the origin ignored Range: its body is the content from 0), and for the one-byte
// probe's answer, asked instead when the wanted bytes lie past the end (416) or the origin
// answered with other bytes than those asked.
func lazyFirst(ctx context.Context, origin source.Origin, want snapi.Span) (resp *http.Response, ranged *httprange.Range, err error) {
	start := want.Start / piece.MinSize * piece.MinSize
	end := int64(math.MaxInt64)
	if want.End < math.MaxInt64-piece.MinSize {
		end = (want.End/piece.MinSize+1)*piece.MinSize - 1
	}
	resp, err = origin.Get(ctx, start, end)
	var se *source.StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusRequestedRangeNotSatisfiable:
	case err != nil:
		return nil, nil, err
	case resp.StatusCode != http.StatusPartialContent:
		return resp, nil, nil
	default:
		cr, err := httprange.ParseContentRange(resp.Header.Get("Content-Range"))
		if err == nil && !cr.Unsatisfied && cr.Start == start && cr.End == min(end, cr.Total-1) {
			return resp, &cr.Range, nil
		}
		resp.Body.Close()
	}
	resp, err = origin.Get(ctx, 0, 0)
	return resp, nil, err
}

// coveringBytes is the bytes [from, to] of the pieces of content m that cover want, which
// starts inside the content.
func coveringBytes(want snapi.Span, m piece.Meta) (from, to int64) {
	first := want.Start / m.PieceSize
	last := min(want.End/m.PieceSize, int64(m.PieceCount()-1))
	return first * m.PieceSize, min((last+1)*m.PieceSize, m.ContentLength) - 1
}
