package main

import (
	"errors"

	"fmt"
	"github.com/alecthomas/kong"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/rootfs"
	"github.com/isobox/isobox/slirp"
	"github.com/isobox/isobox/userns"
	"github.com/isobox/isobox/userns/seccomp"
	"github.com/isobox/isobox/userns/state"
)

// RunCmd is `isobox run`.
type RunCmd struct {
	Hostname string `default:"isobox" help:"Container hostname (a DNS name of at most 64 bytes)."`
	Net      string `predictor:"net" placeholder:"MODE" help:"Network (default slirp, or gvisor when slirp4netns is not installed): slirp (user-mode networking through slirp4netns: 10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3), gvisor (the same through the isobox-gvisor helper, nothing else to install: gateway and DNS 10.0.2.1), pasta (passt's pasta, 2023_06_25 or later), none (own namespace, loopback only), or host (the caller's network)."`

	Publish           []string `short:"p" sep:"none" placeholder:"[IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]" help:"Publish a container port on the host (--net slirp or gvisor). Without IP it listens on 127.0.0.1 only, unlike podman's 0.0.0.0: give 0.0.0.0: to open it to the network. Repeatable."`
	AllowHostLoopback bool     `name:"allow-host-loopback" help:"With --net slirp or gvisor, let the container reach the host's 127.0.0.1 through the gateway, 10.0.2.2 (10.0.2.1 with gvisor); blocked by default."`
	Env               []string `short:"e" sep:"none" placeholder:"KEY[=VALUE]" help:"Set a variable; KEY alone takes the caller's value. Repeatable."`
	EnvFile           []string `name:"env-file" sep:"none" type:"existingfile" placeholder:"FILE" help:"Read variables from a file of KEY=VALUE lines. Repeatable."`
	Workdir           string   `short:"w" placeholder:"DIR" help:"Working directory inside the container (default /)."`
	User              string   `short:"u" placeholder:"UID[:GID]" help:"User to run as, by number or by name from the rootfs's /etc/passwd (default 0, root of the container)."`
	TimeOffset        string   `name:"time-offset" placeholder:"monotonic=SECONDS,boottime=SECONDS" help:"Offsets of the container's monotonic and boot-time clocks."`
	Map               string   `enum:"auto,full,single" default:"auto" help:"Id mapping: full (subordinate ids through newuidmap), single (only root, mapped to you), auto (full when possible)."`
	TTY               bool     `short:"t" name:"tty" help:"Allocate a terminal from the container's own devpts."`
	// Interactive exists because Docker and podman users type -it: stdin is
	// always connected, as with bubblewrap.
	Interactive bool        `short:"i" help:"Keep stdin connected (always on; accepted for compatibility)."`
	NoInit      bool        `name:"no-init" help:"Run the command as PID 1 itself instead of under isobox's init (it then ignores signals it does not handle, and exec cannot enter it)."`
	CapAdd      []string    `predictor:"caps" name:"cap-add" placeholder:"CAP" help:"Add a capability (CAP_ prefix optional, ALL for every one) to the default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL NET_BIND_SERVICE SETFCAP SETGID SETPCAP SETUID SYS_CHROOT (podman's). A non-root --user gets only the ones added. Repeatable."`
	CapDrop     []string    `predictor:"caps" name:"cap-drop" placeholder:"CAP" help:"Drop a capability (ALL for every one, then --cap-add what is needed). Repeatable."`
	SecurityOpt []string    `name:"security-opt" sep:"none" placeholder:"OPT" help:"seccomp=unconfined runs without Docker's default seccomp filter, seccomp=FILE.json with a profile in Docker's format; no-new-privileges=false lets setuid binaries and file capabilities inside gain privilege again (it is on by default: set it off for a container that needs sudo or ping through setuid). Repeatable."`
	Volume      []string    `short:"v" sep:"none" placeholder:"SRC:DST[:OPTS]" help:"Bind a host file or directory (relative to the current directory) at DST, created if missing. OPTS: ro, rw (default), nosuid, nodev, noexec. DST is resolved inside the rootfs, never on the host. Repeatable."`
	Tmpfs       []string    `sep:"none" placeholder:"DST[:OPTS]" help:"Mount a tmpfs at DST. OPTS: size=BYTES[k|m|g], mode=OCTAL, ro, noexec. Repeatable."`
	ReadOnly    bool        `name:"read-only" help:"Mount the rootfs read-only (/dev, /dev/shm, /run and /tmp stay writable tmpfs unless a volume covers them)."`
	Overlay     overlayFlag `placeholder:"DIR" help:"Run on a throw-away copy-on-write layer: the rootfs on disk is untouched and can be shared by many containers at once. --overlay=DIR keeps the layer in DIR (DIR/upper) instead."`
	Detach      bool        `short:"d" help:"Run in the background: print the container's name once its command runs. Its output goes to 'isobox logs' (the last 1-2 MiB)."`
	Name        string      `placeholder:"NAME" help:"Name the container ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128 bytes; default a random one)."`
	Rm          bool        `name:"rm" help:"Remove the container's record when it exits."`
	Pull        string      `enum:"missing,always,never" default:"missing" help:"With an image: pull it when missing (default), always, or never."`
	Entrypoint  *string     `placeholder:"CMD" help:"Replace the image's Entrypoint (and clear its Cmd); --entrypoint '' clears it."`
	TLSVerify   bool        `name:"tls-verify" default:"true" negatable:"" help:"With an image to pull: require HTTPS and a valid certificate."`
	Platform    string      `placeholder:"OS/ARCH[/VARIANT]" help:"With an image to pull: the platform to take from an index."`
	Explain     bool        `help:"Start nothing: print what isobox would do for these options, as a numbered script of the article's commands (unshare, newuidmap, mount, hostname, ip, pivot_root...)."`
	JSON        bool        `name:"json" help:"With --explain: the plan as JSON."`
	limitFlags

	Rootfs  string   `predictor:"rootfs" arg:"" placeholder:"ROOTFS|IMAGE" help:"Root filesystem directory (an existing directory, or a path starting with /, ./, ../ or ~), or an image reference."`
	Command []string `arg:"" optional:"" passthrough:"" placeholder:"COMMAND [ARG...]" help:"Command to run (default the image's, or /bin/sh)."`

	opts  userns.Options
	env   []string // from -e and --env-file
	image string   // the image reference, when Rootfs is one
	sec   securityOpts
}

// Validate checks the flags and builds the launcher's options, so that
// every bad input is refused before anything is started. With an image,
// what depends on it (its defaults, user names from its /etc/passwd) is
// settled in Run, once it is found or pulled.
func (r *RunCmd) Validate() error {
	if r.Name != "" {
		if err := state.ValidName(r.Name); err != nil {
			return fmt.Errorf("--name: %w", err)
		}
	}
	switch r.Net {
	case "", "slirp", "gvisor", "pasta", "none", "host":
	default:
		return fmt.Errorf("--net %q: want slirp, gvisor, pasta, none or host", r.Net)
	}
	userMode := r.Net != "none" && r.Net != "host"
	if r.AllowHostLoopback && !userMode {
		return fmt.Errorf("--allow-host-loopback needs --net slirp or gvisor")
	}
	publish, err := slirp.ParsePublishes(r.Publish, slirp.UnprivilegedPortStart())
	if err != nil {
		return err
	}
	if len(publish) > 0 && !userMode {
		return fmt.Errorf("--publish needs --net slirp or gvisor")
	}
	if err := userns.ValidateHostname(r.Hostname); err != nil {
		return fmt.Errorf("--hostname: %w", err)
	}
	offsets, err := userns.ParseTimeOffsets(r.TimeOffset)
	if err != nil {
		return err
	}
	if r.Workdir != "" && !filepath.IsAbs(r.Workdir) {
		return fmt.Errorf("--workdir %q: must be an absolute path", r.Workdir)
	}
	if r.User != "" {
		if _, err := userns.ParseUserSpec(r.User); err != nil {
			return err
		}
	}
	var env []string
	for _, f := range r.EnvFile {
		fh, err := os.Open(f)
		if err != nil {
			return fmt.Errorf("--env-file: %w", err)
		}
		e, err := userns.ParseEnvFile(fh, f, os.LookupEnv)
		fh.Close()
		if err != nil {
			return fmt.Errorf("--env-file: %w", err)
		}
		env = append(env, e...)
	}
	flagEnv, err := userns.ParseEnvArgs(r.Env, os.LookupEnv)
	if err != nil {
		return err
	}
	r.env = append(env, flagEnv...)
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	var mounts []rootfs.Mount
	for _, v := range r.Volume {
		m, err := rootfs.ParseVolume(v, cwd)
		if err != nil {
			return err
		}
		mounts = append(mounts, m)
	}
	for _, v := range r.Tmpfs {
		m, err := rootfs.ParseTmpfs(v)
		if err != nil {
			return err
		}
		mounts = append(mounts, m)
	}
	overlay, err := r.Overlay.spec(cwd)
	if err != nil {
		return err
	}
	caps, ambient, err := userns.ApplyCapFlags(r.CapAdd, r.CapDrop)
	if err != nil {
		return err
	}
	sec, err := parseSecurityOpts(r.SecurityOpt)
	if err != nil {
		return err
	}
	r.sec = sec
	filter, err := seccompFilter(sec, caps)
	if err != nil {
		return err
	}
	if r.Platform != "" && strings.Count(r.Platform, "/") < 1 {
		return fmt.Errorf("--platform %q: want OS/ARCH[/VARIANT]", r.Platform)
	}
	limits, err := r.limitFlags.limits()
	if err != nil {
		return err
	}
	r.opts = userns.Options{
		Limits: limits,
		Config: userns.Config{
			Hostname:    r.Hostname,
			Net:         userns.Net(r.Net),
			TTY:         r.TTY,
			NoInit:      r.NoInit,
			Caps:        caps,
			AmbientCaps: ambient,
			NewPrivs:    sec.newPrivs,
			Seccomp:     filter,
			Mounts:      mounts,
			Readonly:    r.ReadOnly,
			Overlay:     overlay,
		},
		Map:               idmap.Mode(r.Map),
		TimeOffsets:       offsets,
		AllowHostLoopback: r.AllowHostLoopback,
		Publish:           publish,
	}
	if !isRootfsPath(r.Rootfs) {
		r.image = r.Rootfs
		return nil
	}
	root, err := rootfsDir(r.Rootfs)
	if err != nil {
		return err
	}
	return r.build(root, nil)
}

// isRootfsPath tells a root filesystem from an image reference: an
// existing directory, or a path that starts with /, ./, ../ or ~.
func isRootfsPath(arg string) bool {
	for _, p := range []string{"/", "./", "../", "~"} {
		if strings.HasPrefix(arg, p) {
			return true
		}
	}
	st, err := os.Stat(arg)
	return err == nil && st.IsDir()
}

// rootfsDir checks the rootfs argument and returns its absolute real path.
func rootfsDir(arg string) (string, error) {
	if rest, ok := strings.CutPrefix(arg, "~"); ok && (rest == "" || rest[0] == '/') {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("rootfs %s: %w", arg, err)
		}
		arg = home + rest
	}
	root, err := filepath.Abs(arg)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(root)
	if err != nil {
		return "", fmt.Errorf("rootfs: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("rootfs %s: not a directory", root)
	}
	return filepath.EvalSymlinks(root)
}

// build completes the options for a rootfs at root, with an image's
// defaults when img is set, combined with the command line as Docker does:
// Entrypoint + Cmd, arguments replace Cmd, --entrypoint replaces
// Entrypoint and clears Cmd; Env merged by key under -e; WorkingDir under
// -w; User under -u.
func (r *RunCmd) build(root string, img *imageRun) error {
	c := &r.opts.Config
	c.Rootfs = root
	passwdRoot, groupRoot := root, root
	var entrypoint, cmd, env []string
	user, workdir := r.User, r.Workdir
	if img != nil {
		passwdRoot, groupRoot = img.fileRoot("etc/passwd"), img.fileRoot("etc/group")
		entrypoint, cmd, env = img.config.Entrypoint, img.config.Cmd, img.config.Env
		if user == "" {
			user = img.config.User
		}
		if workdir == "" {
			workdir = img.config.WorkingDir
		}
		c.MakeWorkdir = workdir != ""
		if c.Overlay == nil {
			c.Overlay = &rootfs.Overlay{}
		}
		c.Overlay.Lower = img.lower
	}
	if r.Entrypoint != nil {
		entrypoint, cmd = nil, nil
		if *r.Entrypoint != "" {
			entrypoint = []string{*r.Entrypoint}
		}
	}
	if len(r.Command) > 0 {
		cmd = r.Command
	}
	c.Args = append(append([]string{}, entrypoint...), cmd...)
	if len(c.Args) == 0 {
		if img != nil {
			return fmt.Errorf("no command: the image %s has no Entrypoint or Cmd; give one after its name", r.image)
		}
		c.Args = []string{"/bin/sh"}
	}
	var uid, gid uint32
	home := "/root"
	if user != "" {
		var err error
		if uid, gid, home, err = userns.ResolveUserIn(passwdRoot, groupRoot, user); err != nil {
			return err
		}
	}
	c.UID, c.GID, c.Workdir = uid, gid, workdir
	c.Env = userns.BuildEnv(r.Hostname, home, os.Getenv("TERM"), append(append([]string{}, env...), r.env...))
	return nil
}

func (r *RunCmd) Run(g *Globals, log *slog.Logger) error {
	if r.JSON && !r.Explain {
		return errors.New("--json goes with --explain")
	}
	var img *imageRun
	if r.image != "" {
		var err error
		if r.Explain {
			r.Pull = "never" // explaining starts nothing, and fetches nothing
		}
		if img, err = r.resolveImage(g, log); err != nil {
			return err
		}
		if err := r.build(img.top, img); err != nil {
			return err
		}
	}
	if r.Explain {
		return explain(r.opts, r.JSON)
	}
	dir, err := state.Open()
	if err != nil {
		return err
	}
	rec := state.Record{
		Command:    r.opts.Args,
		Rootfs:     r.opts.Rootfs,
		Net:        string(r.opts.Net),
		NoInit:     r.opts.NoInit,
		Detached:   r.Detach,
		AutoRemove: r.Rm,
		Created:    time.Now(),
		RunnerPID:  os.Getpid(),
	}
	if img != nil {
		rec.Image, rec.ImageID, rec.StopSignal = img.name, img.img.ID, img.config.StopSignal
	}
	rec.Config = r.recordConfig()
	for _, p := range r.opts.Publish {
		rec.Ports = append(rec.Ports, p.String())
	}
	if r.Detach {
		// The monitor takes over a record that exists, and its lock.
		c, err := createRecord(dir, rec, r.Name)
		if err != nil {
			return err
		}
		if err := userns.Detach(r.opts, c, g.LogLevel); err != nil {
			return err
		}
		fmt.Println(c.Record().Name)
		return nil
	}
	r.opts.Logger = log
	r.opts.CreateRecord = func() (*state.Container, error) { return createRecord(dir, rec, r.Name) }
	code, err := userns.Run(r.opts)
	if err != nil {
		return err
	}
	return exitWith(code)
}

// recordConfig is what inspect shows of the set-up.
func (r *RunCmd) recordConfig() *state.Config {
	c := r.opts.Config
	rc := &state.Config{
		Env: c.Env, User: fmt.Sprintf("%d:%d", c.UID, c.GID), Workdir: c.Workdir, Hostname: c.Hostname,
		Mounts: []state.MountInfo{}, ReadOnly: c.Readonly, Overlay: c.Overlay != nil, Caps: c.Caps.Names(),
		NoNewPrivs: !c.NewPrivs, Seccomp: "default", Map: r.Map, TimeOffsets: r.TimeOffset,
	}
	if rc.Workdir == "" {
		rc.Workdir = "/"
	}
	if l := r.opts.Limits; !l.IsZero() {
		rc.Limits = &l
	}
	switch {
	case r.sec.unconfined:
		rc.Seccomp = "unconfined"
	case r.sec.seccompProfile != "":
		rc.Seccomp = r.sec.seccompProfile
	}
	for _, m := range c.Mounts {
		mi := state.MountInfo{Type: "bind", Source: m.Source, Destination: m.Dest}
		var opts []string
		if m.Tmpfs() {
			mi.Type = "tmpfs"
			if m.Data != "" {
				opts = append(opts, m.Data)
			}
		}
		opts = append(opts, map[bool]string{true: "ro", false: "rw"}[m.Readonly])
		if m.Flags != 0 {
			opts = append(opts, strings.ToLower(strings.NewReplacer("MS_", "", "|", ",").Replace(rootfs.FlagString(m.Flags))))
		}
		mi.Options = strings.Join(opts, ",")
		rc.Mounts = append(rc.Mounts, mi)
	}
	return rc
}

// createRecord publishes the record under name, or under a new random name
// (trying again in the unlikely case it is taken).
func createRecord(dir *state.Dir, rec state.Record, name string) (*state.Container, error) {
	for try := 0; ; try++ {
		rec.Name = name
		if name == "" {
			rec.Name = state.NewName()
		}
		c, err := dir.Create(rec)
		if name == "" && errors.Is(err, state.ErrNameInUse) && try < 5 {
			continue
		}
		return c, err
	}
}

// seccompFilter compiles Docker's default profile for the container's
// capabilities, or the given one.
func seccompFilter(sec securityOpts, caps userns.CapSet) (seccomp.Program, error) {
	switch {
	case sec.unconfined:
		return nil, nil
	case sec.seccompProfile != "":
		b, err := os.ReadFile(sec.seccompProfile)
		if err != nil {
			return nil, fmt.Errorf("--security-opt seccomp: %w", err)
		}
		p, err := seccomp.Load(b, caps.Names())
		if err != nil {
			return nil, fmt.Errorf("--security-opt seccomp=%s: %w", sec.seccompProfile, err)
		}
		return p, nil
	}
	return seccomp.Default(caps.Names())
}

// securityOpts are the --security-opt values isobox knows.
type securityOpts struct {
	newPrivs       bool   // no-new-privileges=false
	unconfined     bool   // seccomp=unconfined
	seccompProfile string // seccomp=FILE
}

// parseSecurityOpts reads Docker's spellings: KEY, KEY=VALUE or KEY:VALUE.
func parseSecurityOpts(opts []string) (securityOpts, error) {
	var s securityOpts
	for _, o := range opts {
		key, val, hasVal := strings.Cut(o, "=")
		if !hasVal {
			key, val, hasVal = strings.Cut(o, ":")
		}
		switch key {
		case "no-new-privileges":
			switch {
			case !hasVal || val == "true":
				s.newPrivs = false
			case val == "false":
				s.newPrivs = true
			default:
				return s, fmt.Errorf("--security-opt %q: want no-new-privileges=true or =false", o)
			}
		case "seccomp":
			switch {
			case !hasVal || val == "":
				return s, fmt.Errorf("--security-opt %q: want seccomp=unconfined or seccomp=FILE.json", o)
			case val == "unconfined":
				s.unconfined, s.seccompProfile = true, ""
			default:
				s.unconfined, s.seccompProfile = false, val
			}
		default:
			return s, fmt.Errorf("--security-opt %q: unknown option (known: no-new-privileges, seccomp)", o)
		}
	}
	return s, nil
}

// overlayFlag is --overlay (a throw-away layer) or --overlay=DIR: kong
// treats it as a boolean flag that may take a value.
type overlayFlag struct {
	on  bool
	dir string
}

func (o *overlayFlag) IsBool() bool { return true }

func (o *overlayFlag) Decode(ctx *kong.DecodeContext) error {
	o.on = true
	if t := ctx.Scan.Peek(); t.Type == kong.FlagValueToken {
		ctx.Scan.Pop()
		s, ok := t.Value.(string)
		if !ok || s == "" {
			return fmt.Errorf("--overlay=DIR: want a directory")
		}
		o.dir = s
	}
	return nil
}

// spec checks DIR (made if missing; relative to cwd) and returns the
// overlay to use, or nil.
func (o overlayFlag) spec(cwd string) (*rootfs.Overlay, error) {
	if !o.on {
		return nil, nil
	}
	if o.dir == "" {
		return &rootfs.Overlay{}, nil
	}
	d := o.dir
	if !filepath.IsAbs(d) {
		d = filepath.Join(cwd, d)
	}
	d = filepath.Clean(d)
	if st, err := os.Stat(d); err != nil {
		return nil, fmt.Errorf("--overlay=%s: %w", o.dir, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("--overlay=%s: not a directory", o.dir)
	}
	return &rootfs.Overlay{Dir: d}, nil
}
