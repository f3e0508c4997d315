// Package volume keeps pouch's named volumes: a directory per volume under one root, which a
// container mounts with `-v NAME:/path`. It only creates, lists and removes the directories;
// whether a container still uses a volume is the runtime's to say.
package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"
)

// Sentinel errors, wrapped with the volume's name.
var (
	ErrNotFound    = errors.New("no such volume")
	ErrInvalidName = errors.New("invalid volume name")
)

// validName is docker's rule for volume names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidName reports whether name may name a volume (two characters at least, so that a single
// drive-like letter never is one, as docker has it).
func ValidName(name string) bool { return validName.MatchString(name) }

// Volume is a named volume.
type Volume struct {
	Name       string    `json:"Name"`
	Driver     string    `json:"Driver"`
	Mountpoint string    `json:"Mountpoint"`
	CreatedAt  time.Time `json:"CreatedAt"`
}

// Store is the volumes under one directory: <dir>/<name>/_data is what containers see.
type Store struct{ dir string }

// New returns the store rooted at dir (created on first use).
func New(dir string) *Store { return &Store{dir: dir} }

func (s *Store) volume(name string, st os.FileInfo) Volume {
	return Volume{Name: name, Driver: "local", Mountpoint: filepath.Join(s.dir, name, "_data"), CreatedAt: st.ModTime().UTC()}
}

// Create makes the volume; creating one that exists returns it unchanged.
func (s *Store) Create(name string) (Volume, error) {
	if !ValidName(name) {
		return Volume{}, fmt.Errorf("%w: %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", ErrInvalidName, name)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, name, "_data"), 0o755); err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	return s.Get(name)
}

// Get returns the volume.
func (s *Store) Get(name string) (Volume, error) {
	if !ValidName(name) {
		return Volume{}, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	st, err := os.Stat(filepath.Join(s.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return Volume{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return Volume{}, fmt.Errorf("volume %s: %w", name, err)
	}
	return s.volume(name, st), nil
}

// List returns every volume, sorted by name.
func (s *Store) List() ([]Volume, error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []Volume
	for _, e := range entries {
		if !e.IsDir() || !ValidName(e.Name()) {
			continue
		}
		st, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, s.volume(e.Name(), st))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes the volume and its data.
func (s *Store) Remove(name string) error {
	if _, err := s.Get(name); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}
