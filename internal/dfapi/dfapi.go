// Package dfapi is the dfdaemon's local API as seen from both ends: the download call dfget
// makes, the headers and trailer of its answer, and a client. It lives in internal so that dfget
// need not import dfdaemon: both import this, as both ends of the supernode's API import
// internal/snapi. Error answers are internal/apierr's.
package dfapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/httpx"
)

// PathDownload is the download call: POST a DownloadRequest, get the content back.
const PathDownload = "/api/v1/download"

// MaxBody bounds every request body the daemon reads.
const MaxBody = 1 << 20

// DownloadRequest is the body of POST PathDownload.
type DownloadRequest struct {
	URL    string        `json:"url"`
	Header http.Header   `json:"header,omitempty"` // sent to the origin (credentials)
	Digest digest.Digest `json:"digest,omitempty"` // expected content digest; makes the task digest-based
	Tag    string        `json:"tag,omitempty"`    // separates tasks for the same URL
}

// ContentType is the only body type the download call takes. A web page can make a browser
// send a cross-site POST without asking first only with a form or text/plain body; with
// application/json the browser asks first (CORS preflight), and the daemon never says yes.
const ContentType = "application/json"

// ErrMediaType is a download call whose body is not declared ContentType (answered 415).
var ErrMediaType = errors.New("dfapi: the request body must be " + ContentType)

// ErrBadRequest is a download call whose body is not a valid DownloadRequest (answered 400).
var ErrBadRequest = errors.New("dfapi: bad download request")

// DecodeRequest reads a download call's body: declared ContentType, at most MaxBody bytes of
// JSON without unknown fields, an absolute http or https URL, and a sha256 digest if any.
// Errors wrap ErrMediaType or ErrBadRequest.
func DecodeRequest(r *http.Request) (DownloadRequest, error) {
	var req DownloadRequest
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != ContentType {
		return req, fmt.Errorf("%w (got %q)", ErrMediaType, ct)
	}
	if err := httpx.DecodeJSON(r, MaxBody, &req); err != nil {
		return req, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if u, err := url.Parse(req.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return req, fmt.Errorf("%w: url %q is not an absolute http or https URL", ErrBadRequest, req.URL)
	}
	if req.Digest != "" {
		if err := req.Digest.Validate(); err != nil || req.Digest.Algorithm() != digest.SHA256 {
			return req, fmt.Errorf("%w: digest %q is not sha256:<64 hex>", ErrBadRequest, req.Digest)
		}
	}
	return req, nil
}

// Headers of a download answer. The body is chunked, so that a failure after the first byte
// (the content failed its digest, the origin broke off) reaches the client as an error trailer
// rather than as a connection that merely ended.
const (
	HeaderTaskID = "X-Pouch-Task"
	HeaderSize   = "X-Pouch-Size"  // the content length
	TrailerError = "X-Pouch-Error" // an apierr.Error as JSON (EncodeTrailer) when the download failed midway
)

// EncodeTrailer is the TrailerError value for e.
func EncodeTrailer(e apierr.Error) string {
	data, _ := json.Marshal(e)
	return string(data)
}

// DecodeTrailer reads a TrailerError value; one that is not JSON becomes the message.
func DecodeTrailer(v string) apierr.Error {
	var e apierr.Error
	if json.Unmarshal([]byte(v), &e) != nil || e.Message == "" {
		e.Message = v
	}
	return e
}

// DecodeError reads the error body of a failed answer. An answer that is not the API's (no
// code) keeps an empty code and its text (or status text) as the message.
func DecodeError(resp *http.Response) apierr.Error {
	e, _ := apierr.Read(resp)
	return e
}

// Client talks to one dfdaemon.
type Client struct {
	Base string // e.g. http://127.0.0.1:65001
	HTTP *http.Client
}

// NewClient returns a client for the daemon at base. It sets no timeout: a download streams for
// as long as the content takes; bound it with the context.
func NewClient(base string) (*Client, error) {
	if _, err := url.Parse(base); err != nil {
		return nil, err
	}
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{}}, nil
}

// Download is an answer being streamed.
type Download struct {
	// Body is the content. If the download fails midway it ends with an *apierr.Error (from
	// the trailer) instead of io.EOF, so a truncated answer is never taken for a complete one.
	Body   io.ReadCloser
	Size   int64 // the content length, -1 when the daemon did not say
	TaskID digest.Digest
}

// Download asks the daemon for req's content and returns once its first bytes can be read. A
// refusal is an *apierr.Error; a failure to reach the daemon is the transport's error (a
// *net.OpError with Op "dial" when nothing listens), wrapped.
func (c *Client) Download(ctx context.Context, req DownloadRequest) (*Download, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+PathDownload, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("dfdaemon at %s: %w", c.Base, err)
	}
	hreq.Header.Set("Content-Type", ContentType)
	resp, err := c.HTTP.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("dfdaemon at %s: %w", c.Base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		e := DecodeError(resp)
		return nil, &e
	}
	d := &Download{Body: trailerCheck{resp}, Size: resp.ContentLength, TaskID: digest.Digest(resp.Header.Get(HeaderTaskID))}
	if s, err := strconv.ParseInt(resp.Header.Get(HeaderSize), 10, 64); err == nil {
		d.Size = s
	}
	return d, nil
}

// trailerCheck turns the daemon's error trailer into an error at the end of the body.
type trailerCheck struct{ resp *http.Response }

func (t trailerCheck) Read(p []byte) (int, error) {
	n, err := t.resp.Body.Read(p)
	if err == io.EOF {
		if v := t.resp.Trailer.Get(TrailerError); v != "" {
			e := DecodeTrailer(v)
			return n, &e
		}
	}
	return n, err
}

func (t trailerCheck) Close() error { return t.resp.Body.Close() }
