package peer

import (
	"slices"
	"strings"
	"testing"
)

func TestHostLocal(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"/ip4/127.0.0.1/tcp/65002":       true,
		"/ip4/127.8.9.10/tcp/1":          true,
		"/ip6/::1/tcp/1":                 true,
		"/ip6/fe80::1/tcp/1":             true,
		"/ip4/169.254.1.2/tcp/1":         true,
		"/ip4/0.0.0.0/tcp/1":             true,
		"/dns4/localhost/tcp/1":          true,
		"/ip4/10.0.0.2/tcp/65002":        false,
		"/ip4/192.0.2.7/tcp/65002":       false,
		"/ip6/2001:db8::7/tcp/65002":     false,
		"/ip6/::ffff:10.0.0.2/tcp/65002": false,
		"/dns4/node1.example/tcp/65002":  false,
		"not a multiaddr":                false,
	} {
		if got := HostLocal(addr); got != want {
			t.Errorf("HostLocal(%q) = %v, want %v", addr, got, want)
		}
	}
}

// A host told to advertise other addresses announces those instead of its listen addresses;
// a bad one is refused, named.
func TestHostAdvertises(t *testing.T) {
	t.Parallel()
	adv := []string{"/ip4/192.0.2.7/tcp/65002", "/dns4/node1.example/tcp/65002"}
	h, err := NewHost(HostConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Advertise: adv})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := Addrs(h); !slices.Equal(got, adv) {
		t.Errorf("Addrs = %v, want the advertised %v", got, adv)
	}
	for _, bad := range []string{"192.0.2.7:65002", "/ip4/192.0.2.7"} {
		if _, err := NewHost(HostConfig{Advertise: []string{bad}}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("advertise %q: %v, want an error naming it", bad, err)
		}
	}
}
