package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

// Joining existing namespaces (an OCI bundle's linux.namespaces[].path).
//
// setns(2) into a namespace needs CAP_SYS_ADMIN in the user namespace
// that owns it, and in one's own. An unprivileged user on the host has
// neither, except over a user namespace of their own: so a user joins a
// namespace together with the user namespace that owns it, or runs isobox
// as root of that user namespace already (inside rootlesskit, `podman
// unshare`, `unshare -r`), as rootless container engines run their
// runtime. The two are started differently:
//
//   - No user namespace to join: the runner's thread that clones init (or
//     the holder) joins them just before the clone, so the new user
//     namespace and its init are born in them; the thread then dies with
//     them, never returned to Go's scheduler.
//   - A user namespace to join: setns into one needs a single-threaded
//     process, which a Go program never is. The holder is started through
//     util-linux nsenter(1), which joins them all, the user namespace
//     first, and execs the holder there; the holder clones init with the
//     namespaces still to make, as root of the joined namespace. No maps
//     are written: the namespace has its own.
//
// PID, mount and time namespaces cannot be joined (init is PID 1 of a PID
// namespace of its own, builds the root in a mount namespace of its own,
// and a time namespace is joined only single-threaded): Translate refuses
// them with the reason.

// Join is a namespace to join: its runtime-spec type and its path.
type Join struct {
	Type string `json:"type"`
	Path string `json:"path"`
}

// joinKinds are the namespaces isobox joins, by runtime-spec type.
var joinKinds = map[string]struct {
	flag    uintptr
	name    string // as in messages: "the network namespace"
	nsenter string // nsenter(1)'s option
}{
	"network": {unix.CLONE_NEWNET, "network", "--net"},
	"ipc":     {unix.CLONE_NEWIPC, "IPC", "--ipc"},
	"uts":     {unix.CLONE_NEWUTS, "UTS", "--uts"},
	"cgroup":  {unix.CLONE_NEWCGROUP, "cgroup", "--cgroup"},
	"user":    {unix.CLONE_NEWUSER, "user", "--user"},
}

// Joinable says whether a namespace of this runtime-spec type can be
// joined, and why not when it cannot.
func Joinable(typ string) (ok bool, why string) {
	if _, ok := joinKinds[typ]; ok {
		return true, ""
	}
	switch typ {
	case "pid":
		return false, "isobox's init is PID 1 of a PID namespace of its own"
	case "mount":
		return false, "isobox builds the container's root in a mount namespace of its own"
	case "time":
		return false, "a time namespace is joined only by a single-threaded process before it starts, and isobox has none there"
	}
	return false, "unknown namespace type"
}

// joinFlags are the clone flags of the namespaces joined: those init is
// not cloned with.
func joinFlags(js []Join) (flags uintptr, user bool) {
	for _, j := range js {
		flags |= joinKinds[j.Type].flag
	}
	return flags, flags&unix.CLONE_NEWUSER != 0
}

// JoinsUser says whether a user namespace is among js: its own maps are
// then the container's.
func JoinsUser(js []Join) bool {
	_, user := joinFlags(js)
	return user
}

// joined is a namespace to join, opened and checked.
type joined struct {
	Join
	f *os.File
}

// openJoins opens each namespace and checks it is one of its type and, for
// a user namespace, the caller's own.
func openJoins(js []Join) ([]joined, error) {
	var out []joined
	fail := func(err error) ([]joined, error) {
		closeJoins(out)
		return nil, err
	}
	for _, j := range js {
		k, ok := joinKinds[j.Type]
		if !ok {
			_, why := Joinable(j.Type)
			return fail(fmt.Errorf("join the %s namespace %s: %s", j.Type, j.Path, why))
		}
		f, err := os.OpenFile(j.Path, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fail(fmt.Errorf("join the %s namespace: %w", k.name, err))
		}
		out = append(out, joined{Join: j, f: f})
		t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
		if err != nil {
			return fail(fmt.Errorf("join the %s namespace %s: not a namespace (ioctl NS_GET_NSTYPE: %w)", k.name, j.Path, err))
		}
		if uintptr(t) != k.flag {
			return fail(fmt.Errorf("join the %s namespace %s: it is a namespace of another type (%s)", k.name, j.Path, CloneflagString(uintptr(t))))
		}
		if j.Type == "user" {
			owner, err := unix.IoctlGetUint32(int(f.Fd()), unix.NS_GET_OWNER_UID)
			if err != nil {
				return fail(fmt.Errorf("join the user namespace %s: its owner (ioctl NS_GET_OWNER_UID): %w", j.Path, err))
			}
			if me := os.Getuid(); int(owner) != me && me != 0 {
				return fail(fmt.Errorf("join the user namespace %s: it belongs to uid %d; uid %d may join only its own", j.Path, owner, me))
			}
		}
	}
	return out, checkOwners(out)
}

// checkOwners checks, when a user namespace is joined, that every other
// namespace belongs to it or to one below it: the only ones its root may
// enter (nsenter would fail with a line of its own).
func checkOwners(js []joined) error {
	var user *joined
	for i := range js {
		if js[i].Type == "user" {
			user = &js[i]
		}
	}
	if user == nil {
		return nil
	}
	var want unix.Stat_t
	if err := unix.Fstat(int(user.f.Fd()), &want); err != nil {
		return &os.PathError{Op: "fstat", Path: user.Path, Err: err}
	}
	for _, j := range js {
		if j.Type == "user" {
			continue
		}
		if !ownedWithin(int(j.f.Fd()), want) {
			return fmt.Errorf("join the %s namespace %s: it does not belong to the user namespace joined (%s), whose root could not enter it", joinKinds[j.Type].name, j.Path, user.Path)
		}
	}
	return nil
}

// ownedWithin says whether the namespace of fd is owned by the user
// namespace user, or by one of its descendants.
func ownedWithin(fd int, user unix.Stat_t) bool {
	owner, err := unix.IoctlRetInt(fd, unix.NS_GET_USERNS)
	for err == nil {
		var st unix.Stat_t
		ferr := unix.Fstat(owner, &st)
		if ferr == nil && st.Dev == user.Dev && st.Ino == user.Ino {
			unix.Close(owner)
			return true
		}
		parent, perr := unix.IoctlRetInt(owner, unix.NS_GET_PARENT)
		unix.Close(owner)
		if ferr != nil {
			return false
		}
		owner, err = parent, perr
	}
	return false
}

// joinError is a failure to join, reported as it is.
type joinError struct{ error }

func (e joinError) Unwrap() error { return e.error }

func closeJoins(js []joined) {
	for _, j := range js {
		j.f.Close()
	}
}

// setnsAll joins the namespaces on the calling thread, which must be locked
// and must never run another goroutine after.
func setnsAll(js []joined) error {
	for _, j := range js {
		k := joinKinds[j.Type]
		if err := unix.Setns(int(j.f.Fd()), int(k.flag)); err != nil {
			hint := ""
			if errors.Is(err, unix.EPERM) {
				hint = ": a user may join it only together with the user namespace that owns it (a \"user\" entry with its path), or as root of that user namespace"
			}
			return joinError{fmt.Errorf("join the %s namespace %s: setns: %w%s", k.name, j.Path, err, hint)}
		}
	}
	return nil
}

// nsenterArgs is nsenter(1)'s command line that joins js (files given to
// the child from descriptor first on, in order) and execs exe.
func nsenterArgs(js []joined, first int, exe string) ([]string, error) {
	path, err := exec.LookPath("nsenter")
	if err != nil {
		return nil, errors.New("joining a user namespace needs util-linux nsenter(1) in PATH (sudo apt-get install util-linux)")
	}
	// The caller's own ids, as they are mapped in the joined namespace:
	// nsenter would otherwise become its uid 0 with setuid(2).
	args := []string{path, "--preserve-credentials"}
	for i, j := range js {
		args = append(args, joinKinds[j.Type].nsenter+"=/proc/self/fd/"+strconv.Itoa(first+i))
	}
	return append(args, "--", exe), nil
}
