package dfdaemon_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pouch-p2p/pouch/dfdaemon"
	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/registryproxy"
)

// The local listener serves only requests addressed to an IP literal or localhost (DNS
// rebinding), and the download call takes JSON only (no cross-site form or text/plain post).
func TestLocalListenerGuards(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := runDaemon(ctx, t, dfdaemon.Config{})
	if _, err := d.MountMirror(registryproxy.Config{Default: "registry.example"}); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(d.Addr(), ":")
	call := func(method, path, host, contentType, body string) (int, apierr.Error) {
		t.Helper()
		req, _ := http.NewRequest(method, d.URL()+path, strings.NewReader(body))
		if host != "" {
			req.Host = host
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e apierr.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	bad := `{"url": "file:///etc/passwd"}` // refused after the guards: 400 shows they let it through

	for _, host := range []string{"", "localhost", "localhost:" + port, "LOCALHOST:" + port, "127.0.0.1:" + port, "[::1]:" + port, "10.1.2.3"} {
		if status, _ := call(http.MethodPost, dfapi.PathDownload, host, "application/json", bad); status != http.StatusBadRequest {
			t.Errorf("Host %q: %d, want the call through the guard (400 for its bad URL)", host, status)
		}
	}
	for _, path := range []string{dfapi.PathDownload, "/v2/", "/metrics", "/healthz"} {
		for _, host := range []string{"attacker.example", "attacker.example:" + port, "localhost.attacker.example", "127.0.0.1.nip.io"} {
			status, e := call(http.MethodPost, path, host, "application/json", bad)
			if status != http.StatusMisdirectedRequest || !strings.Contains(e.Message, "DNS rebinding") {
				t.Errorf("%s with Host %q: %d %q, want 421 saying why", path, host, status, e.Message)
			}
		}
	}
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		status, e := call(http.MethodPost, dfapi.PathDownload, "", ct, bad)
		if status != http.StatusUnsupportedMediaType || e.Code != apierr.CodeBadRequest || !strings.Contains(e.Message, "application/json") {
			t.Errorf("Content-Type %q: %d %s %q, want 415 naming application/json", ct, status, e.Code, e.Message)
		}
	}
}
