package main

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/pouch-p2p/pouch/runtime"
)

// attachTerminal puts pouch's terminal in raw mode (when stdin is one and -i is given, so keys
// reach the container unchanged) and reports its size now and on every SIGWINCH. Without a
// terminal on stdin, the container's TTY keeps its default size.
func attachTerminal(stdin io.Reader, interactive bool) (*runtime.Terminal, func(), error) {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, func() {}, nil
	}
	fd := int(f.Fd())
	restore := func() {}
	if interactive {
		state, err := term.MakeRaw(fd)
		if err != nil {
			return nil, nil, err
		}
		restore = func() { _ = term.Restore(fd, state) }
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	resized := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				select {
				case resized <- struct{}{}:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	t := &runtime.Terminal{
		Size: func() (uint32, uint32, error) {
			w, h, err := term.GetSize(fd)
			return uint32(w), uint32(h), err
		},
		Resized: resized,
	}
	return t, func() {
		signal.Stop(winch)
		close(done)
		restore()
	}, nil
}
