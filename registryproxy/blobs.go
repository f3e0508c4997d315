package registryproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/httprange"
)

// serveBlob answers GET and HEAD of a blob. A HEAD asks the upstream, which alone decides. A
// GET goes to the P2P network, whose Blobs decides whether this requester may read the blob:
// its refusal is relayed as it came from the upstream (WWW-Authenticate included), and a blob
// it does not share with the upstream and repository named here, like a P2P failure or stall
// before the first byte, is streamed from that upstream instead.
func (p *Proxy) serveBlob(w http.ResponseWriter, r *http.Request, up *upstream, rt route) {
	ctx := r.Context()
	repo := up.repo(rt.name)
	dg := digest.Digest(rt.ref)
	auth, err := up.authorization(ctx, repo, r.Header.Get("Authorization"))
	if err != nil {
		if ctx.Err() == nil {
			p.upstreamDown(w, up, err)
		}
		return
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", dg.String())
	h.Set("Etag", `"`+dg.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodHead {
		p.headBlob(w, r, up, repo, dg, auth)
		return
	}

	blobURL := up.url(repo, "/blobs/"+dg.String())
	var hdr http.Header
	if auth != "" {
		hdr = http.Header{"Authorization": {auth}}
	}
	s := &blobStream{p: p, w: w, r: r, up: up, repo: repo, dg: dg, url: blobURL, auth: auth, size: -1}
	breq := BlobRequest{URL: blobURL, Header: hdr, Digest: dg}
	if want, ok := httprange.Bounded(r.Header.Get("Range")); ok {
		breq.Want = &want
	}
	b, err := p.fetchP2P(ctx, breq)
	if err != nil {
		var se *StatusError
		switch {
		case errors.As(err, &se) && se.Header != nil:
			// The upstream's own answer to this requester's credentials.
			p.relayRefusal(w, r, up, se.Status, se.Header, nil, CodeBlobUnknown, fmt.Sprintf("blob %s in %s", dg, repo))
			return
		case errors.Is(err, ErrNotShared):
			p.log.Info("blob not shared with this upstream or repository: streaming from the upstream", zap.Stringer("digest", dg),
				zap.String("upstream", up.name), zap.String("repository", repo))
		case upstreamStatus(err) != 0:
			// The upstream refused the seed: ask it again directly and relay its answer.
			p.log.Info("upstream refused the P2P fetch", zap.Stringer("digest", dg), zap.Int("status", upstreamStatus(err)))
		case ctx.Err() == nil:
			p.log.Warn("P2P fetch failed: streaming from the upstream", zap.Stringer("digest", dg), zap.Error(err))
		}
		s.fromUpstream()
		return
	}
	defer b.Close()
	s.fromP2P(b)
}

// headBlob answers a HEAD of a blob from the upstream: its size when it has the blob for this
// client, its refusal otherwise.
func (p *Proxy) headBlob(w http.ResponseWriter, r *http.Request, up *upstream, repo string, dg digest.Digest, auth string) {
	var h http.Header
	if auth != "" {
		h = http.Header{"Authorization": {auth}}
	}
	resp, _, err := up.do(r.Context(), up.direct, http.MethodHead, up.url(repo, "/blobs/"+dg.String()), repo, h)
	if err != nil {
		if r.Context().Err() == nil {
			p.upstreamDown(w, up, err)
		}
		return
	}
	drain(resp)
	size := resp.ContentLength
	switch {
	case resp.StatusCode/100 == 3 || resp.StatusCode/100 == 2 && size < 0:
		// Redirected to storage, which is signed for GET: learn the size with one byte.
		if size, err = p.probeSize(r.Context(), up, repo, dg, auth); err != nil {
			p.upstreamDown(w, up, err)
			return
		}
	case resp.StatusCode/100 != 2:
		p.relayRefusal(w, r, up, resp.StatusCode, resp.Header, nil, CodeBlobUnknown, fmt.Sprintf("blob %s in %s", dg, repo))
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
}

// probeSize learns the size of a blob whose HEAD redirected: a one-byte ranged GET.
func (p *Proxy) probeSize(ctx context.Context, up *upstream, repo string, dg digest.Digest, auth string) (int64, error) {
	h := http.Header{"Range": {httprange.Format(0, 0)}}
	if auth != "" {
		h.Set("Authorization", auth)
	}
	resp, _, err := up.do(ctx, up.client, http.MethodGet, up.url(repo, "/blobs/"+dg.String()), repo, h)
	if err != nil {
		return 0, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength >= 0 {
			return resp.ContentLength, nil
		}
	case http.StatusPartialContent:
		if cr, err := httprange.ParseContentRange(resp.Header.Get("Content-Range")); err == nil && cr.Total >= 0 {
			return cr.Total, nil
		}
	}
	return 0, fmt.Errorf("cannot learn the size of %s: upstream answered %s", dg, resp.Status)
}

// fetchP2P starts the P2P download, giving up after FirstByteTimeout.
func (p *Proxy) fetchP2P(ctx context.Context, req BlobRequest) (Blob, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.FirstByteTimeout)
	defer cancel()
	return p.blobs.Fetch(ctx, req)
}

// blobStream writes one blob response, from P2P or the upstream or both (a P2P stream that
// breaks midway resumes from the upstream with a Range request).
type blobStream struct {
	p        *Proxy
	w        http.ResponseWriter
	r        *http.Request
	up       *upstream
	repo     string
	dg       digest.Digest
	url      string
	auth     string
	size     int64 // -1 until known
	start    int64 // first byte of the response
	end      int64 // last byte of the response
	sent     int64 // body bytes written
	started  bool  // headers written
	fellBack bool
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// plan works out the range once the size is known; false when it answered the client itself.
func (s *blobStream) plan(size int64) bool {
	s.size = size
	rg, partial, err := httprange.Parse(s.r.Header.Get("Range"), size)
	if err != nil {
		s.w.Header().Set("Content-Range", httprange.ContentRange{Unsatisfied: true, Total: size}.String())
		writeError(s.w, http.StatusRequestedRangeNotSatisfiable, CodeBlobUnknown, fmt.Sprintf("range %q not satisfiable for %d bytes", s.r.Header.Get("Range"), size), nil)
		return false
	}
	s.start, s.end = rg.Start, rg.End
	h := s.w.Header()
	h.Set("Content-Length", strconv.FormatInt(rg.Len(), 10))
	if partial {
		h.Set("Content-Range", httprange.ContentRange{Range: rg, Total: size}.String())
		s.w.WriteHeader(http.StatusPartialContent)
	} else {
		s.w.WriteHeader(http.StatusOK)
	}
	s.started = true
	return true
}

// whole says whether the response is the whole blob: then its last byte is held back until
// the content is verified, so a client never gets a complete wrong blob.
func (s *blobStream) whole() bool { return s.start == 0 && s.end == s.size-1 }

func (s *blobStream) fromP2P(b Blob) {
	if s.size >= 0 && b.Size() != s.size {
		s.p.log.Warn("P2P size differs from the upstream's: streaming from the upstream",
			zap.Stringer("digest", s.dg), zap.Int64("p2p", b.Size()), zap.Int64("upstream", s.size))
		s.fromUpstream()
		return
	}
	size := b.Size()
	rg, _, err := httprange.Parse(s.r.Header.Get("Range"), size)
	if err != nil || size == 0 {
		s.plan(size)
		return
	}
	ctx, cancel := context.WithCancel(s.r.Context())
	defer cancel()
	stall := time.AfterFunc(s.p.cfg.FirstByteTimeout, cancel)
	rd := b.NewReader(ctx, rg.Start)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	// Wait for the first byte before committing to P2P.
	n, err := readSome(rd, buf[:1])
	if !stall.Stop() || n == 0 {
		if err == nil {
			err = errors.New("stalled")
		}
		if s.r.Context().Err() == nil {
			s.p.log.Warn("P2P stalled before the first byte: streaming from the upstream", zap.Stringer("digest", s.dg), zap.Error(err))
		}
		s.fromUpstream()
		return
	}
	if !s.plan(size) {
		return
	}
	first := buf[0]
	held := s.whole() && size > 0
	// limit is what is written before the end: all but the last byte when it is held back.
	total := s.end - s.start + 1
	limit := total
	if held {
		limit = total - 1
	}
	if limit > 0 {
		if !s.write([]byte{first}, "p2p") {
			return
		}
	}
	for s.sent < limit {
		want := min(int64(len(buf)), limit-s.sent)
		n, err := rd.Read(buf[:want])
		if n > 0 && !s.write(buf[:n], "p2p") {
			return
		}
		if err != nil {
			s.p.log.Warn("P2P stream broke: resuming from the upstream", zap.Stringer("digest", s.dg), zap.Int64("at", s.start+s.sent), zap.Error(err))
			s.resume()
			return
		}
	}
	if !held {
		return
	}
	// The last byte, then the end of the content: the reader reports a digest mismatch there.
	var last [1]byte
	if limit == 0 {
		last[0] = first
	} else if n, err := readSome(rd, last[:]); n == 0 {
		s.p.log.Warn("P2P stream broke at the last byte: resuming from the upstream", zap.Stringer("digest", s.dg), zap.Error(err))
		s.resume()
		return
	}
	var extra [1]byte
	if n, err := readSome(rd, extra[:]); n != 0 || !errors.Is(err, io.EOF) {
		s.p.log.Error("P2P content failed verification: aborting the response", zap.Stringer("digest", s.dg), zap.Error(err))
		panic(http.ErrAbortHandler)
	}
	s.write(last[:], "p2p")
}

// readSome reads until it gets at least one byte or an error.
func readSome(r io.Reader, p []byte) (int, error) {
	for {
		n, err := r.Read(p)
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func (s *blobStream) write(b []byte, source string) bool {
	n, err := s.w.Write(b)
	s.sent += int64(n)
	s.p.metrics.blobBytes.WithLabelValues(source).Add(float64(n))
	return err == nil
}

// fromUpstream streams the whole response from the upstream (nothing was sent yet).
func (s *blobStream) fromUpstream() {
	s.p.metrics.fallbacks.Inc()
	s.fellBack = true
	h := http.Header{}
	if s.auth != "" {
		h.Set("Authorization", s.auth)
	} else if a := s.r.Header.Get("Authorization"); a != "" {
		h.Set("Authorization", a)
	}
	if rg := s.r.Header.Get("Range"); rg != "" {
		h.Set("Range", rg)
	}
	resp, _, err := s.up.do(s.r.Context(), s.up.client, http.MethodGet, s.url, s.repo, h)
	if err != nil {
		if s.r.Context().Err() == nil {
			s.p.upstreamDown(s.w, s.up, err)
		}
		return
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength < 0 {
			writeError(s.w, http.StatusBadGateway, CodeUnsupported, fmt.Sprintf("upstream %s sent blob %s without a length", s.up.name, s.dg), nil)
			return
		}
		s.size, s.start, s.end = resp.ContentLength, 0, resp.ContentLength-1
		s.w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
		s.w.WriteHeader(http.StatusOK)
	case http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable:
		copyHeaders(s.w.Header(), resp.Header, "Content-Range", "Content-Length")
		s.w.WriteHeader(resp.StatusCode)
		s.size = -1
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		s.p.relayRefusal(s.w, s.r, s.up, resp.StatusCode, resp.Header, body, CodeBlobUnknown, fmt.Sprintf("blob %s in %s", s.dg, s.repo))
		return
	}
	s.started = true
	if resp.StatusCode != http.StatusOK {
		s.copyBody(resp.Body, -1)
		return
	}
	// The whole blob: verify it on the way, holding back the last byte.
	v := s.dg.Verifier()
	body := io.TeeReader(resp.Body, v)
	if s.size == 0 {
		return
	}
	if !s.copyBody(body, s.size-1) {
		return
	}
	var last [1]byte
	if _, err := io.ReadFull(body, last[:]); err != nil {
		panic(http.ErrAbortHandler)
	}
	if !v.Verified() {
		s.p.log.Error("upstream sent content that does not match its digest", zap.String("upstream", s.up.name), zap.Stringer("digest", s.dg))
		panic(http.ErrAbortHandler)
	}
	s.write(last[:], "upstream")
}

// resume continues a broken P2P response from the upstream at the next byte.
func (s *blobStream) resume() {
	s.p.metrics.fallbacks.Inc()
	from := s.start + s.sent
	h := http.Header{"Range": {httprange.Format(from, s.end)}}
	if s.auth != "" {
		h.Set("Authorization", s.auth)
	}
	resp, _, err := s.up.do(s.r.Context(), s.up.client, http.MethodGet, s.url, s.repo, h)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer resp.Body.Close()
	body := io.Reader(resp.Body)
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if _, err := io.CopyN(io.Discard, body, from); err != nil {
			panic(http.ErrAbortHandler)
		}
	default:
		s.p.log.Warn("upstream refused to resume", zap.Stringer("digest", s.dg), zap.Int("status", resp.StatusCode))
		panic(http.ErrAbortHandler)
	}
	if !s.copyBody(body, s.end-from+1) {
		panic(http.ErrAbortHandler)
	}
}

// copyBody copies n bytes (n < 0: to the end) to the client; false if it could not.
func (s *blobStream) copyBody(r io.Reader, n int64) bool {
	if n >= 0 {
		r = io.LimitReader(r, n)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var got int64
	for {
		k, err := r.Read(*bp)
		if k > 0 {
			got += int64(k)
			if !s.write((*bp)[:k], "upstream") {
				return false
			}
		}
		if err == io.EOF {
			return n < 0 || got == n
		}
		if err != nil {
			return false
		}
	}
}
