package bundle

import (
	"errors"
	"strings"
	"testing"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/userns"
	"github.com/isobox/isobox/userns/cgroups"
)

const rootless = `{
	"ociVersion": "1.0.2",
	"process": {"args": ["sh"], "cwd": "/", "env": ["A=1", "PATH=/bin", "A=2"],
		"user": {"uid": 0, "gid": 0},
		"capabilities": {"bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"], "effective": ["CAP_KILL"],
			"inheritable": ["CAP_KILL", "CAP_SYS_ADMIN"], "ambient": ["CAP_KILL", "CAP_NET_BIND_SERVICE"]},
		"noNewPrivileges": true, "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
		"oomScoreAdj": 100},
	"root": {"path": "rootfs", "readonly": true},
	"hostname": "box",
	"mounts": [
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro", "nosuid"]},
		{"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1777"]}
	],
	"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "user"}],
		"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
		"gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
		"sysctl": {"net.ipv4.ip_forward": "1"},
		"resources": {"devices": [{"allow": false, "access": "rwm"}]}}
}`

// mustTranslate parses and translates config, which must be good.
func mustTranslate(t *testing.T, config string) *Launch {
	t.Helper()
	s, err := Parse([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Translate(s, "/b")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestTranslateARootlessBundle(t *testing.T) {
	l := mustTranslate(t, rootless)
	o := l.Options
	switch {
	case o.Rootfs != "/b/rootfs" || !o.Readonly || o.Hostname != "box" || o.Workdir != "/":
		t.Errorf("root, hostname, cwd: %+v", o.Config)
	case strings.Join(o.Env, " ") != "A=2 PATH=/bin":
		t.Errorf("env (the last duplicate wins): %v", o.Env)
	case o.Net != userns.NetHost:
		t.Errorf("no network namespace asked: net %q", o.Net)
	case o.Map != idmap.ModeSingle:
		t.Errorf("a one-id map: %q", o.Map)
	case o.Caps.String() != "CAP_KILL" || o.NewPrivs:
		t.Errorf("capabilities %v, new privileges %v", o.Caps, o.NewPrivs)
	case len(o.Mounts) != 2 || !o.Mounts[0].Readonly || o.Mounts[0].Source != "/srv/data" || o.Mounts[1].Data != "size=1m,mode=1777":
		t.Errorf("mounts: %+v", o.Mounts)
	case o.InheritableCaps.String() != "CAP_KILL" || o.AmbientCaps.String() != "CAP_KILL":
		t.Errorf("inheritable %v and ambient %v: each within the bounding set, ambient within inheritable", o.InheritableCaps, o.AmbientCaps)
	case len(o.Rlimits) != 1 || o.Rlimits[0] != (userns.Rlimit{Resource: 7, Soft: 512, Hard: 1024}):
		t.Errorf("rlimits: %+v", o.Rlimits)
	case o.OOMScoreAdj == nil || *o.OOMScoreAdj != 100 || o.Sysctl["net.ipv4.ip_forward"] != "1":
		t.Errorf("oomScoreAdj %v, sysctl %v", o.OOMScoreAdj, o.Sysctl)
	case len(l.Notes) != 1:
		t.Errorf("notes (resources): %v", l.Notes)
	}
}

func TestTranslateRefusesWithTheFieldNamed(t *testing.T) {
	for field, edit := range map[string]func(string) string{
		"ociVersion":               func(s string) string { return strings.Replace(s, `"1.0.2"`, `"2.1"`, 1) },
		"process.args":             func(s string) string { return strings.Replace(s, `["sh"]`, `[]`, 1) },
		"process.cwd":              func(s string) string { return strings.Replace(s, `"cwd": "/"`, `"cwd": "x"`, 1) },
		"capabilities.bounding":    func(s string) string { return strings.Replace(s, `CAP_KILL", "CAP_NET`, `CAP_NOPE", "CAP_NET`, 1) },
		"mounts[1].options":        func(s string) string { return strings.Replace(s, `"nosuid"]`, `"sharde"]`, 1) },
		"mounts[2].type":           func(s string) string { return strings.Replace(s, `"type": "tmpfs"`, `"type": "nfs"`, 1) },
		"linux.namespaces[0].type": func(s string) string { return strings.Replace(s, `{"type": "pid"}`, `{"type": "nope"}`, 1) },
		"linux.seccomp": func(s string) string {
			return strings.Replace(s, `"linux": {`, `"linux": {"seccomp": {"defaultAction": "SCMP_ACT_NOPE"}, `, 1)
		},
		"root.path":               func(s string) string { return strings.Replace(s, `"path": "rootfs"`, `"path": ""`, 1) },
		"process.rlimits[0].type": func(s string) string { return strings.Replace(s, `RLIMIT_NOFILE`, `RLIMIT_NOPE`, 1) },
		"process.rlimits[0]":      func(s string) string { return strings.Replace(s, `"soft": 512`, `"soft": 2048`, 1) },
		"process.oomScoreAdj":     func(s string) string { return strings.Replace(s, `"oomScoreAdj": 100`, `"oomScoreAdj": 1001`, 1) },
		"linux.sysctl":            func(s string) string { return strings.Replace(s, `net.ipv4.ip_forward`, `net/../../etc`, 1) },
		"linux.namespaces[0].path": func(s string) string {
			return strings.Replace(s, `{"type": "pid"}`, `{"type": "pid", "path": "/proc/1/ns/pid"}`, 1)
		},
		"linux.namespaces[1].path": func(s string) string {
			return strings.Replace(s, `{"type": "mount"}`, `{"type": "network", "path": "ns/net"}`, 1)
		},
		"hostname": func(s string) string {
			return strings.Replace(s, `{"type": "mount"}`, `{"type": "uts", "path": "/proc/7/ns/uts"}`, 1)
		},
	} {
		s, err := Parse([]byte(edit(rootless)))
		if err == nil {
			_, err = Translate(s, "/b")
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestParseNamesTheFieldOfAWrongType(t *testing.T) {
	_, err := Parse([]byte(`{"ociVersion": "1.0.0", "process": {"args": "sh"}}`))
	if err == nil || !strings.Contains(err.Error(), "process.args") {
		t.Errorf("%v", err)
	}
}

// FuzzTranslate: any config.json is translated or refused with ErrConfig,
// never a panic.
func FuzzTranslate(f *testing.F) {
	f.Add([]byte(rootless))
	f.Add([]byte(`{"ociVersion":"1.0.0","root":{"path":"/r"},"process":{"args":["x"],"cwd":"/"},"mounts":[{"destination":"/a","type":"bind","source":"b"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("Parse: %v", err)
			}
			return
		}
		if _, err := Translate(s, "/b"); err != nil && !errors.Is(err, ErrConfig) {
			t.Fatalf("Translate: %v", err)
		}
	})
}

func TestTranslateCompilesTheBundlesOwnSeccompProfile(t *testing.T) {
	c := strings.Replace(rootless, `"linux": {`, `"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}, `, 1)
	s, err := Parse([]byte(c))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Translate(s, "/b")
	if err != nil || !l.OwnSeccomp || len(l.Options.Seccomp) == 0 {
		t.Errorf("own profile: %v %v %d", err, l != nil && l.OwnSeccomp, len(l.Options.Seccomp))
	}
}

func TestResourcesBecomeBestEffortLimits(t *testing.T) {
	cfg := strings.Replace(rootless, `"resources": {"devices": [{"allow": false, "access": "rwm"}]}`,
		`"resources": {"memory": {"limit": 67108864, "swap": -1}, "cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0"},
			"pids": {"limit": 32}, "blockIO": {"weight": 100}, "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}`, 1)
	l := mustTranslate(t, cfg)
	want := cgroups.Limits{Memory: 64 << 20, MemorySwap: -1, CPUQuota: 50000, CPUPeriod: 100000, CPUShares: 512, CpusetCpus: "0", PidsLimit: 32, BlkioWeight: 100}
	if l.Options.Limits != want || !l.Options.LimitsBestEffort {
		t.Errorf("limits %+v (best effort %v), want %+v", l.Options.Limits, l.Options.LimitsBestEffort, want)
	}
	if len(l.Notes) != 1 || !strings.Contains(l.Notes[0], "hugepageLimits") {
		t.Errorf("notes: %v", l.Notes)
	}
	bad := strings.Replace(cfg, `"limit": 67108864`, `"limit": 1024`, 1)
	s, err := Parse([]byte(bad))
	if err == nil {
		_, err = Translate(s, "/b")
	}
	if err == nil || !strings.Contains(err.Error(), "linux.resources") {
		t.Errorf("a memory limit below the minimum: %v", err)
	}
}

func TestTranslateJoinsNamespacesByPath(t *testing.T) {
	joins := strings.Replace(rootless, `{"type": "user"}`,
		`{"type": "user", "path": "/proc/7/ns/user"}, {"type": "network", "path": "/proc/7/ns/net"}`, 1)
	l := mustTranslate(t, joins)
	o := l.Options
	want := []userns.Join{{Type: "user", Path: "/proc/7/ns/user"}, {Type: "network", Path: "/proc/7/ns/net"}}
	if len(o.Join) != 2 || o.Join[0] != want[0] || o.Join[1] != want[1] {
		t.Errorf("Join: %+v", o.Join)
	}
	// The joined network namespace is used as it is, like the host's;
	// the joined user namespace's maps are its own.
	if o.Net != userns.NetHost || len(o.UIDMap) != 0 || !strings.Contains(strings.Join(l.Notes, "\n"), "uidMappings and gidMappings ignored") {
		t.Errorf("net %q, maps %v, notes %q", o.Net, o.UIDMap, l.Notes)
	}
	if !o.NoTimeNamespace {
		t.Error("no time namespace listed, but NoTimeNamespace is false")
	}
}
