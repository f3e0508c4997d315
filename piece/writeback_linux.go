package piece

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync makes f's data durable: its bytes and the metadata needed to read them back (the
// blocks a write into a sparse file allocated), not its times. The data file's size never
// changes after Create, so that is all a crash needs.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = unix.Fdatasync(int(fd)); !errors.Is(serr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
