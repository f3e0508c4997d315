package supernode

import (
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/leak"
)

// Every goroutine a test starts must end with it: seeds, loops and servers stop when a supernode closes.
func TestMain(m *testing.M) { leak.VerifyTestMain(m) }
