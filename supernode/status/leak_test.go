package status_test

import (
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/leak"
)

// Every goroutine a test starts must end with it: the supernode, the dfdaemon and the browser
// stop when their test does.
func TestMain(m *testing.M) { leak.VerifyTestMain(m) }
