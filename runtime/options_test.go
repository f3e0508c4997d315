package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseVolume(t *testing.T) {
	t.Parallel()
	good := map[string]Mount{
		"/srv/data:/data":     {Type: "bind", Source: "/srv/data", Destination: "/data"},
		"/srv/data/:/data:ro": {Type: "bind", Source: "/srv/data", Destination: "/data", ReadOnly: true},
		"cache:/var/cache:rw": {Type: "volume", Source: "cache", Destination: "/var/cache"},
	}
	for in, want := range good {
		if got, err := ParseVolume(in); err != nil || got != want {
			t.Errorf("ParseVolume(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"/data", "relative/path:/data", "/a:data", "/a:/", "/a:/b:rx", "a:/b", "/a:/b:ro:x"} {
		if _, err := ParseVolume(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseVolume(%q): %v, want ErrInvalid", in, err)
		}
	}
}

func TestRestartPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    RestartPolicy
		restart map[[2]int]bool // {code, count} → restarts
	}{
		{"no", RestartPolicy{Name: "no"}, map[[2]int]bool{{1, 0}: false}},
		{"always", RestartPolicy{Name: "always"}, map[[2]int]bool{{0, 0}: true, {1, 100}: true}},
		{"unless-stopped", RestartPolicy{Name: "always"}, map[[2]int]bool{{0, 5}: true}},
		{"on-failure", RestartPolicy{Name: "on-failure"}, map[[2]int]bool{{0, 0}: false, {1, 100}: true}},
		{"on-failure:2", RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}, map[[2]int]bool{{1, 0}: true, {1, 1}: true, {1, 2}: false, {0, 0}: false}},
	}
	for _, tt := range tests {
		got, err := ParseRestart(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseRestart(%q) = %+v, %v", tt.in, got, err)
		}
		for k, want := range tt.restart {
			if r := got.restarts(k[0], k[1]); r != want {
				t.Errorf("%s: exit %d after %d restarts: restarts = %v", tt.in, k[0], k[1], r)
			}
		}
		if back, _ := ParseRestart(got.String()); back != got {
			t.Errorf("%q does not round-trip: %q", tt.in, got.String())
		}
	}
	for _, in := range []string{"sometimes", "on-failure:x", "on-failure:-1", "always:3"} {
		if _, err := ParseRestart(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRestart(%q): %v", in, err)
		}
	}
}

func TestEnv(t *testing.T) {
	t.Parallel()
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"HOME": "/root"}[k]
		return v, ok
	}
	got, err := ParseEnv([]string{"A=1", "B=", "HOME", "UNSET", "C=x=y"}, lookup)
	if want := []string{"A=1", "B=", "HOME=/root", "C=x=y"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseEnv = %v, %v; want %v", got, err, want)
	}
	if _, err := ParseEnv([]string{"=x"}, lookup); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseEnv(=x): %v", err)
	}
	path := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(path, []byte("# comment\n\nA=\"quoted\"\n  B=2\nHOME\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = ReadEnvFile(path, lookup)
	if want := []string{`A="quoted"`, "B=2", "HOME=/root"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ReadEnvFile = %v, %v; want %v", got, err, want)
	}
	if _, err := ReadEnvFile(filepath.Join(t.TempDir(), "none"), lookup); !errors.Is(err, ErrInvalid) {
		t.Errorf("missing env file: %v", err)
	}
}

func TestProcessArgs(t *testing.T) {
	t.Parallel()
	ep, cmd := []string{"/entry"}, []string{"default"}
	for _, tt := range []struct {
		newEP, args, want []string
	}{
		{nil, nil, []string{"/entry", "default"}},
		{nil, []string{"x"}, []string{"/entry", "x"}},
		{[]string{"/sh"}, nil, []string{"/sh"}},
		{[]string{"/sh"}, []string{"-c", "x"}, []string{"/sh", "-c", "x"}},
		{[]string{}, []string{"ls"}, []string{"ls"}},
	} {
		if got := processArgs(ep, cmd, tt.newEP, tt.args); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("processArgs(%v, %v) = %v, want %v", tt.newEP, tt.args, got, tt.want)
		}
	}
}
