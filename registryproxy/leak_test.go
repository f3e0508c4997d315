package registryproxy

import (
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/leak"
)

// Every goroutine a test starts must end with it: mirrored downloads stop with their requests.
func TestMain(m *testing.M) { leak.VerifyTestMain(m) }
