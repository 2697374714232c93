package userns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/rootfs"
	"github.com/isobox/isobox/slirp"
	"github.com/isobox/isobox/userns/cgroups"
)

// CheckResult is one line of `isobox check`.
type CheckResult struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Required: `isobox run` cannot work without it. Others are reported
	// for what they enable (networking, overlays, cgroup limits).
	Required bool   `json:"required"`
	Detail   string `json:"detail"`
	Fix      string `json:"fix,omitempty"`
}

// Check inspects the host for what rootless containers need. It only reads,
// and starts short-lived probes in namespaces of their own.
func Check() []CheckResult {
	user := os.Getenv("USER")
	if n := userName(uint32(os.Getuid())); n != "" {
		user = n
	}
	var out []CheckResult
	add := func(r CheckResult) { out = append(out, r) }

	add(checkKernel())
	add(sysctlCheck("user.max_user_namespaces", "/proc/sys/user/max_user_namespaces", true,
		func(v int) bool { return v > 0 }, "sudo sysctl -w user.max_user_namespaces=28633"))
	if _, err := os.Stat("/proc/sys/kernel/unprivileged_userns_clone"); err == nil {
		add(sysctlCheck("kernel.unprivileged_userns_clone", "/proc/sys/kernel/unprivileged_userns_clone", true,
			func(v int) bool { return v == 1 }, "sudo sysctl -w kernel.unprivileged_userns_clone=1"))
	}
	if _, err := os.Stat("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); err == nil {
		add(sysctlCheck("kernel.apparmor_restrict_unprivileged_userns", "/proc/sys/kernel/apparmor_restrict_unprivileged_userns", true,
			func(v int) bool { return v == 0 },
			"sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or give isobox an AppArmor profile with `userns,`)"))
	}
	add(probe("user namespace", true, "create a user namespace", "see the lines above"))
	for _, h := range []string{"newuidmap", "newgidmap"} {
		add(checkHelper(h))
	}
	for _, f := range []struct{ name, path, flag string }{{"subordinate uids", "/etc/subuid", "--add-subuids"}, {"subordinate gids", "/etc/subgid", "--add-subgids"}} {
		add(checkRanges(f.name, f.path, f.flag, user))
	}
	bb, err := rootfs.FindBusyBox()
	add(CheckResult{Name: "static busybox", OK: err == nil, Required: false, Detail: orErr(bb, err),
		Fix: "sudo apt-get install busybox-static (needed by `isobox rootfs busybox`)"})
	add(CheckResult{Name: "time namespace", OK: HaveTimeNamespace(), Required: false,
		Detail: "supported (--time-offset)", Fix: "needs Linux 5.6 or later"})
	add(checkTun())
	add(checkBinary("slirp4netns", "--version", "sudo apt-get install slirp4netns (or use --net gvisor: nothing to install)"))
	add(checkPasta())
	for _, t := range []struct{ name, pkg string }{{"ip", "iproute2"}, {"nsenter", "util-linux"}} {
		p, err := exec.LookPath(t.name)
		add(CheckResult{Name: t.name, OK: err == nil, Required: true, Detail: orErr(p+" (the default network's driver runs it)", err),
			Fix: "sudo apt-get install " + t.pkg})
	}
	add(probe("overlayfs in a user namespace", false, "mount overlay", "needs Linux 5.11 or later, or fuse-overlayfs"))
	add(checkCgroup())
	return out
}

func orErr(detail string, err error) string {
	if err != nil {
		return err.Error()
	}
	return detail
}

func checkKernel() CheckResult {
	rel := kernelRelease()
	var major, minor int
	fmt.Sscanf(rel, "%d.%d", &major, &minor)
	ok := major > 5 || (major == 5 && minor >= 6)
	return CheckResult{Name: "kernel", OK: ok, Required: true,
		Detail: rel + " (needs 5.6+: openat2, time namespaces)", Fix: "upgrade the kernel to 5.6 or later"}
}

func sysctlCheck(name, path string, required bool, good func(int) bool, fix string) CheckResult {
	b, err := os.ReadFile(path)
	if err != nil {
		return CheckResult{Name: name, Required: required, Detail: err.Error(), Fix: fix}
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return CheckResult{Name: name, Required: required, Detail: err.Error(), Fix: fix}
	}
	return CheckResult{Name: name, OK: good(v), Required: required, Detail: strconv.Itoa(v), Fix: fix}
}

func checkHelper(name string) CheckResult {
	r := CheckResult{Name: name, Required: false, Fix: "sudo apt-get install uidmap (without it only root is mapped)"}
	p, err := idmap.FindHelper(name)
	if err != nil {
		r.Detail = "not found"
		return r
	}
	st, err := os.Stat(p)
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	setuid := st.Mode()&os.ModeSetuid != 0 && st.Sys().(*syscall.Stat_t).Uid == 0
	caps, _ := unix.Getxattr(p, "security.capability", nil)
	switch {
	case setuid:
		r.OK, r.Detail = true, p+" (setuid root)"
	case caps > 0:
		r.OK, r.Detail = true, p+" (file capabilities)"
	default:
		r.Detail = p + " has neither the setuid bit nor file capabilities"
		r.Fix = "sudo chmod u+s " + p
	}
	return r
}

func checkRanges(name, path, flag, user string) CheckResult {
	r := CheckResult{Name: name, Required: false,
		Fix: fmt.Sprintf("sudo usermod %s 100000-165535 %s (without it only root is mapped)", flag, user)}
	ranges, err := idmap.LoadRanges(path, user, uint32(os.Getuid()))
	switch {
	case err != nil:
		r.Detail = err.Error()
	case len(ranges) == 0:
		r.Detail = fmt.Sprintf("no range for %s in %s", user, path)
	default:
		var parts []string
		for _, rg := range ranges {
			parts = append(parts, fmt.Sprintf("%d-%d", rg.Start, rg.Start+rg.Count-1))
		}
		r.OK, r.Detail = true, strings.Join(parts, ",")+" in "+path
	}
	return r
}

func checkTun() CheckResult {
	// Required: the default network (slirp, or gvisor) creates a tap.
	r := CheckResult{Name: "/dev/net/tun", Required: true,
		Fix: "sudo chmod 0666 /dev/net/tun (the mode distributions ship; the default network needs it, and it grants nothing without a user namespace; or run with --net none)"}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		r.Detail = err.Error()
		if st, serr := os.Stat("/dev/net/tun"); serr == nil {
			r.Detail = fmt.Sprintf("mode %04o: %v", st.Mode().Perm(), err)
		}
		return r
	}
	f.Close()
	r.OK, r.Detail = true, "readable and writable"
	return r
}

func checkBinary(name, versionFlag, fix string) CheckResult {
	r := CheckResult{Name: name, Fix: fix}
	p, err := exec.LookPath(name)
	if err != nil {
		r.Detail = "not found (needed for user-mode networking)"
		return r
	}
	out, _ := exec.Command(p, versionFlag).CombinedOutput()
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	r.OK, r.Detail = true, p+": "+first
	return r
}

func checkPasta() CheckResult {
	r := CheckResult{Name: "pasta", Fix: "pasta 2023_06_25 or later (passt from a newer release) for --net pasta; --net slirp and gvisor need no pasta"}
	path, date, err := slirp.CheckPasta()
	if err != nil {
		r.Detail = strings.TrimPrefix(err.Error(), slirp.ErrPastaUnusable.Error()+": ")
		return r
	}
	r.OK, r.Detail = true, fmt.Sprintf("%s (%s)", path, date)
	return r
}

func checkCgroup() CheckResult {
	r := CheckResult{Name: "cgroup v2 delegation", Fix: "resource limits (--memory, --cpus, --pids-limit) need it: " + cgroups.DelegateHint}
	base, err := cgroups.Base()
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	have, err := cgroups.Available(base)
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	r.OK = true
	r.Detail = base + " is yours; controllers: " + strings.Join(have, " ")
	if len(have) == 0 {
		r.OK, r.Detail = false, "no controllers delegated to "+base
	}
	return r
}

// probe starts the probe stage in new user and mount namespaces (its own
// uid mapped to root by Go, no helper) and reports whether what describes
// worked there.
func probe(name string, required bool, what, fix string) CheckResult {
	r := CheckResult{Name: name, Required: required, Fix: fix}
	cmd := exec.Command(selfExe, what)
	cmd.Args[0] = stageProbe
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		r.Detail = "cannot " + what + ": " + strings.TrimPrefix(msg, "isobox: "+stageProbe+": ")
		return r
	}
	r.OK, r.Detail = true, "can "+what
	return r
}

// probeMain is the probe stage: it does what argv[1] names inside its own
// mount namespace, on a tmpfs of its own, and exits.
func probeMain() error {
	if len(os.Args) < 2 || os.Args[1] != "mount overlay" {
		return nil // "create a user namespace": being here is the proof
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	dir := "/tmp"
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	data := "lowerdir=/tmp/l,upperdir=/tmp/u,workdir=/tmp/w"
	if err := unix.Mount("overlay", "/tmp/m", "overlay", 0, data); err != nil {
		return errors.New("overlay: " + err.Error())
	}
	return nil
}
