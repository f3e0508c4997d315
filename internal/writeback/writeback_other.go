//go:build !linux

// Package writeback asks the kernel to start writing a file's range to the disk before it is
// synced, so that the sync finds less to write: the piece store does it for each piece, dfget
// for its output. It promises nothing about durability; the caller's sync still does.
package writeback

import "os"

// Start is a no-op where sync_file_range does not exist: the caller's sync writes the whole
// range, as it would anyway.
func Start(*os.File, int64, int64) error { return nil }
