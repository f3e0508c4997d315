package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// ReadOptions say what to print of a log.
type ReadOptions struct {
	// Tail is how many of the last lines to print; negative means all.
	Tail int
	// Follow keeps printing what is written after the end is reached, until Done says so.
	Follow bool
	// Done is asked at the end of the file when following: true means no more is coming (the
	// container stopped and its logger exited), and Copy returns once it has read the rest.
	Done func(context.Context) bool
	// Timestamps prefixes every line with the time it was written (RFC 3339, nanoseconds).
	Timestamps bool
	// Poll is how often a followed file is checked for growth; 0 means 50ms.
	Poll time.Duration
}

// Copy prints the log to stdout and stderr, each record to the stream it came from.
func Copy(ctx context.Context, cfg Config, opts ReadOptions, stdout, stderr io.Writer) error {
	cfg = cfg.withDefaults()
	if opts.Poll <= 0 {
		opts.Poll = 50 * time.Millisecond
	}
	out := func(rec Record) error {
		w := stdout
		if rec.Stream == Stderr {
			w = stderr
		}
		if opts.Timestamps {
			if _, err := io.WriteString(w, rec.Time.Format(time.RFC3339Nano)+" "); err != nil {
				return err
			}
		}
		_, err := w.Write(rec.Data)
		return err
	}
	files := cfg.Files()
	// Every file but the current one is complete; the current one stays open to follow it.
	var recs []Record
	for _, path := range files[:max(len(files)-1, 0)] {
		rs, err := readFile(path)
		if err != nil {
			return err
		}
		recs = keep(append(recs, rs...), opts.Tail)
	}
	var cur *os.File
	p := &parser{}
	if len(files) > 0 && files[len(files)-1] == cfg.Path {
		f, err := os.Open(cfg.Path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("log: %w", err)
		}
		if err == nil {
			cur = f
			rs, err := p.feed(f)
			if err != nil {
				f.Close()
				return fmt.Errorf("log %s: %w", cfg.Path, err)
			}
			recs = keep(append(recs, rs...), opts.Tail)
		}
	}
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	for _, r := range recs {
		if err := out(r); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	done := false
	for {
		if cur != nil {
			rs, err := p.feed(cur)
			if err != nil {
				return fmt.Errorf("log %s: %w", cfg.Path, err)
			}
			for _, r := range rs {
				if err := out(r); err != nil {
					return err
				}
			}
		}
		if rotated(cur, cfg.Path) {
			// The writer moved on to a new current file: what the old one held was just read.
			if cur != nil {
				cur.Close()
			}
			cur, p = nil, &parser{}
			f, err := os.Open(cfg.Path)
			if err == nil {
				cur = f
			}
			continue
		}
		if done {
			return nil
		}
		if opts.Done == nil || opts.Done(ctx) {
			// One more pass reads what was written before the logger finished.
			done = true
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(opts.Poll):
		}
	}
}

// rotated reports whether path is no longer the file cur has open (or now exists when cur is
// nil).
func rotated(cur *os.File, path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	if cur == nil {
		return true
	}
	ost, err := cur.Stat()
	if err != nil {
		return true
	}
	a, aok := st.Sys().(*syscall.Stat_t)
	b, bok := ost.Sys().(*syscall.Stat_t)
	return aok && bok && (a.Ino != b.Ino || a.Dev != b.Dev)
}

func readFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) { // rotated away meanwhile
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	defer f.Close()
	p := &parser{}
	recs, err := p.feed(f)
	if err != nil {
		return nil, fmt.Errorf("log %s: %w", path, err)
	}
	return recs, nil
}

// keep returns the last n records (all when n is negative).
func keep(recs []Record, n int) []Record {
	if n < 0 || len(recs) <= n {
		return recs
	}
	return recs[len(recs)-n:]
}
