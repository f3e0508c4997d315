//go:build !linux

package piece

import "os"

// startWriteback is a no-op where sync_file_range does not exist: the fsync before a piece is
// recorded then writes the whole piece, as it would anyway.
func startWriteback(*os.File, int64, int64) error { return nil }
