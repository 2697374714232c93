package userns

import (
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/userns/hooks"
)

// The process attributes an OCI bundle may set beyond isobox's own flags:
// resource limits, the OOM score, the inheritable capability set and
// namespaced sysctls. Each is applied by init, inside the container's
// namespaces, before it starts the command, which inherits them.

// rlimitNames are the RLIMIT_* resources by number, as runtime-spec names
// them.
var rlimitNames = []string{
	"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
	"RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
	"RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
}

// ParseRlimit is the number of the resource named RLIMIT_NAME.
func ParseRlimit(name string) (int, error) {
	for i, n := range rlimitNames {
		if n == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown resource %q", name)
}

func rlimitName(r int) string {
	if r >= 0 && r < len(rlimitNames) {
		return rlimitNames[r]
	}
	return "RLIMIT_" + strconv.Itoa(r)
}

// applyRlimits sets c's limits on the whole of init. syscall.Setrlimit,
// not prlimit: for RLIMIT_NOFILE it also stops the Go runtime from
// restoring the caller's limit in the children it forks.
func applyRlimits(c *Config) error {
	if len(c.Rlimits) > 0 {
		c.tracer()("rlimits")
	}
	for _, l := range c.Rlimits {
		lim := syscall.Rlimit{Cur: l.Soft, Max: l.Hard}
		if err := syscall.Setrlimit(l.Resource, &lim); err != nil {
			var cur syscall.Rlimit
			syscall.Getrlimit(l.Resource, &cur)
			hint := ""
			if err == unix.EPERM && l.Hard > cur.Max {
				hint = fmt.Sprintf(" (the caller's hard limit is %d; a rootless runtime cannot raise it)", cur.Max)
			}
			return fmt.Errorf("process.rlimits: setrlimit %s soft %d hard %d: %w%s", rlimitName(l.Resource), l.Soft, l.Hard, err, hint)
		}
	}
	return nil
}

// applyOOMScoreAdj writes init's oom_score_adj, which its children inherit.
func applyOOMScoreAdj(c *Config) error {
	if c.OOMScoreAdj == nil {
		return nil
	}
	c.tracer()("oom_score_adj")
	const p = "/proc/self/oom_score_adj"
	if err := os.WriteFile(p, []byte(strconv.Itoa(*c.OOMScoreAdj)), 0); err != nil {
		return fmt.Errorf("process.oomScoreAdj %d: %w (an unprivileged user may only raise it)", *c.OOMScoreAdj, err)
	}
	return nil
}

// SysctlPath is the file under /proc/sys of a sysctl key (net.ipv4.ip_forward
// or net/ipv4/ip_forward), or an error for a key that is not one.
func SysctlPath(key string) (string, error) {
	k := strings.ReplaceAll(key, ".", "/")
	for _, part := range strings.Split(k, "/") {
		if part == "" || part == ".." {
			return "", fmt.Errorf("%q: not a sysctl name", key)
		}
	}
	return path.Join("/proc/sys", k), nil
}

// writeSysctls writes c's sysctls through init's /proc: each applies to the
// namespaces of the process that writes it, the container's. The kernel
// refuses the ones that are not namespaced, or not owned by the
// container's user namespace.
func writeSysctls(c *Config) error {
	for _, key := range slices.Sorted(maps.Keys(c.Sysctl)) {
		value := c.Sysctl[key]
		p, err := SysctlPath(key)
		if err != nil {
			return fmt.Errorf("linux.sysctl: %w", err)
		}
		if err := os.WriteFile(p, []byte(value), 0); err != nil {
			return fmt.Errorf("linux.sysctl %s=%s: %w (only namespaced parameters can be set in a container)", key, value, err)
		}
	}
	return nil
}

// permittedCaps is the calling thread's permitted set.
func permittedCaps() (CapSet, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return CapSet(data[0].Permitted) | CapSet(data[1].Permitted)<<32, nil
}

// setInheritable makes set the calling thread's inheritable capabilities,
// which its children keep over exec (and ambient ones need).
func setInheritable(set CapSet) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = uint32(set), uint32(set>>32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset (inheritable %s): %w", set, err)
	}
	return nil
}

// processPlan is how `run --explain` shows the attributes above.
func processPlan(c *Config) []PlanStep {
	var out []PlanStep
	if len(c.Rlimits) > 0 {
		cmd := "prlimit --pid $$"
		for _, l := range c.Rlimits {
			cmd += fmt.Sprintf(" --%s=%d:%d", strings.ToLower(strings.TrimPrefix(rlimitName(l.Resource), "RLIMIT_")), l.Soft, l.Hard)
		}
		out = append(out, PlanStep{Stage: "init", Key: "rlimits", Comment: "the bundle's resource limits, on init and so on everything it starts", Commands: []string{cmd}})
	}
	if c.OOMScoreAdj != nil {
		out = append(out, PlanStep{Stage: "init", Key: "oom_score_adj", Comment: "the bundle's OOM score adjustment, inherited by the command",
			Commands: []string{fmt.Sprintf("echo %d > /proc/self/oom_score_adj", *c.OOMScoreAdj)}})
	}
	return out
}

// sysctlPlan is the sysctl step of `run --explain`.
func sysctlPlan(c *Config) []string {
	var cmds []string
	for _, key := range slices.Sorted(maps.Keys(c.Sysctl)) {
		cmds = append(cmds, fmt.Sprintf("sysctl -w %s='%s'", key, c.Sysctl[key]))
	}
	return cmds
}

// runHooks runs one list of c's hooks with the state at this point.
func runHooks(c *Config, trace func(string), which string, list []hooks.Hook, status string, pid int) error {
	if len(list) == 0 {
		return nil
	}
	trace("hooks-" + which)
	st := hooks.State{Status: status, Pid: pid}
	if c.HookState != nil {
		st = *c.HookState
		st.Status, st.Pid = status, pid
	}
	return hooks.Run(which, list, st)
}

// hookSet is the bundle's hooks, none when it has none.
func (c *Config) hookSet() hooks.Set {
	if c.Hooks == nil {
		return hooks.Set{}
	}
	return *c.Hooks
}

// createHooks: the hooks that run before init's pivot_root.
func (c *Config) createHooks() bool {
	h := c.hookSet()
	return len(h.Prestart)+len(h.CreateRuntime)+len(h.CreateContainer) > 0
}
