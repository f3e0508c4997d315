package netguard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	allowLoop, _ := ParsePrefixes("127.0.0.0/8")
	deny10, _ := ParsePrefixes("10.0.0.0/8")
	cases := []struct {
		name   string
		p      Policy
		addr   string
		refuse bool
	}{
		{"loopback refused by default", Policy{}, "127.0.0.1", true},
		{"ipv6 loopback refused", Policy{}, "::1", true},
		{"metadata refused", Policy{}, "169.254.169.254", true},
		{"unspecified refused", Policy{}, "0.0.0.0", true},
		{"mapped loopback refused", Policy{}, "::ffff:127.0.0.1", true},
		{"private allowed by default", Policy{}, "10.1.2.3", false},
		{"public allowed", Policy{}, "93.184.216.34", false},
		{"allow-listed loopback", Policy{Allow: allowLoop}, "127.0.0.1", false},
		{"denied private", Policy{Deny: deny10}, "10.1.2.3", true},
	}
	for _, c := range cases {
		err := c.p.Check(netip.MustParseAddr(c.addr))
		if (err != nil) != c.refuse {
			t.Errorf("%s: Check(%s) = %v, refuse=%v", c.name, c.addr, err, c.refuse)
		}
		if err != nil && !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: error %v does not wrap ErrForbidden", c.name, err)
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
