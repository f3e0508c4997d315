package dfget

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to the disk now and returns
// without waiting (sync_file_range with SYNC_FILE_RANGE_WRITE). It promises nothing: the fsync
// before the rename still does. A file system without it answers errors.ErrUnsupported.
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
