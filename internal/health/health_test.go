package health_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pouch-p2p/pouch/internal/health"
)

func get(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

// /readyz answers 200 while every check passes and 503 naming the failing one otherwise;
// /healthz answers 200 whatever the checks say.
func TestReadyNamesTheFailingCheck(t *testing.T) {
	t.Parallel()
	var supernode error
	var checks health.Checks
	checks.Add(
		health.Check{Name: "store", Run: func(context.Context) error { return nil }},
		health.Check{Name: "supernode", Run: func(context.Context) error { return supernode }},
	)
	if code, body := get(t, checks.Ready()); code != http.StatusOK || body != "[+]store ok\n[+]supernode ok\nready\n" {
		t.Errorf("all passing: %d %q", code, body)
	}
	supernode = errors.New("no supernode answered")
	code, body := get(t, checks.Ready())
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]supernode failed: no supernode answered\n") ||
		!strings.HasSuffix(body, "not ready: supernode failed\n") || !strings.Contains(body, "[+]store ok") {
		t.Errorf("supernode failing: %d %q", code, body)
	}
	if code, body := get(t, health.Live()); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz with a failing check: %d %q", code, body)
	}
	var none health.Checks
	if code, _ := get(t, none.Ready()); code != http.StatusOK {
		t.Errorf("no checks: %d, want ready", code)
	}
}

// A check runs under the probe's context (bounded by health.Timeout): a check that hangs returns
// when the request is gone, and counts as failed.
func TestHangingCheckEndsWithTheProbe(t *testing.T) {
	t.Parallel()
	var checks health.Checks
	checks.Add(health.Check{Name: "stuck", Run: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the probe's request is gone
	res := checks.Run(ctx)
	if got := health.Failing(res); len(got) != 1 || got[0] != "stuck" {
		t.Errorf("failing = %v, want [stuck]", got)
	}
}
