package preheat_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/supernode/preheat"
)

var (
	t0     = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	config = digest.FromString("config")
	layer  = digest.FromString("layer")
)

func tasks() []preheat.Task {
	return []preheat.Task{
		{ID: config, Digest: config, URL: "https://r/v2/a/blobs/" + config.String(), Size: 10},
		{ID: layer, Digest: layer, URL: "https://r/v2/a/blobs/" + layer.String(), Size: 20},
	}
}

func newJob(scope snapi.PreheatScope, credentials bool, peers ...string) *preheat.Job {
	j := preheat.New("j1", snapi.PreheatRequest{Type: snapi.PreheatImage, Scope: scope}, "r/a:1", credentials, t0)
	j.Start(t0, tasks(), peers)
	return j
}

func TestSeedScopeEndsWithItsSeeds(t *testing.T) {
	t.Parallel()
	j := newJob(snapi.ScopeSeed, false)
	if j.State != snapi.StateRunning || j.Tasks[0].Seed != snapi.StatePending {
		t.Fatalf("after start: %s, seed %s", j.State, j.Tasks[0].Seed)
	}
	j.SeedStarted(config)
	j.SeedDone(t0.Add(time.Second), config, 10)
	if j.State != snapi.StateRunning {
		t.Fatalf("one seed of two done: %s, want RUNNING", j.State)
	}
	j.SeedDone(t0.Add(2*time.Second), layer, 20)
	if j.State != snapi.StateSuccess || !j.FinishedAt.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("both seeds done: %s at %v, want SUCCESS at t0+2s", j.State, j.FinishedAt)
	}
	// Nothing changes an ended job.
	j.SeedFailed(t0.Add(3*time.Second), layer, "late")
	j.Fail(t0.Add(3*time.Second), "late")
	if j.State != snapi.StateSuccess || j.Error != "" {
		t.Errorf("an ended job changed: %s %q", j.State, j.Error)
	}
}

func TestAFailedSeedFailsTheJobWithItsReason(t *testing.T) {
	t.Parallel()
	j := newJob(snapi.ScopeSeed, false)
	j.SeedFailed(t0, layer, "origin answered 404")
	if j.State != snapi.StateRunning {
		t.Fatalf("one seed failed, one pending: %s, want RUNNING until both end", j.State)
	}
	j.SeedDone(t0, config, 10)
	want := "1 of 2 tasks failed: " + layer.String() + ": origin answered 404"
	if j.State != snapi.StateFailed || j.Error != want {
		t.Fatalf("%s %q, want FAILED %q", j.State, j.Error, want)
	}
	if v := j.View(); v.Progress.Tasks[1].State != snapi.StateFailed || v.Progress.Tasks[1].Error != "origin answered 404" {
		t.Errorf("task view %+v", v.Progress.Tasks[1])
	}
}

func TestAllPeersWaitsForEverySnapshotPeer(t *testing.T) {
	t.Parallel()
	j := newJob(snapi.ScopeAllPeers, false, "b", "a")
	if got := j.Assignments("a"); len(got) != 0 {
		t.Fatalf("assignments before any seed is done: %d", len(got))
	}
	j.SeedDone(t0, config, 10)
	if got := j.Assignments("a"); len(got) != 1 || got[0].ID != config {
		t.Fatalf("assignments once the config is seeded: %+v", got)
	}
	if got := j.Assignments("late"); len(got) != 0 {
		t.Errorf("a peer outside the snapshot got %d assignments", len(got))
	}
	if j.PeerDone(t0, config, "late") {
		t.Error("a report from a peer outside the snapshot counted")
	}
	if j.TaskState(&j.Tasks[0]) != snapi.StateRunning {
		t.Errorf("seeded, no peer yet: %s, want RUNNING", j.TaskState(&j.Tasks[0]))
	}
	j.SeedDone(t0, layer, 20)
	for _, p := range []string{"a", "b"} {
		for _, id := range []digest.Digest{config, layer} {
			if !j.PeerDone(t0, id, p) {
				t.Fatalf("report of %s on %s did not count", p, id)
			}
		}
	}
	if j.PeerDone(t0, config, "a") {
		t.Error("a repeated report counted twice")
	}
	if j.State != snapi.StateSuccess {
		t.Fatalf("every peer holds every task: %s %q", j.State, j.Error)
	}
	v := j.View()
	if pt := v.Progress.Tasks[1]; pt.PeersDone != 2 || pt.PeersTotal != 2 || pt.State != snapi.StateSuccess {
		t.Errorf("task view %+v, want 2/2 SUCCESS", pt)
	}
}

func TestAllPeersWithNoPeerIsTheSeedAlone(t *testing.T) {
	t.Parallel()
	j := newJob(snapi.ScopeAllPeers, false)
	j.SeedDone(t0, config, 10)
	j.SeedDone(t0, layer, 20)
	if j.State != snapi.StateSuccess {
		t.Fatalf("%s, want SUCCESS: no peer was registered", j.State)
	}
}

func TestALostPeerFailsWhatItStillOwed(t *testing.T) {
	t.Parallel()
	j := newJob(snapi.ScopeAllPeers, false, "a", "b")
	j.SeedDone(t0, config, 10)
	j.SeedDone(t0, layer, 20)
	j.PeerDone(t0, config, "b")
	if got := j.Waiting(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("waiting for %v, want a and b", got)
	}
	if !j.PeerLost(t0, "b", "expired") {
		t.Fatal("losing b changed nothing")
	}
	if j.Tasks[0].Failed["b"] != "" || j.Tasks[1].Failed["b"] != "expired" {
		t.Errorf("b's failures: %v %v; want only the layer it had not reported", j.Tasks[0].Failed, j.Tasks[1].Failed)
	}
	if j.PeerLost(t0, "b", "expired") {
		t.Error("losing b twice changed something")
	}
	j.PeerDone(t0, config, "a")
	j.PeerFailed(t0, layer, "a", "disk full")
	if j.State != snapi.StateFailed || !strings.Contains(j.Error, "2 of 2 peers failed; peer a: disk full") {
		t.Fatalf("%s %q, want FAILED naming peer a's reason", j.State, j.Error)
	}
	if len(j.Waiting()) != 0 || len(j.Assignments("a")) != 0 {
		t.Error("an ended job still waits or assigns")
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	withCreds := newJob(snapi.ScopeSeed, true)
	if withCreds.Resume(t0) || withCreds.State != snapi.StateFailed || withCreds.Error != preheat.ReasonRestarted {
		t.Errorf("a job with credentials: %s %q, want FAILED %q and no run", withCreds.State, withCreds.Error, preheat.ReasonRestarted)
	}
	open := newJob(snapi.ScopeAllPeers, false, "a")
	open.SeedStarted(config)
	open.SeedDone(t0, layer, 20)
	open.PeerDone(t0, layer, "a")
	if !open.Resume(t0) || open.Tasks[0].Seed != snapi.StatePending || open.Tasks[1].Seed != snapi.StatePending {
		t.Errorf("a job without credentials: seeds %s %s, want both PENDING again, to be checked", open.Tasks[0].Seed, open.Tasks[1].Seed)
	}
	if len(open.Assignments("a")) != 0 || !open.Tasks[1].Done["a"] {
		t.Error("resumed: assignments before the seed is checked, or the peer's report lost")
	}
	open.SeedDone(t0, config, 10)
	open.SeedDone(t0, layer, 20)
	if got := open.Assignments("a"); len(got) != 1 || got[0].ID != config {
		t.Errorf("after the seeds are checked peer a owes %+v, want the config only", got)
	}
	pending := preheat.New("j2", snapi.PreheatRequest{Scope: snapi.ScopeSeed}, "r/a:1", false, t0)
	if !pending.Resume(t0) || pending.State != snapi.StatePending {
		t.Errorf("a job never resolved: %s, want it run again, PENDING", pending.State)
	}
	done := newJob(snapi.ScopeSeed, false)
	done.Fail(t0, "x")
	if done.Resume(t0) {
		t.Error("an ended job runs again")
	}
}

func TestViewAndClone(t *testing.T) {
	t.Parallel()
	j := newJob(snapi.ScopeAllPeers, true, "a")
	j.SeedDone(t0, config, 10)
	j.PeerDone(t0, config, "a")
	c := j.Clone()
	c.Tasks[0].Done["x"] = true
	c.Peers[0] = "z"
	if len(j.Tasks[0].Done) != 1 || j.Peers[0] != "a" {
		t.Error("a clone shares maps or slices with its job")
	}
	data, err := json.Marshal(j.View())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"created_at"`, `"peers_done":1`, `"peers_total":1`, `"state":"RUNNING"`, `"progress":{"tasks":[`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("view %s lacks %s", data, key)
		}
	}
	if strings.Contains(string(data), "finished_at") || strings.Contains(string(data), "credentials") {
		t.Errorf("view %s shows what it should not", data)
	}
}
