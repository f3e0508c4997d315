package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// WaitPod waits until the pod reaches phase: Running with every container ready, or Succeeded.
// A pod that fails meanwhile ends the wait at once.
func (n *Node) WaitPod(ctx context.Context, namespace, name string, phase corev1.PodPhase) (*corev1.Pod, error) {
	var pod *corev1.Pod
	err := n.waitFor(ctx, "", fmt.Sprintf("pod %s/%s %s", namespace, name, phase), func(ctx context.Context) error {
		p, err := n.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pod = p
		if p.Status.Phase == corev1.PodFailed && phase != corev1.PodFailed {
			return stopWaiting{fmt.Errorf("pod failed: %s %s", p.Status.Reason, p.Status.Message)}
		}
		if p.Status.Phase != phase {
			return fmt.Errorf("phase %s: %w", p.Status.Phase, errNotYet)
		}
		if phase == corev1.PodRunning {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
					return fmt.Errorf("running, not ready: %s: %w", c.Message, errNotYet)
				}
			}
		}
		return nil
	})
	return pod, err
}

// stopWaiting is a check's error that ends waitFor at once: waiting longer cannot help.
type stopWaiting struct{ error }

func (e stopWaiting) Unwrap() error { return e.error }

// DescribePod is what a person would look at when a pod misbehaves: its phase and conditions,
// each container's state, the pod's events, each container's log, then the ends of the
// kubelet's and containerd's logs.
func (n *Node) DescribePod(ctx context.Context, namespace, name string) string {
	var b strings.Builder
	pod, err := n.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		fmt.Fprintf(&b, "get pod: %v\n", err)
	} else {
		fmt.Fprintf(&b, "pod %s/%s on %q: phase %s %s %s\n", namespace, name, pod.Spec.NodeName, pod.Status.Phase, pod.Status.Reason, pod.Status.Message)
		for _, c := range pod.Status.Conditions {
			fmt.Fprintf(&b, "  condition %s=%s %s %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
		for _, cs := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
			fmt.Fprintf(&b, "  container %s: ready=%v restarts=%d %s\n", cs.Name, cs.Ready, cs.RestartCount, containerState(cs.State))
		}
	}
	events, err := n.Client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String(),
	})
	if err != nil {
		fmt.Fprintf(&b, "events: %v\n", err)
	} else {
		sort.Slice(events.Items, func(i, j int) bool { return events.Items[i].LastTimestamp.Before(&events.Items[j].LastTimestamp) })
		for _, e := range events.Items {
			fmt.Fprintf(&b, "  event %s %s (x%d): %s\n", e.Type, e.Reason, e.Count, e.Message)
		}
	}
	if pod != nil {
		for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
			out, err := n.ContainerLog(pod, c.Name)
			if err != nil {
				out = err.Error()
			}
			fmt.Fprintf(&b, "--- log of container %s ---\n%s\n", c.Name, out)
		}
	}
	b.WriteString(n.Tail(Kubelet) + "\n" + n.Tail(Containerd))
	return b.String()
}

func containerState(s corev1.ContainerState) string {
	switch {
	case s.Waiting != nil:
		return fmt.Sprintf("waiting: %s %s", s.Waiting.Reason, s.Waiting.Message)
	case s.Running != nil:
		return "running since " + s.Running.StartedAt.String()
	case s.Terminated != nil:
		return fmt.Sprintf("terminated: exit %d %s %s", s.Terminated.ExitCode, s.Terminated.Reason, s.Terminated.Message)
	}
	return "no state"
}

// ContainerLog is what a container of pod printed (stdout and stderr, every restart), read from
// the files the kubelet has containerd write: the logs API cannot be used, since the API server
// refuses to proxy to a kubelet on a loopback node IP (it answers 500).
func (n *Node) ContainerLog(pod *corev1.Pod, container string) (string, error) {
	dir := filepath.Join(n.Dir, "pod-logs", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), container)
	files, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("no log of container %s in %s", container, dir)
	}
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		b.WriteString(parseCRILog(string(data)))
	}
	return b.String(), nil
}

// parseCRILog joins the messages of a CRI log file: each line is "<time> <stream> <P|F> <text>",
// P a part of a line the next one continues, F the last part of a line.
func parseCRILog(data string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) < 4 {
			continue
		}
		b.WriteString(f[3])
		if f[2] == "F" {
			b.WriteByte('\n')
		}
	}
	return b.String()
}
