package piece

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

func TestGC(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	// Five tasks a..e of 2 MiB each, accessed a (oldest) to e (newest),
	// one hour apart; e was accessed an hour before now.
	names := []string{"a", "b", "c", "d", "e"}
	id := func(name string) digest.Digest { return digest.FromString("task " + name) }
	tests := []struct {
		name   string
		policy GCPolicy
		inUse  []string
		want   []string
	}{
		{"no policy", GCPolicy{}, nil, nil},
		{"under the high watermark", GCPolicy{HighWatermark: 10 * MiB, LowWatermark: 4 * MiB}, nil, nil},
		{"over high, down to low, LRU first", GCPolicy{HighWatermark: 9 * MiB, LowWatermark: 5 * MiB}, nil, []string{"a", "b", "c"}},
		{"low unset means high", GCPolicy{HighWatermark: 7 * MiB}, nil, []string{"a", "b"}},
		{"skips tasks in use", GCPolicy{HighWatermark: 9 * MiB, LowWatermark: 5 * MiB}, []string{"a", "c"}, []string{"b", "d", "e"}},
		{"cannot reach low when all in use", GCPolicy{HighWatermark: MiB}, []string{"a", "b", "c", "d", "e"}, nil},
		{"ttl", GCPolicy{TTL: 150 * time.Minute}, nil, []string{"a", "b", "c"}},
		{"ttl skips in use", GCPolicy{TTL: 150 * time.Minute}, []string{"b"}, []string{"a", "c"}},
		{"ttl then quota", GCPolicy{TTL: 270 * time.Minute, HighWatermark: 6 * MiB, LowWatermark: 4 * MiB}, nil, []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, t.TempDir(), Options{NoSync: true})
			for k, name := range names {
				task, err := s.Create(Meta{ID: id(name), ContentLength: 2 * MiB, PieceSize: MiB})
				if err != nil {
					t.Fatal(err)
				}
				task.touchAt(now.Add(-time.Duration(len(names)-k) * time.Hour))
			}
			inUse := func(d digest.Digest) bool {
				return slices.ContainsFunc(tt.inUse, func(name string) bool { return id(name) == d })
			}
			got, err := s.GC(now, tt.policy, inUse)
			if err != nil {
				t.Fatal(err)
			}
			var want []digest.Digest
			for _, name := range tt.want {
				want = append(want, id(name))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("GC evicted %v, want %v (%v)", got, want, tt.want)
			}
			if usage := s.Usage(); usage != int64(len(names)-len(want))*2*MiB {
				t.Fatalf("Usage after GC = %d", usage)
			}
			for _, d := range want {
				if _, err := s.Task(d); !errors.Is(err, ErrNotFound) {
					t.Fatalf("evicted task %s: %v", d, err)
				}
			}
			if n := len(s.List()); n != len(names)-len(want) {
				t.Fatalf("List has %d tasks after GC", n)
			}
		})
	}
}

func TestGCSkipsTaskTouchedDuringGC(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir(), Options{NoSync: true})
	now := time.Now()
	var tasks []*Task
	for k := range 3 {
		task, err := s.Create(Meta{ID: digest.FromString(fmt.Sprint(k)), ContentLength: MiB, PieceSize: MiB})
		if err != nil {
			t.Fatal(err)
		}
		task.touchAt(now.Add(-time.Duration(10-k) * time.Hour))
		tasks = append(tasks, task)
	}
	// The caller's inUse says no for task 0, but it is touched meanwhile
	// (someone just looked it up and started reading).
	inUse := func(d digest.Digest) bool {
		if d == tasks[0].Meta().ID {
			tasks[0].Touch()
		}
		return false
	}
	got, err := s.GC(now, GCPolicy{TTL: time.Hour}, inUse)
	if err != nil {
		t.Fatal(err)
	}
	if want := []digest.Digest{tasks[1].Meta().ID, tasks[2].Meta().ID}; !slices.Equal(got, want) {
		t.Fatalf("GC evicted %v, want %v", got, want)
	}
}
