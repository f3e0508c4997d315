package dfdaemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/internal/httpx"
	"github.com/pouch-p2p/pouch/internal/reqid"
	"github.com/pouch-p2p/pouch/internal/source"
	"github.com/pouch-p2p/pouch/internal/taskid"
)

// handleDownload serves dfapi.PathDownload: the content as it arrives, with the error trailer
// when the download fails after the first byte.
func (d *Daemon) handleDownload(w http.ResponseWriter, r *http.Request) {
	req, err := dfapi.DecodeRequest(r)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, dfapi.ErrMediaType) {
			status = http.StatusUnsupportedMediaType
		}
		httpx.WriteError(w, status, apierr.Error{Message: err.Error(), Code: apierr.CodeBadRequest})
		return
	}
	dreq := Request{URL: req.URL, Header: req.Header, Digest: req.Digest, Tag: req.Tag}
	x, err := d.Download(r.Context(), dreq)
	if errors.Is(err, ErrNotShared) {
		d.serveDirect(w, r, dreq)
		return
	}
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		status, body := APIError(err)
		httpx.WriteError(w, status, body)
		return
	}
	defer x.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(dfapi.HeaderSize, strconv.FormatInt(x.Size(), 10))
	w.Header().Set(dfapi.HeaderTaskID, x.TaskID().String())
	w.Header().Set("Trailer", dfapi.TrailerError)
	w.WriteHeader(http.StatusOK)
	bp := answerBufs.Get().(*[]byte)
	defer answerBufs.Put(bp)
	// Past the ResponseWriter's ReadFrom, which copies 32 KiB at a time: a chunked answer
	// cannot go out with sendfile anyway, and each 32 KiB chunk cost a write on this side and a
	// read and a write on dfget's (answerChunk).
	if _, err := io.CopyBuffer(struct{ io.Writer }{w}, x.NewReader(r.Context(), 0), *bp); err != nil {
		d.failedMidway(w, r, req.URL, classify(err))
	}
}

// answerChunk is the most of the content a download answer reads from the store and writes as
// one HTTP chunk (less at the end of a piece). dfget reads it with a buffer as large.
const answerChunk = 256 << 10

var answerBufs = sync.Pool{New: func() any { b := make([]byte, answerChunk); return &b }}

// failedMidway reports a failure after the first byte in the error trailer.
func (d *Daemon) failedMidway(w http.ResponseWriter, r *http.Request, rawURL string, err error) {
	if r.Context().Err() != nil {
		return
	}
	d.log.Warn("download failed midway", zap.String("url", taskid.Redact(rawURL, d.cfg.QueryFilter)), zap.String("peer", d.PeerID()), zap.String("request", reqid.From(r.Context())), zap.Error(err))
	_, body := APIError(err)
	w.Header().Set(dfapi.TrailerError, dfapi.EncodeTrailer(body))
}

// serveDirect streams req straight from the origin it names, past the store and the P2P
// network: the gate found it names another origin than the private task's. The origin alone
// decides; its refusal reaches the client as the local API's error, and content that does not
// match req's digest ends in the error trailer.
func (d *Daemon) serveDirect(w http.ResponseWriter, r *http.Request, req Request) {
	o := source.Origin{Client: d.origin, URL: req.URL, Header: req.Header, Limiter: d.downLimit, Filter: d.cfg.QueryFilter}
	resp, err := o.Get(r.Context(), 0, -1)
	if err != nil {
		if r.Context().Err() == nil {
			status, body := APIError(fromOrigin(err))
			httpx.WriteError(w, status, body)
		}
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	if resp.ContentLength >= 0 {
		w.Header().Set(dfapi.HeaderSize, strconv.FormatInt(resp.ContentLength, 10))
	}
	w.Header().Set("Trailer", dfapi.TrailerError)
	w.WriteHeader(http.StatusOK)
	body := d.downLimit.Reader(r.Context(), resp.Body)
	var verifier interface{ Verified() bool }
	if req.Digest != "" {
		v := req.Digest.Verifier()
		body, verifier = io.TeeReader(body, v), v
	}
	n, err := io.Copy(w, body)
	switch {
	case err != nil:
		d.failedMidway(w, r, req.URL, fromOrigin(err))
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		d.failedMidway(w, r, req.URL, &Error{Kind: ErrOriginUnreachable, Msg: fmt.Sprintf("origin sent %d of %d bytes", n, resp.ContentLength)})
	case verifier != nil && !verifier.Verified():
		d.failedMidway(w, r, req.URL, &Error{Kind: ErrDigestMismatch, Msg: fmt.Sprintf("content of %s does not match %s", taskid.Redact(req.URL, d.cfg.QueryFilter), req.Digest)})
	}
}

// localOnly guards the whole local listener (API and mirror) against DNS rebinding: a web page
// the user visits can point a name it controls at 127.0.0.1 and have the browser send requests
// there as same-origin ones, reading the answers; the browser then sends that name as Host. So
// only requests addressed to an IP address or to localhost (any port) are served, as the
// daemon's own clients (dfget, containerd through hosts.toml) address it; others get 421.
func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !localHost(r.Host) {
			name := r.Host
			if len(name) > 100 {
				name = name[:100] + "..."
			}
			httpx.WriteError(w, http.StatusMisdirectedRequest, apierr.Error{Code: apierr.CodeBadRequest,
				Message: fmt.Sprintf("host %q is not served here: the dfdaemon answers only requests addressed to an IP address or localhost (DNS rebinding protection)", name)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withRequestID gives every request on the local listener (API and mirror) its request ID:
// the client's X-Request-ID when valid, else a new one. It answers with it, and the download
// the request starts logs it and forwards it to the supernodes (reqid).
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := reqid.FromRequest(r)
		if err != nil {
			httpx.WriteError(w, http.StatusBadRequest, apierr.Error{Code: apierr.CodeBadRequest, Message: err.Error()})
			return
		}
		w.Header().Set(reqid.Header, id)
		next.ServeHTTP(w, r.WithContext(reqid.With(r.Context(), id)))
	})
}

// localHost reports whether a Host header names an IP literal or localhost, with any port. An
// empty Host (HTTP/1.0) comes from no browser and is served.
func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" || strings.EqualFold(host, "localhost") {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}
