// Package k8stest proves Pouch on a real single-node Kubernetes (issue 14): `make test-k8s`
// builds the Kubernetes binaries (deploy/k8s/build-kube.sh, cached outside the repository),
// points POUCH_K8S_BIN at them and runs this package as root. The node comes from package node;
// the registry and images from the main module's test fixtures.
package k8stest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pouch-p2p/pouch/deploy/k8s/k8stest/node"
	"github.com/pouch-p2p/pouch/internal/fixture/image"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
)

// binEnv names the directory holding kube-apiserver, kube-controller-manager, kube-scheduler
// and kubelet.
const binEnv = "POUCH_K8S_BIN"

// TestNode brings up the node, proves it, runs the chart steps on it, tears it down and checks
// that nothing of it is left on the machine.
func TestNode(t *testing.T) {
	if testing.Short() {
		t.Skip("a real Kubernetes node takes minutes: not with -short")
	}
	bin := os.Getenv(binEnv)
	if bin == "" {
		t.Skip(binEnv + " is not set: `make test-k8s` builds the Kubernetes binaries (deploy/k8s/build-kube.sh) and sets it")
	}
	// Asked for explicitly: a missing package is a failure, not a skip.
	if why := node.Missing(bin); why != "" {
		t.Fatal(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	start := time.Now()
	bctx, bcancel := context.WithTimeout(ctx, 5*time.Minute)
	n, err := node.Start(bctx, node.Options{BinDir: bin, LogDir: t.ArtifactDir(), Logf: t.Logf})
	bcancel()
	if err != nil {
		t.Fatalf("bring-up: %v", err)
	}
	t.Cleanup(func() {
		// Leftovers must see a running node, or its empty answer after Stop proves nothing.
		if running := strings.Join(n.Leftovers(), "\n"); !strings.Contains(running, "process ") || !strings.Contains(running, "work directory ") {
			t.Errorf("Leftovers does not see the running node:\n%s", running)
		}
		t0 := time.Now()
		if err := n.Stop(); err != nil {
			t.Errorf("teardown: %v", err)
		}
		t.Logf("teardown took %v; component logs in %s", time.Since(t0).Round(time.Millisecond), t.ArtifactDir())
		if left := n.Leftovers(); len(left) > 0 {
			t.Errorf("the node left on this machine:\n  %s", strings.Join(left, "\n  "))
		}
	})
	t.Logf("control plane, containerd and kubelet answered in %v", time.Since(start).Round(time.Millisecond))

	if !t.Run("Ready", func(t *testing.T) {
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Minute)
		defer rcancel()
		if err := n.WaitReady(rctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("node Ready %v after start", time.Since(start).Round(time.Millisecond))
	}) {
		t.FailNow()
	}

	t.Run("StrictFieldValidation", func(t *testing.T) { testStrictFieldValidation(ctx, t, n) })

	origin, err := registry.Start(ctx, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { origin.Close() })
	t.Run("PodFromLocalRegistry", func(t *testing.T) { testPodFromLocalRegistry(ctx, t, n, origin) })

	t.Run("Chart", func(t *testing.T) { testChart(ctx, t, n, origin) })
}

// testStrictFieldValidation sends a pod with a misspelt field as a dry run with strict field
// validation: the API server must refuse it naming the field's path, and accept the same pod
// spelt right, storing neither.
func testStrictFieldValidation(ctx context.Context, t *testing.T, n *node.Node) {
	pod := func(field string) string {
		return fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"strict"},
			"spec":{"containers":[{"name":"c","image":"example.invalid/none:1",%q:"IfNotPresent"}]}}`, field)
	}
	post := func(body string) error {
		return n.Client.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").
			Param("dryRun", "All").Param("fieldValidation", "Strict").
			SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(ctx).Error()
	}
	err := post(pod("imagePullPolicyy"))
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.containers[0].imagePullPolicyy"`) {
		t.Fatalf("a misspelt field: want 400 naming spec.containers[0].imagePullPolicyy, got %v", err)
	}
	t.Logf("refused: %v", err)
	if err := post(pod("imagePullPolicy")); err != nil {
		t.Fatalf("the same pod spelt right, dry run: %v", err)
	}
	if _, err := n.Client.CoreV1().Pods("default").Get(ctx, "strict", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a dry run stored the pod: %v", err)
	}
}

// testPodFromLocalRegistry runs a pod whose image exists only in the plain-HTTP origin registry:
// containerd pulls it through its hosts directory, the container prints its line, and the line is
// read from the pod's log file (the logs API cannot reach a kubelet on a loopback node IP).
func testPodFromLocalRegistry(ctx context.Context, t *testing.T, n *node.Node, origin *registry.Registry) {
	img := image.PushBusybox(t, origin.Host, "pouch-test/hello", "1")
	if err := n.AllowRegistry(origin.Host); err != nil {
		t.Fatal(err)
	}
	ref := origin.Host + "/pouch-test/hello:1"
	pod := runPod(ctx, t, n, busyboxPod("hello", ref), corev1.PodSucceeded)
	out, err := n.ContainerLog(pod, "main")
	if err != nil {
		t.Fatal(err)
	}
	if out != image.BusyboxOutput {
		t.Fatalf("pod printed %q, want %q", out, image.BusyboxOutput)
	}
	extra := img.Layers[len(img.Layers)-1]
	if got := origin.BlobBytes(extra.Digest); got != int64(len(extra.Data)) {
		t.Fatalf("the origin served %d bytes of layer %s, want %d: the image came from somewhere else", got, extra.Digest, len(extra.Data))
	}
	t.Logf("pod %s ran %s and printed %q", pod.Name, ref, out)
}

// runPod creates pod and waits until it reaches phase (Running, and then Ready, or Succeeded).
// A failure carries the pod's status, its events, its containers' logs and the kubelet's and
// containerd's.
func runPod(ctx context.Context, t *testing.T, n *node.Node, pod *corev1.Pod, phase corev1.PodPhase) *corev1.Pod {
	t.Helper()
	created, err := n.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	got, err := n.WaitPod(wctx, created.Namespace, created.Name, phase)
	if err != nil {
		t.Fatalf("pod %s/%s: %v\n%s", pod.Namespace, pod.Name, err, n.DescribePod(ctx, pod.Namespace, pod.Name))
	}
	return got
}
