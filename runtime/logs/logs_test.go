package logs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func read(t *testing.T, cfg Config, opts ReadOptions) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if err := Copy(context.Background(), cfg, opts, &out, &errb); err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String()
}

func TestRoundTripKeepsBytesAndStreams(t *testing.T) {
	t.Parallel()
	cfg := Config{Path: filepath.Join(t.TempDir(), "c.log")}
	w, err := NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	binary := []byte{0, 1, 2, 0xff, 0xfe, '\n', 'x'}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Write(Stdout, []byte("one\ntwo\n")))
	must(w.Write(Stderr, []byte("err\n")))
	must(w.Write(Stdout, binary))
	must(w.Write(Stdout, []byte("no newline")))
	must(w.Close())
	out, errOut := read(t, cfg, ReadOptions{Tail: -1})
	if want := "one\ntwo\n" + string(binary) + "no newline"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	if errOut != "err\n" {
		t.Errorf("stderr = %q", errOut)
	}
	if out, _ := read(t, cfg, ReadOptions{Tail: 2}); out != "xno newline" {
		// the last two records: "x" (after the binary chunk's newline) and "no newline"
		t.Errorf("tail 2 = %q", out)
	}
	out, _ = read(t, cfg, ReadOptions{Tail: 1, Timestamps: true})
	if _, err := time.Parse(time.RFC3339Nano, strings.Fields(out)[0]); err != nil || !strings.HasSuffix(out, " no newline") {
		t.Errorf("timestamps: %q (%v)", out, err)
	}
}

func TestRotationKeepsMaxFiles(t *testing.T) {
	t.Parallel()
	cfg := Config{Path: filepath.Join(t.TempDir(), "c.log"), MaxSize: 200, MaxFiles: 3}
	w, err := NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := w.Write(Stdout, fmt.Appendf(nil, "line %03d\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	files := cfg.Files()
	if len(files) != 3 || files[2] != cfg.Path || files[0] != cfg.Path+".2" {
		t.Fatalf("files = %v, want c.log.2, c.log.1, c.log", files)
	}
	for _, f := range files {
		if st, _ := os.Stat(f); st.Size() > cfg.MaxSize {
			t.Errorf("%s is %d bytes, above the %d limit", f, st.Size(), cfg.MaxSize)
		}
	}
	out, _ := read(t, cfg, ReadOptions{Tail: -1})
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[len(lines)-1] != "line 099" || len(lines) >= 100 || len(lines) < 10 {
		t.Errorf("read %d lines ending %q; want the newest, in order, the oldest dropped", len(lines), lines[len(lines)-1])
	}
	for i := 1; i < len(lines); i++ {
		if lines[i] <= lines[i-1] {
			t.Fatalf("lines out of order: %q after %q", lines[i], lines[i-1])
		}
	}
	if out, _ := read(t, cfg, ReadOptions{Tail: 3}); out != "line 097\nline 098\nline 099\n" {
		t.Errorf("tail 3 across files = %q", out)
	}
}

// Follow reads what is written while it runs, across rotations, and ends once Done says so.
func TestFollowAcrossRotation(t *testing.T) {
	t.Parallel()
	cfg := Config{Path: filepath.Join(t.TempDir(), "c.log"), MaxSize: 300, MaxFiles: 2}
	w, err := NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var finished atomic.Bool
	var out, errb bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Copy(context.Background(), cfg, ReadOptions{Tail: -1, Follow: true, Poll: time.Millisecond,
			Done: func(context.Context) bool { return finished.Load() }}, &out, &errb)
	}()
	var want strings.Builder
	for i := range 40 {
		line := fmt.Sprintf("line %02d\n", i)
		want.WriteString(line)
		if err := w.Write(Stdout, []byte(line)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond) // slower than the reader: no rotation is missed
	}
	w.Close()
	finished.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Errorf("followed:\n%s\nwant:\n%s", out.String(), want.String())
	}
}

func TestCorruptFile(t *testing.T) {
	t.Parallel()
	cfg := Config{Path: filepath.Join(t.TempDir(), "c.log")}
	if err := os.WriteFile(cfg.Path, []byte("not a header\nxx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Copy(context.Background(), cfg, ReadOptions{Tail: -1}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("err = %v, want a corrupt log", err)
	}
}
