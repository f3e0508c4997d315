package piece

import (
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/leak"
)

// Every goroutine a test starts must end with it: the store's flush and sync loops stop at Close.
func TestMain(m *testing.M) { leak.VerifyTestMain(m) }
