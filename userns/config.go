package userns

import (
	"github.com/isobox/isobox/rootfs"
	"github.com/isobox/isobox/slirp"
	"github.com/isobox/isobox/userns/hooks"
	"github.com/isobox/isobox/userns/seccomp"
)

// Net is the network mode of a container.
type Net string

const (
	// NetDefault: slirp, or gvisor when slirp4netns is not installed.
	NetDefault Net = ""
	NetNone    Net = "none" // a network namespace of its own with only lo, up
	NetHost    Net = "host" // the caller's network namespace
	// NetSlirp: a namespace of its own with a tap to slirp4netns on the
	// host (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3).
	NetSlirp Net = "slirp"
	// NetGvisor: the same with gvisor-tap-vsock's stack in isobox-gvisor
	// (gateway and DNS 10.0.2.1); nothing to install.
	NetGvisor Net = "gvisor"
	// NetPasta: the same through passt's pasta (2023_06_25 or later).
	NetPasta Net = "pasta"
)

// driver is the user-mode network driver of n, if it has one.
func (n Net) driver() (slirp.Driver, bool) {
	switch n {
	case NetSlirp:
		return slirp.DriverSlirp4netns, true
	case NetGvisor:
		return slirp.DriverGvisor, true
	case NetPasta:
		return slirp.DriverPasta, true
	}
	return "", false
}

// TimeOffsets are the time namespace's offsets, in seconds.
type TimeOffsets struct {
	Monotonic int64 `json:"monotonic,omitempty"`
	Boottime  int64 `json:"boottime,omitempty"`
}

// Config is everything init needs to start the container. The parent fills
// it in on the host and sends it to init before init exists.
type Config struct {
	Rootfs  string   `json:"rootfs"` // absolute host path
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	Workdir string   `json:"workdir"`
	// MakeWorkdir creates Workdir if missing, as Docker does for an
	// image's WorkingDir and for -w.
	MakeWorkdir bool   `json:"makeWorkdir,omitempty"`
	UID         uint32 `json:"uid"`
	GID         uint32 `json:"gid"`
	Hostname    string `json:"hostname"`
	Net         Net    `json:"net"`
	TTY         bool   `json:"tty,omitempty"`
	// Rows and Cols are the caller's window size for the new terminal.
	Rows   uint16 `json:"rows,omitempty"`
	Cols   uint16 `json:"cols,omitempty"`
	NoInit bool   `json:"noInit,omitempty"`
	// NoProcess: `oci create` of a bundle without a process. Everything is
	// set up as for one; init then refuses to start, as runtime-spec wants.
	NoProcess bool `json:"noProcess,omitempty"`
	// PreservedFDs is how many descriptors, last with the config message,
	// the command gets as its 3, 4, ... (oci --preserve-fds).
	PreservedFDs int `json:"preservedFds,omitempty"`
	// ConsoleEarly: with TTY, init opens the terminal before it says its
	// namespaces are ready and passes the master with that message, so
	// that `oci create --console-socket` hands it over before it returns.
	ConsoleEarly bool `json:"consoleEarly,omitempty"`
	// Joined are the clone flags of the namespaces joined (Options.Join):
	// a joined UTS namespace is not init's to name, and a joined IPC
	// namespace outside a joined user namespace is not its to mount
	// message queues of.
	Joined uintptr `json:"joined,omitempty"`
	// Adopted: init is not the runner's child but its parent's, and in
	// time the child of whoever adopts the orphans (Options.AdoptableInit).
	// It then sets no parent-death signal, keeps its channel to the runner
	// open, sends its exit status on it, and ends the container when the
	// runner hangs up.
	Adopted bool `json:"adopted,omitempty"`
	// SetGroups is false when only one id is mapped: setgroups(2) is denied
	// in the namespace and must not be called.
	SetGroups bool `json:"setGroups,omitempty"`
	// TTYGroup: gid 5 is mapped, devpts may use it.
	TTYGroup bool `json:"ttyGroup,omitempty"`
	// Caps is the container's capability set (bounding set, and what root
	// gets); AmbientCaps what a non-root user gets (those added by name).
	Caps        CapSet `json:"caps"`
	AmbientCaps CapSet `json:"ambientCaps,omitempty"`
	// NewPrivs leaves no_new_privs unset (--security-opt
	// no-new-privileges=false): setuid binaries and file capabilities
	// inside then work again.
	NewPrivs bool `json:"newPrivs,omitempty"`
	// InheritableCaps is the processes' inheritable set, set only from an
	// OCI bundle's process.capabilities; with it, AmbientCaps are raised
	// for root too, as runc does (isobox's own flags leave both empty for
	// root: it gets the bounding set at exec).
	InheritableCaps CapSet `json:"inheritableCaps,omitempty"`
	// Groups are the supplementary groups of the container's processes
	// (process.user.additionalGids); they need SetGroups.
	Groups []uint32 `json:"groups,omitempty"`
	// Rlimits are set on init before it starts the command, which inherits
	// them (process.rlimits). init lives under them too, as Docker's
	// --init does under runc's.
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// OOMScoreAdj, when set, is written to init's oom_score_adj before the
	// command starts (process.oomScoreAdj); an unprivileged user may only
	// raise it.
	OOMScoreAdj *int `json:"oomScoreAdj,omitempty"`
	// Hooks are an OCI bundle's lifecycle hooks, HookState the state they
	// read (its status and pid are filled in as they run). The runner runs
	// prestart, createRuntime and poststart on the host; init runs
	// createContainer before its pivot_root and startContainer after.
	Hooks     *hooks.Set   `json:"hooks,omitempty"`
	HookState *hooks.State `json:"hookState,omitempty"`
	// Sysctl are namespaced kernel parameters written under /proc/sys in
	// the container's namespaces once its /proc is mounted (linux.sysctl).
	Sysctl map[string]string `json:"sysctl,omitempty"`
	// Seccomp is the compiled filter; empty for --security-opt
	// seccomp=unconfined.
	Seccomp seccomp.Program `json:"seccomp,omitempty"`
	// Mounts are the volumes and tmpfs mounts; Readonly is --read-only;
	// Overlay is --overlay.
	Mounts   []rootfs.Mount  `json:"mounts,omitempty"`
	Readonly bool            `json:"readonly,omitempty"`
	Overlay  *rootfs.Overlay `json:"overlay,omitempty"`
	// MaskedPaths and ReadonlyPaths add to runc's default lists (an OCI
	// bundle's linux.maskedPaths and readonlyPaths).
	MaskedPaths   []string `json:"maskedPaths,omitempty"`
	ReadonlyPaths []string `json:"readonlyPaths,omitempty"`
	// Devices are bound from the host (linux.devices).
	Devices []rootfs.Device `json:"devices,omitempty"`
	// Cgroup: the container was cloned into a cgroup of its own (Run sets
	// it); init shows it at /sys/fs/cgroup.
	Cgroup bool `json:"cgroup,omitempty"`
	// RootPropagation is set on the container's / (linux.rootfsPropagation).
	RootPropagation uintptr `json:"rootPropagation,omitempty"`
	// Files are shown at their paths in the container (/etc/hosts and
	// /etc/resolv.conf for --net slirp).
	Files []rootfs.File `json:"files,omitempty"`
	// DirectNetwork: init was started by the runner itself (no holder) and
	// gets a user-mode network. Its mount namespace is then the one the
	// driver's helpers (nsenter, ip) run in, so init pivots only once the
	// tap is up, and configures it itself as Tap, the driver's known
	// configuration (the runner checks the driver's report against it).
	DirectNetwork bool           `json:"directNetwork,omitempty"`
	Tap           *slirp.Network `json:"tap,omitempty"`
	// Trace: init logs each step's key on stderr as it takes it
	// (--log-level debug; the steps `run --explain` lists).
	Trace bool `json:"trace,omitempty"`
}

// Rlimit is one resource limit, RLIMIT_* by number.
type Rlimit struct {
	Resource   int    `json:"resource"`
	Soft, Hard uint64 `json:",omitempty"`
}

// HolderConfig is what the holder needs, sent with MsgMapsWritten.
type HolderConfig struct {
	Cloneflags uintptr     `json:"cloneflags"`
	Time       bool        `json:"time,omitempty"` // create a time namespace for init
	Offsets    TimeOffsets `json:"offsets,omitempty"`
	// Joined: the holder was exec'd in a user namespace it joined
	// (through nsenter), in the caller's mount namespace: it makes one of
	// its own on the thread that clones init.
	Joined bool `json:"joined,omitempty"`
	// Exec is set for `isobox unshare`: the holder execs this host command
	// instead of starting init.
	Exec []string `json:"exec,omitempty"`
	// Task and TaskArgs name the work stageMapped does (mapped.go).
	Task     string   `json:"task,omitempty"`
	TaskArgs []string `json:"taskArgs,omitempty"`
}
