package runtime

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pouch-p2p/pouch/runtime/credentials"
)

// Login checks user and password against registry (a host[:port]; "docker.io" for Docker Hub)
// and stores them in creds for later pulls; it returns where they went (config.json or a
// credential helper). The registry itself is asked, as hosts.toml in hostsDir names its server
// (the last host, never a mirror), so a wrong password is refused here rather than at the
// next pull. It needs no containerd.
func Login(ctx context.Context, hostsDir string, creds *credentials.Store, registry, user, password string) (string, error) {
	hosts, err := RegistryHosts(ctx, hostsDir, nil, registry)(registry)
	if err != nil {
		return "", fmt.Errorf("login to %s: %w", registry, err)
	}
	if len(hosts) == 0 {
		return "", fmt.Errorf("login to %s: hosts.toml in %s names no server for it", registry, hostsDir)
	}
	if err := credentials.Verify(ctx, hosts[len(hosts)-1], user, password); err != nil {
		return "", err
	}
	return creds.Save(registry, user, password)
}

// Credentials is the store pulls read credentials from.
func (r *Runtime) Credentials() *credentials.Store { return r.creds }

// RemoveVolume removes a named volume that no container mounts.
func (r *Runtime) RemoveVolume(ctx context.Context, name string) error {
	if _, err := r.volumes.Get(name); err != nil {
		return err
	}
	cs, err := r.client.Containers(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs {
		labels, err := c.Labels(ctx)
		if err != nil {
			continue
		}
		var mounts []Mount
		_ = json.Unmarshal([]byte(labels[labelMounts]), &mounts)
		for _, m := range mounts {
			if m.Type == "volume" && m.Source == name {
				return fmt.Errorf("%w: %s is mounted by container %s (remove it first: pouch rm %s)", ErrVolumeInUse, name, c.ID(), c.ID())
			}
		}
	}
	return r.volumes.Remove(name)
}
