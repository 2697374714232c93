package slirp

import (
	"strings"
	"testing"
)

func TestParsePublish(t *testing.T) {
	for in, want := range map[string]Publish{
		"8080:80":               {"tcp", "127.0.0.1", 8080, 80},
		"8080:80/udp":           {"udp", "127.0.0.1", 8080, 80},
		"0.0.0.0:8080:80/tcp":   {"tcp", "0.0.0.0", 8080, 80},
		"127.0.0.2:2000:53/udp": {"udp", "127.0.0.2", 2000, 53},
		"[::1]:8080:80":         {"tcp", "::1", 8080, 80},
		"65535:65535":           {"tcp", "127.0.0.1", 65535, 65535},
	} {
		got, err := ParsePublish(in, 1024)
		if err != nil || got != want {
			t.Errorf("%q: got %+v %v, want %+v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"80":            "want [IP:]HOSTPORT",
		"0:80":          "1 to 65535",
		"8080:0":        "1 to 65535",
		"70000:80":      "1 to 65535",
		"8080:80/sctp":  "unknown protocol",
		"1.2.3:8080:80": "not an IP address",
		"::1:8080:80":   "brackets",
		"80:80":         "ip_unprivileged_port_start",
		"x:80":          "host port",
		"8080:":         "container port",
	} {
		if _, err := ParsePublish(in, 1024); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one mentioning %q", in, err, msg)
		}
	}
}

func TestParsePublishesRefusesDuplicates(t *testing.T) {
	if _, err := ParsePublishes([]string{"8080:80", "8080:81"}, 1024); err == nil {
		t.Fatal("the same host port twice was accepted")
	}
	if _, err := ParsePublishes([]string{"8080:80", "8080:80/udp", "127.0.0.2:8080:80"}, 1024); err != nil {
		t.Fatalf("different protocol or address refused: %v", err)
	}
}

func FuzzParsePublish(f *testing.F) {
	f.Add("127.0.0.1:8080:80/tcp")
	f.Add("[::1]:1:2/udp")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePublish(s, 0)
		if err != nil {
			return
		}
		if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 || (p.Proto != "tcp" && p.Proto != "udp") {
			t.Fatalf("accepted %q as %+v", s, p)
		}
	})
}

func TestParsePastaVersion(t *testing.T) {
	for _, tc := range []struct{ out, deb, want string }{
		{"pasta 2023_06_25.32660ce\nCopyright Red Hat", "", "20230625"},
		{"pasta unknown version\nCopyright Red Hat", "0.0~git20230309.7c7625d-1", "20230309"},
		{"pasta 2024_10_30.ee7d0b6", "0.0~git20230309.7c7625d-1", "20241030"},
	} {
		if got, ok := ParsePastaVersion(tc.out, tc.deb); !ok || got != tc.want {
			t.Errorf("%q/%q: %q %v, want %q", tc.out, tc.deb, got, ok, tc.want)
		}
	}
	if _, ok := ParsePastaVersion("pasta unknown version", ""); ok {
		t.Error("an unknown version was parsed")
	}
}
