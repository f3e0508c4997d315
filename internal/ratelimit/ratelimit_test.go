package ratelimit

import (
	"bytes"
	"context"
	"io"
	"testing"
	"testing/synctest"
	"time"
)

func TestNilIsUnlimited(t *testing.T) {
	t.Parallel()
	var l *Limiter = New(0)
	var buf bytes.Buffer
	if _, err := l.Writer(context.Background(), &buf).Write(make([]byte, 1<<20)); err != nil || buf.Len() != 1<<20 {
		t.Fatalf("unlimited write: %d bytes, %v", buf.Len(), err)
	}
}

func TestWriterHoldsTheRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(1 << 20) // 1 MiB/s
		start := time.Now()
		n, err := io.Copy(l.Writer(context.Background(), io.Discard), bytes.NewReader(make([]byte, 4<<20)))
		if err != nil || n != 4<<20 {
			t.Fatalf("copy: %d, %v", n, err)
		}
		// 4 MiB at 1 MiB/s less the 256 KiB initial burst: 3.75 s of (fake) time.
		if d := time.Since(start); d < 3700*time.Millisecond || d > 4100*time.Millisecond {
			t.Fatalf("4 MiB at 1 MiB/s took %v, want about 4s", d)
		}
	})
}

func TestReaderHoldsTheRateAndStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(1 << 20)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := io.Copy(io.Discard, l.Reader(ctx, bytes.NewReader(make([]byte, 8<<20))))
		if err == nil {
			t.Fatalf("read %d bytes past the deadline without error", n)
		}
		if n > 3<<20 {
			t.Fatalf("read %d bytes in 2 s at 1 MiB/s", n)
		}
	})
}
