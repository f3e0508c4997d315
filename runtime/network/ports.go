package network

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PortMapping publishes a container port on the host, as `-p` gives it.
type PortMapping struct {
	HostIP        string `json:"HostIp,omitempty"`
	HostPort      uint16 `json:"HostPort"`
	ContainerPort uint16 `json:"ContainerPort"`
	Protocol      string `json:"Protocol"` // tcp or udp
}

// String is the mapping as docker prints it: 0.0.0.0:8080->80/tcp.
func (p PortMapping) String() string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	return fmt.Sprintf("%s->%d/%s", netip.AddrPortFrom(netip.MustParseAddr(ip), p.HostPort), p.ContainerPort, p.Protocol)
}

// ParsePort parses [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp].
func ParsePort(s string) (PortMapping, error) {
	bad := func(why string) (PortMapping, error) {
		return PortMapping{}, fmt.Errorf("%w: -p %q: %s (want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 8080:80)", ErrBadPort, s, why)
	}
	spec, proto, _ := strings.Cut(s, "/")
	proto = strings.ToLower(proto)
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return bad("protocol " + proto)
	}
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return bad("no host port")
	}
	hostPart, ctr := spec[:i], spec[i+1:]
	var hostIP string
	if j := strings.LastIndex(hostPart, ":"); j >= 0 {
		hostIP, hostPart = strings.Trim(hostPart[:j], "[]"), hostPart[j+1:]
		a, err := netip.ParseAddr(hostIP)
		if err != nil || !a.Is4() {
			return bad("host address " + hostIP + " is not an IPv4 address")
		}
	}
	hp, err := parsePortNumber(hostPart)
	if err != nil {
		return bad("host port: " + err.Error())
	}
	cp, err := parsePortNumber(ctr)
	if err != nil {
		return bad("container port: " + err.Error())
	}
	return PortMapping{HostIP: hostIP, HostPort: hp, ContainerPort: cp, Protocol: proto}, nil
}

func parsePortNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port between 1 and 65535", s)
	}
	return uint16(n), nil
}
