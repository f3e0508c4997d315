// Package lifecycle is the shell a daemon runs in, so that the supernode and the dfdaemon share
// one New/Run/Close contract. The daemon's New registers with a Shell what it acquires (a libp2p
// node, a store, the HTTP listener) as it acquires it; Run serves the HTTP API and the daemon's
// background loops until its context ends, shuts the server down gracefully and releases
// everything; Close releases everything too, whether Run ran or not, and only once. Work the
// daemon starts on behalf of requests (downloads, seeds) runs under the shell's lifetime context
// through Go, so that it is stopped and waited for before the store it uses is closed.
//
// It owns no daemon logic and imports no Pouch package.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// ErrClosed is Run or Go on a shell that was closed.
var ErrClosed = errors.New("daemon closed")

const (
	// readHeaderTimeout bounds a client that opens a connection and sends nothing.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout bounds a kept-alive connection waiting for its next request, so idle
	// connections cannot pile up. It is longer than Go clients' own idle timeout (90 s), so a
	// client closes first and never sends a POST on a connection the server is closing.
	idleTimeout = 2 * time.Minute
	// shutdownTimeout is how long in-flight requests get to finish once Run's context ends;
	// those still running are then cut by the lifetime context's end.
	shutdownTimeout = 5 * time.Second
)

// Shell holds a daemon's resources and its lifetime. The zero value is not usable; call New.
type Shell struct {
	ctx    context.Context // the daemon's lifetime: ends when it closes
	cancel context.CancelFunc

	servers []server // the HTTP API, and the metrics listener when there is one
	serving atomic.Bool

	mu      sync.Mutex
	closing bool          // no more Go
	running chan struct{} // closed when Run has returned; nil before Run
	work    sync.WaitGroup
	closers []func() error

	once     sync.Once
	closeErr error
}

// New returns a shell holding nothing yet.
func New() *Shell {
	ctx, cancel := context.WithCancel(context.Background())
	return &Shell{ctx: ctx, cancel: cancel}
}

// Context is the daemon's lifetime: it ends when Run returns or Close is called.
func (s *Shell) Context() context.Context { return s.ctx }

// OnClose registers a release step (close the node, the store). Steps run once, in reverse
// order of registration, after the lifetime context ended and the work started with Go returned.
func (s *Shell) OnClose(f func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closers = append(s.closers, f)
}

type server struct {
	ln      net.Listener
	handler http.Handler
}

// HTTP makes Run serve h on ln, and Close close ln. A daemon may serve several listeners (its
// API, a separate metrics listener); each gets its own server.
func (s *Shell) HTTP(ln net.Listener, h http.Handler) {
	s.servers = append(s.servers, server{ln: ln, handler: h})
	s.OnClose(func() error {
		// Run's server closes the listener on shutdown; closing it again is no failure.
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
}

// Go runs f on its own goroutine with the lifetime context; Close waits for it before releasing
// anything. It returns false, without running f, once the shell is closing.
func (s *Shell) Go(f func(ctx context.Context)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.work.Add(1)
	go func() {
		defer s.work.Done()
		f(s.ctx)
	}()
	return true
}

// Run serves the HTTP API (if any) and runs each loop on its own goroutine, until ctx ends,
// Close is called or the server fails. Then it shuts the server down gracefully, waits for the
// loops, and releases everything as Close does. Each loop must return when its context ends.
// Run may be called once; after Close it returns ErrClosed.
func (s *Shell) Run(ctx context.Context, loops ...func(ctx context.Context)) error {
	s.mu.Lock()
	switch {
	case s.ctx.Err() != nil:
		s.mu.Unlock()
		return ErrClosed
	case s.running != nil:
		s.mu.Unlock()
		return errors.New("lifecycle: Run called twice")
	}
	running := make(chan struct{})
	s.running = running
	s.mu.Unlock()
	defer close(running)

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(s.ctx, stop)() // Close stops Run
	g, gctx := errgroup.WithContext(ctx)
	s.serving.Store(len(s.servers) > 0) // before the shutdowns below can clear it
	for _, sv := range s.servers {
		srv := &http.Server{Handler: sv.handler, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout}
		g.Go(func() error {
			if err := srv.Serve(sv.ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve HTTP on %s: %w", sv.ln.Addr(), err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			s.serving.Store(false)
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if srv.Shutdown(sctx) != nil {
				// Requests still in flight after the grace period are cut off with the lifetime
				// context; their connections are closed now, or one that turns idle after
				// Shutdown stopped watching would wait for a next request forever.
				_ = srv.Close()
			}
			return nil
		})
	}
	for _, loop := range loops {
		g.Go(func() error {
			loop(gctx)
			return nil
		})
	}
	err := g.Wait()
	return errors.Join(err, s.release())
}

// Serving reports whether Run serves the HTTP listeners: from Run's start until its shutdown
// begins. A readiness check reads it.
func (s *Shell) Serving() bool { return s.serving.Load() }

// Close ends the lifetime context, waits for a running Run to return and for the work started
// with Go, then runs the release steps. It is safe to call without Run, after Run returned, and
// more than once; every call returns the first one's result. It must not be called from a loop
// or from work started with Go.
func (s *Shell) Close() error {
	s.cancel()
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if running != nil {
		<-running
	}
	return s.release()
}

func (s *Shell) release() error {
	s.once.Do(func() {
		s.cancel()
		s.mu.Lock()
		s.closing = true
		closers := s.closers
		s.mu.Unlock()
		s.work.Wait()
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
