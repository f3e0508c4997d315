package credentials_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/runtime"
	"github.com/pouch-p2p/pouch/runtime/credentials"
)

func TestStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := credentials.New(dir)
	if u, p, err := s.Lookup("registry.example:5000"); err != nil || u != "" || p != "" {
		t.Fatalf("Lookup with no config = %q %q %v", u, p, err)
	}
	where, err := s.Save("registry.example:5000", "alice", "pw")
	if err != nil || where != filepath.Join(dir, "config.json") {
		t.Fatalf("Save = %q, %v", where, err)
	}
	if _, err := s.Save("docker.io", "bob", "hub"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if !strings.Contains(string(data), `"https://index.docker.io/v1/"`) || !strings.Contains(string(data), `"registry.example:5000"`) {
		t.Errorf("config.json does not use docker's keys:\n%s", data)
	}
	if u, p, err := s.Lookup("registry.example:5000"); err != nil || u != "alice" || p != "pw" {
		t.Errorf("Lookup = %q %q %v", u, p, err)
	}
	if u, _, _ := s.Lookup("registry-1.docker.io"); u != "bob" {
		t.Errorf("Docker Hub's credentials under its registry host: %q", u)
	}
	if err := s.Erase("registry.example:5000"); err != nil {
		t.Fatal(err)
	}
	if u, _, _ := s.Lookup("registry.example:5000"); u != "" {
		t.Errorf("Lookup after Erase = %q", u)
	}
	if err := s.Erase("registry.example:5000"); !errors.Is(err, credentials.ErrNotLoggedIn) {
		t.Errorf("second Erase: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Lookup("x"); err == nil {
		t.Error("a corrupt config.json was read without an error")
	}
}

// Login answers the registry's basic and bearer challenges, and a wrong password is refused.
func TestLogin(t *testing.T) {
	t.Parallel()
	for _, token := range []bool{false, true} {
		ctx := context.Background()
		reg, err := registry.Start(ctx, registry.Options{Token: token, Htpasswd: map[string]string{"alice": "pw"}})
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
		s := credentials.New(t.TempDir())
		if _, err := runtime.Login(ctx, t.TempDir(), s, reg.Host, "alice", "wrong"); !errors.Is(err, credentials.ErrUnauthorized) {
			t.Errorf("token %v: wrong password: %v, want ErrUnauthorized", token, err)
		}
		if u, _, _ := s.Lookup(reg.Host); u != "" {
			t.Errorf("token %v: a refused login was stored", token)
		}
		if _, err := runtime.Login(ctx, t.TempDir(), s, reg.Host, "alice", "pw"); err != nil {
			t.Errorf("token %v: %v", token, err)
		}
		if u, p, _ := s.Lookup(reg.Host); u != "alice" || p != "pw" {
			t.Errorf("token %v: stored %q %q", token, u, p)
		}
	}
}
