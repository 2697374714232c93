package userns

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/rootfs"
	"github.com/isobox/isobox/slirp"
	"github.com/isobox/isobox/userns/cgroups"
)

// launch is what Run decides before it starts anything: the mapping, the
// network, the namespaces and whether a holder is needed. Run executes it;
// Explain describes it, step by step, with the keys Run and init log at
// debug level as they take each step.
type launch struct {
	mapping       idmap.Plan
	cfg           Config
	driver        slirp.Driver
	userMode      bool
	slirpFallback bool // --net slirp asked, slirp4netns missing: gvisor
	flags         uintptr
	hc            *HolderConfig
	direct        bool
	directPath    string
	joinUser      bool // a user namespace is joined: the holder goes through nsenter
}

// decide plans a start. It reads the caller's ranges and what the host has
// installed; it starts nothing.
func decide(o Options) (*launch, error) {
	if len(o.Args) == 0 && !(o.NoProcess && o.WaitStart) {
		return nil, setupError(errors.New("no command"))
	}
	var plan idmap.Plan
	joins, joinUser := joinFlags(o.Join)
	if joinUser {
		// The joined namespace's own maps, read once the holder is in it
		// (joinedMaps).
		if o.Net != NetNone && o.Net != NetHost || len(o.Publish) > 0 {
			return nil, setupError(errors.New("a joined user namespace takes no user-mode network: its own network namespace, or a new one with only lo"))
		}
	} else {
		var err error
		if plan, err = planMaps(o); err != nil {
			return nil, setupError(err)
		}
		if err := checkUser(plan, o.UID, o.GID); err != nil {
			return nil, setupError(err)
		}
	}
	if len(o.ExtraFiles) > 0 && o.NoInit {
		return nil, setupError(errors.New("preserved descriptors need isobox's init: not with --no-init"))
	}
	if len(o.ExtraFiles) >= MaxPassedFDs {
		return nil, setupError(fmt.Errorf("at most %d preserved descriptors", MaxPassedFDs-1))
	}
	lp := &launch{mapping: plan, cfg: o.Config}
	cfg := &lp.cfg
	if cfg.Net == NetDefault {
		cfg.Net = NetSlirp
		if !slirp.Slirp4netnsInstalled() {
			lp.slirpFallback = true
			cfg.Net = NetGvisor
		}
	}
	lp.driver, lp.userMode = cfg.Net.driver()
	if lp.userMode {
		hosts, resolv := slirp.Files(lp.driver, cfg.Hostname)
		cfg.Files = append(cfg.Files, rootfs.File{Path: "/etc/hosts", Content: hosts}, rootfs.File{Path: "/etc/resolv.conf", Content: resolv})
	}
	cfg.SetGroups = plan.Full
	if len(cfg.Groups) > 0 && !cfg.SetGroups {
		return nil, setupError(errors.New("supplementary groups need the subordinate ranges mapped: with one id, setgroups(2) is denied in the container"))
	}
	cfg.TTYGroup = idmap.Contains(plan.GIDs, 5)

	lp.flags = uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP)
	if cfg.Net != NetHost {
		lp.flags |= unix.CLONE_NEWNET
	}
	lp.flags &^= joins
	lp.joinUser = joinUser
	cfg.Joined = joins
	lp.hc = &HolderConfig{Cloneflags: lp.flags, Offsets: o.TimeOffsets, Time: HaveTimeNamespace(), Joined: joinUser}
	if !lp.hc.Time && o.TimeOffsets != (TimeOffsets{}) {
		return nil, setupError(errors.New("--time-offset: this kernel has no time namespaces (Linux 5.6+)"))
	}
	// The holder is needed for time offsets (written after unshare, before
	// init is cloned), for published ports and the gvisor and pasta drivers
	// (their child sides run in it). Without those, init is cloned
	// directly, in all its namespaces at once: one Go process fewer to
	// start and to exit. With slirp4netns, init itself is then the
	// process whose mount namespace the driver's nsenter joins, so it
	// pivots only once the network is up (Config.DirectNetwork).
	directPath, direct := directExe()
	lp.direct = direct && !cgoBuild && !joinUser && len(o.Publish) == 0 && o.TimeOffsets == (TimeOffsets{}) &&
		(!lp.userMode || lp.driver == slirp.DriverSlirp4netns)
	lp.directPath = directPath
	if cfg.DirectNetwork = lp.direct && lp.userMode; cfg.DirectNetwork {
		tap := lp.driver.Expected()
		cfg.Tap = &tap
	}
	if lp.direct && lp.hc.Time {
		lp.flags |= unix.CLONE_NEWTIME // zero offsets: clone3 makes it
	}
	// With a holder, init is the holder's child, which reports its exit:
	// it stays so. Go's clone3 (a time namespace, a cgroup to clone into)
	// cannot take CLONE_PARENT: the runner moves init into its cgroup
	// instead, and a time namespace that was not asked for is left out.
	cfg.Adopted = o.AdoptableInit && lp.direct && !cfg.NoInit && (o.NoTimeNamespace || lp.flags&unix.CLONE_NEWTIME == 0)
	if cfg.Adopted {
		lp.flags &^= unix.CLONE_NEWTIME
	}
	return lp, nil
}

// checkUser checks the command's uid and gid are mapped in the container.
func checkUser(plan idmap.Plan, uid, gid uint32) error {
	if uid != 0 && !idmap.Contains(plan.UIDs, uid) {
		return fmt.Errorf("--user: uid %d is not mapped in the container (%d ids mapped)", uid, idmap.Size(plan.UIDs))
	}
	if gid != 0 && !idmap.Contains(plan.GIDs, gid) {
		return fmt.Errorf("--user: gid %d is not mapped in the container (%d ids mapped)", gid, idmap.Size(plan.GIDs))
	}
	return nil
}

// planMaps is the exact maps given, checked, or those of the mode.
func planMaps(o Options) (idmap.Plan, error) {
	if len(o.UIDMap) == 0 && len(o.GIDMap) == 0 {
		return PlanMapping(o.Map)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if idmap.OwnIDs(o.UIDMap, o.GIDMap, uid, gid) {
		// runc spec --rootless's maps: no ranges to read.
		return idmap.Explicit(o.UIDMap, o.GIDMap, idmap.Caller{UID: uid, GID: gid})
	}
	c, err := CurrentCaller()
	if err != nil {
		return idmap.Plan{}, err
	}
	return idmap.Explicit(o.UIDMap, o.GIDMap, c)
}

// PlanStep is one step of a start as `run --explain` prints it: the
// process that takes it, the key it logs at debug level, the commands a
// user would type for it (the article's unshare, mount, hostname, ip,
// pivot_root...), and what it gives.
type PlanStep struct {
	Stage    string   `json:"stage"` // parent, holder or init
	Key      string   `json:"key"`
	Commands []string `json:"commands"`
	Comment  string   `json:"comment"`
}

// Explain is the plan of a start with these options, in the order each
// process takes its steps; it starts nothing.
func Explain(o Options) ([]PlanStep, error) {
	lp, err := decide(o)
	if err != nil {
		return nil, err
	}
	c := lp.cfg
	var out []PlanStep
	add := func(stage, key, comment string, cmds ...string) {
		out = append(out, PlanStep{Stage: stage, Key: key, Commands: cmds, Comment: comment})
	}
	nsFlags := func(f uintptr) string {
		var b []string
		for _, n := range []struct {
			f    uintptr
			flag string
		}{{unix.CLONE_NEWNS, "--mount"}, {unix.CLONE_NEWPID, "--pid"}, {unix.CLONE_NEWUTS, "--uts"}, {unix.CLONE_NEWIPC, "--ipc"},
			{unix.CLONE_NEWNET, "--net"}, {unix.CLONE_NEWCGROUP, "--cgroup"}, {unix.CLONE_NEWTIME, "--time"}} {
			if f&n.f != 0 {
				b = append(b, n.flag)
			}
		}
		return strings.Join(b, " ")
	}
	// With limits, or where a cgroup can be made as things are (a
	// delegated cgroup v2), as makeCgroup decides.
	if _, err := cgroups.Base(); !o.Limits.IsZero() || err == nil {
		add("parent", "cgroup", "a cgroup of the container's own under yours (a delegated cgroup v2), its limits written before its first process is cloned into it (clone3 CLONE_INTO_CGROUP)",
			o.Limits.Commands("$CGROUP/"+cgroups.Prefix+"ID")...)
		c.Cgroup = true
	}
	if lp.direct {
		add("parent", "clone", "one clone makes every namespace, the user namespace first, so that it owns the others; isobox:init is its PID 1 ($PID on the host)",
			"unshare --user "+nsFlags(lp.flags)+" --fork --kill-child isobox:init")
	} else {
		add("parent", "clone-holder", "the user namespace alone first (with a mount namespace), held by isobox:holder ($HOLDER on the host)",
			"unshare --user --mount --fork --kill-child isobox:holder")
	}
	target := "$PID"
	if !lp.direct {
		target = "$HOLDER"
	}
	if lp.mapping.Full {
		add("parent", "uid-map", "container root is you; container ids 1..N are your subordinate range (setuid helper)",
			"newuidmap "+target+" "+strings.Join(idmap.Args(0, lp.mapping.UIDs)[1:], " "))
		add("parent", "gid-map", "the same for groups",
			"newgidmap "+target+" "+strings.Join(idmap.Args(0, lp.mapping.GIDs)[1:], " "))
	} else {
		add("parent", "uid-map", "only root is mapped, to you",
			fmt.Sprintf("echo '%s' > /proc/%s/uid_map", strings.TrimSpace(idmap.MapText(lp.mapping.UIDs)), target))
		add("parent", "gid-map", "setgroups(2) denied, as the kernel requires before a single-id gid_map",
			fmt.Sprintf("echo deny > /proc/%s/setgroups", target),
			fmt.Sprintf("echo '%s' > /proc/%s/gid_map", strings.TrimSpace(idmap.MapText(lp.mapping.GIDs)), target))
	}
	if !lp.direct {
		inner := lp.flags &^ unix.CLONE_NEWNS
		cmd := "unshare " + nsFlags(inner|unix.CLONE_NEWNS)
		if lp.hc.Time {
			cmd += " --time"
			if o.TimeOffsets.Boottime != 0 {
				cmd += " --boottime " + strconv.FormatInt(o.TimeOffsets.Boottime, 10)
			}
			if o.TimeOffsets.Monotonic != 0 {
				cmd += " --monotonic " + strconv.FormatInt(o.TimeOffsets.Monotonic, 10)
			}
		}
		add("holder", "clone-init", "inside the user namespace, the others, owned by it; isobox:init is PID 1 ($PID)", cmd+" --fork isobox:init")
	}
	if lp.userMode {
		tap := lp.driver.Expected()
		cmds := []string{}
		comment := "user-mode networking: the container's traffic leaves through a process of yours on the host"
		switch lp.driver {
		case slirp.DriverSlirp4netns:
			cmds = append(cmds,
				"nsenter -t $PID -U -m -n --preserve-credentials ip tuntap add name "+tap.Dev+" mode tap",
				"nsenter -t $PID -U -m -n --preserve-credentials ip link set "+tap.Dev+" up",
				fmt.Sprintf("slirp4netns --mtu %d -r 3 --disable-host-loopback --userns-path=/proc/$PID/ns/user --netns-type=path /proc/$PID/ns/net %s &", tap.MTU, tap.Dev))
			if o.AllowHostLoopback {
				cmds[2] = strings.Replace(cmds[2], " --disable-host-loopback", "", 1)
			}
			comment += " (RootlessKit's slirp4netns driver)"
		case slirp.DriverGvisor:
			cmds = append(cmds, "isobox-gvisor parent $HOLDER ... &   # gvisor-tap-vsock's stack, RootlessKit's driver")
		default:
			cmds = append(cmds, string(lp.driver)+" ... &   # RootlessKit's "+string(lp.driver)+" driver")
		}
		for _, p := range o.Publish {
			cmds = append(cmds, "# publish "+p.String()+" (RootlessKit's builtin port driver, on the host)")
		}
		add("parent", "network", comment, cmds...)
	}
	add("init", "hostname", "the UTS namespace: a hostname of its own", "hostname "+c.Hostname)
	if c.Net != NetHost {
		add("init", "loopback", "the network namespace has only lo, down until now", "ip link set lo up")
		add("init", "ping_group_range", "ping without CAP_NET_RAW, for the container's groups",
			fmt.Sprintf("sysctl -w net.ipv4.ping_group_range='0 %d'", idmap.Size(lp.mapping.GIDs)-1))
	}
	if len(c.Sysctl) > 0 {
		add("init", "sysctl", "the bundle's namespaced kernel parameters, in the container's namespaces", sysctlPlan(&c)...)
	}
	spec := rootfsSpec(&c)
	rsteps := spec.Plan()
	pivot := rsteps[len(rsteps)-1]
	for _, s := range rsteps[:len(rsteps)-1] {
		add("init", s.Key, s.Comment, s.Commands...)
	}
	if c.DirectNetwork {
		add("init", "tap", "the tap the driver made, configured from inside",
			fmt.Sprintf("ip addr add %s/%d dev %s", c.Tap.IP, c.Tap.Netmask, c.Tap.Dev),
			fmt.Sprintf("ip route add default via %s", c.Tap.Gateway))
	}
	add("init", pivot.Key, pivot.Comment, pivot.Commands...)
	if c.MakeWorkdir && c.Workdir != "" {
		add("init", "workdir", "the image's working directory, made if missing", "mkdir -p "+c.Workdir)
	}
	for _, s := range lockDownPlan(&c) {
		add("init", s.Key, s.Comment, s.Commands...)
	}
	out = append(out, processPlan(&c)...)
	argv := strings.Join(c.Args, " ")
	who := fmt.Sprintf("setpriv --reuid %d --regid %d --clear-groups -- ", c.UID, c.GID)
	if c.UID == 0 && c.GID == 0 {
		who = ""
	}
	if c.NoInit {
		add("init", "exec", "--no-init: the command replaces init as PID 1", "exec "+who+argv)
	} else {
		add("init", "exec", "isobox's init stays PID 1: it forwards signals, reaps orphans and exits with the command's status",
			"setsid "+who+argv+" &   # then: wait, and exit with its status")
	}
	return out, nil
}

// rootfsSpec is what init prepares the rootfs with (setupContainer).
func rootfsSpec(c *Config) rootfs.Spec {
	return rootfs.Spec{
		Root: c.Rootfs, TTYGroup: c.TTYGroup, Files: c.Files,
		Mounts: c.Mounts, Readonly: c.Readonly, Overlay: c.Overlay,
		MaskedPaths: c.MaskedPaths, ReadonlyPaths: c.ReadonlyPaths, RootPropagation: c.RootPropagation,
		Devices: c.Devices, Cgroup: c.Cgroup,
		NoMqueue: c.Joined&unix.CLONE_NEWIPC != 0 && c.Joined&unix.CLONE_NEWUSER == 0,
	}
}

// lockDownPlan are lockDown's steps (forker.go), as init logs them once
// they are in place.
func lockDownPlan(c *Config) []PlanStep {
	caps := strings.ToLower(strings.ReplaceAll(strings.Join(c.Caps.Names(), ",+"), "CAP_", ""))
	if caps != "" {
		caps = ",+" + caps
	}
	out := []PlanStep{{Key: "capabilities", Comment: "the capability set, also as the bounding set: container root cannot mount, change the hostname or load modules",
		Commands: []string{"setpriv --bounding-set -all" + caps + " --inh-caps -all" + caps}}}
	if !c.NewPrivs {
		out = append(out, PlanStep{Key: "no_new_privs", Comment: "setuid binaries and file capabilities gain nothing",
			Commands: []string{"setpriv --no-new-privs"}})
	}
	if len(c.Seccomp) > 0 {
		out = append(out, PlanStep{Key: "seccomp", Comment: fmt.Sprintf("a seccomp filter of %d instructions (Docker's default profile unless --security-opt seccomp=...)", len(c.Seccomp)),
			Commands: []string{"seccomp(SECCOMP_SET_MODE_FILTER, ...)   # no command-line tool; isobox installs it with the system call"}})
	}
	return out
}

// ExplainExec is the plan of `isobox exec` into the container whose
// record info is: isobox does not setns (a Go process cannot join a user
// namespace); it asks the container's init, over the record's socket, to
// fork the process from its locked-down forker, in every namespace of the
// container. nsenter is how a user would type the same.
func ExplainExec(pid int, socket, workdir string, r ExecRequest) []PlanStep {
	if r.Workdir != "" {
		workdir = r.Workdir
	}
	if workdir == "" {
		workdir = "/"
	}
	cmd := fmt.Sprintf("nsenter --target %d --all --root --wd=%s --preserve-credentials --", pid, workdir)
	if r.User != "" {
		u, g, _ := strings.Cut(r.User, ":")
		cmd += " setpriv --reuid=" + u
		if g != "" {
			cmd += " --regid=" + g
		}
		cmd += " --clear-groups"
	}
	if len(r.Env) > 0 {
		cmd += " env " + strings.Join(r.Env, " ")
	}
	cmd += " " + strings.Join(r.Args, " ")
	return []PlanStep{
		{Stage: "exec", Key: "connect", Comment: "the container's init serves exec on its record's socket: the request carries the command, environment, user and working directory",
			Commands: []string{"connect " + socket}},
		{Stage: "init", Key: "exec", Comment: "init forks it in every namespace of the container, with its root, capability set, no_new_privs and seccomp filter, and reaps it: isobox never setns(2)s (a Go process cannot join a user namespace)",
			Commands: []string{cmd}},
	}
}
