package node

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSplitRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rule string
		want []string
	}{
		{`-j KUBE-KUBELET-CANARY`, []string{"-j", "KUBE-KUBELET-CANARY"}},
		{`-s 10.217.0.0/24 -m comment --comment "name: \"pouch-k8s\" id: \"abc\"" -j CNI-1`,
			[]string{"-s", "10.217.0.0/24", "-m", "comment", "--comment", `name: "pouch-k8s" id: "abc"`, "-j", "CNI-1"}},
		{`-m comment --comment ""  -j ACCEPT`, []string{"-m", "comment", "--comment", "", "-j", "ACCEPT"}},
	} {
		got, err := splitRule(tc.rule)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitRule(%q) = %q, %v; want %q", tc.rule, got, err, tc.want)
		}
	}
	if _, err := splitRule(`--comment "open`); err == nil {
		t.Error("an unterminated quote was accepted")
	}
}

func TestParseCRILog(t *testing.T) {
	t.Parallel()
	log := "2026-12-01T09:04:27.1Z stdout P hello \n" +
		"2026-12-01T09:04:27.2Z stdout F from pouch\n" +
		"2026-12-01T09:04:27.3Z stderr F oops: a b\n"
	if got, want := parseCRILog(log), "hello from pouch\noops: a b\n"; got != want {
		t.Errorf("parseCRILog = %q, want %q", got, want)
	}
}

func TestParseRoutes(t *testing.T) {
	t.Parallel()
	table := "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"br0\t0000D90A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
	got := parseRoutes(table)
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("10.217.0.0/16")}
	if !slices.Equal(got, want) {
		t.Errorf("parseRoutes = %v, want %v (the default route left out)", got, want)
	}
}

func TestForgetRegistryKeepsOthersEntries(t *testing.T) {
	t.Parallel()
	n := &Node{HostsDir: t.TempDir()}
	if err := n.AllowRegistry("127.0.0.1:5000"); err != nil {
		t.Fatal(err)
	}
	if err := n.ForgetRegistry("127.0.0.1:5000"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(n.HostsDir, "127.0.0.1:5000")); !os.IsNotExist(err) {
		t.Errorf("the entry AllowRegistry wrote is still there: %v", err)
	}
	// An entry someone else wrote (a chart's init container) stays.
	other := filepath.Join(n.HostsDir, "127.0.0.1:6000", "hosts.toml")
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("server = \"http://127.0.0.1:6000\"\n[host.\"http://127.0.0.1:65001\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.ForgetRegistry("127.0.0.1:6000"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("ForgetRegistry removed an entry it did not write: %v", err)
	}
	if err := n.AllowRegistry("../etc"); err == nil {
		t.Error("AllowRegistry accepted a path for a host")
	}
}
