package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	units "github.com/docker/go-units"

	"github.com/pouch-p2p/pouch/runtime/logs"
	"github.com/pouch-p2p/pouch/runtime/network"
)

// State is a container's run state, as docker inspect shows it.
type State struct {
	// Status is "created", "running", "paused" or "exited".
	Status     string
	Running    bool
	Paused     bool
	Pid        uint32
	ExitCode   int
	StartedAt  string
	FinishedAt string
}

// Details is what `pouch inspect` prints: docker's layout, for the fields pouch has.
type Details struct {
	ID              string
	Name            string
	Created         time.Time
	Path            string
	Args            []string
	State           State
	Image           string
	RestartCount    int
	LogPath         string
	Config          ContainerConfig
	HostConfig      HostConfig
	NetworkSettings NetworkSettings
	Mounts          []Mount
}

// ContainerConfig is the process a container runs.
type ContainerConfig struct {
	Hostname   string
	User       string
	Env        []string
	Cmd        []string
	WorkingDir string
	Tty        bool
	OpenStdin  bool
	StopSignal string `json:",omitempty"`
}

// HostConfig is how the container is run on the host.
type HostConfig struct {
	Binds          []string
	NetworkMode    string
	PortBindings   []network.PortMapping
	RestartPolicy  RestartPolicy
	AutoRemove     bool
	Memory         int64
	NanoCpus       int64
	PidsLimit      int64
	ReadonlyRootfs bool
}

// NetworkSettings is the container's network.
type NetworkSettings struct {
	IPAddress  string
	Ports      []network.PortMapping
	SandboxKey string // the network namespace file
}

// Inspect describes the container ref.
func (r *Runtime) Inspect(ctx context.Context, ref string) (Details, error) {
	c, err := r.resolve(ctx, ref)
	if err != nil {
		return Details{}, err
	}
	return r.details(ctx, c)
}

func (r *Runtime) details(ctx context.Context, c containerd.Container) (Details, error) {
	info, err := c.Info(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return Details{}, fmt.Errorf("%w: %s", ErrContainerNotFound, c.ID())
		}
		return Details{}, fmt.Errorf("container %s: %w", c.ID(), err)
	}
	labels := info.Labels
	d := Details{ID: c.ID(), Name: c.ID(), Created: info.CreatedAt, Image: info.Image, LogPath: logConfig(labels).Path}
	d.RestartCount, _ = strconv.Atoi(labels[labelRestartCount])
	d.State = r.state(ctx, c, labels)
	spec, err := c.Spec(ctx)
	if err != nil {
		return Details{}, fmt.Errorf("container %s: %w", c.ID(), err)
	}
	if p := spec.Process; p != nil {
		if len(p.Args) > 0 {
			d.Path, d.Args = p.Args[0], p.Args[1:]
		}
		d.Config = ContainerConfig{
			Hostname: spec.Hostname, Env: p.Env, Cmd: p.Args, WorkingDir: p.Cwd, Tty: p.Terminal,
			User: fmt.Sprintf("%d:%d", p.User.UID, p.User.GID), OpenStdin: labels[labelStdin] == "true",
			StopSignal: labels[labelStopSignal],
		}
	}
	_ = json.Unmarshal([]byte(labels[labelMounts]), &d.Mounts)
	for _, m := range d.Mounts {
		b := m.Source + ":" + m.Destination
		if m.ReadOnly {
			b += ":ro"
		}
		d.HostConfig.Binds = append(d.HostConfig.Binds, b)
	}
	d.HostConfig.NetworkMode = labels[labelNetwork]
	d.HostConfig.PortBindings = portsOf(labels)
	d.HostConfig.RestartPolicy, _ = ParseRestart(labels[labelRestart])
	d.HostConfig.AutoRemove = labels[labelAutoRemove] == "true"
	if spec.Root != nil {
		d.HostConfig.ReadonlyRootfs = spec.Root.Readonly
	}
	if spec.Linux != nil && spec.Linux.Resources != nil {
		res := spec.Linux.Resources
		if res.Memory != nil && res.Memory.Limit != nil {
			d.HostConfig.Memory = *res.Memory.Limit
		}
		if res.CPU != nil && res.CPU.Quota != nil && res.CPU.Period != nil && *res.CPU.Period > 0 {
			d.HostConfig.NanoCpus = *res.CPU.Quota * 1e9 / int64(*res.CPU.Period)
		}
		if res.Pids != nil {
			d.HostConfig.PidsLimit = res.Pids.Limit
		}
	}
	d.NetworkSettings = NetworkSettings{IPAddress: labels[labelIP], Ports: d.HostConfig.PortBindings}
	if mode := network.Mode(labels[labelNetwork]); mode != network.Host && mode != "" {
		d.NetworkSettings.SandboxKey = r.net.NetNSPath(c.ID())
	}
	return d, nil
}

// state reads the task's state, or, without a task, the exit recorded in the labels.
func (r *Runtime) state(ctx context.Context, c containerd.Container, labels map[string]string) State {
	s := State{Status: "created", StartedAt: labels[labelStartedAt], FinishedAt: labels[labelFinishedAt]}
	if code, err := strconv.Atoi(labels[LabelExitCode]); err == nil {
		s.Status, s.ExitCode = "exited", code
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return s
	}
	st, err := task.Status(ctx)
	if err != nil {
		return s
	}
	switch st.Status {
	case containerd.Running:
		s.Status, s.Running, s.Pid = "running", true, task.Pid()
	case containerd.Paused, containerd.Pausing:
		s.Status, s.Paused, s.Pid = "paused", true, task.Pid()
	case containerd.Stopped:
		s.Status, s.ExitCode = "exited", int(st.ExitStatus)
		if !st.ExitTime.IsZero() && st.ExitTime.Year() > 2000 {
			s.FinishedAt = st.ExitTime.UTC().Format(time.RFC3339Nano)
		}
	case containerd.Created:
		s.Status = "created"
	}
	return s
}

// Container is one line of `pouch ps`: docker's fields for --format.
type Container struct {
	// ID and Names are both the container's name (its containerd ID).
	ID, Names string
	Image     string
	Command   string
	CreatedAt time.Time
	// State is "created", "running", "paused" or "exited"; ExitCode is set when exited.
	State    string
	ExitCode int
	// Status is docker's human one: "Up 5 seconds", "Exited (0) 3 seconds ago", "Created".
	Status string
	// Ports is the published ports, as "0.0.0.0:8080->80/tcp, ...".
	Ports string
}

// Containers lists the containers in the namespace (only the running ones unless all), sorted
// by name.
func (r *Runtime) Containers(ctx context.Context, all bool) ([]Container, error) {
	cs, err := r.client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]Container, 0, len(cs))
	for _, c := range cs {
		d, err := r.details(ctx, c)
		if err != nil {
			if errors.Is(err, ErrContainerNotFound) || errdefs.IsNotFound(err) {
				continue // removed meanwhile
			}
			return nil, err
		}
		if !all && d.State.Status != "running" && d.State.Status != "paused" {
			continue
		}
		var ports []string
		for _, p := range d.NetworkSettings.Ports {
			ports = append(ports, p.String())
		}
		out = append(out, Container{
			ID: d.ID, Names: d.Name, Image: d.Image, Command: strings.Join(d.Config.Cmd, " "), CreatedAt: d.Created,
			State: d.State.Status, ExitCode: d.State.ExitCode, Status: humanStatus(d.State), Ports: strings.Join(ports, ", "),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Names < out[j].Names })
	return out, nil
}

func humanStatus(s State) string {
	since := func(ts string) string {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return ""
		}
		return units.HumanDuration(time.Since(t))
	}
	switch s.Status {
	case "running":
		return strings.TrimSpace("Up " + since(s.StartedAt))
	case "paused":
		return strings.TrimSpace("Up "+since(s.StartedAt)) + " (Paused)"
	case "exited":
		if ago := since(s.FinishedAt); ago != "" {
			return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, ago)
		}
		return fmt.Sprintf("Exited (%d)", s.ExitCode)
	}
	return "Created"
}

// LogsOptions say what `pouch logs` prints.
type LogsOptions = logs.ReadOptions

// Logs prints the container's log to stdout and stderr. With Follow it keeps printing until
// the container stops for good: not running, no supervisor about to restart it, and its logger
// done.
func (r *Runtime) Logs(ctx context.Context, ref string, opts LogsOptions, stdout, stderr io.Writer) error {
	c, err := r.resolve(ctx, ref)
	if err != nil {
		return err
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return fmt.Errorf("container %s: %w", c.ID(), err)
	}
	cfg := logConfig(labels)
	if cfg.Path == "" {
		return fmt.Errorf("container %s has no log (not created by pouch)", c.ID())
	}
	dir := labels[labelDir]
	opts.Done = func(ctx context.Context) bool {
		if _, ok := running(ctx, c); ok {
			return false
		}
		return !supervisorActive(dir) && !cfg.Writing()
	}
	return logs.Copy(ctx, cfg, opts, stdout, stderr)
}
