package rootfs

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Step is one step of Prepare, as it runs and as a user would type it with
// the article's commands (`isobox run --explain`): the steps table below is
// both what PrepareToPivot executes, in order, and what Plan describes, so
// the two cannot drift apart.
type Step struct {
	Key      string   `json:"key"`
	Commands []string `json:"commands"`
	Comment  string   `json:"comment"`
}

// preparer is the state the steps share: the root is open from
// "bind-rootfs" on.
type preparer struct {
	s Spec
	r *root
}

type step struct {
	key     string
	comment string
	applies func(Spec) bool // nil: always
	run     func(*preparer) error
	explain func(Spec) []string
}

func always(Spec) bool { return true }

// withRoot runs a step that needs the open root.
func withRoot(f func(*root, Spec) error) func(*preparer) error {
	return func(p *preparer) error { return f(p.r, p.s) }
}

var steps = []step{
	{key: "make-rprivate", comment: "nothing mounted from here on propagates back to the host's mount namespace",
		run:     func(*preparer) error { return mount("", "/", "", "", unix.MS_REC|unix.MS_PRIVATE, "") },
		explain: func(Spec) []string { return []string{"mount --make-rprivate /"} }},
	{key: "overlay", comment: "a copy-on-write layer: the container's writes go to the upper layer, the lower ones stay as they are",
		applies: func(s Spec) bool { return s.Overlay != nil },
		run:     func(p *preparer) error { return mountOverlay(p.s.Root, *p.s.Overlay) },
		explain: func(s Spec) []string {
			upper := "$SCRATCH"
			if s.Overlay.Dir != "" {
				upper = s.Overlay.Dir
			}
			lower := strings.Join(append([]string{s.Root}, s.Overlay.Lower...), ":")
			return []string{fmt.Sprintf("mount -t overlay overlay -o lowerdir=%s,upperdir=%s/upper,workdir=%s/work,userxattr %s", lower, upper, upper, s.Root)}
		}},
	{key: "bind-rootfs", comment: "pivot_root needs the new root to be a mount point",
		run: func(p *preparer) error {
			if err := mount(p.s.Root, p.s.Root, "", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return err
			}
			r, err := openRoot(p.s.Root) // opened after the bind: the fd is on the new mount
			p.r = r
			return err
		},
		explain: func(s Spec) []string { return []string{"mount --rbind " + s.Root + " " + s.Root} }},
	{key: "proc", comment: "a proc of the new PID namespace: ps shows only the container",
		run: withRoot(mountProc),
		explain: func(s Spec) []string {
			return []string{"mount -t proc -o nosuid,nodev,noexec proc " + s.Root + "/proc"}
		}},
	{key: "dev", comment: "a /dev of its own: a user namespace cannot make device nodes, so the harmless ones are bound from the host",
		run: withRoot(mountDev),
		explain: func(s Spec) []string {
			out := []string{"mount -t tmpfs -o nosuid,strictatime,mode=755,size=65536k tmpfs " + s.Root + "/dev"}
			for _, d := range hostDevices {
				out = append(out, fmt.Sprintf("touch %s/dev/%s && mount --bind /dev/%s %s/dev/%s", s.Root, d, d, s.Root, d))
			}
			return append(out,
				"mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620 devpts "+s.Root+"/dev/pts",
				"mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=65536k shm "+s.Root+"/dev/shm",
				"mount -t mqueue -o nosuid,nodev,noexec mqueue "+s.Root+"/dev/mqueue",
				"ln -s pts/ptmx /proc/self/fd /proc/self/fd/0 ... "+s.Root+"/dev/ (ptmx fd stdin stdout stderr core)")
		}},
	{key: "devices", comment: "the devices the bundle asks for, bound from the host's /dev after checking their numbers",
		applies: func(s Spec) bool { return len(s.Devices) > 0 },
		run:     withRoot(bindDevices),
		explain: func(s Spec) []string {
			var out []string
			for _, d := range s.Devices {
				out = append(out, fmt.Sprintf("touch %s%s && mount --bind %s %s%s", s.Root, d.Path, d.Path, s.Root, d.Path))
			}
			return out
		}},
	{key: "sys", comment: "sysfs of the container's network namespace, read-only",
		run: withRoot(mountSys),
		explain: func(s Spec) []string {
			return []string{"mount -t sysfs -o ro,nosuid,nodev,noexec sysfs " + s.Root + "/sys"}
		}},
	{key: "cgroup", comment: "the container's own cgroup as /sys/fs/cgroup, read-only: its cgroup namespace shows it as the root",
		applies: func(s Spec) bool { return s.Cgroup },
		run:     withRoot(mountCgroup),
		explain: func(s Spec) []string {
			return []string{"mount -t cgroup2 -o ro,nosuid,nodev,noexec cgroup2 " + s.Root + "/sys/fs/cgroup"}
		}},
	// Before the volumes: a volume under /tmp or /run (Slurm's batch
	// steps bind files onto /tmp/slurm/...) goes on top of the tmpfs, its
	// mount point made there, not hidden under it.
	{key: "read-only-tmpfs", comment: "with --read-only, writable tmpfs where programs expect to write",
		applies: func(s Spec) bool { return s.Readonly },
		run:     withRoot(readonlyDefaults),
		explain: func(s Spec) []string {
			var out []string
			for _, p := range readonlyScratch {
				out = append(out, "mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "+s.Root+p)
			}
			return out
		}},
	{key: "volumes", comment: "your volumes and tmpfs mounts, each destination resolved inside the rootfs",
		applies: func(s Spec) bool { return len(s.Mounts) > 0 },
		run:     withRoot(userMounts),
		explain: func(s Spec) []string {
			var out []string
			for _, m := range s.Mounts {
				switch {
				case m.Tmpfs():
					out = append(out, fmt.Sprintf("mount -t tmpfs -o %s tmpfs %s%s", mountOpts(m.mountFlags(), m.Data), s.Root, m.Dest))
				case m.mountFlags() != 0:
					out = append(out, fmt.Sprintf("mount --rbind %s %s%s && mount -o remount,bind,%s %s%s", m.Source, s.Root, m.Dest, mountOpts(m.mountFlags(), ""), s.Root, m.Dest))
				default:
					out = append(out, fmt.Sprintf("mount --rbind %s %s%s", m.Source, s.Root, m.Dest))
				}
			}
			return out
		}},
	{key: "files", comment: "the network's /etc/hosts and /etc/resolv.conf, shown over the rootfs's without changing them on disk",
		applies: func(s Spec) bool { return len(s.Files) > 0 },
		run:     withRoot(bindFiles),
		explain: func(s Spec) []string {
			var out []string
			for _, f := range s.Files {
				out = append(out, fmt.Sprintf("mount --bind $FILE %s%s", s.Root, f.Path))
			}
			return out
		}},
	{key: "masks", comment: "the paths runc hides or makes read-only: kernel memory, keys, sysrq, /proc/sys",
		run: withRoot(maskPaths),
		explain: func(s Spec) []string {
			var out []string
			for _, p := range s.masked() {
				// A directory gets an empty tmpfs, a file /dev/null: as the
				// host's proc and sys have them (the container's are alike).
				if st, err := os.Stat(p); err == nil && st.IsDir() {
					out = append(out, fmt.Sprintf("mount -t tmpfs -o ro,nosuid,nodev,noexec,size=0 tmpfs %s%s", s.Root, p))
				} else {
					out = append(out, fmt.Sprintf("mount --bind /dev/null %s%s", s.Root, p))
				}
			}
			for _, p := range s.readonly() {
				out = append(out, fmt.Sprintf("mount --bind %s%s %s%s && mount -o remount,bind,ro %s%s", s.Root, p, s.Root, p, s.Root, p))
			}
			return out
		}},
	{key: "read-only-root", comment: "--read-only: the root's own mount read-only",
		applies: func(s Spec) bool { return s.Readonly },
		run:     withRoot(remountRootReadonly),
		explain: func(s Spec) []string { return []string{"mount -o remount,bind,ro " + s.Root} }},
}

// pivotStep is the last, run by the function PrepareToPivot returns.
var pivotStep = step{key: "pivot_root", comment: "the rootfs becomes /, the host's tree is detached (not chroot: there is no way back up)",
	explain: func(s Spec) []string {
		out := []string{"cd " + s.Root + " && pivot_root . . && umount -l . && cd /"}
		if s.RootPropagation != 0 {
			out = append(out, "mount --make-"+propagationName(s.RootPropagation)+" /")
		}
		return out
	}}

// propagationName is mount(8)'s name of a propagation flag set.
func propagationName(f uintptr) string {
	name := map[uintptr]string{unix.MS_SHARED: "shared", unix.MS_SLAVE: "slave", unix.MS_PRIVATE: "private", unix.MS_UNBINDABLE: "unbindable"}[f&^unix.MS_REC]
	if f&unix.MS_REC != 0 {
		return "r" + name
	}
	return name
}

// Plan lists Prepare's steps for s, in the order it runs them.
func (s Spec) Plan() []Step {
	var out []Step
	for _, st := range append(append([]step{}, steps...), pivotStep) {
		if st.applies == nil || st.applies(s) {
			out = append(out, Step{Key: st.key, Commands: st.explain(s), Comment: st.comment})
		}
	}
	return out
}

// mountOpts spells flags and data as mount -o takes them.
func mountOpts(flags uintptr, data string) string {
	var o []string
	for _, f := range []struct {
		flag uintptr
		name string
	}{{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"}, {unix.MS_NOEXEC, "noexec"}} {
		if flags&f.flag != 0 {
			o = append(o, f.name)
		}
	}
	if data != "" {
		o = append(o, data)
	}
	if len(o) == 0 {
		return "defaults"
	}
	return strings.Join(o, ",")
}
