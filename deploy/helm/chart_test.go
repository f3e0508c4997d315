package helm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/pouch-p2p/pouch/deploy/image"
	"github.com/pouch-p2p/pouch/deploy/internal/deploytest"
	"github.com/pouch-p2p/pouch/internal/fixture/tlsca"
)

// binDir holds the binaries built from this checkout: the chart is held against them.
var binDir string

func TestMain(m *testing.M) { deploytest.Main(m, &binDir) }

// workload is a rendered container and what runs it.
type workload struct {
	kind string // StatefulSet, DaemonSet
	pod  corev1.PodSpec
	c    corev1.Container
}

func workloads(t *testing.T, r rendered) []workload {
	t.Helper()
	var out []workload
	add := func(kind string, pod corev1.PodSpec) {
		for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
			out = append(out, workload{kind, pod, c})
		}
	}
	add("StatefulSet", r.statefulSet(t).Spec.Template.Spec)
	add("DaemonSet", r.daemonSet(t).Spec.Template.Spec)
	return out
}

// program splits a container's command into the binary and its subcommand (pouch mirror setup).
func program(c corev1.Container) (bin string, sub []string) {
	if len(c.Command) == 0 {
		return "", nil
	}
	return c.Command[0], c.Command[1:]
}

// flagArg splits "--name=value".
var flagArg = regexp.MustCompile(`^--([a-z0-9][a-z0-9-]*)=(.*)$`)

// args maps a container's flags to their values (the last one for a repeated flag).
func args(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range c.Args {
		m := flagArg.FindStringSubmatch(a)
		if m == nil {
			t.Fatalf("container %s: argument %q is not --name=value", c.Name, a)
		}
		out[m[1]] = m[2]
	}
	return out
}

// configPath is where a daemon container's --config points: its ConfigMap's file.
func configPath(t *testing.T, w workload) string {
	t.Helper()
	a := args(t, w.c)
	want := path.Join(mountPath(w.c, "config"), w.c.Name+".yaml")
	if a["config"] != want {
		t.Fatalf("container %s: --config=%q, want its ConfigMap's file %s", w.c.Name, a["config"], want)
	}
	return a["config"]
}

// configFile is the daemon container's config file: the ConfigMap mounted as config, decoded
// strictly (the daemon refuses anything but a mapping of flag names).
func configFile(t *testing.T, r rendered, w workload) (text string, settings map[string]any) {
	t.Helper()
	configPath(t, w)
	var cmName string
	for _, vol := range w.pod.Volumes {
		if vol.Name == "config" && vol.ConfigMap != nil {
			cmName = vol.ConfigMap.Name
		}
	}
	cm := r.configMap(cmName)
	if cm == nil {
		t.Fatalf("%s: no ConfigMap %q mounted as config", w.c.Name, cmName)
	}
	text = cm.Data[w.c.Name+".yaml"]
	if err := yaml.UnmarshalStrict([]byte(text), &settings); err != nil {
		t.Fatalf("ConfigMap %s: %v", cm.Name, err)
	}
	return text, settings
}

// settings is what a daemon container runs with: its config file's keys, a list joined with
// commas as the flag takes it, then its flags (extraArgs), which win.
func settings(t *testing.T, r rendered, w workload) map[string]string {
	t.Helper()
	_, file := configFile(t, r, w)
	out := map[string]string{}
	for k, v := range file {
		if list, ok := v.([]any); ok {
			var items []string
			for _, item := range list {
				items = append(items, fmt.Sprint(item))
			}
			out[k] = strings.Join(items, ",")
			continue
		}
		out[k] = fmt.Sprint(v)
	}
	for k, v := range args(t, w.c) {
		if k != "config" {
			out[k] = v
		}
	}
	return out
}

// helps caches `--help` per binary and subcommand.
type helps map[string]deploytest.Help

func (h helps) get(t *testing.T, bin string, sub []string) deploytest.Help {
	t.Helper()
	key := strings.Join(append([]string{bin}, sub...), " ")
	if got, ok := h[key]; ok {
		return got
	}
	got, err := deploytest.GetHelp(context.Background(), filepath.Join(binDir, bin), sub...)
	if err != nil {
		t.Fatal(err)
	}
	h[key] = got
	return got
}

// Every flag the chart passes and every key of the daemons' config files, in every variant,
// is one the binary lists in --help, and every POUCH_* variable it sets is one the binary reads.
func TestFlagsExistInBinaries(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	h := helps{}
	for _, v := range variants(t) {
		r := render(t, c, v.values)
		for _, w := range workloads(t, r) {
			bin, sub := program(w.c)
			if !slices.Contains(image.Binaries, bin) {
				t.Fatalf("%s: container %s runs %q, which the image does not hold (%v)", v.name, w.c.Name, bin, image.Binaries)
			}
			help := h.get(t, bin, sub)
			names := slices.Collect(maps.Keys(args(t, w.c)))
			if len(sub) == 0 {
				names = slices.Collect(maps.Keys(settings(t, r, w)))
			}
			for _, name := range names {
				if !help.Flags[name] {
					t.Errorf("%s: container %s sets %s, which `%s --help` does not list", v.name, w.c.Name, name, strings.Join(w.c.Command, " "))
				}
			}
			for _, e := range w.c.Env {
				if strings.HasPrefix(e.Name, "POUCH_") && !strings.Contains(help.Text, "$"+e.Name) {
					t.Errorf("%s: container %s sets %s, which `%s --help` names for no flag", v.name, w.c.Name, e.Name, bin)
				}
			}
		}
	}
}

// The chart runs the image `make image` builds, with the image's user.
func TestImageMatchesBuilder(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	r := render(t, c, nil)
	for _, w := range workloads(t, r) {
		repo, tag, _ := strings.Cut(w.c.Image, ":")
		if path.Base(repo) != image.Name || tag != image.Tag(c.Metadata.AppVersion) {
			t.Errorf("container %s: image %q, want %s:%s (the builder's name, the chart's appVersion as a tag)", w.c.Name, w.c.Image, image.Name, c.Metadata.AppVersion)
		}
	}
	sc := r.statefulSet(t).Spec.Template.Spec.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != image.UID || sc.FSGroup == nil || *sc.FSGroup != image.GID {
		t.Errorf("supernode pod security context %+v, want the image's pouch user %d and group %d (the volume's owner)", sc, image.UID, image.GID)
	}
}

// Container ports are the ports the flags make the daemons listen on; Services and probes
// name those ports; every dfdaemon lists every supernode by its stable name, at its port; the
// mirror set up for containerd is the dfdaemon's listener; each ConfigMap holds exactly the
// settings the container reads with --config.
func TestPortsAndAddressesAgree(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			r := render(t, c, v.values)
			sts, ds := r.statefulSet(t), r.daemonSet(t)
			ports := map[string]map[string]int32{} // container -> port name -> number
			for _, w := range workloads(t, r) {
				if len(w.pod.InitContainers) > 0 && w.c.Name == w.pod.InitContainers[0].Name {
					continue
				}
				a := settings(t, r, w)
				named := map[string]int32{}
				for _, p := range w.c.Ports {
					named[p.Name] = p.ContainerPort
				}
				ports[w.c.Name] = named
				if want := hostPort(t, a["listen"]); named["http"] != want {
					t.Errorf("%s: port http %d, but --listen=%s", w.c.Name, named["http"], a["listen"])
				}
				if want := multiaddrPort(t, a["p2p-listen"]); named["p2p"] != want {
					t.Errorf("%s: port p2p %d, but --p2p-listen=%s", w.c.Name, named["p2p"], a["p2p-listen"])
				}
				for _, p := range []*corev1.Probe{w.c.LivenessProbe, w.c.ReadinessProbe} {
					if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.String() != "http" {
						t.Errorf("%s: probe %+v, want an HTTP GET on port http", w.c.Name, p)
					}
				}
				if mount := mountPath(w.c, "data"); mount != a["data-dir"] {
					t.Errorf("%s: data volume at %q, but --data-dir=%s", w.c.Name, mount, a["data-dir"])
				}
			}
			for _, svc := range objectsOf[*corev1.Service](r) {
				target := ports["supernode"]
				if svc.Spec.Selector["app.kubernetes.io/component"] == "dfdaemon" {
					target = ports["dfdaemon"]
				}
				for _, p := range svc.Spec.Ports {
					if n, ok := target[p.TargetPort.String()]; !ok || n != p.Port {
						t.Errorf("Service %s port %s: %d → %s, which is no container port of that number", svc.Name, p.Name, p.Port, p.TargetPort.String())
					}
				}
			}
			for _, sm := range objectsOf[*monitoringv1.ServiceMonitor](r) {
				checkServiceMonitor(t, r, sm)
			}
			if r.service(sts.Spec.ServiceName) == nil || r.service(sts.Spec.ServiceName).Spec.ClusterIP != "None" {
				t.Errorf("StatefulSet's serviceName %q is no headless Service of the chart", sts.Spec.ServiceName)
			}

			dfArgs := settings(t, r, workload{"DaemonSet", ds.Spec.Template.Spec, ds.Spec.Template.Spec.Containers[0]})
			scheme := "http"
			if v.values["tls"] != nil {
				scheme = "https"
			}
			var want []string
			for i := range *sts.Spec.Replicas {
				want = append(want, fmt.Sprintf("%s://%s-%d.%s.%s.svc.cluster.local:%d", scheme, sts.Name, i, sts.Spec.ServiceName, namespace, ports["supernode"]["http"]))
			}
			if df, ok := v.values["dfdaemon"].(map[string]any); ok && df["supernodes"] != nil {
				want = nil // the values name them
				for _, u := range df["supernodes"].([]any) {
					want = append(want, u.(string))
				}
			}
			if got := dfArgs["supernode"]; got != strings.Join(want, ",") {
				t.Errorf("dfdaemon --supernode=%s, want every supernode: %s", got, strings.Join(want, ","))
			}
			if !ds.Spec.Template.Spec.HostNetwork || ds.Spec.Template.Spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
				t.Errorf("dfdaemon: hostNetwork %v, dnsPolicy %s; want the node's network with cluster DNS", ds.Spec.Template.Spec.HostNetwork, ds.Spec.Template.Spec.DNSPolicy)
			}
			if p2p := dfArgs["p2p-listen"]; strings.HasPrefix(p2p, "/ip4/127.") || strings.HasPrefix(p2p, "/ip6/::1/") {
				t.Errorf("dfdaemon --p2p-listen=%s: peers on other nodes cannot reach loopback", p2p)
			}
			init := ds.Spec.Template.Spec.InitContainers
			if len(init) != 1 {
				t.Fatalf("dfdaemon: %d init containers, want the mirror setup", len(init))
			}
			if got, want := args(t, init[0])["mirror"], fmt.Sprintf("http://127.0.0.1:%d", ports["dfdaemon"]["http"]); got != want {
				t.Errorf("mirror setup --mirror=%s, want the dfdaemon's listener %s", got, want)
			}
			if got := mountPath(init[0], "containerd-hosts"); got != args(t, init[0])["hosts-dir"] {
				t.Errorf("mirror setup writes --hosts-dir=%s, but the node's directory is mounted at %s", args(t, init[0])["hosts-dir"], got)
			}
		})
	}
}

// httpsClient trusts the CA in caFile (and speaks plain HTTP too).
func httpsClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// checkServiceMonitor checks that a ServiceMonitor selects Services of the chart that have
// each port it scrapes, and that the daemons behind them serve metrics there (the http port).
func checkServiceMonitor(t *testing.T, r rendered, sm *monitoringv1.ServiceMonitor) {
	t.Helper()
	var selected []*corev1.Service
	for _, svc := range objectsOf[*corev1.Service](r) {
		match := true
		for k, v := range sm.Spec.Selector.MatchLabels {
			match = match && svc.Labels[k] == v
		}
		if match {
			selected = append(selected, svc)
		}
	}
	if len(selected) == 0 {
		t.Errorf("ServiceMonitor %s selects no Service of the chart", sm.Name)
	}
	for _, svc := range selected {
		for _, ep := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port && p.TargetPort.String() == "http" }) {
				t.Errorf("ServiceMonitor %s scrapes port %q of Service %s, which has no such port onto the daemon's http port", sm.Name, ep.Port, svc.Name)
			}
			if ep.Path != "/metrics" {
				t.Errorf("ServiceMonitor %s scrapes %q; the daemons serve /metrics", sm.Name, ep.Path)
			}
		}
	}
}

func mountPath(c corev1.Container, volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

func hostPort(t *testing.T, hostport string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("listen address %q: %v", hostport, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("listen address %q: %v", hostport, err)
	}
	return int32(n)
}

var tcpPort = regexp.MustCompile(`/tcp/([0-9]+)`)

func multiaddrPort(t *testing.T, addr string) int32 {
	t.Helper()
	m := tcpPort.FindStringSubmatch(addr)
	if m == nil {
		t.Fatalf("multiaddr %q has no TCP port", addr)
	}
	n, _ := strconv.ParseInt(m[1], 10, 32)
	return int32(n)
}

// The daemons start with exactly the chart's config files and flags (only the addresses moved
// to free loopback ports, the data directory to a temporary one and the TLS Secret's files to
// generated ones, in a copy of the file) and answer 200 on every probe path, with the probe's
// scheme, and on /metrics; the init container's command writes containerd's hosts.toml
// pointing at the dfdaemon.
func TestDaemonsServeTheChart(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	for _, name := range []string{"default", "registries", "two-supernodes", "tls"} {
		t.Run(name, func(t *testing.T) {
			var vals map[string]any
			for _, v := range variants(t) {
				if v.name == name {
					vals = v.values
				}
			}
			r := render(t, c, vals)
			env := []string{"POUCH_SECRET=chart-test-secret", "POUCH_ADMIN_TOKEN=chart-test-token"}
			// The TLS Secret's files, for a supernode reached at 127.0.0.1.
			tlsFiles, err := tlsca.Make(t.TempDir(), "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			client, err := httpsClient(tlsFiles.CA)
			if err != nil {
				t.Fatal(err)
			}
			var dfHTTP string
			for _, w := range workloads(t, r) {
				bin, sub := program(w.c)
				if len(sub) > 0 {
					continue // the init container, run below against the started dfdaemon
				}
				text, _ := configFile(t, r, w)
				moved := map[string]string{
					// p2p-listen on every interface, as the chart has it (a dfdaemon whose supernode is
					// on another host refuses to announce loopback alone), any port.
					"listen": "127.0.0.1:0", "p2p-listen": "/ip4/0.0.0.0/tcp/0", "data-dir": t.TempDir(),
					"tls-cert": tlsFiles.Cert, "tls-key": tlsFiles.Key, "supernode-ca": tlsFiles.CA,
				}
				var lines []string
				for _, line := range strings.Split(text, "\n") {
					if k, _, ok := strings.Cut(line, ":"); ok && moved[k] != "" {
						line = k + ": " + moved[k]
					}
					lines = append(lines, line)
				}
				file := filepath.Join(t.TempDir(), w.c.Name+".yaml")
				if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
					t.Fatal(err)
				}
				var a []string
				for _, arg := range w.c.Args {
					if flagArg.FindStringSubmatch(arg)[1] == "config" {
						arg = "--config=" + file
					}
					a = append(a, arg)
				}
				p := deploytest.StartEnv(t, bin, filepath.Join(binDir, bin), env, a...)
				// The probes' paths and schemes, and the path the ServiceMonitors scrape.
				scheme := strings.ToLower(string(w.c.LivenessProbe.HTTPGet.Scheme))
				for _, path := range []string{w.c.LivenessProbe.HTTPGet.Path, w.c.ReadinessProbe.HTTPGet.Path, "/metrics"} {
					u := url.URL{Scheme: scheme, Host: p.HTTP, Path: path}
					resp, err := client.Get(u.String())
					if err != nil {
						t.Fatalf("%s GET %s: %v", bin, u.Path, err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("%s GET %s: %s, want 200", bin, u.Path, resp.Status)
					}
				}
				if bin == "dfdaemon" {
					dfHTTP = p.HTTP
				}
			}

			init := r.daemonSet(t).Spec.Template.Spec.InitContainers[0]
			hosts := t.TempDir()
			var a []string
			for _, arg := range init.Args {
				switch m := flagArg.FindStringSubmatch(arg); m[1] {
				case "hosts-dir":
					arg = "--hosts-dir=" + hosts
				case "mirror":
					arg = "--mirror=http://" + dfHTTP
				}
				a = append(a, arg)
			}
			bin, sub := program(init)
			if out, err := exec.Command(filepath.Join(binDir, bin), slices.Concat(sub, a)...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(init.Command, " "), err, out)
			}
			registries := []string{"_default"}
			if regs := args(t, init); regs["registry"] != "" {
				registries = nil
				for _, arg := range init.Args {
					if m := flagArg.FindStringSubmatch(arg); m[1] == "registry" {
						registries = append(registries, strings.TrimPrefix(strings.TrimPrefix(m[2], "http://"), "https://"))
					}
				}
			}
			for _, reg := range registries {
				data, err := os.ReadFile(filepath.Join(hosts, reg, "hosts.toml"))
				if err != nil {
					t.Errorf("mirror setup wrote no hosts.toml for %s: %v", reg, err)
					continue
				}
				if !strings.Contains(string(data), `"http://`+dfHTTP+`"`) {
					t.Errorf("%s/hosts.toml does not name the dfdaemon http://%s:\n%s", reg, dfHTTP, data)
				}
			}
		})
	}
}
