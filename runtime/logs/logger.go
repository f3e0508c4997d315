package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/containerd/containerd/runtime/v2/logging"
	"golang.org/x/sys/unix"
)

// RunLogger is the body of the logging process containerd's shim starts for a task whose IO
// is "binary://<pouch>?...": it copies the task's stdout (fd 3) and stderr (fd 4) into the log
// until both close, and never returns (it exits the process). While it runs it holds an
// exclusive lock on Path+".lock", so readers know whether more may come ([Config.Writing]).
func RunLogger(cfg Config) {
	logging.Run(func(_ context.Context, c *logging.Config, ready func() error) error {
		unlock, err := lock(cfg.Path + ".lock")
		if err != nil {
			return err
		}
		defer unlock()
		w, err := NewWriter(cfg)
		if err != nil {
			return err
		}
		defer w.Close()
		if err := ready(); err != nil {
			return fmt.Errorf("logger: signal ready: %w", err)
		}
		// Read until both pipes close, also after a cancel (SIGTERM): the shim closes them when
		// the task is gone, and what the container wrote last must not be lost.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []struct {
			r      io.Reader
			stream Stream
		}{{c.Stdout, Stdout}, {c.Stderr, Stderr}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = io.Copy(w.StreamWriter(s.stream), s.r)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	})
}

// lock takes an exclusive flock on path, creating it.
func lock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("logger: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("logger: lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// Writing reports whether a logging process is writing the log now.
func (c Config) Writing() bool {
	f, err := os.Open(c.Path + ".lock")
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return true
	}
	return false
}
