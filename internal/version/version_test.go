package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestGet(t *testing.T) {
	t.Parallel()
	stamped := &debug.BuildInfo{
		Main:     debug.Module{Path: "github.com/pouch-p2p/pouch", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}},
	}
	for _, tc := range []struct {
		name     string
		ver, rev string
		bi       *debug.BuildInfo
		want     Info
	}{
		{"linker flags win", "v1.2.3", "deadbeef", stamped, Info{"v1.2.3", "deadbeef", runtime.Version()}},
		{"go build in a dirty checkout", "", "", stamped, Info{"dev", "abc123-dirty", runtime.Version()}},
		{"go install module@version", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}, Info{"v0.4.0", "unknown", runtime.Version()}},
		{"no build info", "", "", nil, Info{"dev", "unknown", runtime.Version()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := get(tc.ver, tc.rev, tc.bi); got != tc.want {
				t.Errorf("get = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	got := Info{"v1.2.3", "deadbeef", "go1.26.8"}.String()
	if want := "v1.2.3 (commit deadbeef, go1.26.8)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}
