package supernode

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/fixture/wait"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/supernode/preheat"
)

// pushedImage serves a random image of layers layers as team/app:latest (and :multi, an index).
func pushedImage(t *testing.T, opts registry.Options, layers int, size int64, user, pass string) (*registry.Registry, *image.Image) {
	t.Helper()
	reg := registry.StartTest(t, opts)
	img := image.PushRandom(t, reg.URL, "team/app", "latest", layers, size, user, pass)
	if err := img.PushIndex(context.Background(), reg.URL, "team/app", "multi", user, pass); err != nil {
		t.Fatal(err)
	}
	return reg, img
}

func admin(s *Supernode) *snapi.AdminClient { return snapi.NewAdminClient(s.URL(), s.cfg.AdminToken) }

func createJob(t *testing.T, s *Supernode, req snapi.PreheatRequest) snapi.PreheatJob {
	t.Helper()
	j, err := admin(s).CreatePreheat(context.Background(), req)
	if err != nil {
		t.Fatalf("create %+v: %v", req.URL, err)
	}
	if j.State != snapi.StatePending || j.ID == "" {
		t.Fatalf("created job %+v, want PENDING with an id", j)
	}
	return j
}

// waitJob polls the job until until says so (default: it ended).
func waitJob(t *testing.T, s *Supernode, id string, until func(snapi.PreheatJob) bool) snapi.PreheatJob {
	t.Helper()
	if until == nil {
		until = func(j snapi.PreheatJob) bool { return j.State.Final() }
	}
	var j snapi.PreheatJob
	wait.Until(t, 30*time.Second, "job "+id, func() bool {
		var err error
		if j, err = admin(s).Preheat(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		return until(j)
	})
	return j
}

func imageConfig(reg *registry.Registry) Config {
	return Config{Allow: loopback, RegistryInsecure: []string{reg.Host}}
}

func TestPreheatSeedScopeFetchesEveryBlobOnce(t *testing.T) {
	reg, img := pushedImage(t, registry.Options{}, 3, 3<<20, "", "")
	s := start(t, imageConfig(reg))
	for _, tag := range []string{"multi", "latest"} {
		j := createJob(t, s, snapi.PreheatRequest{URL: reg.Host + "/team/app:" + tag})
		if j.Type != snapi.PreheatImage || j.Scope != snapi.ScopeSeed || !strings.HasPrefix(j.Platform, "linux/") {
			t.Errorf("defaults: type %q scope %q platform %q; want image, seed, the supernode's platform", j.Type, j.Scope, j.Platform)
		}
		j = waitJob(t, s, j.ID, nil)
		if j.State != snapi.StateSuccess || j.FinishedAt == nil || j.Error != "" {
			t.Fatalf("%s: %+v, want SUCCESS", tag, j)
		}
		if len(j.Progress.Tasks) != len(img.Blobs()) {
			t.Fatalf("%s: %d tasks, want %d (config and layers)", tag, len(j.Progress.Tasks), len(img.Blobs()))
		}
		for i, b := range img.Blobs() {
			pt := j.Progress.Tasks[i]
			if pt.Digest != b.Digest || pt.Size != int64(len(b.Data)) || pt.SeedBytes != pt.Size || pt.State != snapi.StateSuccess {
				t.Errorf("%s: task %d: %+v, want %s of %d bytes, SUCCESS and all held", tag, i, pt, b.Digest, len(b.Data))
			}
		}
	}
	// Both jobs warmed the same blobs: the registry sent each once, and the seed holds them.
	for _, b := range img.Blobs() {
		if got := reg.BlobBytes(b.Digest); got != int64(len(b.Data)) {
			t.Errorf("registry sent %d bytes of %s (%d bytes); want exactly once", got, b.Digest, len(b.Data))
		}
		pt, err := s.store.Task(b.Digest)
		if err != nil || !pt.Complete() {
			t.Errorf("the seed does not hold %s: %v", b.Digest, err)
		}
	}
	jobs, err := admin(s).Preheats(context.Background())
	if err != nil || len(jobs) != 2 || jobs[0].URL != reg.Host+"/team/app:latest" {
		t.Fatalf("list: %v %+v; want the two jobs, newest first", err, jobs)
	}
}

func TestPreheatPrivateRegistry(t *testing.T) {
	const user, pass = "alice", "pr3heat-s3cret"
	reg, img := pushedImage(t, registry.Options{Htpasswd: map[string]string{user: pass}, Token: true}, 2, 1<<20, user, pass)
	s := start(t, imageConfig(reg))
	ref := reg.Host + "/team/app:latest"

	ok := waitJob(t, s, createJob(t, s, snapi.PreheatRequest{URL: ref, Username: user, Password: pass}).ID, nil)
	if ok.State != snapi.StateSuccess {
		t.Fatalf("with the right credentials: %+v", ok)
	}
	for _, b := range img.Blobs() {
		if got := reg.BlobBytes(b.Digest); got != int64(len(b.Data)) {
			t.Errorf("registry sent %d bytes of %s, want %d", got, b.Digest, len(b.Data))
		}
	}

	wrong := waitJob(t, s, createJob(t, s, snapi.PreheatRequest{URL: ref, Username: user, Password: "wrong-password"}).ID, nil)
	if wrong.State != snapi.StateFailed || !strings.Contains(wrong.Error, "refused the credentials") {
		t.Errorf("with a wrong password: %s %q, want FAILED saying the registry refused the credentials", wrong.State, wrong.Error)
	}
	none := waitJob(t, s, createJob(t, s, snapi.PreheatRequest{URL: ref}).ID, nil)
	if none.State != snapi.StateFailed || !strings.Contains(none.Error, "refused the credentials") {
		t.Errorf("without credentials: %s %q, want FAILED saying the registry refused the credentials", none.State, none.Error)
	}

	// The credentials are nowhere to be seen: not in the API, not in the store.
	resp, err := http.Get(s.URL() + snapi.PathPreheats)
	if err != nil {
		t.Fatal(err)
	}
	listed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	db, err := os.ReadFile(filepath.Join(s.cfg.DataDir, preheat.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"the job list": string(listed), "preheat.db": string(db)} {
		for _, secret := range []string{pass, "wrong-password", user, "Bearer", "Basic "} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains %q", what, secret)
			}
		}
	}
}

// The resume loop restarts only the jobs found in the store at start. The API answers as soon
// as the supernode serves, possibly before that loop has run: a job created then must not be
// started a second time (two runs of one job raced each other).
func TestResumeLeavesJobsCreatedSinceStart(t *testing.T) {
	reg, img := pushedImage(t, registry.Options{}, 2, 1<<20, "", "")
	s := start(t, imageConfig(reg))
	j := createJob(t, s, snapi.PreheatRequest{URL: reg.Host + "/team/app:latest"})
	run := func() chan struct{} {
		s.preheat.mu.Lock()
		defer s.preheat.mu.Unlock()
		return s.preheat.jobs[j.ID].ended
	}
	first := run()
	s.preheat.resume(context.Background()) // as if the loop ran only now
	if run() != first {
		t.Fatal("resume started a job the API had started already: two runs of one job")
	}
	if end := waitJob(t, s, j.ID, nil); end.State != snapi.StateSuccess {
		t.Fatalf("the job: %s %q, want SUCCESS", end.State, end.Error)
	}
	for _, b := range img.Blobs() {
		if got := reg.BlobBytes(b.Digest); got != int64(len(b.Data)) {
			t.Errorf("registry sent %d bytes of %s, want %d", got, b.Digest, len(b.Data))
		}
	}
}

func TestPreheatRefusesBadInput(t *testing.T) {
	reg, _ := pushedImage(t, registry.Options{}, 1, 1024, "", "")
	s := start(t, Config{RegistryInsecure: []string{reg.Host}}) // loopback not allowed
	for _, tc := range []struct {
		name string
		body any
		code apierr.Code
		text string
	}{
		{"unparsable reference", snapi.PreheatRequest{URL: "Team/App::1"}, apierr.CodeBadRequest, "reference"},
		{"unknown platform os", snapi.PreheatRequest{URL: "busybox", Platform: "plan10/amd64"}, apierr.CodeBadRequest, "unknown operating system"},
		{"unknown platform arch", snapi.PreheatRequest{URL: "busybox", Platform: "linux/z80"}, apierr.CodeBadRequest, "unknown architecture"},
		{"bad scope", snapi.PreheatRequest{URL: "busybox", Scope: "everywhere"}, apierr.CodeBadRequest, "scope"},
		{"bad type", snapi.PreheatRequest{URL: "busybox", Type: "blob"}, apierr.CodeBadRequest, "type"},
		{"file scheme", snapi.PreheatRequest{URL: "file:///etc/passwd", Type: snapi.PreheatFile}, apierr.CodeBadRequest, "http"},
		{"no url", snapi.PreheatRequest{}, apierr.CodeBadRequest, "url"},
		{"user without password", snapi.PreheatRequest{URL: "busybox", Username: "a"}, apierr.CodeBadRequest, "password"},
		{"bad header", snapi.PreheatRequest{URL: "busybox", Headers: map[string]string{"Bad Name": "x"}}, apierr.CodeBadRequest, "header"},
		{"unknown field", `{"url": "busybox", "evil": 1}`, apierr.CodeBadRequest, "evil"},
		{"loopback file", snapi.PreheatRequest{URL: "http://127.0.0.1:1/x"}, apierr.CodeForbidden, "loopback"},
		{"loopback registry", snapi.PreheatRequest{URL: reg.Host + "/team/app:latest"}, apierr.CodeForbidden, "loopback"},
		{"metadata", snapi.PreheatRequest{URL: "http://169.254.169.254/latest/meta-data/"}, apierr.CodeForbidden, "link-local"},
		{"ipv6 loopback", snapi.PreheatRequest{URL: "http://[::1]:8080/x"}, apierr.CodeForbidden, "loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e, _ := post(t, s.URL()+snapi.PathPreheats, tc.body, nil)
			if status != http.StatusBadRequest || e.Code != tc.code || !strings.Contains(e.Message, tc.text) {
				t.Errorf("%d %s %q; want 400 %s naming %q", status, e.Code, e.Message, tc.code, tc.text)
			}
		})
	}
	if jobs, _ := admin(s).Preheats(context.Background()); len(jobs) != 0 {
		t.Errorf("refused requests left %d jobs", len(jobs))
	}
}

func TestPreheatFailsWithTheReason(t *testing.T) {
	reg, _ := pushedImage(t, registry.Options{}, 1, 1024, "", "")
	basic, _ := pushedImage(t, registry.Options{Htpasswd: map[string]string{"a": "b"}}, 1, 1024, "a", "b")
	s := start(t, Config{Allow: loopback, RegistryInsecure: []string{reg.Host, basic.Host}})
	strict := start(t, Config{}) // loopback not allowed
	_, port, _ := strings.Cut(reg.Host, ":")
	for _, tc := range []struct {
		name string
		s    *Supernode
		req  snapi.PreheatRequest
		text string
	}{
		{"unknown tag", s, snapi.PreheatRequest{URL: reg.Host + "/team/app:nope"}, "not found"},
		{"unknown repository", s, snapi.PreheatRequest{URL: reg.Host + "/team/none:latest"}, "not found"},
		{"registry says 401", s, snapi.PreheatRequest{URL: basic.Host + "/team/app:latest"}, "refused the credentials"},
		{"platform not in the index", s, snapi.PreheatRequest{URL: reg.Host + "/team/app:multi", Platform: "linux/s390x"}, "no manifest for the platform linux/s390x"},
		{"file not found", s, snapi.PreheatRequest{URL: reg.URL + "/nothing-here"}, "404"},
		{"a name for loopback", strict, snapi.PreheatRequest{URL: "http://localhost:" + port + "/x"}, "loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := waitJob(t, tc.s, createJob(t, tc.s, tc.req).ID, nil)
			if j.State != snapi.StateFailed || !strings.Contains(j.Error, tc.text) {
				t.Errorf("%s %q, want FAILED naming %q", j.State, j.Error, tc.text)
			}
		})
	}
}

func TestPreheatNeedsTheAdminToken(t *testing.T) {
	s := start(t, Config{AdminToken: "t0ken"})
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, snapi.PathPreheats}, {http.MethodGet, snapi.PathPreheats},
		{http.MethodGet, snapi.PathPreheats + "/x"}, {http.MethodDelete, snapi.PathPreheats + "/x"},
	} {
		for _, auth := range []string{"", "Bearer wrong", "t0ken"} {
			req, _ := http.NewRequest(tc.method, s.URL()+tc.path, strings.NewReader(`{"url":"busybox"}`))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: %d, want 401", tc.method, tc.path, auth, resp.StatusCode)
			}
		}
	}
	if _, err := admin(s).Preheats(context.Background()); err != nil {
		t.Errorf("with the token: %v", err)
	}
}

// heartbeat sends one heartbeat, signed, for p with its results and returns its assignments.
func heartbeat(t *testing.T, s *Supernode, p testPeer, results ...snapi.PreheatResult) []snapi.PreheatAssignment {
	t.Helper()
	resp, err := p.client(s.URL()).Heartbeat(context.Background(), snapi.HeartbeatRequest{Peer: p.info, Preheat: results})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Preheat
}

// All-peers jobs as the supernode sees them: peers learn their assignments in heartbeat
// answers and report there; a peer that fails, or expires, fails the job with the reason.
func TestPreheatAllPeersAssignments(t *testing.T) {
	reg, img := pushedImage(t, registry.Options{}, 2, 1<<20, "", "")
	cfg := imageConfig(reg)
	cfg.PeerTTL = time.Second
	s := start(t, cfg)
	// Peers are known from their first heartbeat, before they download anything.
	a, b, c, late := newPeer(t, ""), newPeer(t, ""), newPeer(t, ""), newPeer(t, "")
	for _, p := range []testPeer{a, b, c} {
		if got := heartbeat(t, s, p); len(got) != 0 {
			t.Fatalf("assignments before any job: %+v", got)
		}
	}
	// dfget's one-shot peer leaves when its download ends: it is not warmed.
	oneShot := newPeer(t, "")
	oneShot.info.OneShot = true
	heartbeat(t, s, oneShot)
	j := createJob(t, s, snapi.PreheatRequest{URL: reg.Host + "/team/app:latest", Scope: snapi.ScopeAllPeers})
	running := waitJob(t, s, j.ID, func(j snapi.PreheatJob) bool {
		heartbeat(t, s, a)
		heartbeat(t, s, b) // c stops here
		for _, pt := range j.Progress.Tasks {
			if pt.State != snapi.StateRunning || pt.SeedBytes != pt.Size {
				return false
			}
		}
		return len(j.Progress.Tasks) > 0
	})
	for _, pt := range running.Progress.Tasks {
		if pt.PeersTotal != 3 || pt.PeersDone != 0 {
			t.Fatalf("task %s: %d/%d peers, want 0/3", pt.Digest, pt.PeersDone, pt.PeersTotal)
		}
	}
	// A peer that joins after the start is not chased.
	if got := heartbeat(t, s, late); len(got) != 0 {
		t.Errorf("a peer that joined later got %d assignments", len(got))
	}
	got := heartbeat(t, s, a)
	if len(got) != len(img.Blobs()) {
		t.Fatalf("peer a got %d assignments, want one per blob (%d)", len(got), len(img.Blobs()))
	}
	var results []snapi.PreheatResult
	for i, a := range got {
		b := img.Blobs()[i]
		if a.Job != j.ID || a.Task != b.Digest || a.Digest != b.Digest || a.URL != reg.URL+"/v2/team/app/blobs/"+b.Digest.String() {
			t.Errorf("assignment %+v, want blob %s of job %s", a, b.Digest, j.ID)
		}
		results = append(results, snapi.PreheatResult{Job: a.Job, Task: a.Task})
	}
	// The seed serves an assignment not yet reported as background, and no longer once it is.
	if !s.preheat.owed(a.info.ID, got[1].Task) {
		t.Error("the seed does not take peer a's preheat download for one")
	}
	if s.preheat.owed(late.info.ID, got[1].Task) {
		t.Error("the seed takes a download by a peer outside the job for a preheat one")
	}
	if again := heartbeat(t, s, a, results...); len(again) != 0 {
		t.Errorf("after reporting every task, peer a still has %d assignments", len(again))
	}
	if s.preheat.owed(a.info.ID, got[1].Task) {
		t.Error("a download reported done is still background")
	}
	owed := heartbeat(t, s, b)
	heartbeat(t, s, b, snapi.PreheatResult{Job: j.ID, Task: owed[0].Task}, snapi.PreheatResult{Job: j.ID, Task: owed[1].Task, Error: "disk full"},
		snapi.PreheatResult{Job: j.ID, Task: owed[2].Task})

	end := waitJob(t, s, j.ID, func(j snapi.PreheatJob) bool {
		heartbeat(t, s, a)
		heartbeat(t, s, b)
		return j.State.Final()
	})
	if end.State != snapi.StateFailed || !strings.Contains(end.Error, "expired") && !strings.Contains(end.Error, "disk full") {
		t.Fatalf("job %s %q, want FAILED naming the failed and the expired peers", end.State, end.Error)
	}
	// The first failed peer by ID is named: b (disk full) or c (expired).
	if t0, t1 := end.Progress.Tasks[0], end.Progress.Tasks[1]; t0.PeersDone != 2 || t1.PeersDone != 1 ||
		!strings.Contains(t0.Error, "1 of 3 peers failed") || !strings.Contains(t0.Error, "expired") ||
		!strings.Contains(t1.Error, "2 of 3 peers failed") || !strings.Contains(t1.Error, "disk full") && !strings.Contains(t1.Error, "expired") {
		t.Errorf("tasks %+v, want the config on 2 of 3 peers (c expired) and the first layer on 1 of 3 (b: disk full, c expired)", end.Progress.Tasks)
	}
}

// slowRegistry serves an image whose blobs flow at rate bytes/s, so a job is still running when
// the test acts on it.
func slowRegistry(t *testing.T, rate int64) (*registry.Registry, *image.Image) {
	t.Helper()
	reg := registry.StartTest(t, registry.Options{BlobRate: rate})
	return reg, image.PushRandom(t, reg.URL, "team/app", "latest", 2, 4<<20, "", "")
}

func TestPreheatCancel(t *testing.T) {
	reg, _ := slowRegistry(t, 256<<10)
	s := start(t, imageConfig(reg))
	a := newPeer(t, "")
	heartbeat(t, s, a)
	j := createJob(t, s, snapi.PreheatRequest{URL: reg.Host + "/team/app:latest", Scope: snapi.ScopeAllPeers})
	waitJob(t, s, j.ID, func(j snapi.PreheatJob) bool { return j.State == snapi.StateRunning })
	got, err := admin(s).CancelPreheat(context.Background(), j.ID)
	if err != nil || got.State != snapi.StateFailed || got.Error != preheat.ReasonCancelled || got.FinishedAt == nil {
		t.Fatalf("cancel: %v %+v, want FAILED %q", err, got, preheat.ReasonCancelled)
	}
	if got := heartbeat(t, s, a); len(got) != 0 {
		t.Errorf("a cancelled job still assigns %d tasks", len(got))
	}
	var se *snapi.StatusError
	if _, err := admin(s).CancelPreheat(context.Background(), j.ID); !errors.As(err, &se) || se.Status != http.StatusConflict {
		t.Errorf("cancel of an ended job: %v, want 409", err)
	}
	if _, err := admin(s).CancelPreheat(context.Background(), "nope"); !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Errorf("cancel of an unknown job: %v, want 404", err)
	}
	s.preheat.mu.Lock()
	ended := s.preheat.jobs[j.ID].ended
	s.preheat.mu.Unlock()
	<-ended
	if j, _ := admin(s).Preheat(context.Background(), j.ID); j.State != snapi.StateFailed || j.Error != preheat.ReasonCancelled {
		t.Errorf("after its run stopped the job is %s %q", j.State, j.Error)
	}
}

// A supernode restarted during a job shows every job; it resumes one without credentials and
// finishes it (never SUCCESS before the seed holds every blob), and fails one that had some.
func TestPreheatSurvivesRestart(t *testing.T) {
	reg, img := slowRegistry(t, 1<<20)
	dir := t.TempDir()
	cfg := imageConfig(reg)
	cfg.DataDir = dir
	s := start(t, cfg)
	ref := reg.Host + "/team/app:latest"
	open := createJob(t, s, snapi.PreheatRequest{URL: ref})
	private := createJob(t, s, snapi.PreheatRequest{URL: ref, Headers: map[string]string{"X-Registry-Key": "k"}})
	for _, id := range []string{open.ID, private.ID} {
		waitJob(t, s, id, func(j snapi.PreheatJob) bool { return j.State == snapi.StateRunning })
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := start(t, cfg)
	jobs, err := admin(s2).Preheats(context.Background())
	if err != nil || len(jobs) != 2 || jobs[0].ID != private.ID || jobs[1].ID != open.ID {
		t.Fatalf("after restart: %v %+v, want both jobs, newest first", err, jobs)
	}
	if jobs[0].State != snapi.StateFailed || jobs[0].Error != preheat.ReasonRestarted {
		t.Errorf("the job with credentials: %s %q, want FAILED %q", jobs[0].State, jobs[0].Error, preheat.ReasonRestarted)
	}
	end := waitJob(t, s2, open.ID, func(j snapi.PreheatJob) bool {
		if j.State == snapi.StateSuccess {
			for _, b := range img.Blobs() {
				if pt, err := s2.store.Task(b.Digest); err != nil || !pt.Complete() {
					t.Errorf("SUCCESS while the seed does not hold %s", b.Digest)
				}
			}
		}
		return j.State.Final()
	})
	if end.State != snapi.StateSuccess {
		t.Fatalf("the resumed job: %s %q, want SUCCESS", end.State, end.Error)
	}
	var sent, size int64
	for _, b := range img.Blobs() {
		sent += reg.BlobBytes(b.Digest)
		size += int64(len(b.Data))
	}
	// The seed resumes from the pieces it kept: far less than twice the image.
	if sent >= 2*size {
		t.Errorf("the registry sent %d bytes for a %d-byte image over the restart", sent, size)
	}
}

func TestPreheatFile(t *testing.T) {
	reg, img := pushedImage(t, registry.Options{}, 1, 1<<20, "", "")
	s := start(t, Config{Allow: loopback})
	layer := img.Layers[0]
	// A pre-signed URL: its signature is used, never shown.
	u := reg.URL + "/v2/team/app/blobs/" + layer.Digest.String() + "?X-Amz-Signature=sig-value&X-Amz-Expires=60"
	j := waitJob(t, s, createJob(t, s, snapi.PreheatRequest{URL: u}).ID, nil)
	if j.State != snapi.StateSuccess || j.Type != snapi.PreheatFile || len(j.Progress.Tasks) != 1 {
		t.Fatalf("%+v, want a SUCCESS file job with one task", j)
	}
	if strings.Contains(j.URL, "sig-value") || !strings.Contains(j.URL, "REDACTED") {
		t.Errorf("the job shows %q", j.URL)
	}
	pt := j.Progress.Tasks[0]
	if pt.Size != int64(len(layer.Data)) || pt.SeedBytes != pt.Size || reg.BlobBytes(layer.Digest) != pt.Size {
		t.Errorf("task %+v; registry sent %d bytes, want %d once", pt, reg.BlobBytes(layer.Digest), len(layer.Data))
	}
	if _, err := s.store.Task(digest.Digest(pt.Digest)); err != nil {
		t.Errorf("the seed does not hold the file: %v", err)
	}
	// Nor does a failure show the signature.
	missing := waitJob(t, s, createJob(t, s, snapi.PreheatRequest{URL: reg.URL + "/nothing?sig=sig-value"}).ID, nil)
	if missing.State != snapi.StateFailed || !strings.Contains(missing.Error, "404") || strings.Contains(missing.Error, "sig-value") {
		t.Errorf("a signed URL that is not found: %s %q, want FAILED naming the 404 but not the signature", missing.State, missing.Error)
	}
}
