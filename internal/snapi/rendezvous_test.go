package snapi

import (
	"fmt"
	"testing"
)

func TestRingSpreadsAndAgrees(t *testing.T) {
	t.Parallel()
	r := NewRing("http://a:8002, http://b:8002,http://c:8002,", ClientConfig{})
	if r.Len() != 3 {
		t.Fatalf("ring of %d, want 3", r.Len())
	}
	first := map[string]int{}
	for i := range 3000 {
		key := fmt.Sprintf("sha256:%064d", i)
		order := r.For(key)
		if len(order) != 3 {
			t.Fatal("For must return every supernode")
		}
		// Another peer with the list in another order agrees.
		if other := NewRing("http://c:8002,http://a:8002,http://b:8002", ClientConfig{}).For(key); other[0].Base != order[0].Base || other[1].Base != order[1].Base {
			t.Fatalf("peers disagree on the home of %s", key)
		}
		first[order[0].Base]++
	}
	for base, n := range first {
		if n < 800 || n > 1200 {
			t.Errorf("%s is home to %d of 3000 tasks; want about 1000", base, n)
		}
	}
	// Removing a supernode moves only the tasks it was home to.
	two := NewRing("http://a:8002,http://b:8002", ClientConfig{})
	for i := range 300 {
		key := fmt.Sprintf("k%d", i)
		if h := r.For(key)[0].Base; h != "http://c:8002" && two.For(key)[0].Base != h {
			t.Fatalf("task %s moved from %s although its home is still there", key, h)
		}
	}
}
