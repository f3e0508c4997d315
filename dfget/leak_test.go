package dfget_test

import (
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/leak"
)

// Every goroutine a test starts must end with it: the one-shot peer's daemon stops with its download.
func TestMain(m *testing.M) { leak.VerifyTestMain(m) }
