// Package writeback asks the kernel to start writing a file's range to the disk before it is
// synced, so that the sync finds less to write: the piece store does it for each piece, dfget
// for its output. It promises nothing about durability; the caller's sync still does.
package writeback

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Start asks the kernel to start writing [off, off+n) of f to the disk now and returns without
// waiting (sync_file_range with SYNC_FILE_RANGE_WRITE). It only moves the disk's work earlier,
// so that it overlaps what is still being written instead of piling up for the sync. A file
// system without it answers errors.ErrUnsupported.
func Start(f *os.File, off, n int64) error {
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
