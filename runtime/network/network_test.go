package network

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestParsePort(t *testing.T) {
	t.Parallel()
	good := map[string]PortMapping{
		"8080:80":             {HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		"127.0.0.1:8080:80":   {HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		"53:53/udp":           {HostPort: 53, ContainerPort: 53, Protocol: "udp"},
		"0.0.0.0:1:65535/TCP": {HostIP: "0.0.0.0", HostPort: 1, ContainerPort: 65535, Protocol: "tcp"},
	}
	for in, want := range good {
		got, err := ParsePort(in)
		if err != nil || got != want {
			t.Errorf("ParsePort(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"80", "0:80", "8080:0", "8080:80/sctp", "x:80", "::1:80:80", "8080:99999", "a.b:1:2"} {
		if _, err := ParsePort(in); !errors.Is(err, ErrBadPort) {
			t.Errorf("ParsePort(%q): err = %v, want ErrBadPort", in, err)
		}
	}
	if s := (PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}).String(); s != "0.0.0.0:8080->80/tcp" {
		t.Errorf("String = %q", s)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{StateDir: "/x", Subnet: "10.0.0.1/24"},
		{StateDir: "/x", Subnet: "10.0.0.0/31"},
		{StateDir: "/x", Subnet: "fd00::/64"},
		{StateDir: "/x", Bridge: "a-bridge-name-too-long"},
		{StateDir: "/x", Bridge: "a/b"},
		{},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted it", c)
		}
	}
	if err := (Config{StateDir: "/x"}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// The generated plugin lists parse, and a mode that needs no namespace makes none.
func TestLists(t *testing.T) {
	t.Parallel()
	m, err := New(Config{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.lists(Bridge)); n != 2 {
		t.Errorf("bridge joins %d lists, want loopback and the bridge", n)
	}
	if n := len(m.lists(None)); n != 1 {
		t.Errorf("none joins %d lists, want loopback only", n)
	}
	att, err := m.Setup(context.Background(), "c1", Host, nil)
	if err != nil || att != (Attachment{}) {
		t.Errorf("host: %+v, %v", att, err)
	}
	if _, err := m.Setup(context.Background(), "c1", Host, []PortMapping{{HostPort: 1, ContainerPort: 1, Protocol: "tcp"}}); !errors.Is(err, ErrBadPort) {
		t.Errorf("host with -p: %v, want ErrBadPort", err)
	}
	if _, err := ParseMode("overlay"); !errors.Is(err, ErrUnknownNetwork) {
		t.Errorf("ParseMode(overlay): %v", err)
	}
}

// A range holding the loopback address is refused, naming the interface; the default is not
// (on a host that does not route it).
func TestCheckSubnet(t *testing.T) {
	t.Parallel()
	m, err := New(Config{StateDir: t.TempDir(), Subnet: "127.0.0.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	err = m.CheckSubnet()
	if !errors.Is(err, ErrSubnetInUse) || !strings.Contains(err.Error(), "lo") || !strings.Contains(err.Error(), "--subnet") {
		t.Errorf("127.0.0.0/24: %v, want ErrSubnetInUse naming lo and --subnet", err)
	}
	routes, err := hostRoutes()
	if err != nil {
		t.Skip(err)
	}
	for _, r := range routes {
		if r.prefix.Bits() == 0 || r.prefix.Bits() > 30 {
			continue
		}
		m, err := New(Config{StateDir: t.TempDir(), Subnet: r.prefix.String(), Bridge: "not-" + r.iface[:min(len(r.iface), 10)]})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.CheckSubnet(); !errors.Is(err, ErrSubnetInUse) {
			t.Errorf("the host's own route %s on %s: %v, want ErrSubnetInUse", r.prefix, r.iface, err)
		}
		break
	}
}
