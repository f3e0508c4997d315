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
	"os"
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/httprange"
	"github.com/pouch-p2p/pouch/internal/lifecycle"
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
	// Skip, when set, names missing pieces Fill must not fetch (the supernode's seed skips what
	// live peers hold); it is asked again before each piece, so its answer may change.
	Skip func(piece int) bool
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
	return fmt.Errorf("origin %s: %w", o.shown(), taskid.RedactError(err, o.Filter))
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
// replaces resp.Body: pieces need the length before the first one is cut. Nothing bounds the
// spool; a Spool does.
func LengthOrSpool(resp *http.Response, dir string) (int64, error) {
	return (&Spool{Dir: dir}).LengthOrSpool(resp)
}

// ErrSpoolFull is a response without Content-Length that would take the spool past its cap.
var ErrSpoolFull = errors.New("spool cap reached")

// Spool bounds the disk that responses without a Content-Length take while they are spooled:
// Max bytes over every response spooled at once, each holding its share until its body is
// closed. It is safe for concurrent use.
type Spool struct {
	Dir  string
	Max  int64 // 0 = no cap
	used atomic.Int64
}

// Used is the number of bytes spooled now.
func (s *Spool) Used() int64 { return s.used.Load() }

// LengthOrSpool is the package's LengthOrSpool within the spool's cap: a response that would
// pass it is refused with ErrSpoolFull, having read no more than what was left.
func (s *Spool) LengthOrSpool(resp *http.Response) (int64, error) {
	n, err := Length(resp)
	if !errors.Is(err, ErrNoLength) || resp.StatusCode != http.StatusOK {
		return n, err
	}
	f, err := os.CreateTemp(s.Dir, ".spool-*")
	if err != nil {
		return 0, err
	}
	os.Remove(f.Name()) // the open file lives on; nothing is left behind on a crash
	body := &spooled{File: f, spool: s}
	var src io.Reader = resp.Body
	if s.Max > 0 {
		src = &budgetReader{r: resp.Body, s: s, held: &body.held}
	}
	n, err = io.Copy(f, src)
	resp.Body.Close()
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		body.Close()
		if errors.Is(err, ErrSpoolFull) {
			return 0, fmt.Errorf("%w: the origin sent no Content-Length and its response does not fit the spool: cap %d bytes, %d of them taken by other responses",
				ErrSpoolFull, s.Max, s.Used())
		}
		return 0, fmt.Errorf("spool a response without Content-Length: %w", err)
	}
	resp.Body = body
	return n, nil
}

// budgetReader takes every byte it reads from the spool's budget.
type budgetReader struct {
	r    io.Reader
	s    *Spool
	held *int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		if b.s.used.Add(int64(n)) > b.s.Max {
			b.s.used.Add(-int64(n))
			return 0, ErrSpoolFull
		}
		*b.held += int64(n)
	}
	return n, err
}

// spooled is a spool file as a response body; closing it gives its bytes back to the spool.
type spooled struct {
	*os.File
	spool *Spool
	held  int64
	once  sync.Once
}

func (f *spooled) Close() error {
	f.once.Do(func() { f.spool.used.Add(-f.held) })
	return f.File.Close()
}

// DurableBytes bounds what Fill may have fetched and held but not yet seen durable (at least
// one piece): it reads the next pieces from the origin while the store syncs the previous ones.
// Waiting at every piece instead (an fdatasync of the data file and an index commit) left the
// origin's stream unread meanwhile: the seed took in 13–34 MB/s from a local origin into a
// syncing store on the loaded 2-core machine, 27–168 MB/s reading ahead (BenchmarkFill,
// docs/benchmarks.md, "Where the time goes"). A crash forgets at most these bytes and the piece
// being read, which the next fill fetches again from the origin.
const DurableBytes = 2 << 20

// Fill writes every missing piece of task from the origin, in order, calling onPiece with its
// digest once each one is durable, in order, from one goroutine that is not the caller's (see
// [DurableBytes]). first, when not nil, is an open 200 response positioned at offset 0; Fill takes
// ownership of it. Fill returns once every piece it held is durable and onPiece has returned for
// it, or with the first error; a piece that could not be made durable (piece.ErrIO) ends it.
func (o Origin) Fill(ctx context.Context, task *piece.Task, first *http.Response, onPiece func(int, digest.Digest)) error {
	var body io.ReadCloser
	if first != nil {
		body = first.Body
	}
	return o.FillFrom(ctx, task, body, 0, onPiece)
}

// FillFrom is Fill with the origin's bytes from offset at already open in body (nil: none),
// which it takes ownership of: a lazy seed's first ranged answer ([Origin.Around]). Fill uses
// body for the pieces it reaches while body is positioned at their first byte, and closes it at
// the first one it is not.
func (o Origin) FillFrom(ctx context.Context, task *piece.Task, body io.ReadCloser, at int64, onPiece func(int, digest.Digest)) (err error) {
	pub := newPublisher(task, onPiece, int(max(1, DurableBytes/task.Meta().PieceSize)))
	defer func() {
		if perr := pub.close(); err == nil && perr != nil {
			err = perr
		}
	}()
	meta := task.Meta()
	pos := at
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
	skip := func(i int) bool { return task.Has(i) || o.Skip != nil && o.Skip(i) }
	for i := 0; i < meta.PieceCount(); {
		if err := pub.failed(); err != nil {
			return err
		}
		if skip(i) {
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
			end := runEnd(i, meta, skip)
			resp, err := o.Get(ctx, off, end)
			if err != nil {
				var se *StatusError
				if errors.As(err, &se) || ctx.Err() != nil {
					return err
				}
				if failures++; failures > retries {
					return err
				}
				if !lifecycle.Sleep(ctx, backoff(failures)) {
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
		d, err := task.HoldSourcePiece(i, o.Limiter.Reader(ctx, io.LimitReader(body, n)))
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
			if !lifecycle.Sleep(ctx, backoff(failures)) {
				return ctx.Err()
			}
			continue
		}
		failures = 0
		pos += n
		if err := pub.add(ctx, i, d); err != nil {
			return err
		}
		i++
	}
	return nil
}

// publisher waits for each held piece to be durable, in order, and then calls onPiece, while
// Fill reads the next ones; at most window pieces wait.
type publisher struct {
	task    *piece.Task
	onPiece func(int, digest.Digest)
	queue   chan held
	done    chan struct{}
	err     atomic.Pointer[error] // the first piece that could not be made durable
}

type held struct {
	i int
	d digest.Digest
}

func newPublisher(task *piece.Task, onPiece func(int, digest.Digest), window int) *publisher {
	p := &publisher{task: task, onPiece: onPiece, queue: make(chan held, window), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *publisher) run() {
	defer close(p.done)
	for h := range p.queue {
		if p.failed() != nil {
			continue // drain: Fill stops at its next piece
		}
		if err := p.task.AwaitDurable(h.i); err != nil {
			err = fmt.Errorf("piece %d: %w", h.i, err)
			p.err.Store(&err)
			continue
		}
		if p.onPiece != nil {
			p.onPiece(h.i, h.d)
		}
	}
}

// add queues held piece i, waiting while the window is full.
func (p *publisher) add(ctx context.Context, i int, d digest.Digest) error {
	select {
	case p.queue <- held{i, d}:
		return p.failed()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// failed is the first durability failure so far, or nil.
func (p *publisher) failed() error {
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}

// close waits until every queued piece is durable and published, and returns the first
// failure.
func (p *publisher) close() error {
	close(p.queue)
	<-p.done
	return p.failed()
}

// runEnd is the last byte of the run of pieces to fetch that starts at piece i.
func runEnd(i int, meta piece.Meta, skip func(int) bool) int64 {
	j := i
	for j+1 < meta.PieceCount() && !skip(j+1) {
		j++
	}
	off, n := piece.Bounds(j, meta.ContentLength, meta.PieceSize)
	return off + n - 1
}

func backoff(failures int) time.Duration {
	return min(time.Duration(failures)*200*time.Millisecond, 2*time.Second)
}

// Around is the content's bytes [from, to] as one stream: body, which holds [start, end] (inside
// [from, to]), and ranged requests for the bytes before it and after it, each sent when the
// stream reaches them. Each of those answers must be a 206 for exactly its range of a content of
// total bytes, or the stream fails there. Closing the stream closes body and any open answer.
// A lazy seed asks the origin for the wanted bytes before it knows the length, hence the piece
// size; the pieces that cover them may begin before that answer or end after it.
func (o Origin) Around(ctx context.Context, body io.ReadCloser, start, end, from, to, total int64) io.ReadCloser {
	a := &around{ctx: ctx, o: o, total: total}
	if from < start {
		a.parts = append(a.parts, part{start: from, end: start - 1})
	}
	a.parts = append(a.parts, part{start: start, end: end, body: body})
	if end < to {
		a.parts = append(a.parts, part{start: end + 1, end: to})
	}
	return a
}

// part is a run of bytes of an around stream: an open body, or a range still to ask for.
type part struct {
	start, end int64
	body       io.ReadCloser
}

type around struct {
	ctx   context.Context
	o     Origin
	total int64
	parts []part
	left  int64 // bytes still to read from parts[0] once it is open
	open  bool
}

func (a *around) Read(p []byte) (int, error) {
	for len(a.parts) > 0 {
		cur := &a.parts[0]
		if !a.open {
			if cur.body == nil {
				resp, err := a.o.Get(a.ctx, cur.start, cur.end)
				if err != nil {
					return 0, err
				}
				cr, err := httprange.ParseContentRange(resp.Header.Get("Content-Range"))
				if resp.StatusCode != http.StatusPartialContent || err != nil || cr.Start != cur.start || cr.End != cur.end || cr.Total != a.total {
					resp.Body.Close()
					return 0, fmt.Errorf("origin %s: no answer for exactly bytes %d-%d of %d", a.o.shown(), cur.start, cur.end, a.total)
				}
				cur.body = resp.Body
			}
			a.open, a.left = true, cur.end-cur.start+1
		}
		if a.left == 0 {
			cur.body.Close()
			a.parts, a.open = a.parts[1:], false
			continue
		}
		n, err := cur.body.Read(p[:min(int64(len(p)), a.left)])
		a.left -= int64(n)
		if errors.Is(err, io.EOF) && a.left > 0 {
			err = io.ErrUnexpectedEOF
		} else if errors.Is(err, io.EOF) {
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.EOF
}

func (a *around) Close() error {
	for _, pt := range a.parts {
		if pt.body != nil {
			pt.body.Close()
		}
	}
	a.parts = nil
	return nil
}
