package supernode

import (
	"testing"

	"go.uber.org/goleak"
)

// TestCloseWithoutRun: a supernode that is built and closed without serving leaves nothing
// behind: no goroutine, no listener, and a store the next supernode on the same directory can
// open.
func TestCloseWithoutRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Allow: loopback}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	cfg.Listen = addr
	again, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}
