package preheat

import (
	"fmt"
	"maps"
	"slices"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/snapi"
)

// Reasons a job ends FAILED without a registry or peer to blame.
const (
	ReasonCancelled = "cancelled by the operator"
	ReasonRestarted = "the supernode restarted during the job and does not keep credentials across restarts: submit the job again"
)

// Job is one preheat job as the store keeps it and the API shows it. It holds no credentials.
// Its methods are the state machine: each applies one event at time now and settles the
// job's state; none does I/O.
type Job struct {
	ID         string             `json:"id"`
	Type       snapi.PreheatType  `json:"type"`
	URL        string             `json:"url"` // credentials in the query are REDACTED
	Platform   string             `json:"platform,omitempty"`
	Scope      snapi.PreheatScope `json:"scope"`
	State      snapi.PreheatState `json:"state"`
	CreatedAt  time.Time          `json:"createdAt"`
	FinishedAt time.Time          `json:"finishedAt,omitzero"`
	Error      string             `json:"error,omitempty"`
	// Credentials says the job was given credentials (headers, a password, a signed URL).
	// They live in the supernode's memory only, so the job cannot resume after a restart.
	Credentials bool `json:"credentials,omitempty"`
	// Peers are the dfdaemons registered when the job started (scope all-peers); peers that
	// join later are not chased.
	Peers []string `json:"peers,omitempty"`
	Tasks []Task   `json:"tasks,omitempty"`
}

// Task is one piece of content of a job.
type Task struct {
	ID        digest.Digest      `json:"id"`               // the supernode's task ID
	Digest    digest.Digest      `json:"digest,omitempty"` // the content digest (an image's blobs)
	URL       string             `json:"url"`              // where the seed fetches it, redacted
	MediaType string             `json:"mediaType,omitempty"`
	Size      int64              `json:"size"`
	Seed      snapi.PreheatState `json:"seed"` // the seed's fetch
	Error     string             `json:"error,omitempty"`
	Done      map[string]bool    `json:"done,omitempty"`   // peers holding it
	Failed    map[string]string  `json:"failed,omitempty"` // peers that could not get it, and why
}

// New is a job as accepted by the API: PENDING, nothing resolved yet.
func New(id string, req snapi.PreheatRequest, url string, credentials bool, now time.Time) *Job {
	return &Job{ID: id, Type: req.Type, URL: url, Platform: req.Platform, Scope: req.Scope,
		State: snapi.StatePending, CreatedAt: now, Credentials: credentials}
}

// Start records what the job warms and, for scope all-peers, on which peers: RUNNING, every
// seed PENDING.
func (j *Job) Start(now time.Time, tasks []Task, peers []string) {
	if j.State != snapi.StatePending {
		return
	}
	j.State, j.Tasks = snapi.StateRunning, tasks
	for i := range j.Tasks {
		j.Tasks[i].Seed = snapi.StatePending
	}
	if j.Scope == snapi.ScopeAllPeers {
		j.Peers = slices.Sorted(slices.Values(peers))
	}
	j.settle(now)
}

func (j *Job) task(id digest.Digest) *Task {
	for i := range j.Tasks {
		if j.Tasks[i].ID == id {
			return &j.Tasks[i]
		}
	}
	return nil
}

// SeedStarted records that the seed is fetching task id.
func (j *Job) SeedStarted(id digest.Digest) {
	if t := j.task(id); t != nil && j.State == snapi.StateRunning && !t.Seed.Final() {
		t.Seed = snapi.StateRunning
	}
}

// SeedDone records that the seed holds every piece of task id, of size bytes.
func (j *Job) SeedDone(now time.Time, id digest.Digest, size int64) {
	if t := j.task(id); t != nil && j.State == snapi.StateRunning && !t.Seed.Final() {
		t.Seed, t.Size = snapi.StateSuccess, size
		j.settle(now)
	}
}

// SeedFailed records that the seed could not fetch task id.
func (j *Job) SeedFailed(now time.Time, id digest.Digest, reason string) {
	if t := j.task(id); t != nil && j.State == snapi.StateRunning && !t.Seed.Final() {
		t.Seed, t.Error = snapi.StateFailed, reason
		j.settle(now)
	}
}

// PeerDone records that peer holds task id; it reports whether that changed anything.
func (j *Job) PeerDone(now time.Time, id digest.Digest, peer string) bool {
	t := j.task(id)
	if t == nil || !j.waitsFor(t, peer) {
		return false
	}
	if t.Done == nil {
		t.Done = map[string]bool{}
	}
	t.Done[peer] = true
	j.settle(now)
	return true
}

// PeerFailed records that peer could not get task id; it reports whether that changed anything.
func (j *Job) PeerFailed(now time.Time, id digest.Digest, peer, reason string) bool {
	t := j.task(id)
	if t == nil || !j.waitsFor(t, peer) {
		return false
	}
	j.fail(t, peer, reason)
	j.settle(now)
	return true
}

// PeerLost fails every task the job still waits for on peer (it expired or left); it reports
// whether that changed anything.
func (j *Job) PeerLost(now time.Time, peer, reason string) bool {
	changed := false
	for i := range j.Tasks {
		if t := &j.Tasks[i]; t.Seed != snapi.StateFailed && j.waitsFor(t, peer) {
			j.fail(t, peer, reason)
			changed = true
		}
	}
	if changed {
		j.settle(now)
	}
	return changed
}

func (j *Job) fail(t *Task, peer, reason string) {
	if t.Failed == nil {
		t.Failed = map[string]string{}
	}
	t.Failed[peer] = reason
}

// waitsFor says whether the job still expects an outcome of t from peer.
func (j *Job) waitsFor(t *Task, peer string) bool {
	if j.State != snapi.StateRunning || j.Scope != snapi.ScopeAllPeers || t.Done[peer] || t.Failed[peer] != "" {
		return false
	}
	_, found := slices.BinarySearch(j.Peers, peer) // sorted by Start
	return found
}

// Owes says whether peer is to download task id for the job and has not reported on it.
func (j *Job) Owes(id digest.Digest, peer string) bool {
	t := j.task(id)
	return t != nil && t.Seed == snapi.StateSuccess && j.waitsFor(t, peer)
}

// Assignments are the tasks peer should download now: those the seed holds and the peer has
// not reported on.
func (j *Job) Assignments(peer string) []Task {
	var out []Task
	for _, t := range j.Tasks {
		if t.Seed == snapi.StateSuccess && j.waitsFor(&t, peer) {
			out = append(out, t)
		}
	}
	return out
}

// Waiting lists the peers the job still expects an outcome from.
func (j *Job) Waiting() []string {
	var out []string
	for _, p := range j.Peers {
		for i := range j.Tasks {
			if t := &j.Tasks[i]; t.Seed != snapi.StateFailed && j.waitsFor(t, p) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// Fail ends an unfinished job as FAILED with reason.
func (j *Job) Fail(now time.Time, reason string) {
	if j.State.Final() {
		return
	}
	j.State, j.Error, j.FinishedAt = snapi.StateFailed, reason, now
}

// Resume prepares a job loaded after a restart and reports whether it must run again. A job
// that had credentials fails (they were not kept); any other unfinished job runs again, every
// seed that has not failed PENDING again: each is found complete in the store or fetched
// (again), so the job never ends SUCCESS for content the seed no longer holds.
func (j *Job) Resume(now time.Time) bool {
	if j.State.Final() {
		return false
	}
	if j.Credentials {
		j.Fail(now, ReasonRestarted)
		return false
	}
	for i := range j.Tasks {
		if j.Tasks[i].Seed != snapi.StateFailed {
			j.Tasks[i].Seed = snapi.StatePending
		}
	}
	return true
}

// TaskState is t's state within the job: its seed's until the seed holds it; then, for scope
// all-peers, RUNNING until every peer has reported, FAILED if any could not get it.
func (j *Job) TaskState(t *Task) snapi.PreheatState {
	if t.Seed != snapi.StateSuccess || j.Scope != snapi.ScopeAllPeers {
		return t.Seed
	}
	switch {
	case len(t.Done)+len(t.Failed) < len(j.Peers):
		return snapi.StateRunning
	case len(t.Failed) > 0:
		return snapi.StateFailed
	}
	return snapi.StateSuccess
}

// settle ends a running job once every task is final: SUCCESS only if every task is.
func (j *Job) settle(now time.Time) {
	if j.State != snapi.StateRunning {
		return
	}
	var failed []string
	for i := range j.Tasks {
		t := &j.Tasks[i]
		switch j.TaskState(t) {
		case snapi.StateFailed:
			failed = append(failed, fmt.Sprintf("%s: %s", t.label(), j.taskError(t)))
		case snapi.StateSuccess:
		default:
			return
		}
	}
	j.FinishedAt = now
	if len(failed) == 0 {
		j.State = snapi.StateSuccess
		return
	}
	j.State, j.Error = snapi.StateFailed, fmt.Sprintf("%d of %d tasks failed: %s", len(failed), len(j.Tasks), failed[0])
}

// taskError says why t failed: the seed's error, or the first failed peer's.
func (j *Job) taskError(t *Task) string {
	if t.Error != "" || len(t.Failed) == 0 {
		return t.Error
	}
	peers := slices.Sorted(maps.Keys(t.Failed))
	return fmt.Sprintf("%d of %d peers failed; peer %s: %s", len(t.Failed), len(j.Peers), peers[0], t.Failed[peers[0]])
}

func (t *Task) label() string {
	if t.Digest != "" {
		return t.Digest.String()
	}
	return t.URL
}

// View is what the API shows of the job.
func (j *Job) View() snapi.PreheatJob {
	v := snapi.PreheatJob{ID: j.ID, Type: j.Type, URL: j.URL, Platform: j.Platform, Scope: j.Scope, State: j.State,
		CreatedAt: j.CreatedAt, Error: j.Error, Progress: snapi.PreheatProgress{Tasks: []snapi.PreheatTask{}}}
	if !j.FinishedAt.IsZero() {
		at := j.FinishedAt
		v.FinishedAt = &at
	}
	for i := range j.Tasks {
		t := &j.Tasks[i]
		d := t.Digest
		if d == "" {
			d = t.ID
		}
		pt := snapi.PreheatTask{Digest: d, MediaType: t.MediaType, Size: t.Size, State: j.TaskState(t)}
		if j.Scope == snapi.ScopeAllPeers {
			pt.PeersDone, pt.PeersTotal = len(t.Done), len(j.Peers)
		}
		if pt.State == snapi.StateFailed {
			pt.Error = j.taskError(t)
		}
		v.Progress.Tasks = append(v.Progress.Tasks, pt)
	}
	return v
}

// Clone is a deep copy, for a reader outside the owner's lock.
func (j *Job) Clone() *Job {
	c := *j
	c.Peers = slices.Clone(j.Peers)
	c.Tasks = slices.Clone(j.Tasks)
	for i := range c.Tasks {
		c.Tasks[i].Done, c.Tasks[i].Failed = maps.Clone(c.Tasks[i].Done), maps.Clone(c.Tasks[i].Failed)
	}
	return &c
}
