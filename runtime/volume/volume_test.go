package volume

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestStore(t *testing.T) {
	t.Parallel()
	s := New(filepath.Join(t.TempDir(), "volumes"))
	if vs, err := s.List(); err != nil || len(vs) != 0 {
		t.Fatalf("List of a new store = %v, %v", vs, err)
	}
	v, err := s.Create("data")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if again, err := s.Create("data"); err != nil || again.Mountpoint != v.Mountpoint {
		t.Errorf("second Create = %+v, %v", again, err)
	}
	if _, err := os.Stat(filepath.Join(v.Mountpoint, "f")); err != nil {
		t.Errorf("a second Create lost the data: %v", err)
	}
	s.Create("b2")
	if vs, _ := s.List(); len(vs) != 2 || vs[0].Name != "b2" || vs[1].Name != "data" {
		t.Errorf("List = %+v", vs)
	}
	for _, bad := range []string{"a", "../x", "x/y", ".hidden", ""} {
		if _, err := s.Create(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Create(%q): %v", bad, err)
		}
	}
	if err := s.Remove("data"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("data"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	if err := s.Remove("data"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
}
