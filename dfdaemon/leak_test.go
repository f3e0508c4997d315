package dfdaemon

import (
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/leak"
)

// Every goroutine a test starts must end with it: downloads, loops and servers stop when a daemon closes.
func TestMain(m *testing.M) { leak.VerifyTestMain(m) }
