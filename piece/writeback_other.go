//go:build !linux

package piece

import "os"

// fdatasync is fsync where fdatasync is not at hand.
func fdatasync(f *os.File) error { return f.Sync() }
