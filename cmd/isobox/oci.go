package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/rootfs"
	"github.com/isobox/isobox/rootfs/image"
	"github.com/isobox/isobox/userns"
	"github.com/isobox/isobox/userns/bundle"
	"github.com/isobox/isobox/userns/cgroups"
	"github.com/isobox/isobox/userns/hooks"
	"github.com/isobox/isobox/userns/seccomp"
	"github.com/isobox/isobox/userns/state"
)

// OciCmd is `isobox oci`: runc's command line over OCI bundles, for the
// engines that drive a runtime that way (Slurm's oci.conf, containerd's
// shim, podman --runtime). Its failures exit 1, as runc's do. The binary
// invoked through a link named isobox-oci takes the same commands.
type OciCmd struct {
	ociFlags

	Create   OciCreateCmd   `cmd:"" help:"Create a container from a bundle, stopped just before its command runs."`
	Start    OciStartCmd    `cmd:"" help:"Run a created container's command."`
	Run      OciRunCmd      `cmd:"" help:"Create and run a container from a bundle, in the foreground."`
	Exec     OciExecCmd     `cmd:"" help:"Run a process in a running container, in the foreground."`
	State    OciStateCmd    `cmd:"" help:"Print a container's state as JSON."`
	Kill     OciKillCmd     `cmd:"" help:"Send a signal to a container's init (-a: to all its processes)."`
	Delete   OciDeleteCmd   `cmd:"" help:"Delete a stopped container (-f: kill a running one first)."`
	List     OciListCmd     `cmd:"" help:"List the containers."`
	Ps       OciPsCmd       `cmd:"" help:"List a container's processes."`
	Spec     OciSpecCmd     `cmd:"" help:"Write a starter config.json."`
	Update   OciUpdateCmd   `cmd:"" help:"Change a running container's cgroup limits, as runc update does."`
	Pause    OciPauseCmd    `cmd:"" help:"Freeze a running container's processes (cgroup v2 freezer)."`
	Resume   OciResumeCmd   `cmd:"" help:"Thaw a paused container."`
	Features OciFeaturesCmd `cmd:"" help:"Print what isobox supports, as runc features does."`
}

// ociFlags are runc's global flags, which every oci command gets (bound by
// its type: see ociModel).
type ociFlags struct {
	Root          string       `placeholder:"DIR" help:"Where the containers' state is kept (default $XDG_RUNTIME_DIR/isobox-oci, or /tmp/isobox-oci-UID); created 0700, refused if someone else owns it."`
	Log           string       `placeholder:"FILE" help:"Also append errors to FILE (as runc's --log)."`
	LogFormat     string       `name:"log-format" enum:"text,json" default:"text" help:"text or json, for --log."`
	Rootless      rootlessFlag `help:"runc's --rootless[=true|false|auto]: isobox is always rootless. With spec, write a rootless bundle."`
	SystemdCgroup bool         `name:"systemd-cgroup" help:"Accepted for runc's callers: isobox puts a container with limits in a child of your delegated cgroup v2 itself, never through systemd."`
}

// rootlessFlag is runc's --rootless: a flag alone (spec --rootless) or
// with a value (--rootless=true|false|auto).
type rootlessFlag struct {
	set   bool
	value string
}

func (r *rootlessFlag) IsBool() bool { return true }

func (r *rootlessFlag) Decode(ctx *kong.DecodeContext) error {
	r.set, r.value = true, "true"
	if t := ctx.Scan.Peek(); t.Type == kong.FlagValueToken {
		ctx.Scan.Pop()
		v, _ := t.Value.(string)
		if v != "true" && v != "false" && v != "auto" {
			return fmt.Errorf("--rootless=%s: want true, false or auto", v)
		}
		r.value = v
	}
	return nil
}

// ociError is a failure of an oci command: runc's exit status 1.
type ociError struct{ err error }

func (e ociError) Error() string { return e.err.Error() }
func (e ociError) Unwrap() error { return e.err }
func (e ociError) ExitCode() int { return 1 }

// ociFail turns err into runc's exit status, keeping a container's own
// exit status, and appends it to --log.
func (o *ociFlags) fail(err error) error {
	if err == nil {
		return nil
	}
	var exited commandExit
	if errors.As(err, &exited) {
		return err
	}
	if o.Log != "" {
		if f, ferr := os.OpenFile(o.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); ferr == nil {
			msg := oneLineMsg(err)
			if o.LogFormat == "json" {
				b, _ := json.Marshal(map[string]string{"level": "error", "msg": msg, "time": time.Now().Format(time.RFC3339Nano)})
				f.Write(append(b, '\n'))
			} else {
				fmt.Fprintf(f, "time=%q level=error msg=%q\n", time.Now().Format(time.RFC3339Nano), msg)
			}
			f.Close()
		}
	}
	return ociError{err}
}

func oneLineMsg(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// errNoRoot: the state root does not exist (no container was ever made).
var errNoRoot = errors.New("no state root")

// dir opens the state root; create makes it (0700) if missing, for run.
// As root, another user's root is opened to read, signal and remove in,
// never to create: Slurm's cleanup runs as root.
func (o *ociFlags) dir(create bool) (*state.Dir, error) {
	root := o.Root
	if root == "" {
		root = defaultOciRoot()
	}
	root = filepath.Clean(root)
	if create {
		if err := os.Mkdir(root, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("--root: %w", err)
		}
		return state.OpenAt(root)
	}
	if _, err := os.Lstat(root); errors.Is(err, os.ErrNotExist) {
		return nil, errNoRoot
	}
	return state.OpenAsRoot(root)
}

// tmpOciRoot is the --root used without XDG_RUNTIME_DIR, and the one
// Slurm's oci.conf names (README).
func tmpOciRoot() string {
	return filepath.Join(os.TempDir(), "isobox-oci-"+strconv.Itoa(os.Getuid()))
}

// defaultOciRoot is --root when it is not given: in XDG_RUNTIME_DIR when
// that is the caller's, else tmpOciRoot.
func defaultOciRoot() string {
	if x := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(x) {
		if st, err := os.Stat(x); err == nil && st.IsDir() && ownedByMe(st) {
			return filepath.Join(x, "isobox-oci")
		}
	}
	return tmpOciRoot()
}

func ownedByMe(st os.FileInfo) bool {
	s, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(s.Uid) == os.Getuid()
}

// lookup finds a container by ID, with runc's message when it is unknown.
func (o *ociFlags) lookup(id string) (*state.Dir, state.Info, error) {
	dir, err := o.dir(false)
	if errors.Is(err, errNoRoot) {
		return nil, state.Info{}, fmt.Errorf("container %q does not exist", id)
	}
	if err != nil {
		return nil, state.Info{}, err
	}
	info, err := dir.Get(id)
	if errors.Is(err, state.ErrNoSuch) {
		return nil, info, fmt.Errorf("container %q does not exist", id)
	}
	return dir, info, err
}

// ociBundleFlags are the flags create and run share.
type ociBundleFlags struct {
	Bundle        string `short:"b" placeholder:"DIR" help:"The bundle (default the current directory)."`
	PidFile       string `name:"pid-file" placeholder:"FILE" help:"Write the container's init PID there."`
	ConsoleSocket string `name:"console-socket" placeholder:"SOCK" help:"With process.terminal: send the terminal's master to this unix socket (SCM_RIGHTS), as runc does."`
	PreserveFDs   int    `name:"preserve-fds" placeholder:"N" help:"Pass this command's descriptors 3 to 3+N-1 to the container's process, as its 3, 4, ..."`
}

// OciRunCmd is `isobox oci run`.
type OciRunCmd struct {
	ociBundleFlags
	Detach bool   `short:"d" help:"Run in the background; isobox's monitor holds it."`
	Keep   bool   `help:"Keep the container's state after it exits."`
	ID     string `arg:"" placeholder:"ID" help:"Container ID."`

	create bool // oci create: stop before the command, until oci start
}

func (c *OciRunCmd) Run(o *ociFlags, g *Globals, log *slog.Logger) error {
	return o.fail(c.run(o, g, log))
}

func (c *OciRunCmd) run(o *ociFlags, g *Globals, log *slog.Logger) error {
	if err := state.ValidName(c.ID); err != nil {
		return fmt.Errorf("container ID: %w", err)
	}
	l, bundleDir, err := loadBundle(c.Bundle)
	if err != nil {
		return err
	}
	for _, n := range l.Notes {
		log.Info(n)
	}
	opts := l.Options
	if opts.NoProcess && !c.create {
		return errors.New("config.json: process: missing (only create takes a bundle without one)")
	}
	if opts.ConsoleSocket, err = consoleSocket(c.ConsoleSocket, opts.TTY, c.Detach); err != nil {
		return err
	}
	if opts.ExtraFiles, err = preservedFiles(c.PreserveFDs); err != nil {
		return err
	}
	if st, err := os.Stat(opts.Rootfs); err != nil || !st.IsDir() {
		return fmt.Errorf("root.path %s: not a directory", opts.Rootfs)
	}
	var imageID, imageName string
	if l.ImageID != "" {
		lower, err := imageLayers(l.ImageStore, l.ImageID)
		if err != nil {
			return err
		}
		opts.Overlay = &rootfs.Overlay{Lower: lower}
		imageID, imageName = l.ImageID, l.Annotations[bundle.AnnotationImageName]
	}
	if !l.OwnSeccomp {
		if opts.Seccomp, err = seccomp.Default(opts.Caps.Names()); err != nil {
			return err
		}
	}
	opts.Env = userns.MergeEnv([]string{"PATH=" + userns.DefaultPath}, opts.Env...)
	dir, err := o.dir(true)
	if err != nil {
		return err
	}
	rec := state.Record{
		Name: c.ID, Command: opts.Args, Rootfs: opts.Rootfs, Net: string(opts.Net), Detached: c.Detach,
		AutoRemove: !c.Keep && !c.Detach, Created: time.Now(), RunnerPID: os.Getpid(),
		Bundle: bundleDir, Annotations: l.Annotations, Image: imageName, ImageID: imageID,
	}
	opts.HookState.ID = c.ID
	if opts.Hooks != nil {
		rec.Poststop = opts.Hooks.Poststop
	}
	if c.Detach {
		// As runc's: init is orphaned to the caller's subreaper.
		opts.WaitStart, opts.PassStdio, opts.AdoptableInit = c.create, true, true
		cont, err := dir.Create(rec)
		if err != nil {
			return err
		}
		if err := userns.Detach(opts, cont, g.LogLevel); err != nil {
			return err
		}
		return c.writePidFile(dir)
	}
	opts.Logger = log
	var cont *state.Container
	opts.CreateRecord = func() (*state.Container, error) {
		var err error
		cont, err = dir.Create(rec)
		return cont, err
	}
	opts.OnStarted = func() {
		if c.PidFile != "" {
			writePidFile(c.PidFile, cont.Record().PID)
		}
	}
	code, err := userns.Run(opts)
	if err != nil {
		return err
	}
	if !c.Keep && cont != nil {
		runPoststop(cont.Record(), true, log) // removed at its exit: deleted
	}
	return exitWith(code)
}

// runPoststop runs a deleted container's poststop hooks; one that fails is
// logged (runtime-spec). Never as another user: root deleting a user's
// container (Slurm's cleanup) would run that user's programs as root.
func runPoststop(r state.Record, mine bool, log *slog.Logger) {
	if len(r.Poststop) == 0 {
		return
	}
	if !mine {
		log.Warn(fmt.Sprintf("poststop hooks of %q not run: the container is another user's, this is uid %d", r.Name, os.Getuid()))
		return
	}
	st := hooks.State{OCIVersion: specs.Version, ID: r.Name, Status: "stopped", Bundle: r.Bundle, Annotations: r.Annotations}
	if err := hooks.Run("poststop", r.Poststop, st); err != nil {
		log.Warn(err.Error())
	}
}

// preservedFiles are descriptors 3 to 3+n-1, each checked open.
func preservedFiles(n int) ([]*os.File, error) {
	if n < 0 || n >= userns.MaxPassedFDs {
		return nil, fmt.Errorf("--preserve-fds %d: want 0 to %d", n, userns.MaxPassedFDs-1)
	}
	var files []*os.File
	for fd := 3; fd < 3+n; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("--preserve-fds %d: descriptor %d: %w", n, fd, err)
		}
		files = append(files, os.NewFile(uintptr(fd), "preserved"))
	}
	return files, nil
}

// consoleSocket checks --console-socket against process.terminal, as runc
// does, and makes it absolute (the monitor works from /).
func consoleSocket(path string, terminal, detached bool) (string, error) {
	switch {
	case path != "" && !terminal:
		return "", errors.New("--console-socket: process.terminal is false: there is no terminal to send")
	case path == "" && terminal && detached:
		return "", errors.New("process.terminal is true: a detached container needs --console-socket to hand its terminal to")
	case path == "":
		return "", nil
	}
	return filepath.Abs(path)
}

func (c *OciRunCmd) writePidFile(dir *state.Dir) error {
	if c.PidFile == "" {
		return nil
	}
	info, err := dir.Get(c.ID)
	if err != nil {
		return err
	}
	return writePidFile(c.PidFile, info.PID)
}

// writePidFile writes --pid-file through a temporary file and a rename,
// as runc does (a reader never sees it empty).
func writePidFile(p string, pid int) error {
	if err := image.WriteFileAtomic(p, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	return nil
}

// loadBundle reads and translates DIR/config.json.
func loadBundle(dir string) (*bundle.Launch, string, error) {
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(filepath.Join(abs, "config.json"))
	if err != nil {
		return nil, "", fmt.Errorf("bundle: %w", err)
	}
	s, err := bundle.Parse(b)
	if err != nil {
		return nil, "", err
	}
	l, err := bundle.Translate(s, abs)
	if err != nil {
		return nil, "", err
	}
	return l, abs, nil
}

// ociState is runc's state JSON.
type ociState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

func stateOf(i state.Info) ociState {
	s := ociState{OCIVersion: specs.Version, ID: i.Name, Bundle: i.Bundle, Rootfs: i.Rootfs, Created: i.Created, Annotations: i.Annotations, Status: "stopped"}
	switch {
	case i.Running && i.AwaitingStart:
		s.Status, s.Pid = "created", i.PID
	case i.Running && i.PID == 0:
		s.Status = "creating"
	case i.Running && i.Cgroup != "" && cgroups.Frozen(i.Cgroup):
		s.Status, s.Pid = "paused", i.PID
	case i.Running:
		s.Status, s.Pid = "running", i.PID
	}
	return s
}

// OciCreateCmd is `isobox oci create`.
type OciCreateCmd struct {
	ociBundleFlags
	NoPivot      bool   `name:"no-pivot" help:"Accepted for runc's callers; isobox always uses pivot_root."`
	NoNewKeyring bool   `name:"no-new-keyring" help:"Accepted for runc's callers; isobox always gives the container a session keyring of its own."`
	ID           string `arg:"" placeholder:"ID" help:"Container ID."`
}

func (c *OciCreateCmd) Run(o *ociFlags, g *Globals, log *slog.Logger) error {
	if c.NoPivot || c.NoNewKeyring {
		log.Debug("--no-pivot and --no-new-keyring are accepted and not applied: the container gets pivot_root and a keyring of its own")
	}
	r := &OciRunCmd{ociBundleFlags: c.ociBundleFlags, Detach: true, Keep: true, ID: c.ID, create: true}
	return o.fail(r.run(o, g, log))
}

// OciExecCmd is `isobox oci exec`: the process is started by the
// container's init, as `isobox exec` does.
type OciExecCmd struct {
	Process       string   `short:"p" name:"process" placeholder:"FILE" help:"A process.json (runtime-spec's process) instead of the arguments."`
	TTY           bool     `short:"t" name:"tty" help:"A terminal from the container's devpts, on yours."`
	Detach        bool     `short:"d" help:"Return once the process runs; init reaps it."`
	Env           []string `short:"e" sep:"none" placeholder:"KEY=VALUE" help:"Set a variable. Repeatable."`
	Cwd           string   `placeholder:"DIR" help:"Working directory."`
	User          string   `short:"u" placeholder:"UID[:GID]" help:"User."`
	PidFile       string   `name:"pid-file" placeholder:"FILE" help:"Write the process's PID there; with -d, that of its watcher, which passes signals on and exits with its status."`
	ConsoleSocket string   `name:"console-socket" placeholder:"SOCK" help:"With -t: send the terminal's master to this unix socket, as runc does."`
	ID            string   `arg:"" placeholder:"ID"`
	Args          []string `arg:"" optional:"" passthrough:"" placeholder:"COMMAND [ARG...]"`
}

func (c *OciExecCmd) Run(o *ociFlags) error {
	return o.fail(c.run(o))
}

func (c *OciExecCmd) run(o *ociFlags) error {
	req := userns.ExecRequest{Args: c.Args, Env: c.Env, Workdir: c.Cwd, User: c.User, TTY: c.TTY}
	if c.Process != "" {
		b, err := os.ReadFile(c.Process)
		if err != nil {
			return fmt.Errorf("--process: %w", err)
		}
		var p specs.Process
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("--process %s: %w", c.Process, err)
		}
		if len(p.Args) == 0 {
			return fmt.Errorf("--process %s: args: missing", c.Process)
		}
		req = userns.ExecRequest{Args: p.Args, Env: append(p.Env, c.Env...), Workdir: p.Cwd, TTY: p.Terminal || c.TTY,
			User: fmt.Sprintf("%d:%d", p.User.UID, p.User.GID)}
	}
	if len(req.Args) == 0 {
		return errors.New("exec: no command (give one, or --process)")
	}
	if req.Workdir != "" && !filepath.IsAbs(req.Workdir) {
		return fmt.Errorf("exec: --cwd %q: must be an absolute path", req.Workdir)
	}
	_, info, err := o.lookup(c.ID)
	if err != nil {
		return err
	}
	if st := stateOf(info).Status; st != "running" {
		return fmt.Errorf("container %q is not running (it is %s)", c.ID, st)
	}
	if req.ConsoleSocket, err = consoleSocket(c.ConsoleSocket, req.TTY, c.Detach); err != nil {
		return err
	}
	req.Detach = c.Detach
	switch {
	case c.PidFile != "" && c.Detach:
		// The PID its caller will reap and signal (a shim, conmon): the
		// process's watcher (userns.ExecRequest.OnWatcher).
		req.OnWatcher = func(pid int) error { return writePidFile(c.PidFile, pid) }
	case c.PidFile != "":
		req.OnStarted = func(nsPid int) error {
			pid, err := userns.HostPid(info.PID, nsPid)
			if err != nil {
				return fmt.Errorf("--pid-file: %w", err)
			}
			return writePidFile(c.PidFile, pid)
		}
	}
	code, err := userns.Exec(info.Dir, req)
	if err != nil {
		return err
	}
	return exitWith(code)
}

// OciStartCmd is `isobox oci start`.
type OciStartCmd struct {
	ID string `arg:"" placeholder:"ID"`
}

func (c *OciStartCmd) Run(o *ociFlags) error {
	_, info, err := o.lookup(c.ID)
	if err != nil {
		return o.fail(err)
	}
	if !info.Running || !info.AwaitingStart {
		return o.fail(fmt.Errorf("container %q: %w (it is %s)", c.ID, userns.ErrNotCreated, stateOf(info).Status))
	}
	return o.fail(userns.Start(info.Dir))
}

// OciPauseCmd is `isobox oci pause`: runc's, through the cgroup v2
// freezer of the container's own cgroup.
type OciPauseCmd struct {
	ID string `arg:"" placeholder:"ID"`
}

func (c *OciPauseCmd) Run(o *ociFlags) error {
	return o.fail(freeze(o, c.ID, true))
}

// OciResumeCmd is `isobox oci resume`.
type OciResumeCmd struct {
	ID string `arg:"" placeholder:"ID"`
}

func (c *OciResumeCmd) Run(o *ociFlags) error {
	return o.fail(freeze(o, c.ID, false))
}

// freeze pauses a running container, or resumes a paused one.
func freeze(o *ociFlags, id string, frozen bool) error {
	_, info, err := o.lookup(id)
	if err != nil {
		return err
	}
	want := map[bool]string{true: "running", false: "paused"}[frozen]
	if st := stateOf(info).Status; st != want {
		return fmt.Errorf("container %q is %s, not %s", id, st, want)
	}
	cg, err := ownCgroup(id, info, "freeze")
	if err != nil {
		return err
	}
	return cgroups.Freeze(cg, frozen)
}

// ownCgroup is the cgroup pause, resume and update act on: the container's
// own, which it has only if it started where your cgroup v2 is delegated.
func ownCgroup(id string, info state.Info, to string) (string, error) {
	if info.Cgroup == "" {
		return "", fmt.Errorf("container %q has no cgroup of its own to %s (it gets one where your cgroup v2 is delegated: %s)", id, to, cgroups.DelegateHint)
	}
	return info.Cgroup, nil
}

// OciUpdateCmd is `isobox oci update`: runc's flags, written into the
// running container's own cgroup.
type OciUpdateCmd struct {
	Resources         string `short:"r" name:"resources" placeholder:"FILE" help:"linux.resources as JSON (- for stdin), as runc takes it."`
	Memory            string `name:"memory" placeholder:"SIZE" help:"memory.max (b, k, m, g)."`
	MemoryReservation string `name:"memory-reservation" placeholder:"SIZE" help:"memory.low."`
	MemorySwap        string `name:"memory-swap" placeholder:"SIZE" help:"Memory plus swap (-1: unlimited swap)."`
	CPUPeriod         uint64 `name:"cpu-period" help:"cpu.max's period, microseconds."`
	CPUQuota          int64  `name:"cpu-quota" help:"cpu.max's quota, microseconds per period."`
	CPUShare          uint64 `name:"cpu-share" help:"Relative weight, cgroup v1's shares (as cpu.weight)."`
	CpusetCpus        string `name:"cpuset-cpus" placeholder:"LIST" help:"CPUs allowed (0-3,5)."`
	CpusetMems        string `name:"cpuset-mems" placeholder:"LIST" help:"Memory nodes allowed."`
	PidsLimit         int64  `name:"pids-limit" help:"pids.max (-1: unlimited)."`
	BlkioWeight       uint16 `name:"blkio-weight" help:"Block I/O weight, 10-1000."`
	ID                string `arg:"" placeholder:"ID"`
}

func (c *OciUpdateCmd) Run(o *ociFlags, log *slog.Logger) error {
	return o.fail(c.run(o, log))
}

func (c *OciUpdateCmd) run(o *ociFlags, log *slog.Logger) error {
	l, err := c.limits(log)
	if err != nil {
		return err
	}
	if l.IsZero() {
		return errors.New("update: no limit given (--memory, --cpu-quota, --pids-limit... or -r FILE)")
	}
	_, info, err := o.lookup(c.ID)
	if err != nil {
		return err
	}
	if st := stateOf(info).Status; st != "running" && st != "paused" && st != "created" {
		return fmt.Errorf("container %q is %s", c.ID, st)
	}
	cg, err := ownCgroup(c.ID, info, "update")
	if err != nil {
		return err
	}
	return cgroups.Update(cg, l)
}

// limits are the flags' limits over -r's.
func (c *OciUpdateCmd) limits(log *slog.Logger) (cgroups.Limits, error) {
	var l cgroups.Limits
	if c.Resources != "" {
		b, err := readFileOrStdin(c.Resources)
		if err != nil {
			return l, fmt.Errorf("--resources: %w", err)
		}
		var r specs.LinuxResources
		if err := json.Unmarshal(b, &r); err != nil {
			return l, fmt.Errorf("--resources %s: %w", c.Resources, err)
		}
		var notes []string
		if l, notes, err = bundle.Resources(&r); err != nil {
			return l, fmt.Errorf("--resources %s: %w", c.Resources, err)
		}
		for _, n := range notes {
			log.Info(n)
		}
	}
	if err := memorySizes(&l, c.Memory, c.MemoryReservation, c.MemorySwap); err != nil {
		return l, err
	}
	if c.CPUPeriod != 0 {
		l.CPUPeriod = c.CPUPeriod
	}
	if c.CPUQuota != 0 {
		l.CPUQuota = c.CPUQuota
	}
	if c.CPUShare != 0 {
		l.CPUShares = c.CPUShare
	}
	if c.CpusetCpus != "" {
		l.CpusetCpus = c.CpusetCpus
	}
	if c.CpusetMems != "" {
		l.CpusetMems = c.CpusetMems
	}
	if c.PidsLimit != 0 {
		l.PidsLimit = c.PidsLimit
	}
	if c.BlkioWeight != 0 {
		l.BlkioWeight = c.BlkioWeight
	}
	return l, l.Validate()
}

// readFileOrStdin reads the file name, or standard input for "-".
func readFileOrStdin(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// OciStateCmd is `isobox oci state`.
type OciStateCmd struct {
	ID string `arg:"" placeholder:"ID"`
}

func (c *OciStateCmd) Run(o *ociFlags) error {
	_, info, err := o.lookup(c.ID)
	if err != nil {
		return o.fail(err)
	}
	return o.fail(printJSON(stateOf(info)))
}

// OciKillCmd is `isobox oci kill`.
type OciKillCmd struct {
	All    bool   `short:"a" help:"Send the signal to every process of the container."`
	ID     string `arg:"" placeholder:"ID"`
	Signal string `arg:"" optional:"" default:"TERM" placeholder:"SIGNAL" help:"Name or number (default SIGTERM)."`
}

func (c *OciKillCmd) Run(o *ociFlags) error {
	sig, err := userns.ParseSignal(c.Signal)
	if err != nil {
		return o.fail(err)
	}
	_, info, err := o.lookup(c.ID)
	if err != nil {
		return o.fail(err)
	}
	if !info.Running || info.PID == 0 {
		return o.fail(fmt.Errorf("container %q is not running", c.ID))
	}
	return o.fail(userns.Signal(info, sig, c.All))
}

// OciDeleteCmd is `isobox oci delete`.
type OciDeleteCmd struct {
	Force bool   `short:"f" help:"Kill a running container (SIGKILL) first."`
	ID    string `arg:"" placeholder:"ID"`
}

func (c *OciDeleteCmd) Run(o *ociFlags, log *slog.Logger) error {
	dir, info, err := o.lookup(c.ID)
	if err != nil {
		return o.fail(err)
	}
	if info.Running && !c.Force {
		return o.fail(fmt.Errorf("cannot delete container %q that is not stopped: running (use -f)", c.ID))
	}
	mine := false // whose hooks they are, read before the record is gone
	if len(info.Poststop) > 0 {
		st, err := os.Stat(info.Dir)
		mine = err == nil && ownedByMe(st)
	}
	if err := removeContainer(dir, info, true); err != nil {
		return o.fail(err)
	}
	runPoststop(info.Record, mine, log)
	return nil
}

// OciListCmd is `isobox oci list`.
type OciListCmd struct {
	Format string `short:"f" enum:"table,json" default:"table" help:"table or json."`
	Quiet  bool   `short:"q" help:"Only the IDs."`
}

func (c *OciListCmd) Run(o *ociFlags) error {
	var list []state.Info
	dir, err := o.dir(false)
	switch {
	case errors.Is(err, errNoRoot):
	case err != nil:
		return o.fail(err)
	default:
		if list, err = dir.List(); err != nil {
			return o.fail(err)
		}
	}
	out := []ociState{}
	for _, i := range list {
		out = append(out, stateOf(i))
	}
	switch {
	case c.Quiet:
		for _, s := range out {
			fmt.Println(s.ID)
		}
		return nil
	case c.Format == "json":
		return o.fail(printJSON(out))
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
	for _, s := range out {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
	}
	return o.fail(w.Flush())
}

// OciPsCmd is `isobox oci ps`.
type OciPsCmd struct {
	Format string `short:"f" enum:"table,json" default:"table" help:"table or json."`
	ID     string `arg:"" placeholder:"ID"`
}

func (c *OciPsCmd) Run(o *ociFlags) error {
	_, info, err := o.lookup(c.ID)
	if err != nil {
		return o.fail(err)
	}
	if st := stateOf(info).Status; st != "running" && st != "created" {
		return o.fail(fmt.Errorf("container %q is not running (it is %s)", c.ID, st))
	}
	pids, err := userns.ContainerPIDs(info.PID)
	if err != nil {
		return o.fail(err)
	}
	if c.Format == "json" {
		return o.fail(printJSON(pids))
	}
	fmt.Println("PID")
	for _, p := range pids {
		fmt.Println(p)
	}
	return nil
}

// OciSpecCmd is `isobox oci spec [--rootless]`.
type OciSpecCmd struct {
	Bundle string `short:"b" placeholder:"DIR" help:"Where to write config.json (default the current directory); with --rootless, a bundle as runc spec --rootless writes it."`
	Image  string `predictor:"images" placeholder:"REF" help:"A bundle of a stored image: its Entrypoint, Cmd, Env, WorkingDir and User, and an empty rootfs/ on which isobox stacks its layers at run time (nothing copied)."`
}

func (c *OciSpecCmd) Run(o *ociFlags, g *Globals, log *slog.Logger) error {
	dir := c.Bundle
	if dir == "" {
		dir = "."
	}
	p := filepath.Join(dir, "config.json")
	if _, err := os.Stat(p); err == nil {
		return o.fail(fmt.Errorf("%s exists: remove it first", p))
	}
	spec := starterSpec(o.Rootless.set && o.Rootless.value != "false")
	if c.Image != "" {
		if err := imageSpec(spec, g, log, c.Image); err != nil {
			return o.fail(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755); err != nil {
			return o.fail(err)
		}
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return o.fail(err)
	}
	return o.fail(os.WriteFile(p, append(b, '\n'), 0o644))
}

// starterSpec is runc's starter config: sh in ./rootfs, read-only root,
// its capabilities and masks; rootless, with a one-id map of the caller
// and no network namespace of its own.
func starterSpec(rootless bool) *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	s := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: "isobox",
		Process: &specs.Process{
			Args: []string{"sh"}, Cwd: "/", NoNewPrivileges: true,
			Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
			Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}},
			MaskedPaths:   []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if rootless {
		uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
		s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
			{Type: specs.MountNamespace}, {Type: specs.UserNamespace}}
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uid, Size: 1}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: gid, Size: 1}}
	}
	return s
}

// OciFeaturesCmd is `isobox oci features`.
type OciFeaturesCmd struct{}

func (c *OciFeaturesCmd) Run(o *ociFlags) error {
	return o.fail(printJSON(map[string]any{
		"ociVersionMin": "1.0.0",
		"ociVersionMax": specs.Version,
		"hooks":         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		"mountOptions": []string{"bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "dev", "suid", "exec", "async",
			"shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable",
			"noatime", "relatime", "strictatime", "nodiratime", "size", "mode", "nr_inodes"},
		"linux": map[string]any{
			"namespaces":   []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
			"capabilities": capNames(),
			// linux.resources go to a child of the caller's delegated cgroup v2
			// (cgroupfs; linux.cgroupsPath is not used).
			"cgroup": map[string]bool{"v1": false, "v2": true, "systemd": false, "systemdUser": false},
			"seccomp": map[string]any{"enabled": true,
				"actions":   []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG"},
				"operators": []string{"SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT", "SCMP_CMP_GE"},
				// The filter checks the native ABI's calls; the others get
				// the default action.
				"archs": []string{map[string]string{"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}[runtime.GOARCH]}},
			"apparmor": map[string]bool{"enabled": false},
			"selinux":  map[string]bool{"enabled": false},
		},
		"annotations": map[string]string{"org.opencontainers.runtime-spec.features.runtime": "isobox"},
	}))
}

func capNames() []string {
	var out []string
	for _, n := range userns.AllCapNames() {
		out = append(out, "CAP_"+n)
	}
	return out
}
