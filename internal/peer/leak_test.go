package peer

import (
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/leak"
)

// Every goroutine a test starts must end with it: hosts, upload handlers and their request readers stop at Close.
func TestMain(m *testing.M) { leak.VerifyTestMain(m) }
