package lifecycle

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/leak"
)

func TestMain(m *testing.M) { leak.VerifyTestMain(m) }

// fixture is a shell holding a listener and two recorded release steps, as a daemon's New
// leaves it.
type fixture struct {
	shell *Shell
	ln    net.Listener
	mu    sync.Mutex
	order []string
}

func newFixture(t *testing.T, h http.Handler) *fixture {
	t.Helper()
	f := &fixture{shell: New()}
	for _, name := range []string{"store", "host"} {
		f.shell.OnClose(func() error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.order = append(f.order, name)
			return nil
		})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	}
	f.shell.HTTP(ln, h)
	return f
}

func (f *fixture) released() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.order)
}

// listening says whether the fixture's address still accepts connections.
func (f *fixture) listening() bool {
	c, err := net.Dial("tcp", f.ln.Addr().String())
	if err == nil {
		c.Close()
	}
	return err == nil
}

func TestCloseWithoutRun(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.shell.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.released(); !slices.Equal(got, []string{"host", "store"}) {
		t.Errorf("released %v, want the reverse of acquisition: [host store]", got)
	}
	if f.listening() {
		t.Error("the listener still accepts connections after Close")
	}
	if f.shell.Context().Err() == nil {
		t.Error("the lifetime context is still live after Close")
	}
	if err := f.shell.Close(); err != nil || len(f.released()) != 2 {
		t.Errorf("second Close = %v and released %v: want nil and nothing released twice", err, f.released())
	}
	if err := f.shell.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	if f.shell.Go(func(context.Context) { t.Error("work ran after Close") }) {
		t.Error("Go accepted work after Close")
	}
}

func TestRunServesUntilContextEnds(t *testing.T) {
	f := newFixture(t, nil)
	loopStopped := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- f.shell.Run(ctx, func(ctx context.Context) {
			<-ctx.Done()
			close(loopStopped)
		})
	}()
	resp, err := http.Get("http://" + f.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("served %q", body)
	}
	// Work started with Go is stopped and waited for before anything is released.
	var workSawRelease bool
	workStarted := make(chan struct{})
	f.shell.Go(func(ctx context.Context) {
		close(workStarted)
		<-ctx.Done()
		workSawRelease = len(f.released()) > 0
	})
	<-workStarted
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	<-loopStopped
	if workSawRelease {
		t.Error("release steps ran before the work started with Go returned")
	}
	if got := f.released(); !slices.Equal(got, []string{"host", "store"}) {
		t.Errorf("released %v after Run", got)
	}
	if f.listening() {
		t.Error("still listening after Run returned")
	}
	if err := f.shell.Close(); err != nil || len(f.released()) != 2 {
		t.Errorf("Close after Run = %v, released %v", err, f.released())
	}
}

func TestCloseStopsRun(t *testing.T) {
	f := newFixture(t, nil)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- f.shell.Run(context.Background(), func(ctx context.Context) {
			close(started)
			<-ctx.Done()
		})
	}()
	<-started
	if err := f.shell.Close(); err != nil {
		t.Fatal(err)
	}
	// Close returned, so Run has returned too and everything is released.
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	default:
		t.Error("Close returned before Run did")
	}
	if got := f.released(); len(got) != 2 {
		t.Errorf("released %v", got)
	}
}

func TestRunReportsServeFailure(t *testing.T) {
	f := newFixture(t, nil)
	f.ln.Close() // Serve fails at once
	loopStopped := make(chan struct{})
	err := f.shell.Run(context.Background(), func(ctx context.Context) {
		<-ctx.Done()
		close(loopStopped)
	})
	if err == nil || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Run = %v, want the listener's error", err)
	}
	<-loopStopped
	if got := f.released(); len(got) != 2 {
		t.Errorf("released %v after a failed Run", got)
	}
}

func TestCloseReportsReleaseErrors(t *testing.T) {
	s := New()
	boom := errors.New("store: close failed")
	s.OnClose(func() error { return boom })
	if err := s.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close = %v, want %v", err, boom)
	}
	if err := s.Close(); !errors.Is(err, boom) {
		t.Errorf("second Close = %v, want the first one's result", err)
	}
}

// A shell serves every listener it was given (the API and a metrics listener), each with its
// own handler, and says it serves only while Run does.
func TestSeveralListenersAndServing(t *testing.T) {
	f := newFixture(t, nil)
	metrics, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.shell.HTTP(metrics, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics") }))
	if f.shell.Serving() {
		t.Error("Serving before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.shell.Run(ctx) }()
	for addr, want := range map[string]string{f.ln.Addr().String(): "ok", metrics.Addr().String(): "metrics"} {
		resp, err := http.Get("http://" + addr)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Errorf("%s served %q, want %q", addr, body, want)
		}
	}
	if !f.shell.Serving() {
		t.Error("not Serving while Run serves")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.shell.Serving() {
		t.Error("Serving after Run returned")
	}
	if c, err := net.Dial("tcp", metrics.Addr().String()); err == nil {
		c.Close()
		t.Error("the second listener still accepts connections after Run returned")
	}
}
