package piece

import (
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// A Hasher hashes the held prefix as pieces arrive out of order, stops at the first missing
// piece, refuses a sum before the task is complete and then gives the content's digest.
func TestHasherFollowsTheHeldPrefix(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 5*MiB+123, Options{NoSync: true})
	f.setDigests(t, f.task)
	h := f.task.NewHasher()
	for _, step := range []struct {
		write []int
		next  int // the first piece not hashed after Advance
	}{
		{nil, 0},
		{[]int{1, 3}, 0}, // piece 0 missing: nothing can be hashed
		{[]int{0}, 2},    // 0 and 1 now
		{[]int{5}, 2},
		{[]int{2}, 4}, // 2 and 3
	} {
		f.write(t, f.task, step.write...)
		if err := h.Advance(); err != nil {
			t.Fatal(err)
		}
		if h.next != step.next {
			t.Fatalf("after writing %v: next piece to hash %d, want %d", step.write, h.next, step.next)
		}
	}
	if d, err := h.Sum(); err == nil {
		t.Fatalf("Sum with piece 4 missing = %s, want an error", d)
	}
	f.write(t, f.task, 4)
	d, err := h.Sum()
	if want := digest.FromBytes(f.data); err != nil || d != want {
		t.Fatalf("Sum = %s, %v; want %s", d, err, want)
	}
}
