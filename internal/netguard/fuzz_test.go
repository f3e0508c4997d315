package netguard

import (
	"errors"
	"net/netip"
	"testing"
)

// FuzzCheck: Check never panics, refuses only with ErrForbidden, treats an IPv4 address the
// same in its mapped form, and refuses every IPv6 form that carries a refused IPv4 address.
func FuzzCheck(f *testing.F) {
	for _, a := range []string{"127.0.0.1", "169.254.169.254", "100.100.100.200", "10.1.2.3", "93.184.216.34",
		"::1", "fd00:ec2::254", "64:ff9b::7f00:1", "2002:a9fe:a9fe::", "2001:0:5db8:d822::80ff:fffe", "64:ff9b:1::a9fe:a9fe"} {
		f.Add(netip.MustParseAddr(a).AsSlice()) // an IPv4 address fills the first 4 bytes

	}
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b [16]byte
		copy(b[:], raw)
		addr := netip.AddrFrom16(b)
		for _, p := range []Policy{{}, {Allow: allow}} {
			if err := p.Check(addr); err != nil && !errors.Is(err, ErrForbidden) {
				t.Fatalf("Check(%s) = %v, not ErrForbidden", addr, err)
			}
		}
		v4 := netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
		refused := (Policy{}).Check(v4) != nil
		forms := []netip.Addr{
			netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}),                  // mapped
			netip.AddrFrom16([16]byte{8: 0xff, 9: 0xff, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}),                    // translated
			netip.AddrFrom16([16]byte{1: 0x64, 2: 0xff, 3: 0x9b, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}),           // NAT64
			netip.AddrFrom16([16]byte{0: 0x20, 1: 0x02, 2: b[0], 3: b[1], 4: b[2], 5: b[3], 15: b[4]}),              // 6to4
			netip.AddrFrom16([16]byte{0: 0x20, 1: 0x01, 4: b[0], 5: b[1], 6: b[2], 7: b[3]}),                        // Teredo server
			netip.AddrFrom16([16]byte{0: 0x20, 1: 0x01, 4: 93, 5: 184, 12: ^b[0], 13: ^b[1], 14: ^b[2], 15: ^b[3]}), // Teredo client
			netip.AddrFrom16([16]byte{1: 0x64, 2: 0xff, 3: 0x9b, 5: 1, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}),     // local-use NAT64 /96
		}
		for i, a := range forms {
			if i == 6 && v4.IsUnspecified() {
				continue // an all-zero reading of the local-use prefix is the empty suffix of a shorter layout
			}
			if err := (Policy{}).Check(a); refused && err == nil {
				t.Fatalf("form %d %s carries refused %s but is allowed", i, a, v4)
			}
		}
		if got := (Policy{}).Check(forms[0]) != nil; got != refused {
			t.Fatalf("mapped %s refused=%v, plain %s refused=%v", forms[0], got, v4, refused)
		}
	})
}
