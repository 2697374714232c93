package slirp

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Publish is one -p/--publish: a host address and port forwarded to a port
// of the container.
type Publish struct {
	Proto         string `json:"proto"` // "tcp" or "udp"
	HostIP        string `json:"hostIP"`
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
}

func (p Publish) String() string {
	return net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort)) + "->" + strconv.Itoa(p.ContainerPort) + "/" + p.Proto
}

// DefaultHostIP is where a published port listens when no address is given.
// podman and Docker use 0.0.0.0; isobox does not open ports to the network
// unless asked.
const DefaultHostIP = "127.0.0.1"

// ParsePublish parses [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]; an IPv6
// address goes in brackets. unprivStart is the lowest port an unprivileged
// user may bind (net.ipv4.ip_unprivileged_port_start).
func ParsePublish(s string, unprivStart int) (Publish, error) {
	p := Publish{Proto: "tcp", HostIP: DefaultHostIP}
	spec := s
	if i := strings.LastIndexByte(spec, '/'); i >= 0 {
		p.Proto = spec[i+1:]
		spec = spec[:i]
		if p.Proto != "tcp" && p.Proto != "udp" {
			return p, fmt.Errorf("--publish %q: unknown protocol %q (tcp or udp)", s, p.Proto)
		}
	}
	i := strings.LastIndexByte(spec, ':')
	if i < 0 {
		return p, fmt.Errorf("--publish %q: want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]", s)
	}
	containerPort, rest := spec[i+1:], spec[:i]
	hostPort := rest
	if j := strings.LastIndexByte(rest, ':'); j >= 0 {
		ip := rest[:j]
		hostPort = rest[j+1:]
		if strings.HasPrefix(ip, "[") && strings.HasSuffix(ip, "]") {
			ip = ip[1 : len(ip)-1]
		} else if strings.Contains(ip, ":") {
			return p, fmt.Errorf("--publish %q: put an IPv6 address in brackets", s)
		}
		parsed := net.ParseIP(ip)
		if parsed == nil {
			return p, fmt.Errorf("--publish %q: %q is not an IP address", s, ip)
		}
		p.HostIP = parsed.String()
	}
	var err error
	if p.HostPort, err = parsePort(hostPort); err != nil {
		return p, fmt.Errorf("--publish %q: host port: %w", s, err)
	}
	if p.ContainerPort, err = parsePort(containerPort); err != nil {
		return p, fmt.Errorf("--publish %q: container port: %w", s, err)
	}
	if p.HostPort < unprivStart {
		return p, fmt.Errorf("--publish %q: host port %d is below net.ipv4.ip_unprivileged_port_start (%d); pick a port of %d or more", s, p.HostPort, unprivStart, unprivStart)
	}
	return p, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port from 1 to 65535", s)
	}
	return n, nil
}

// ParsePublishes parses every -p and refuses two that claim the same host
// address, port and protocol.
func ParsePublishes(specs []string, unprivStart int) ([]Publish, error) {
	var out []Publish
	seen := map[string]string{}
	for _, s := range specs {
		p, err := ParsePublish(s, unprivStart)
		if err != nil {
			return nil, err
		}
		key := p.Proto + " " + net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort))
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("--publish %q: host %s is already published by %q", s, key, prev)
		}
		seen[key] = s
		out = append(out, p)
	}
	return out, nil
}

// UnprivilegedPortStart reads net.ipv4.ip_unprivileged_port_start (1024
// when it cannot be read, the kernel's default).
func UnprivilegedPortStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}
