package preheat

import (
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/leak"
)

// Every goroutine a test starts must end with it.
func TestMain(m *testing.M) { leak.VerifyTestMain(m) }
