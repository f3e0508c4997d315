// Package credentials keeps registry credentials where docker keeps them: the user's
// config.json ($DOCKER_CONFIG or ~/.docker), in its "auths" or through the credential helpers
// it names (credsStore, credHelpers), read and written with docker's own config package so
// both tools share one login. It also checks a login against the registry, answering its
// challenge (basic, or a bearer token from its realm) with containerd's authorizer.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/containerd/containerd/remotes/docker"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
)

// Sentinel errors.
var (
	// ErrUnauthorized: the registry refused the credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotLoggedIn: logout of a registry with no stored credentials.
	ErrNotLoggedIn = errors.New("not logged in")
)

// DockerHub is the registry name docker.io's credentials are stored under.
const DockerHub = "docker.io"

// Store is one docker config directory.
type Store struct{ dir string }

// New opens the config directory dir; "" means docker's default ($DOCKER_CONFIG, else
// ~/.docker).
func New(dir string) *Store {
	if dir == "" {
		dir = config.Dir()
	}
	return &Store{dir: dir}
}

// Dir is the directory holding config.json.
func (s *Store) Dir() string { return s.dir }

func (s *Store) load() (*configfile.ConfigFile, error) {
	cf, err := config.Load(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", cf.Filename, err)
	}
	return cf, nil
}

// key is the name docker stores a registry's credentials under.
func key(registry string) string {
	if registry == DockerHub || registry == "index.docker.io" || registry == "registry-1.docker.io" {
		return "https://index.docker.io/v1/"
	}
	return registry
}

// Lookup returns the credentials stored for registry (a host[:port], "docker.io" for Docker
// Hub): a user and password, or "" and an identity token; all empty when none are stored.
func (s *Store) Lookup(registry string) (user, secret string, err error) {
	cf, err := s.load()
	if err != nil {
		return "", "", err
	}
	ac, err := cf.GetCredentialsStore(key(registry)).Get(key(registry))
	if err != nil {
		return "", "", fmt.Errorf("credentials for %s: %w", registry, err)
	}
	if ac.IdentityToken != "" {
		return "", ac.IdentityToken, nil
	}
	return ac.Username, ac.Password, nil
}

// Save stores the credentials for registry (in the helper config.json names for it, if any)
// and returns the file or helper they went to.
func (s *Store) Save(registry, user, password string) (string, error) {
	cf, err := s.load()
	if err != nil {
		return "", err
	}
	k := key(registry)
	if err := cf.GetCredentialsStore(k).Store(types.AuthConfig{ServerAddress: k, Username: user, Password: password}); err != nil {
		return "", fmt.Errorf("store credentials for %s: %w", registry, err)
	}
	if err := cf.Save(); err != nil {
		return "", fmt.Errorf("write %s: %w", cf.Filename, err)
	}
	return where(cf, k), nil
}

// Erase removes the credentials of registry.
func (s *Store) Erase(registry string) error {
	cf, err := s.load()
	if err != nil {
		return err
	}
	k := key(registry)
	store := cf.GetCredentialsStore(k)
	if ac, err := store.Get(k); err == nil && ac.Username == "" && ac.Password == "" && ac.IdentityToken == "" {
		return fmt.Errorf("%w to %s", ErrNotLoggedIn, registry)
	}
	if err := store.Erase(k); err != nil {
		return fmt.Errorf("erase credentials for %s: %w", registry, err)
	}
	if err := cf.Save(); err != nil {
		return fmt.Errorf("write %s: %w", cf.Filename, err)
	}
	return nil
}

func where(cf *configfile.ConfigFile, k string) string {
	if h, ok := cf.CredentialHelpers[k]; ok {
		return "docker-credential-" + h
	}
	if cf.CredentialsStore != "" {
		return "docker-credential-" + cf.CredentialsStore
	}
	return cf.Filename
}

// Verify logs in to the registry served by host (GET /v2/ with the credentials, answering a
// basic or bearer challenge as containerd's authorizer does on a pull). ErrUnauthorized means
// the registry refused them.
func Verify(ctx context.Context, host docker.RegistryHost, user, password string) error {
	authorizer := docker.NewDockerAuthorizer(
		docker.WithAuthClient(host.Client),
		docker.WithAuthCreds(func(string) (string, string, error) { return user, password, nil }))
	u := host.Scheme + "://" + host.Host + strings.TrimSuffix(host.Path, "/") + "/"
	var last *http.Response
	for range 2 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		if last != nil {
			if err := authorizer.AddResponses(ctx, []*http.Response{last}); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrUnauthorized, host.Host, err)
			}
			if err := authorizer.Authorize(ctx, req); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrUnauthorized, host.Host, err)
			}
		}
		resp, err := host.Client.Do(req)
		if err != nil {
			return fmt.Errorf("log in to %s: %w", host.Host, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			return nil // an open registry needs none: docker accepts the login all the same
		case resp.StatusCode == http.StatusUnauthorized && last == nil:
			last = resp
		case resp.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("%w: %s refused the user %q", ErrUnauthorized, host.Host, user)
		default:
			return fmt.Errorf("log in to %s: %s answered %s", host.Host, u, resp.Status)
		}
	}
	return fmt.Errorf("%w: %s refused the user %q", ErrUnauthorized, host.Host, user)
}
