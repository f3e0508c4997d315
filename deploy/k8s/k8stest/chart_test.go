package k8stest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pouch-p2p/pouch/deploy/k8s/k8stest/node"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
	"github.com/pouch-p2p/pouch/internal/scrape"
)

// chartDir is the Helm chart of issue 10, relative to this package.
const chartDir = "../../helm/pouch"

// imageLayoutEnv names the OCI image layout directory `make image` writes: the Pouch image the
// chart's pods run, pushed by the test to the origin registry.
const imageLayoutEnv = "POUCH_IMAGE_LAYOUT"

// The release the chart steps install.
const (
	release   = "pouch"
	namespace = "pouch-system"
)

// dfdaemonMetrics is where the dfdaemon of the node (host network) serves its metrics; its port
// is the chart's default for the dfdaemon's API.
const dfdaemonMetrics = "http://127.0.0.1:65001/metrics"

// chartEnv is what the chart steps share.
type chartEnv struct {
	n          *node.Node
	origin     *registry.Registry
	chart      *chart.Chart
	pouchImage string // repository:tag of the Pouch image in the origin
	adminToken string
}

// chartValues are the values the test installs the chart with: the Pouch image from the origin,
// the node's containerd hosts directory for the init container's hosts.toml, the origin as a
// plain-HTTP upstream of the mirror, a small volume for the supernode and an admin token for
// preheats. Their keys follow deploy/helm/pouch/values.yaml; checkValues fails on any the chart
// does not have.
func (e *chartEnv) chartValues() map[string]any {
	i := strings.LastIndex(e.pouchImage, ":")
	repo, tag := e.pouchImage[:i], e.pouchImage[i+1:]
	return map[string]any{
		"image": map[string]any{"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"},
		// The node has no cluster DNS and the origin listens on its loopback: the supernode
		// runs in the node's network, and the dfdaemon is given its address. Its volume is a
		// hostPath, which ignores fsGroup: the supernode runs as root to write it.
		"supernode": map[string]any{
			"hostNetwork":        true,
			"podSecurityContext": map[string]any{"runAsNonRoot": false, "runAsUser": 0, "runAsGroup": 0},
			"persistence":        map[string]any{"size": "1Gi"},
			"config":             map[string]any{"allow-networks": "127.0.0.0/8", "registry-insecure": []any{e.origin.Host}},
		},
		"dfdaemon": map[string]any{
			"supernodes": []any{"http://127.0.0.1:8002"},
			"mirror":     map[string]any{"hostsDir": e.n.HostsDir},
			"config":     map[string]any{"registry-insecure": []any{e.origin.Host}, "allow-networks": "127.0.0.0/8"},
		},
		"secrets": map[string]any{"adminToken": e.adminToken},
	}
}

// upgradedValues are chartValues with one changed value that changes the dfdaemon's pod template,
// so the upgrade rolls the DaemonSet.
func (e *chartEnv) upgradedValues() map[string]any {
	v := e.chartValues()
	v["dfdaemon"].(map[string]any)["config"].(map[string]any)["log-level"] = "debug"
	return v
}

// testChart runs the chart's steps of issue 14 in order on the node; each needs the previous.
func testChart(ctx context.Context, t *testing.T, n *node.Node, origin *registry.Registry) {
	if _, err := os.Stat(filepath.Join(chartDir, "Chart.yaml")); errors.Is(err, fs.ErrNotExist) {
		t.Skip("chart not in this tree yet: deploy/helm/pouch/Chart.yaml is missing")
	}
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart %s: %v", chartDir, err)
	}
	e := &chartEnv{n: n, origin: origin, chart: ch, adminToken: randomToken()}
	e.pouchImage = pushPouchImage(ctx, t, origin)
	if err := n.HostPathVolume(ctx, "pouch-supernode-0", "1Gi"); err != nil {
		t.Fatal(err)
	}
	helm := newHelm(t, n, namespace)
	steps := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Install", func(t *testing.T) { installChart(ctx, t, n, helm, ch, release, namespace, e.chartValues()) }},
		{"WorkloadThroughMirror", func(t *testing.T) { e.testWorkloadThroughMirror(ctx, t) }},
		{"Preheat", func(t *testing.T) { e.testPreheat(ctx, t) }},
		{"Upgrade", func(t *testing.T) { upgradeChart(ctx, t, n, helm, ch, release, namespace, e.upgradedValues()) }},
		{"Uninstall", func(t *testing.T) { uninstallChart(ctx, t, n, helm, release, namespace) }},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.FailNow()
		}
	}
}

// pushPouchImage pushes the image `make image` built (an OCI layout) to the origin and returns
// its reference there.
func pushPouchImage(ctx context.Context, t *testing.T, origin *registry.Registry) string {
	t.Helper()
	dir := os.Getenv(imageLayoutEnv)
	if dir == "" {
		t.Skip(imageLayoutEnv + " is not set: the chart's pods need the Pouch image, an OCI layout written by `make image`")
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("%s=%s: %v", imageLayoutEnv, dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("%s=%s: want one image in the layout, got %v (%v)", imageLayoutEnv, dir, len(m.Manifests), err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	ref := origin.Host + "/pouch/pouch:test"
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push the Pouch image to %s: %v", ref, err)
	}
	return ref
}

// testWorkloadThroughMirror runs a pod whose image is only in the origin once the node's
// containerd is left with the chart's hosts.toml alone: containerd pulls through the dfdaemon
// mirror, so the origin serves each layer exactly once (to the seed) and the dfdaemon counts
// the layer's bytes as come from a peer, not from the origin.
func (e *chartEnv) testWorkloadThroughMirror(ctx context.Context, t *testing.T) {
	written, _ := filepath.Glob(filepath.Join(e.n.HostsDir, "*", "hosts.toml"))
	t.Logf("hosts.toml files on the node: %v", written)
	if _, err := os.Stat(filepath.Join(e.n.HostsDir, "_default", "hosts.toml")); err != nil {
		t.Fatalf("the chart's init container wrote no _default/hosts.toml into the node's hosts directory %s: %v", e.n.HostsDir, err)
	}
	// The test's own entry for the origin would win over _default: containerd must now find the
	// origin through the mirror only.
	if err := e.n.ForgetRegistry(e.origin.Host); err != nil {
		t.Fatal(err)
	}
	img, err := image.Busybox(1, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Push(ctx, e.origin.URL, "pouch-test/through-mirror", "1", "", ""); err != nil {
		t.Fatal(err)
	}
	before := scrapeOrFail(ctx, t, dfdaemonMetrics)
	pod := runPod(ctx, t, e.n, busyboxPod("through-mirror", e.origin.Host+"/pouch-test/through-mirror:1"), corev1.PodSucceeded)
	if out, err := e.n.ContainerLog(pod, "main"); err != nil || out != image.BusyboxOutput {
		t.Fatalf("pod printed %q (%v), want %q", out, err, image.BusyboxOutput)
	}
	// Layer 0 is busybox, already on the node from the earlier pod's image: containerd does
	// not fetch it again. The random layer is new.
	for _, l := range img.Layers[1:] {
		if got := e.origin.BlobBytes(l.Digest); got != int64(len(l.Data)) {
			t.Errorf("the origin served %d bytes of layer %s, want %d: once, to the seed", got, l.Digest, len(l.Data))
		}
	}
	after := scrapeOrFail(ctx, t, dfdaemonMetrics)
	const m = "pouch_dfdaemon_download_bytes_total"
	fromOrigin := after.Sum(m, scrape.Labels{"source": "origin"}) - before.Sum(m, scrape.Labels{"source": "origin"})
	fromP2P := after.Sum(m, nil) - before.Sum(m, nil) - fromOrigin
	if fromOrigin != 0 || fromP2P < float64(len(img.Layers[1].Data)) {
		t.Errorf("dfdaemon counted %v bytes from peers and %v from the origin, want the %d bytes of layer %s from peers only",
			fromP2P, fromOrigin, len(img.Layers[1].Data), img.Layers[1].Digest)
	}
}

// testPreheat asks the supernode, through its Service's pod, to preheat a second image, waits
// until the seed holds every layer, then shows a pod of that image starting with no further
// byte fetched from the origin.
func (e *chartEnv) testPreheat(ctx context.Context, t *testing.T) {
	img, err := image.Busybox(1, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Push(ctx, e.origin.URL, "pouch-test/preheated", "1", "", ""); err != nil {
		t.Fatal(err)
	}
	ref := e.origin.Host + "/pouch-test/preheated:1"
	api := supernodeURL(ctx, t, e.n)
	body, _ := json.Marshal(map[string]any{"type": "image", "url": ref, "scope": "seed"})
	call := func(method, url string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	status, data := call(http.MethodPost, api+"/api/v1/preheats", body)
	if status != http.StatusAccepted {
		t.Fatalf("preheat %s: %d %s", ref, status, data)
	}
	var job struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(data, &job); err != nil || job.ID == "" {
		t.Fatalf("preheat %s: answer %s: %v", ref, data, err)
	}
	for deadline := time.Now().Add(2 * time.Minute); job.State != "SUCCESS"; time.Sleep(200 * time.Millisecond) {
		if job.State == "FAILED" {
			t.Fatalf("preheat job %s of %s failed: %s", job.ID, ref, job.Error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("preheat job %s of %s still %s after 2m", job.ID, ref, job.State)
		}
		status, data = call(http.MethodGet, api+"/api/v1/preheats/"+job.ID, nil)
		if status != http.StatusOK || json.Unmarshal(data, &job) != nil {
			t.Fatalf("preheat job %s: %d %s", job.ID, status, data)
		}
	}
	for _, l := range img.Blobs() {
		if got := e.origin.BlobBytes(l.Digest); got < int64(len(l.Data)) {
			t.Errorf("preheat SUCCESS, but the origin sent %d of %d bytes of %s", got, len(l.Data), l.Digest)
		}
	}
	served := e.origin.TotalBlobBytes()
	pod := runPod(ctx, t, e.n, busyboxPod("preheated", ref), corev1.PodSucceeded)
	if out, err := e.n.ContainerLog(pod, "main"); err != nil || out != image.BusyboxOutput {
		t.Fatalf("pod printed %q (%v), want %q", out, err, image.BusyboxOutput)
	}
	if got := e.origin.TotalBlobBytes() - served; got != 0 {
		t.Errorf("the pod of the preheated image made the origin serve %d more blob bytes, want 0", got)
	}
}

// supernodeURL is the supernode's API at its pod's address, found through its Service's
// endpoints: the node has no kube-proxy to route the Service's cluster IP, but the host reaches
// pod addresses over the CNI bridge.
func supernodeURL(ctx context.Context, t *testing.T, n *node.Node) string {
	t.Helper()
	svcs, err := n.Client.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs.Items {
		if !strings.Contains(s.Name, "supernode") || len(s.Spec.Ports) == 0 {
			continue
		}
		pods, err := n.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: s.Spec.Selector})})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("no supernode pod behind Service %s: %v", s.Name, err)
		}
		pod, target := pods.Items[0], s.Spec.Ports[0].TargetPort
		ip := pod.Status.PodIP
		if ip == "" && pod.Spec.HostNetwork {
			ip = "127.0.0.1" // the node's network, and this node's IP is loopback (it has no pod IP)
		}
		port := target.IntValue()
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == target.StrVal {
					port = int(p.ContainerPort) // a named target port
				}
			}
		}
		if ip == "" || port == 0 {
			t.Fatalf("supernode pod %s behind Service %s: no address (%q) or port (%s)", pod.Name, s.Name, ip, target.String())
		}
		return fmt.Sprintf("http://%s:%d", ip, port)
	}
	t.Fatalf("no supernode Service in %s", namespace)
	return ""
}

func busyboxPod(name, ref string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "main", Image: ref, ImagePullPolicy: corev1.PullAlways}},
		},
	}
}

func scrapeOrFail(ctx context.Context, t *testing.T, url string) scrape.Families {
	t.Helper()
	f, err := scrape.Get(ctx, url)
	if err != nil {
		t.Fatalf("dfdaemon metrics: %v", err)
	}
	return f
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
