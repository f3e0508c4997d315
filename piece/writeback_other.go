//go:build !linux

package piece

import "os"

// startWriteback is a no-op where sync_file_range does not exist: the group's sync then writes
// the whole piece, as it would anyway.
func startWriteback(*os.File, int64, int64) error { return nil }

// fdatasync is fsync where fdatasync is not at hand.
func fdatasync(f *os.File) error { return f.Sync() }
