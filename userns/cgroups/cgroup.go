package cgroups

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// Prefix names every cgroup isobox makes; Sweep removes only those.
	Prefix = "isobox-"
	// leafName is the child the caller's processes are moved into when a
	// controller must be enabled (see the package doc).
	leafName = "init"
)

// ErrNoV2 and ErrNotDelegated are why a host cannot take limits. Each
// error that wraps them says which path and the fix.
var (
	ErrNoV2         = errors.New("no cgroup v2 hierarchy")
	ErrNotDelegated = errors.New("cgroup not delegated")
)

// DelegateHint is the fix for ErrNotDelegated, for the hint line.
const DelegateHint = "run isobox under `systemd-run --user --scope -p Delegate=yes`, or set Delegate=cpu cpuset io memory pids in user@.service (sudo systemctl edit user@.service); Slurm and CI runners can delegate a job's own subtree"

// Mount is where the cgroup v2 hierarchy is mounted on the host:
// /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one
// (whose controllers are all in v1, so it takes no limits).
func Mount() (dir string, hybrid bool, err error) {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "/sys/fs/cgroup", false, nil
	}
	if unix.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "/sys/fs/cgroup/unified", true, nil
	}
	return "", false, fmt.Errorf("%w: /sys/fs/cgroup is cgroup v1 (limits need cgroup v2: boot with systemd.unified_cgroup_hierarchy=1)", ErrNoV2)
}

// Own is this process's cgroup v2 path, from the "0::" line of
// /proc/self/cgroup.
func Own() (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return parseOwn(f)
}

func parseOwn(r io.Reader) (string, error) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		if p, ok := strings.CutPrefix(s.Text(), "0::"); ok {
			return p, nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%w: /proc/self/cgroup has no cgroup v2 line", ErrNoV2)
}

// Base is the cgroup under which this caller's containers go: its own
// cgroup, or, when the caller sits in the leaf isobox moved it into, that
// leaf's parent. ok is false when the caller cannot create cgroups there
// (not delegated); err explains it.
func Base() (dir string, err error) {
	mount, hybrid, err := Mount()
	if err != nil {
		return "", err
	}
	own, err := Own()
	if err != nil {
		return "", err
	}
	dir = filepath.Join(mount, own)
	if filepath.Base(dir) == leafName && writable(filepath.Dir(dir)) {
		return filepath.Dir(dir), nil
	}
	if !writable(dir) {
		if hybrid {
			return "", fmt.Errorf("%w: this host's controllers are in cgroup v1 (a hybrid host), and %s is not yours: limits need cgroup v2 (boot with systemd.unified_cgroup_hierarchy=1)", ErrNotDelegated, dir)
		}
		return "", fmt.Errorf("%w: your cgroup %s is not delegated to you", ErrNotDelegated, dir)
	}
	return dir, nil
}

// writable reports whether the caller may make children in dir and move
// processes there: the directory, its cgroup.procs and its
// cgroup.subtree_control are writable (what delegation chowns).
func writable(dir string) bool {
	for _, p := range []string{dir, dir + "/cgroup.procs", dir + "/cgroup.subtree_control"} {
		if unix.Access(p, unix.W_OK) != nil {
			return false
		}
	}
	return true
}

// Cgroup is a container's cgroup, held by the runner that made it.
type Cgroup struct {
	Path string   // in the host's cgroup v2 mount
	dir  *os.File // flock'ed for the runner's life
}

// FD is the cgroup directory's descriptor, for clone3's CLONE_INTO_CGROUP.
func (c *Cgroup) FD() int { return int(c.dir.Fd()) }

// Create makes a container's cgroup with limits l. With required false (no
// limit asked), a host where none can be made gives nil and no error, and
// nothing is moved; with limits, it is an error that names the reason and
// leaves nothing behind.
//
// It sweeps first what killed runners left under the same base.
func Create(l Limits, required bool) (*Cgroup, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	base, err := Base()
	if err != nil {
		if !required {
			return nil, nil
		}
		return nil, err
	}
	sweep(base)
	if err := checkCpuset(base, l); err != nil {
		return nil, err
	}
	if err := enable(base, l.Controllers()); err != nil {
		return nil, err
	}
	c, err := makeLocked(base)
	if err != nil {
		if !required {
			return nil, nil
		}
		return nil, err
	}
	if err := c.apply(l); err != nil {
		c.Remove()
		return nil, err
	}
	return c, nil
}

// enable turns on the controllers in base's cgroup.subtree_control, moving
// base's processes into its leaf first when it has any (the package doc).
func enable(base string, want []string) error {
	have, err := words(base + "/cgroup.controllers")
	if err != nil {
		return err
	}
	on, err := words(base + "/cgroup.subtree_control")
	if err != nil {
		return err
	}
	var add []string
	for _, c := range want {
		if !have[c] {
			return fmt.Errorf("%w: the %s controller is not delegated to %s (it has: %s)", ErrNotDelegated, c, base, listOf(have))
		}
		if !on[c] {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	// Moved first even when the kernel would take the write: the threaded
	// controllers (pids, cpu, cpuset, perf_event) are allowed beside
	// processes, but a cgroup with both is a thread root, and its new
	// children could then hold no process at all (clone3 and cgroup.procs
	// give EOPNOTSUPP).
	if err := moveToLeaf(base); err != nil {
		return err
	}
	return writeFile(base+"/cgroup.subtree_control", strings.Join(add, " "))
}

// checkCpuset refuses CPUs and memory nodes that base does not have, which
// the kernel would refuse only once the cgroup is made and the caller's
// processes moved.
func checkCpuset(base string, l Limits) error {
	for _, c := range []struct{ flag, list, file string }{
		{"--cpuset-cpus", l.CpusetCpus, "cpuset.cpus.effective"}, {"--cpuset-mems", l.CpusetMems, "cpuset.mems.effective"}} {
		if c.list == "" {
			continue
		}
		want, err := ParseList(c.list)
		if err != nil {
			return fmt.Errorf("%s %q: %w", c.flag, c.list, err)
		}
		b, err := os.ReadFile(filepath.Join(base, c.file))
		if err != nil {
			continue // no cpuset controller there: enable names it
		}
		have, err := ParseList(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(base, c.file), err)
		}
		for n := range want {
			if !have[n] {
				return fmt.Errorf("%s %q: %d is not in %s (%s)", c.flag, c.list, n, filepath.Join(base, c.file), strings.TrimSpace(string(b)))
			}
		}
	}
	return nil
}

// ParseList reads the kernel's list format (0-3,5,7-8) as a set.
func ParseList(s string) (map[int]bool, error) {
	set := map[int]bool{}
	if s == "" {
		return set, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b-a > 1<<16 {
			return nil, fmt.Errorf("%q: want a list such as 0-3,5", part)
		}
		for n := a; n <= b; n++ {
			set[n] = true
		}
	}
	return set, nil
}

// moveToLeaf moves every process of base, if it has any, into base/init.
func moveToLeaf(base string) error {
	leaf := filepath.Join(base, leafName)
	// Processes may fork while they move: read until none is left (a few
	// rounds at most).
	for round := 0; round < 10; round++ {
		b, err := os.ReadFile(base + "/cgroup.procs")
		if err != nil {
			return err
		}
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			return nil
		}
		if round == 0 {
			if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		}
		for _, p := range pids {
			if err := writeFile(leaf+"/cgroup.procs", p); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("move process %s into %s (to enable controllers in its parent): %w", p, leaf, err)
			}
		}
	}
	return fmt.Errorf("move the processes of %s into %s: they keep coming", base, leaf)
}

// makeLocked makes a new isobox-* child of base and locks it. A sweep may
// only take a cgroup it can lock, so it cannot remove this one between the
// mkdir and the flock unnoticed: the path is checked again once locked.
func makeLocked(base string) (*Cgroup, error) {
	var b [6]byte
	rand.Read(b[:])
	path := filepath.Join(base, Prefix+hex.EncodeToString(b[:]))
	if err := os.Mkdir(path, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Rmdir(path)
		return nil, err
	}
	if err := unix.Flock(int(dir.Fd()), unix.LOCK_EX); err != nil {
		dir.Close()
		unix.Rmdir(path)
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	var held, named unix.Stat_t
	if unix.Fstat(int(dir.Fd()), &held) != nil || unix.Stat(path, &named) != nil || held.Ino != named.Ino {
		dir.Close()
		return nil, fmt.Errorf("cgroup %s: removed while it was being made", path)
	}
	return &Cgroup{Path: path, dir: dir}, nil
}

// Add moves the process pid into the cgroup: for a process that could not
// be cloned into it (CLONE_INTO_CGROUP), before it runs anything of the
// container.
func (c *Cgroup) Add(pid int) error {
	return writeFile(filepath.Join(c.Path, "cgroup.procs"), strconv.Itoa(pid))
}

// apply writes the limits.
func (c *Cgroup) apply(l Limits) error {
	exists := func(f string) bool { _, err := os.Stat(filepath.Join(c.Path, f)); return err == nil }
	for _, s := range l.settings(exists) {
		if s.optional && !exists(s.file) {
			continue
		}
		if err := writeFile(filepath.Join(c.Path, s.file), s.value); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s: this kernel has no such file (is the controller's feature built in?)", filepath.Join(c.Path, s.file))
			}
			return err
		}
	}
	return nil
}

// Remove removes the cgroup once no process is left in it (the last ones of
// a PID namespace may still be exiting when its init is reaped), and
// releases the lock. A cgroup that does not empty in time is left to the
// next sweep.
func (c *Cgroup) Remove() error {
	defer c.dir.Close()
	var err error
	for wait := time.Millisecond; wait < 2*time.Second; wait *= 2 {
		if err = unix.Rmdir(c.Path); err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(wait)
	}
	return &os.PathError{Op: "rmdir", Path: c.Path, Err: err}
}

// Sweep removes the isobox-* children of the caller's base that no runner
// holds and no process is in: those a runner killed with kill -9 left. It
// is quiet: a host without delegation has nothing to sweep.
func Sweep() {
	if base, err := Base(); err == nil {
		sweep(base)
	}
}

func sweep(base string) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), Prefix) {
			sweepOne(filepath.Join(base, e.Name()))
		}
	}
}

func sweepOne(path string) {
	dir, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer dir.Close()
	if unix.Flock(int(dir.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return // its runner is alive
	}
	if ev, err := keyValues(path + "/cgroup.events"); err == nil && ev["populated"] == 0 {
		unix.Rmdir(path)
	}
}

// Available lists the controllers delegated to base (its
// cgroup.controllers), in the kernel's order.
func Available(base string) ([]string, error) {
	have, err := words(base + "/cgroup.controllers")
	if err != nil {
		return nil, err
	}
	return ordered(have), nil
}

// words reads a space-separated list file (cgroup.controllers) as a set.
func words(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, w := range strings.Fields(string(b)) {
		set[w] = true
	}
	return set, nil
}

// ordered lists a set of controllers in the kernel's order.
func ordered(set map[string]bool) []string {
	var l []string
	for _, c := range []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"} {
		if set[c] {
			l = append(l, c)
		}
	}
	return l
}

// listOf is ordered for a message: "none" when empty.
func listOf(set map[string]bool) string {
	if l := ordered(set); len(l) > 0 {
		return strings.Join(l, " ")
	}
	return "none"
}

// writeFile writes one value into a cgroup file, as the kernel wants it: in
// one write, on a file opened without O_CREAT or O_TRUNC's effects.
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

// Freeze freezes (or thaws) every process of the cgroup at path, and waits
// until the kernel says it is done (cgroup.events), as `runc pause` does.
func Freeze(path string, frozen bool) error {
	value := map[bool]string{true: "1", false: "0"}[frozen]
	if err := writeFile(filepath.Join(path, "cgroup.freeze"), value); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s has no cgroup.freeze (the cgroup v2 freezer is Linux 5.2+)", path)
		}
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if Frozen(path) == frozen {
			return nil
		}
	}
	return fmt.Errorf("%s: cgroup.events does not say frozen %s after 10 s", path, value)
}

// Frozen reports whether the cgroup at path is frozen.
func Frozen(path string) bool {
	b, err := os.ReadFile(filepath.Join(path, "cgroup.events"))
	return err == nil && strings.Contains("\n"+string(b), "\nfrozen 1\n")
}

// Update writes limits l into the running container's cgroup at path
// (`oci update`), enabling in its parent the controllers they need first,
// as Create does; what l leaves unset is left as it is.
func Update(path string, l Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	base := filepath.Dir(path)
	if err := checkCpuset(base, l); err != nil {
		return err
	}
	if err := enable(base, l.Controllers()); err != nil {
		return err
	}
	return (&Cgroup{Path: path}).apply(l)
}
