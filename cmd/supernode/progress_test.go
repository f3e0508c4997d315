package main

import (
	"bytes"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/snapi"
)

func job(state snapi.PreheatState, seeded int64, peersDone int) snapi.PreheatJob {
	return snapi.PreheatJob{ID: "j1", URL: "r.example/app:1", Scope: snapi.ScopeAllPeers, State: state,
		Progress: snapi.PreheatProgress{Tasks: []snapi.PreheatTask{
			{Digest: digest.FromString("config"), MediaType: "application/vnd.oci.image.config.v1+json", Size: 100, SeedBytes: min(seeded, 100),
				State: state, PeersDone: peersDone, PeersTotal: 3},
			{Digest: digest.FromString("layer"), MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: 8 << 20, SeedBytes: seeded,
				State: state, PeersDone: peersDone, PeersTotal: 3},
		}}}
}

// Not a terminal: a line when something changes, and nothing when nothing did.
func TestProgressLines(t *testing.T) {
	var out bytes.Buffer
	v := newProgressView(&out, false)
	v.show(job(snapi.StateRunning, 0, 0))
	v.show(job(snapi.StateRunning, 1<<20, 0)) // seed bytes alone are no change worth a line
	v.show(job(snapi.StateSuccess, 8<<20, 3))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 3 per state (2 tasks and the job):\n%s", len(lines), out.String())
	}
	for _, want := range []string{"config RUNNING 100B peers 0/3", "layer SUCCESS 8MiB peers 3/3", "job j1 SUCCESS r.example/app:1 (all-peers, 2 tasks)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no line with %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Error("escape sequences outside a terminal")
	}
}

// On a terminal: one bar per task, redrawn in place.
func TestProgressBars(t *testing.T) {
	var out bytes.Buffer
	v := newProgressView(&out, true)
	v.show(job(snapi.StateRunning, 4<<20, 1))
	first := out.Len()
	v.show(job(snapi.StateRunning, 8<<20, 2))
	redraw := out.String()[first:]
	if !strings.HasPrefix(redraw, "\x1b[3A") {
		t.Errorf("the redraw does not move up over the 3 lines drawn: %q", redraw)
	}
	if !strings.Contains(out.String()[:first], " 50% ") || !strings.Contains(redraw, "100%") || !strings.Contains(redraw, "peers 2/3") {
		t.Errorf("the bars do not show the seed's share, then all of it, and the peers: %q", out.String())
	}
}
