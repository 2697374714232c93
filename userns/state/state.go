// Package state keeps the caller's container records: one directory per
// container under $XDG_RUNTIME_DIR/isobox (or /tmp/isobox-UID, mode 0700,
// when that is unset), holding state.json, the runner's lock, the exec
// socket and a detached container's log.
//
// There is no daemon. Whether a container is running is never read from
// state.json alone: the process that runs it (the runner, or for -d its
// detached monitor) holds an exclusive flock on the record's lock file for
// as long as it lives. The kernel drops the lock when that process dies,
// however it dies, and a reboot drops every lock, so a record whose lock is
// free is exited even if its state.json still says running.
//
// Records are published atomically: a directory is filled and locked under
// a temporary name, then renamed into place with RENAME_NOREPLACE, which is
// also what makes two containers started at once with one name fail but
// one.
package state

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/userns/cgroups"
	"github.com/isobox/isobox/userns/hooks"
)

// File names inside a container's directory.
const (
	recordFile = "state.json"
	lockFile   = "lock"
	SocketFile = "exec.sock"
	LogFile    = "container.log"
	// OldLogFile is the log's previous part once it reached the cap.
	OldLogFile = "container.log.1"
)

// MaxNameLen bounds a name in bytes; a name is also a directory name.
const MaxNameLen = 128

var (
	ErrNameInUse    = errors.New("name is already in use")
	ErrNoSuch       = errors.New("no such container")
	ErrRunning      = errors.New("container is running")
	ErrNotRunning   = errors.New("container is not running")
	errBadStateRoot = errors.New("unsafe state directory")
)

// ValidName checks a container name: [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most
// MaxNameLen bytes (Docker's rule; it also keeps names safe as file names).
func ValidName(name string) error {
	if name == "" {
		return errors.New("empty container name")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("container name of %d bytes: at most %d", len(name), MaxNameLen)
	}
	for i, c := range []byte(name) {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return fmt.Errorf("container name %q: want [a-zA-Z0-9][a-zA-Z0-9_.-]*", name)
		}
	}
	return nil
}

// NewName is a short random name for a container started without --name.
func NewName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Record is a container's state.json.
type Record struct {
	Name    string   `json:"name"`
	Command []string `json:"command"`
	Rootfs  string   `json:"rootfs"`
	// Image and ImageID name the image the container runs, if any;
	// StopSignal is the image's, for stop.
	Image      string   `json:"image,omitempty"`
	ImageID    string   `json:"imageId,omitempty"`
	StopSignal string   `json:"stopSignal,omitempty"`
	Net        string   `json:"net"`
	Ports      []string `json:"ports,omitempty"`
	NoInit     bool     `json:"noInit,omitempty"`
	Detached   bool     `json:"detached,omitempty"`
	// AutoRemove: --rm, the runner removes the record when the container exits.
	AutoRemove bool      `json:"autoRemove,omitempty"`
	Created    time.Time `json:"created"`
	// RunnerPID is the process that holds the lock (runner or monitor).
	RunnerPID int `json:"runnerPid"`
	// PID is the host PID of the container's PID 1, and PIDStart its start
	// time in clock ticks after boot (/proc/PID/stat field 22): with the
	// boot id, they tell that PID from a later process given the same number.
	PID      int       `json:"pid,omitempty"`
	PIDStart uint64    `json:"pidStart,omitempty"`
	BootID   string    `json:"bootId,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// ExitCode is set once the runner saw the container exit.
	ExitCode *int `json:"exitCode,omitempty"`
	// OOMKilled: the kernel's OOM killer killed a process of the container
	// in its cgroup (memory.events), as inspect reports it.
	OOMKilled bool `json:"oomKilled,omitempty"`
	// Cgroup is the container's own cgroup v2 directory on the host, when
	// it has one (a delegated host); its limits are in Config.
	Cgroup string `json:"cgroup,omitempty"`
	// Config is how the container was set up, for inspect.
	Config *Config `json:"config,omitempty"`
	// AwaitingStart: made by `oci create`, waiting for `oci start`.
	AwaitingStart bool `json:"awaitingStart,omitempty"`
	// Bundle and Annotations are an OCI container's (isobox oci).
	Bundle      string            `json:"bundle,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Poststop are its bundle's poststop hooks, run by `oci delete`.
	Poststop []hooks.Hook `json:"poststop,omitempty"`
}

// Config is what `isobox inspect` shows of a container's set-up, as the
// runner planned it.
type Config struct {
	Env         []string    `json:"env"`
	User        string      `json:"user"` // UID:GID inside
	Workdir     string      `json:"workdir"`
	Hostname    string      `json:"hostname"`
	Mounts      []MountInfo `json:"mounts"`
	ReadOnly    bool        `json:"readOnly,omitempty"`
	Overlay     bool        `json:"overlay,omitempty"`
	Caps        []string    `json:"capabilities"`
	NoNewPrivs  bool        `json:"noNewPrivileges"`
	Seccomp     string      `json:"seccomp"` // default, unconfined or a profile's path
	Map         string      `json:"map"`     // auto, full or single, as asked
	TimeOffsets string      `json:"timeOffsets,omitempty"`
	// Limits are the cgroup limits asked for (--memory, --cpus...).
	Limits *cgroups.Limits `json:"limits,omitempty"`
}

// MountInfo is a volume or tmpfs mount.
type MountInfo struct {
	Type        string `json:"type"` // bind or tmpfs
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination"`
	Options     string `json:"options,omitempty"`
}

// Dir is the caller's state directory.
type Dir struct{ path string }

// Open returns the caller's state directory, creating it (mode 0700) if
// needed: $XDG_RUNTIME_DIR/isobox, or /tmp/isobox-UID when XDG_RUNTIME_DIR
// is unset or is not the caller's (sudo and su keep another user's). A
// directory that is not the caller's own and closed to others is refused:
// someone else may have made it, to read or forge the records.
func Open() (*Dir, error) {
	p := filepath.Join(os.TempDir(), "isobox-"+strconv.Itoa(os.Getuid()))
	if x := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(x) && ownDir(x) {
		p = filepath.Join(x, "isobox")
	}
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := checkOwned(p); err != nil {
		return nil, err
	}
	return &Dir{path: p}, nil
}

func ownDir(p string) bool {
	var st unix.Stat_t
	return unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && int(st.Uid) == os.Getuid()
}

// OpenAt is Open for a given path, with the same checks but no fallback.
func OpenAt(p string) (*Dir, error) {
	if err := checkOwned(p); err != nil {
		return nil, err
	}
	return &Dir{path: p}, nil
}

// OpenAsRoot opens another user's state directory for root, who cleans up
// after that user's containers (Slurm runs `oci state`, `kill` and
// `delete` as root against the user's --root). It must be a real
// directory closed to others; root reads, signals and removes there, and
// creates nothing, so the user's next container finds nothing root-owned.
func OpenAsRoot(p string) (*Dir, error) {
	if os.Geteuid() != 0 {
		return OpenAt(p)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, fmt.Errorf("state directory: %w", &os.PathError{Op: "lstat", Path: p, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("%w %s: not a directory", errBadStateRoot, p)
	}
	if st.Mode&0o022 != 0 {
		return nil, fmt.Errorf("%w %s: mode %#o lets other users write", errBadStateRoot, p, st.Mode&0o777)
	}
	return &Dir{path: p}, nil
}

func checkOwned(p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("state directory: %w", &os.PathError{Op: "lstat", Path: p, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%w %s: not a directory", errBadStateRoot, p)
	}
	if int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%w %s: owned by uid %d, not by you (uid %d); remove it or set XDG_RUNTIME_DIR", errBadStateRoot, p, st.Uid, os.Getuid())
	}
	if st.Mode&0o077 != 0 {
		return fmt.Errorf("%w %s: mode %#o lets other users in; chmod 700 it", errBadStateRoot, p, st.Mode&0o777)
	}
	return nil
}

// Path is the state directory.
func (d *Dir) Path() string { return d.path }

// Container is a record this process owns: it holds its lock.
type Container struct {
	Dir  string // the container's directory
	lock *os.File
	rec  Record
}

// Create publishes a new record, locked by this process until Release or
// exit. ErrNameInUse when the name exists, also if it is being created at
// this same moment.
func (d *Dir) Create(r Record) (*Container, error) {
	if err := ValidName(r.Name); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(d.path, ".new-")
	if err != nil {
		return nil, fmt.Errorf("create container record: %w", err)
	}
	c := &Container{Dir: tmp, rec: r}
	fail := func(err error) (*Container, error) {
		if c.lock != nil {
			c.lock.Close()
		}
		os.RemoveAll(tmp)
		return nil, err
	}
	if c.lock, err = os.OpenFile(filepath.Join(tmp, lockFile), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
		return fail(err)
	}
	if err := unix.Flock(int(c.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(&os.PathError{Op: "flock", Path: c.lock.Name(), Err: err})
	}
	if err := c.write(); err != nil {
		return fail(err)
	}
	final := filepath.Join(d.path, r.Name)
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fail(fmt.Errorf("%q: %w", r.Name, ErrNameInUse))
		}
		return fail(&os.LinkError{Op: "rename", Old: tmp, New: final, Err: err})
	}
	c.Dir = final
	return c, nil
}

// Adopt takes over a record whose lock this process inherited (the
// detached monitor, from the command that created it).
func Adopt(dir string, lock *os.File) (*Container, error) {
	rec, err := readRecord(dir)
	if err != nil {
		return nil, err
	}
	return &Container{Dir: dir, lock: lock, rec: rec}, nil
}

// LockFile is the locked descriptor, to hand to a detached monitor.
func (c *Container) LockFile() *os.File { return c.lock }

// Record returns a copy of the record.
func (c *Container) Record() Record { return c.rec }

// Update changes the record and writes it atomically.
func (c *Container) Update(f func(*Record)) error {
	f(&c.rec)
	return c.write()
}

func (c *Container) write() error {
	b, err := json.MarshalIndent(c.rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.Dir, recordFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write container record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(c.Dir, recordFile)); err != nil {
		return fmt.Errorf("write container record: %w", err)
	}
	return nil
}

// Remove deletes the record and drops the lock.
func (c *Container) Remove() error {
	err := removeDir(c.Dir)
	c.lock.Close()
	return err
}

// Release drops the lock, leaving the record (the container exited).
func (c *Container) Release() { c.lock.Close() }

// removeDir renames the directory out of the names' way first, so that a
// half-removed record is never listed and its name is free at once.
func removeDir(dir string) error {
	trash := filepath.Join(filepath.Dir(dir), ".rm-"+NewName())
	if err := os.Rename(dir, trash); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove container record: %w", err)
	}
	return os.RemoveAll(trash)
}

func readRecord(dir string) (Record, error) {
	var r Record
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", filepath.Join(dir, recordFile), err)
	}
	return r, nil
}

// Info is a record as seen by another process, with its live status.
type Info struct {
	Record
	Dir     string
	Running bool  // its runner holds the lock
	Err     error // state.json could not be read
}

// Status is podman's vocabulary: created (starting), running, exited.
func (i Info) Status() string {
	switch {
	case i.Running && (i.PID == 0 || i.AwaitingStart):
		return "created"
	case i.Running:
		return "running"
	}
	return "exited"
}

// Get reads one container's record.
func (d *Dir) Get(name string) (Info, error) {
	if err := ValidName(name); err != nil {
		return Info{}, err
	}
	dir := filepath.Join(d.path, name)
	if _, err := os.Lstat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Info{}, fmt.Errorf("%q: %w", name, ErrNoSuch)
		}
		return Info{}, err
	}
	return inspect(name, dir), nil
}

// List reads every record, sorted by creation time.
func (d *Dir) List() ([]Info, error) {
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("read state directory: %w", err)
	}
	var out []Info
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || ValidName(e.Name()) != nil {
			continue
		}
		out = append(out, inspect(e.Name(), filepath.Join(d.path, e.Name())))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func inspect(name, dir string) Info {
	rec, err := readRecord(dir)
	i := Info{Record: rec, Dir: dir, Err: err}
	i.Name = name
	i.Running = Locked(dir)
	if i.Running && i.PID != 0 && !pidIsOurs(i.PID, i.PIDStart, i.BootID) {
		// The lock is held but PID 1 is gone: the runner is cleaning up.
		i.Running = false
	}
	return i
}

// Locked reports whether a runner holds the lock of the record in dir.
func Locked(dir string) bool {
	f, err := os.Open(filepath.Join(dir, lockFile))
	if err != nil {
		return false
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	return errors.Is(err, unix.EWOULDBLOCK)
}

// Delete removes a container's record; a running container is refused.
// It takes the lock itself while removing, so a runner cannot start using
// the name halfway through.
func (d *Dir) Delete(name string) error {
	info, err := d.Get(name)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(info.Dir, lockFile))
	if err == nil {
		defer f.Close()
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%q: %w", name, ErrRunning)
		}
	}
	return removeDir(info.Dir)
}

// WaitExit blocks until the record's runner is gone (its lock is free).
func WaitExit(dir string) error {
	f, err := os.Open(filepath.Join(dir, lockFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH)
		if err == nil {
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
		}
	}
}

// WaitUnlocked waits until no runner holds the record's lock (the runner
// has finished tearing the container down), or the timeout passes.
func WaitUnlocked(dir string, timeout time.Duration) bool {
	f, err := os.Open(filepath.Join(dir, lockFile))
	if err != nil {
		return true
	}
	defer f.Close()
	deadline := time.Now().Add(timeout)
	for {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
