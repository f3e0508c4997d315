package piece

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to the disk now and returns
// without waiting (sync_file_range with SYNC_FILE_RANGE_WRITE). It promises nothing about
// durability: the group's fdatasync before a piece is recorded still does (see durable.go). It
// only moves the disk's work earlier, so that it overlaps the rest of the piece arriving
// instead of piling up for the group. A file system without it answers errors.ErrUnsupported.
func startWriteback(f *os.File, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	}); err != nil {
		return err
	}
	switch {
	case serr == nil:
		return nil
	case errors.Is(serr, unix.EINVAL), errors.Is(serr, unix.ESPIPE), errors.Is(serr, unix.ENOSYS), errors.Is(serr, unix.EOPNOTSUPP):
		return fmt.Errorf("sync_file_range: %w: %w", errors.ErrUnsupported, serr)
	}
	return fmt.Errorf("sync_file_range: %w", serr)
}

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
