package dfdaemon_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/pouch-p2p/pouch/dfdaemon"
)

// TestCloseWithoutRun: a daemon that is built and closed without serving leaves nothing behind:
// no goroutine, no listener, and a store the next daemon on the same directory can open.
func TestCloseWithoutRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := dfdaemon.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Allow: loopback}
	d, err := dfdaemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := d.Addr()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	// The same address and data directory are free again.
	cfg.Listen = addr
	again, err := dfdaemon.New(cfg, nil)
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}
