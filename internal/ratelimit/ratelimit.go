// Package ratelimit caps the bytes per second a daemon uploads or downloads, shared by every
// stream of that daemon, with a token bucket (golang.org/x/time/rate). A nil *Limiter is
// unlimited, so callers need no special case.
package ratelimit

import (
	"context"
	"io"

	"golang.org/x/time/rate"
)

// chunk bounds one wait, so many streams share the bucket fairly and a large write does not
// exceed the burst.
const chunk = 64 << 10

// Limiter is a byte-rate cap shared across streams.
type Limiter struct{ l *rate.Limiter }

// New returns a limiter of bytesPerSec, or nil (unlimited) for bytesPerSec <= 0.
func New(bytesPerSec int64) *Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	// A burst of a few chunks keeps the average exact while letting a stream start at once.
	burst := max(4*chunk, int(bytesPerSec/20))
	return &Limiter{l: rate.NewLimiter(rate.Limit(bytesPerSec), burst)}
}

// Wait blocks until n bytes may pass.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		k := min(n, l.l.Burst())
		if err := l.l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Writer wraps w so that writes pass the limiter.
func (l *Limiter) Writer(ctx context.Context, w io.Writer) io.Writer {
	if l == nil {
		return w
	}
	return &writer{ctx: ctx, l: l, w: w}
}

// Reader wraps r so that reads pass the limiter.
func (l *Limiter) Reader(ctx context.Context, r io.Reader) io.Reader {
	if l == nil {
		return r
	}
	return &reader{ctx: ctx, l: l, r: r}
}

type writer struct {
	ctx context.Context
	l   *Limiter
	w   io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), chunk)
		if err := w.l.Wait(w.ctx, k); err != nil {
			return written, err
		}
		n, err := w.w.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

type reader struct {
	ctx context.Context
	l   *Limiter
	r   io.Reader
}

func (r *reader) Read(p []byte) (int, error) {
	if len(p) > chunk {
		p = p[:chunk]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.l.Wait(r.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}
