package preheat

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/pouch-p2p/pouch/internal/netguard"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

func TestStoreKeepsJobsAcrossReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := New("a", snapi.PreheatRequest{Type: snapi.PreheatImage, Scope: snapi.ScopeAllPeers}, "r/x:1", false, now)
	a.Start(now, []Task{{ID: digest.Digest("sha256:" + strings.Repeat("ab", 32)), URL: "https://r/v2/x/blobs/d"}}, []string{"p1"})
	b := New("b", snapi.PreheatRequest{Type: snapi.PreheatFile, Scope: snapi.ScopeSeed}, "https://f/x", true, now)
	c := New("c", snapi.PreheatRequest{}, "gone", false, now)
	for _, j := range []*Job{a, b, c} {
		if err := s.Put(j); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete("c"); err != nil {
		t.Fatal(err)
	}
	// A damaged record is skipped and reported, not fatal.
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketJobs).Put([]byte("bad"), []byte("{")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	jobs, bad, err := s.Load()
	if err != nil || len(jobs) != 2 || len(bad) != 1 || bad[0] != "bad" {
		t.Fatalf("load: %v, %d jobs, bad %v; want a and b, and bad reported", err, len(jobs), bad)
	}
	got := jobs[0]
	if got.ID != "a" || got.State != snapi.StateRunning || got.Peers[0] != "p1" || got.Tasks[0].Seed != snapi.StatePending || !got.CreatedAt.Equal(now) {
		t.Errorf("job a came back as %+v", got)
	}
	if !jobs[1].Credentials {
		t.Error("job b lost the mark that it had credentials")
	}
}

// A damaged preheat.db does not keep the supernode from starting: it is moved aside, and an
// empty store takes its place.
func TestDamagedStoreIsReplaced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DBFile), bytes.Repeat([]byte("garbage!"), 2048), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatalf("open over a damaged file: %v", err)
	}
	defer s.Close()
	damage, aside := s.Damaged()
	if damage == "" || aside == "" {
		t.Fatalf("Damaged() = %q, %q; want why and where", damage, aside)
	}
	if b, err := os.ReadFile(aside); err != nil || !bytes.HasPrefix(b, []byte("garbage!")) {
		t.Errorf("the damaged file is not kept at %s: %v", aside, err)
	}
	if jobs, bad, err := s.Load(); err != nil || len(jobs)+len(bad) != 0 {
		t.Errorf("the new store holds %d jobs, %d bad, %v; want none", len(jobs), len(bad), err)
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	policy := netguard.Policy{}
	for _, tc := range []struct {
		in   snapi.PreheatRequest
		want snapi.PreheatRequest
	}{
		{snapi.PreheatRequest{URL: " busybox "}, snapi.PreheatRequest{Type: snapi.PreheatImage, URL: "docker.io/library/busybox:latest", Scope: snapi.ScopeSeed}},
		{snapi.PreheatRequest{URL: "registry.example:5000/app/web:1.4", Platform: "linux/arm64/v8", Scope: snapi.ScopeAllPeers},
			snapi.PreheatRequest{Type: snapi.PreheatImage, URL: "registry.example:5000/app/web:1.4", Platform: "linux/arm64/v8", Scope: snapi.ScopeAllPeers}},
		{snapi.PreheatRequest{URL: "10.0.0.5:5000/app@sha256:" + strings.Repeat("0", 64), Platform: "linux/amd64"},
			snapi.PreheatRequest{Type: snapi.PreheatImage, URL: "10.0.0.5:5000/app@sha256:" + strings.Repeat("0", 64), Platform: "linux/amd64", Scope: snapi.ScopeSeed}},
		{snapi.PreheatRequest{URL: "https://files.example/model.bin"}, snapi.PreheatRequest{Type: snapi.PreheatFile, URL: "https://files.example/model.bin", Scope: snapi.ScopeSeed}},
	} {
		got, err := Normalize(tc.in, policy)
		if err != nil {
			t.Errorf("%q: %v", tc.in.URL, err)
			continue
		}
		if tc.want.Platform == "" && tc.want.Type == snapi.PreheatImage {
			tc.want.Platform = got.Platform // the supernode's own
			if !strings.HasPrefix(got.Platform, "linux/") {
				t.Errorf("default platform %q", got.Platform)
			}
		}
		if got.Type != tc.want.Type || got.URL != tc.want.URL || got.Platform != tc.want.Platform || got.Scope != tc.want.Scope {
			t.Errorf("%q: got %+v, want %+v", tc.in.URL, got, tc.want)
		}
	}
	// A literal private address is fine (internal registries live there) unless denied.
	deny := netguard.Policy{Deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	if _, err := Normalize(snapi.PreheatRequest{URL: "10.1.2.3:5000/app:1"}, deny); err == nil {
		t.Error("a registry in a denied network was accepted")
	}
}
