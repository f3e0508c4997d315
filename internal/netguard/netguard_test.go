package netguard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	allowLoop, _ := ParsePrefixes("127.0.0.0/8")
	allowShared, _ := ParsePrefixes("100.64.0.0/10")
	allowNAT64, _ := ParsePrefixes("64:ff9b::/96")
	deny10, _ := ParsePrefixes("10.0.0.0/8")
	cases := []struct {
		name   string
		p      Policy
		addr   string
		refuse bool
		say    string // in the error
	}{
		{"loopback refused by default", Policy{}, "127.0.0.1", true, "loopback"},
		{"ipv6 loopback refused", Policy{}, "::1", true, "loopback"},
		{"metadata refused", Policy{}, "169.254.169.254", true, "link-local"},
		{"ipv6 link-local refused", Policy{}, "fe80::1", true, "link-local"},
		{"unspecified refused", Policy{}, "0.0.0.0", true, "unspecified"},
		{"this network refused", Policy{}, "0.1.2.3", true, "this network"},
		{"multicast refused", Policy{}, "239.1.2.3", true, "multicast"},
		{"broadcast refused", Policy{}, "255.255.255.255", true, "reserved"},
		{"shared address space refused", Policy{}, "100.64.0.1", true, "shared address space"},
		{"alibaba metadata refused", Policy{}, "100.100.100.200", true, "Alibaba"},
		{"azure wire server refused", Policy{}, "168.63.129.16", true, "Azure"},
		{"oracle metadata refused", Policy{}, "192.0.0.192", true, "Oracle"},
		{"aws ipv6 metadata refused", Policy{}, "fd00:ec2::254", true, "AWS"},
		{"gcp ipv6 metadata refused", Policy{}, "fd20:ce::254", true, "Google"},
		{"other ULA allowed", Policy{}, "fd00:ec2::1", false, ""},
		{"mapped loopback refused", Policy{}, "::ffff:127.0.0.1", true, "loopback"},
		{"mapped metadata refused", Policy{}, "::ffff:169.254.169.254", true, "link-local"},
		{"compatible loopback refused", Policy{}, "::127.0.0.1", true, "IPv4-compatible"},
		{"translated metadata refused", Policy{}, "::ffff:0:169.254.169.254", true, "IPv4-translated"},
		{"nat64 loopback refused", Policy{}, "64:ff9b::127.0.0.1", true, "NAT64"},
		{"nat64 metadata refused", Policy{}, "64:ff9b::a9fe:a9fe", true, "169.254.169.254"},
		{"nat64 alibaba refused", Policy{}, "64:ff9b::100.100.100.200", true, "shared address space"},
		{"nat64 public allowed", Policy{}, "64:ff9b::93.184.216.34", false, ""},
		{"local nat64 /96 metadata refused", Policy{}, "64:ff9b:1::a9fe:a9fe", true, "local-use NAT64 /96"},
		{"local nat64 /48 loopback refused", Policy{}, "64:ff9b:1:7f00:1:0:0:0", true, "local-use NAT64 /48"},
		{"local nat64 /96 public allowed", Policy{}, "64:ff9b:1::5db8:d822", false, ""},
		{"local nat64 /48 public allowed", Policy{}, "64:ff9b:1:5db8:d8:2200::", false, ""},
		{"6to4 loopback refused", Policy{}, "2002:7f00:1::", true, "6to4"},
		{"6to4 metadata refused", Policy{}, "2002:a9fe:a9fe::1", true, "169.254.169.254"},
		{"6to4 public allowed", Policy{}, "2002:5db8:d822::1", false, ""},
		{"teredo server metadata refused", Policy{}, "2001:0:a9fe:a9fe::1", true, "Teredo server"},
		// The client is stored inverted: ^127.0.0.1 = 128.255.255.254.
		{"teredo client loopback refused", Policy{}, "2001:0:5db8:d822:0:0:80ff:fffe", true, "Teredo client"},
		{"teredo public allowed", Policy{}, "2001:0:5db8:d822::a247:2bdd", false, ""},
		{"documentation 2001:db8 is not teredo", Policy{}, "2001:db8::1", false, ""},
		{"private allowed by default", Policy{}, "10.1.2.3", false, ""},
		{"public allowed", Policy{}, "93.184.216.34", false, ""},
		{"public ipv6 allowed", Policy{}, "2606:2800:220:1:248:1893:25c8:1946", false, ""},
		{"allow-listed loopback", Policy{Allow: allowLoop}, "127.0.0.1", false, ""},
		{"allow-listed loopback through nat64", Policy{Allow: allowLoop}, "64:ff9b::127.0.0.1", false, ""},
		{"allow-listed loopback mapped", Policy{Allow: allowLoop}, "::ffff:127.0.0.1", false, ""},
		{"allow-listed shared address space", Policy{Allow: allowShared}, "100.100.100.200", false, ""},
		{"allowing the nat64 prefix does not allow loopback inside", Policy{Allow: allowNAT64}, "64:ff9b::127.0.0.1", true, "loopback"},
		{"denied private", Policy{Deny: deny10}, "10.1.2.3", true, "denied"},
		{"denied private through 6to4", Policy{Deny: deny10}, "2002:a01:203::", true, "denied"},
		{"denied private through nat64", Policy{Deny: deny10}, "64:ff9b::10.1.2.3", true, "denied"},
	}
	for _, c := range cases {
		err := c.p.Check(netip.MustParseAddr(c.addr))
		if (err != nil) != c.refuse {
			t.Errorf("%s: Check(%s) = %v, refuse=%v", c.name, c.addr, err, c.refuse)
			continue
		}
		if err != nil && !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: error %v does not wrap ErrForbidden", c.name, err)
		}
		if err != nil && !strings.Contains(err.Error(), c.say) {
			t.Errorf("%s: error %q does not say %q", c.name, err, c.say)
		}
	}
	if _, err := ParsePrefixes("10.0.0.0/8, nonsense"); err == nil {
		t.Error("ParsePrefixes accepted nonsense")
	}
}

func TestClientRefusesLoopbackAndRedirects(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }))
	defer srv.Close()
	if _, err := (Policy{}).Client().Get(srv.URL); !errors.Is(err, ErrForbidden) {
		t.Fatalf("GET loopback with default policy: err = %v, want ErrForbidden", err)
	}
	allow, _ := ParsePrefixes("127.0.0.0/8")
	resp, err := Policy{Allow: allow}.Client().Get(srv.URL)
	if err != nil {
		t.Fatalf("GET loopback with allow-list: %v", err)
	}
	resp.Body.Close()
}
