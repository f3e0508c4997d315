// Package source fetches content from its origin into a piece task: in order, piece by piece,
// each hashed as it is written, resuming with an HTTP Range request after a broken stream. The
// supernode's seed uses it for every task, and a dfdaemon uses it when it must go back to the
// origin itself. It trusts the origin; it never fetches a piece that is already present. The URLs
// in its errors are redacted (taskid.Redact): an error reaches logs, peers and dfget's messages.
package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/httprange"
	"github.com/pouch-p2p/pouch/internal/ratelimit"
	"github.com/pouch-p2p/pouch/internal/taskid"
	"github.com/pouch-p2p/pouch/piece"
)

// StatusError is an origin that answered with an unexpected HTTP status.
type StatusError struct {
	URL    string // redacted
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("origin answered %d %s for %s", e.Status, http.StatusText(e.Status), e.URL)
}

// ErrNoLength is an origin that does not say how long the content is; pieces need it.
var ErrNoLength = errors.New("origin sent no Content-Length")

// Origin is one URL with the headers to send (for example the requester's credentials).
type Origin struct {
	Client *http.Client
	URL    string
	Header http.Header
	// Retries bounds how often a broken stream is resumed before Fill gives up.
	Retries int
	// Limiter caps the bytes per second read from the origin (a dfdaemon's --download-rate);
	// nil = none.
	Limiter *ratelimit.Limiter
	// Filter names the query parameters blanked in errors (taskid.Redact); nil means
	// taskid.DefaultFilter.
	Filter []string
}

// shown is the URL as errors name it.
func (o Origin) shown() string { return o.redact(o.URL) }

func (o Origin) redact(rawURL string) string {
	if o.Filter == nil {
		return taskid.Redact(rawURL, taskid.DefaultFilter)
	}
	return taskid.Redact(rawURL, o.Filter)
}

// redactErr blanks the URL inside an HTTP client's error and names the origin, redacted.
func (o Origin) redactErr(err error) error {
	return fmt.Errorf("origin %s: %w", o.shown(), RedactError(err, o.Filter))
}

// RedactError blanks the URL inside an HTTP client's error (*url.Error), which may be a
// redirect's target such as a pre-signed storage URL, with taskid.Redact; a nil filter means
// taskid.DefaultFilter. It returns err.
func RedactError(err error, filter []string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = Origin{Filter: filter}.redact(ue.URL)
	}
	return err
}

// Get requests bytes [off, end] of the content (end < 0: to the end). It returns the response
// only for 200 and 206; any other status is a *StatusError.
func (o Origin) Get(ctx context.Context, off, end int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return nil, o.redactErr(err)
	}
	for k, vs := range o.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if off > 0 || end >= 0 {
		req.Header.Set("Range", httprange.Format(off, end))
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		return nil, o.redactErr(err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		resp.Body.Close()
		return nil, &StatusError{URL: o.shown(), Status: resp.StatusCode}
	}
	return resp, nil
}

// Length returns the full content length of a 200 or 206 response.
func Length(resp *http.Response) (int64, error) {
	if resp.StatusCode == http.StatusPartialContent {
		cr, err := httprange.ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || cr.Unsatisfied || cr.Total < 0 {
			return 0, ErrNoLength
		}
		return cr.Total, nil
	}
	if resp.ContentLength < 0 {
		return 0, ErrNoLength
	}
	return resp.ContentLength, nil
}

// LengthOrSpool returns the content length of a 200 or 206 response. An origin that does not
// say (chunked encoding) is read to the end into an unlinked temporary file in dir, which then
// replaces resp.Body: pieces need the length before the first one is cut.
func LengthOrSpool(resp *http.Response, dir string) (int64, error) {
	n, err := Length(resp)
	if !errors.Is(err, ErrNoLength) || resp.StatusCode != http.StatusOK {
		return n, err
	}
	f, err := os.CreateTemp(dir, ".spool-*")
	if err != nil {
		return 0, err
	}
	os.Remove(f.Name()) // the open file lives on; nothing is left behind on a crash
	n, err = io.Copy(f, resp.Body)
	resp.Body.Close()
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("spool a response without Content-Length: %w", err)
	}
	resp.Body = f
	return n, nil
}

// Fill writes every missing piece of task from the origin, in order, calling onPiece after each
// one with its digest. first, when not nil, is an open 200 response positioned at offset 0; Fill
// takes ownership of it.
func (o Origin) Fill(ctx context.Context, task *piece.Task, first *http.Response, onPiece func(int, digest.Digest)) error {
	meta := task.Meta()
	var body io.ReadCloser
	var pos int64
	if first != nil {
		body = first.Body
	}
	defer func() {
		if body != nil {
			body.Close()
		}
	}()
	retries := o.Retries
	if retries == 0 {
		retries = 5
	}
	failures := 0
	for i := 0; i < meta.PieceCount(); {
		if task.Has(i) {
			i++
			continue
		}
		off, n := piece.Bounds(i, meta.ContentLength, meta.PieceSize)
		if body != nil && pos != off {
			// A present piece was skipped; reading past it costs less than a new request only
			// when it is small, and a new ranged request is always correct.
			body.Close()
			body = nil
		}
		if body == nil {
			end := runEnd(task, i, meta)
			resp, err := o.Get(ctx, off, end)
			if err != nil {
				var se *StatusError
				if errors.As(err, &se) || ctx.Err() != nil {
					return err
				}
				if failures++; failures > retries {
					return err
				}
				if !sleep(ctx, backoff(failures)) {
					return ctx.Err()
				}
				continue
			}
			if total, err := Length(resp); err == nil && total != meta.ContentLength {
				resp.Body.Close()
				return fmt.Errorf("origin %s: content length changed from %d to %d", o.shown(), meta.ContentLength, total)
			}
			body, pos = resp.Body, off
			if resp.StatusCode == http.StatusOK && off > 0 {
				// The origin ignored Range: skip to the piece.
				if _, err := io.CopyN(io.Discard, body, off); err != nil {
					body.Close()
					body = nil
					continue
				}
			}
		}
		d, err := task.WriteSourcePiece(i, o.Limiter.Reader(ctx, io.LimitReader(body, n)))
		if err != nil {
			body.Close()
			body = nil
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, piece.ErrIO) {
				// The store's own disk (full, failing): asking the origin again would only
				// fetch the same bytes to nowhere.
				return fmt.Errorf("piece %d: %w", i, err)
			}
			if failures++; failures > retries {
				return fmt.Errorf("origin %s: piece %d: %w", o.shown(), i, err)
			}
			if !sleep(ctx, backoff(failures)) {
				return ctx.Err()
			}
			continue
		}
		failures = 0
		pos += n
		if onPiece != nil {
			onPiece(i, d)
		}
		i++
	}
	return nil
}

// runEnd is the last byte of the run of missing pieces that starts at piece i.
func runEnd(task *piece.Task, i int, meta piece.Meta) int64 {
	j := i
	for j+1 < meta.PieceCount() && !task.Has(j+1) {
		j++
	}
	off, n := piece.Bounds(j, meta.ContentLength, meta.PieceSize)
	return off + n - 1
}

func backoff(failures int) time.Duration {
	return min(time.Duration(failures)*200*time.Millisecond, 2*time.Second)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
