package main

import (
	"testing"

	"github.com/pouch-p2p/pouch/internal/cliutil/clidoc"
)

// docs/configuration.md's section for dfget is this binary's flags (make docs rewrites it).
func TestConfigurationReference(t *testing.T) {
	clidoc.Check(t, app(), false)
}
