package userns

import (
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// capNames are the capabilities by number, as capabilities(7) names them
// (without CAP_).
var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
	"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
	"MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
	"CHECKPOINT_RESTORE",
}

// CapSet is a set of capabilities, bit N for capability N.
type CapSet uint64

// DefaultCaps is podman's default set (Docker's, less MKNOD, NET_RAW and
// AUDIT_WRITE).
var DefaultCaps = capSetOf("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE",
	"SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT")

func capSetOf(names ...string) CapSet {
	var s CapSet
	for _, n := range names {
		c, err := parseCap(n)
		if err != nil {
			panic(err)
		}
		s |= 1 << c
	}
	return s
}

// allCaps are the capabilities this kernel has.
func allCaps() CapSet {
	last := lastCap()
	if last >= 63 {
		return ^CapSet(0)
	}
	return CapSet(1)<<(last+1) - 1
}

// lastCap is the kernel's highest capability, read once per process (a
// start parses several sets).
var lastCap = sync.OnceValue(func() int {
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n < 64 {
			return n
		}
	}
	return len(capNames) - 1
})

func parseCap(s string) (int, error) {
	name := strings.TrimPrefix(strings.ToUpper(s), "CAP_")
	for i, n := range capNames {
		if n == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %q", s)
}

// parseCapList reads the names given to one of --cap-add and --cap-drop:
// the set they name, and whether ALL was among them.
func parseCapList(names []string) (set CapSet, all bool, err error) {
	for _, n := range names {
		if strings.EqualFold(n, "ALL") {
			all = true
			continue
		}
		c, err := parseCap(n)
		if err != nil {
			return 0, false, err
		}
		set |= 1 << c
	}
	return set, all, nil
}

// ApplyCapFlags is Docker's rule for --cap-add and --cap-drop over the
// default set: ALL in --cap-drop empties it before the additions, ALL in
// --cap-add fills it before the drops. It returns the set and, for a
// non-root user, the capabilities to give as ambient: those added by name.
func ApplyCapFlags(add, drop []string) (set, added CapSet, err error) {
	set = DefaultCaps
	addSet, addAll, err := parseCapList(add)
	if err != nil {
		return 0, 0, fmt.Errorf("--cap-add: %w", err)
	}
	dropSet, dropAll, err := parseCapList(drop)
	if err != nil {
		return 0, 0, fmt.Errorf("--cap-drop: %w", err)
	}
	if addAll && dropAll {
		return 0, 0, fmt.Errorf("--cap-add ALL and --cap-drop ALL contradict each other")
	}
	switch {
	case dropAll:
		set = addSet
	case addAll:
		set = allCaps() &^ dropSet
		addSet = set
	default:
		set = (set | addSet) &^ dropSet
	}
	return set & allCaps(), addSet & set & allCaps(), nil
}

// String lists the set by name.
func (s CapSet) String() string {
	var names []string
	for c := 0; c < 64; c++ {
		if s&(1<<c) != 0 {
			if c < len(capNames) {
				names = append(names, "CAP_"+capNames[c])
			} else {
				names = append(names, "CAP_"+strconv.Itoa(c))
			}
		}
	}
	return strings.Join(names, ",")
}

// Names lists the set as "CAP_CHOWN" and so on.
func (s CapSet) Names() []string {
	if s == 0 {
		return nil
	}
	return strings.Split(s.String(), ",")
}

// list is the set as capability numbers (for AmbientCaps).
func (s CapSet) list() []uintptr {
	out := make([]uintptr, 0, bits.OnesCount64(uint64(s)))
	for c := 0; c < 64; c++ {
		if s&(1<<c) != 0 {
			out = append(out, uintptr(c))
		}
	}
	return out
}

// limitBoundingSet drops every capability outside set from the calling
// thread's bounding set: a process it execs as root then gets exactly set,
// and no process it forks can ever gain more. The thread's own
// capabilities are unchanged.
func limitBoundingSet(set CapSet) error {
	last := lastCap()
	for c := 0; c <= last; c++ {
		if set&(1<<c) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("prctl(PR_CAPBSET_DROP, %d): %w", c, err)
		}
	}
	return nil
}

// procCaps is how a process of the container gets its capabilities: root
// from the bounding set at exec; another user only the ones added for it,
// as ambient capabilities (Go's SysProcAttr raises them after setuid).
// An OCI bundle's ambient set (with its inheritable one) is raised for
// root too, as runc does.
func procCaps(c *Config, uid uint32) []uintptr {
	if uid == 0 && c.InheritableCaps == 0 {
		return nil
	}
	return CapSet(c.AmbientCaps).list()
}

// raiseAmbient makes caps ambient on the calling thread, which must still
// have them permitted (PR_SET_KEEPCAPS over setuid): a capability must be
// permitted and inheritable to be raised as ambient.
func raiseAmbient(caps []uintptr) error {
	if len(caps) == 0 {
		return nil
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for _, c := range caps {
		data[c/32].Inheritable |= 1 << (c % 32)
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	for _, c := range caps {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, c, 0, 0); err != nil {
			return fmt.Errorf("raise ambient %s: %w", CapSet(1)<<c, err)
		}
	}
	return nil
}

// AllCapNames are the capabilities' names as --cap-add takes them.
func AllCapNames() []string {
	var out []string
	for _, n := range capNames {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// ParseCapSet reads capability names ("CAP_CHOWN", "chown"), as an OCI
// bundle's process.capabilities lists them; unknown ones are an error.
func ParseCapSet(names []string) (CapSet, error) {
	set, all, err := parseCapList(names)
	if all {
		set = allCaps()
	}
	return set & allCaps(), err
}
