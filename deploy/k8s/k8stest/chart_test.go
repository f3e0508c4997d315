package k8stest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/pouch-p2p/pouch/deploy/k8s/k8stest/node"
	"github.com/pouch-p2p/pouch/internal/fixture/registry"
)

// chartDir is the Helm chart of issue 10, relative to this package.
const chartDir = "../../helm/pouch"

func testChart(ctx context.Context, t *testing.T, n *node.Node, origin *registry.Registry) {
	if _, err := os.Stat(filepath.Join(chartDir, "Chart.yaml")); errors.Is(err, fs.ErrNotExist) {
		t.Skip("chart not in this tree yet: deploy/helm/pouch/Chart.yaml is missing")
	}
}
