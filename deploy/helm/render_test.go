// Package helm checks the chart in pouch/: helm lint, helm template for the default values and
// the variants in testdata/, every rendered object decoded strictly into the Kubernetes API
// types, and the chart held against the binaries it runs (chart_test.go).
package helm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "pouch"
	releaseName = "edge" // fullname edge-pouch: the names carry both
	namespace   = "pouch-system"
)

// variant is a values file of testdata/ ("" for the chart's defaults).
type variant struct {
	name   string
	values map[string]any
}

func variants(t *testing.T) []variant {
	t.Helper()
	out := []variant{{name: "default", values: map[string]any{}}}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files in testdata/: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var vals map[string]any
		if err := yaml.UnmarshalStrict(data, &vals); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, variant{name: strings.TrimSuffix(filepath.Base(f), ".yaml"), values: vals})
	}
	return out
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rendered is one `helm template` output, decoded.
type rendered struct {
	objects []runtime.Object
	notes   string
}

// decoder decodes YAML into the registered Go type of its apiVersion and kind, strictly: an
// unknown or duplicated field is an error, as with the API server's fieldValidation=Strict.
var decoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := monitoringv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

// kubeVersion is the Kubernetes of the API types the objects are decoded into (k8s.io/api).
var kubeVersion = func() *chartutil.KubeVersion {
	v, err := chartutil.ParseKubeVersion("v1.37.2")
	if err != nil {
		panic(err)
	}
	return v
}()

// template is `helm template`: an install, dry run, client only.
func template(c *chart.Chart, vals map[string]any) (*release.Release, error) {
	inst := action.NewInstall(&action.Configuration{})
	inst.DryRun, inst.ClientOnly, inst.Replace = true, true, true
	inst.ReleaseName, inst.Namespace, inst.KubeVersion = releaseName, namespace, kubeVersion
	return inst.Run(c, vals)
}

// render runs `helm template` and decodes every object.
func render(t *testing.T, c *chart.Chart, vals map[string]any) rendered {
	t.Helper()
	rel, err := template(c, vals)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	var out rendered
	out.notes = rel.Info.Notes
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(manifests))
	for k := range manifests {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		doc := manifests[k]
		obj, gvk, err := decoder.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("decoding rendered object strictly: %v\n%s", err, doc)
		}
		if gvk.Kind == "" {
			t.Fatalf("object without a kind:\n%s", doc)
		}
		out.objects = append(out.objects, obj)
	}
	if len(rel.Hooks) != 0 {
		t.Errorf("the chart has %d hooks; it is meant to have none", len(rel.Hooks))
	}
	return out
}

// Accessors for the objects a test looks at.

func objectsOf[T runtime.Object](r rendered) []T {
	var out []T
	for _, o := range r.objects {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func one[T runtime.Object](t *testing.T, r rendered) T {
	t.Helper()
	objs := objectsOf[T](r)
	if len(objs) != 1 {
		var zero T
		t.Fatalf("%d objects of type %T, want 1", len(objs), zero)
	}
	return objs[0]
}

func (r rendered) statefulSet(t *testing.T) *appsv1.StatefulSet {
	return one[*appsv1.StatefulSet](t, r)
}
func (r rendered) daemonSet(t *testing.T) *appsv1.DaemonSet { return one[*appsv1.DaemonSet](t, r) }

func (r rendered) service(name string) *corev1.Service {
	for _, s := range objectsOf[*corev1.Service](r) {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (r rendered) configMap(name string) *corev1.ConfigMap {
	for _, c := range objectsOf[*corev1.ConfigMap](r) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// helm lint, strict (warnings are failures), for every variant.
func TestLint(t *testing.T) {
	t.Parallel()
	for _, v := range variants(t) {
		lint := action.NewLint()
		lint.Strict = true
		lint.Namespace, lint.KubeVersion = namespace, kubeVersion
		res := lint.Run([]string{chartDir}, v.values)
		for _, m := range res.Messages {
			// INFO is advice ("icon is recommended": the project has no icon to point at).
			if m.Severity > support.InfoSev {
				t.Errorf("%s: helm lint: %s", v.name, m)
			}
		}
		for _, err := range res.Errors {
			t.Errorf("%s: helm lint: %v", v.name, err)
		}
	}
}

// The image tag defaults to the chart's appVersion; image.tag wins.
func TestImageTag(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	img := render(t, c, nil).statefulSet(t).Spec.Template.Spec.Containers[0].Image
	if want := "pouch:" + c.Metadata.AppVersion; img != want {
		t.Errorf("default image %q, want %q", img, want)
	}
	img = render(t, c, map[string]any{"image": map[string]any{"repository": "registry.internal:5000/pouch", "tag": "v9"}}).daemonSet(t).Spec.Template.Spec.Containers[0].Image
	if img != "registry.internal:5000/pouch:v9" {
		t.Errorf("image with repository and tag set: %q", img)
	}
}

// A port of 0 (any free port) cannot be declared or probed: the chart refuses it by name.
func TestRefusesPortZero(t *testing.T) {
	t.Parallel()
	_, err := template(loadChart(t), map[string]any{"dfdaemon": map[string]any{"config": map[string]any{"p2p-listen": "/ip4/0.0.0.0/tcp/0"}}})
	if err == nil || !strings.Contains(err.Error(), "fixed TCP port") {
		t.Errorf("p2p-listen on port 0: %v; want the chart to refuse it", err)
	}
}
