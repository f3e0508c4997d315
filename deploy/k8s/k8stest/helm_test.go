package k8stest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/cli"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pouch-p2p/pouch/deploy/k8s/k8stest/node"
)

// newHelm is helm's action configuration for namespace on the node, as `helm --kubeconfig`
// would build it (releases stored as Secrets).
func newHelm(t *testing.T, n *node.Node, namespace string) *action.Configuration {
	t.Helper()
	settings := cli.New()
	settings.KubeConfig = n.Kubeconfig
	settings.SetNamespace(namespace)
	cfg := new(action.Configuration)
	if err := cfg.Init(settings.RESTClientGetter(), namespace, "secret", t.Logf); err != nil {
		t.Fatalf("helm: %v", err)
	}
	return cfg
}

// checkValues fails the test when vals sets a key the chart's values.yaml does not have: helm
// would ignore it silently, and the test would then check a chart configured otherwise than it
// believes.
func checkValues(t *testing.T, defaults, vals map[string]any, prefix string) {
	t.Helper()
	for k, v := range vals {
		d, ok := defaults[k]
		if !ok {
			t.Fatalf("the chart has no value %s%s: chartValues must follow deploy/helm/pouch/values.yaml", prefix, k)
		}
		sub, isMap := v.(map[string]any)
		dsub, dIsMap := d.(map[string]any)
		if isMap && dIsMap {
			checkValues(t, dsub, sub, prefix+k+".")
		}
	}
}

// installChart installs the chart as release in namespace (created), then waits for every
// workload in it to be ready through its probes.
func installChart(ctx context.Context, t *testing.T, n *node.Node, cfg *action.Configuration, ch *chart.Chart, release, namespace string, vals map[string]any) {
	t.Helper()
	checkValues(t, ch.Values, vals, "")
	inst := action.NewInstall(cfg)
	inst.ReleaseName, inst.Namespace, inst.CreateNamespace = release, namespace, true
	inst.Timeout = 2 * time.Minute
	rel, err := inst.RunWithContext(ctx, ch, vals)
	if err != nil {
		t.Fatalf("helm install %s: %v", release, err)
	}
	t.Logf("installed %s %s (chart %s)", rel.Name, rel.Info.Status, ch.Metadata.Version)
	waitWorkloads(ctx, t, n, namespace)
}

// upgradeChart upgrades the release with vals and waits for the rollout.
func upgradeChart(ctx context.Context, t *testing.T, n *node.Node, cfg *action.Configuration, ch *chart.Chart, release, namespace string, vals map[string]any) {
	t.Helper()
	checkValues(t, ch.Values, vals, "")
	up := action.NewUpgrade(cfg)
	up.Namespace, up.Timeout = namespace, 2*time.Minute
	rel, err := up.RunWithContext(ctx, release, ch, vals)
	if err != nil {
		t.Fatalf("helm upgrade %s: %v", release, err)
	}
	t.Logf("upgraded %s to revision %d", rel.Name, rel.Version)
	waitWorkloads(ctx, t, n, namespace)
}

// uninstallChart uninstalls the release and waits until no pod is left in namespace.
func uninstallChart(ctx context.Context, t *testing.T, n *node.Node, cfg *action.Configuration, release, namespace string) {
	t.Helper()
	un := action.NewUninstall(cfg)
	un.Wait, un.Timeout = true, 2*time.Minute
	if _, err := un.Run(release); err != nil {
		t.Fatalf("helm uninstall %s: %v", release, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		pods, err := n.Client.CoreV1().Pods(namespace).List(wctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			return
		}
		select {
		case <-wctx.Done():
			t.Fatalf("pods of %s still in %s after uninstall: %v", release, namespace, podNames(pods))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitWorkloads waits until every DaemonSet, StatefulSet and Deployment in namespace has all its
// pods updated and ready, and every pod is Ready. A failure describes each pod that is not.
func waitWorkloads(ctx context.Context, t *testing.T, n *node.Node, namespace string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	var why string
	for {
		why = workloadsNotReady(wctx, n, namespace)
		if why == "" {
			return
		}
		select {
		case <-wctx.Done():
			var b strings.Builder
			pods, _ := n.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
			for _, p := range pods.Items {
				if !podReady(&p) {
					b.WriteString(n.DescribePod(ctx, namespace, p.Name) + "\n")
				}
			}
			t.Fatalf("workloads in %s not ready: %s\n%s", namespace, why, b.String())
		case <-time.After(time.Second):
		}
	}
}

// workloadsNotReady says what is not ready yet in namespace, "" when everything is.
func workloadsNotReady(ctx context.Context, n *node.Node, namespace string) string {
	apps := n.Client.AppsV1()
	dss, err := apps.DaemonSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	for _, d := range dss.Items {
		s := d.Status
		if s.ObservedGeneration < d.Generation || s.DesiredNumberScheduled == 0 || s.UpdatedNumberScheduled < s.DesiredNumberScheduled || s.NumberReady < s.DesiredNumberScheduled {
			return fmt.Sprintf("DaemonSet %s: %d/%d updated, %d ready", d.Name, s.UpdatedNumberScheduled, s.DesiredNumberScheduled, s.NumberReady)
		}
	}
	sts, err := apps.StatefulSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	for _, st := range sts.Items {
		if why := rolledOut("StatefulSet", st.ObjectMeta, st.Spec.Replicas, st.Status.ObservedGeneration, st.Status.UpdatedReplicas, st.Status.ReadyReplicas); why != "" {
			return why
		}
	}
	deps, err := apps.Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	for _, d := range deps.Items {
		if why := rolledOut("Deployment", d.ObjectMeta, d.Spec.Replicas, d.Status.ObservedGeneration, d.Status.UpdatedReplicas, d.Status.ReadyReplicas); why != "" {
			return why
		}
	}
	pods, err := n.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	if len(pods.Items) == 0 {
		return "no pod yet"
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && !podReady(&p) {
			return fmt.Sprintf("pod %s %s, not ready", p.Name, p.Status.Phase)
		}
	}
	return ""
}

// rolledOut says what a StatefulSet or Deployment still waits for, "" when its last generation
// is rolled out and every replica is ready.
func rolledOut(kind string, meta metav1.ObjectMeta, replicas *int32, observed int64, updated, ready int32) string {
	want := int32(1)
	if replicas != nil {
		want = *replicas
	}
	if observed < meta.Generation || updated < want || ready < want {
		return fmt.Sprintf("%s %s: %d/%d updated, %d ready", kind, meta.Name, updated, want, ready)
	}
	return ""
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podNames(pods *corev1.PodList) []string {
	if pods == nil {
		return nil
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	return names
}
