// Package bundle owns the translation of an OCI bundle's config.json
// (runtime-spec) into isobox's launch options: one place, pure, no system
// calls, table-tested and fuzzed. It knows runtime-spec and userns.Options,
// not how a container is started; `isobox oci` runs what it returns with
// the same launcher as `isobox run`.
//
// What isobox does by itself whatever the config says (its own /proc,
// /sys, /dev, masks and read-only paths, a user namespace first) is not
// translated; what a rootless runtime cannot do, or isobox does not do yet,
// is refused with the field named, or ignored with one note (what `runc
// --rootless` ignores: AppArmor and SELinux labels, the device cgroup).
// linux.resources become cgroup limits, which the launcher applies where
// the caller's cgroup v2 is delegated and drops with a warning elsewhere,
// as runc --rootless does.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/rootfs"
	"github.com/isobox/isobox/userns"
	"github.com/isobox/isobox/userns/hooks"
	"github.com/isobox/isobox/userns/seccomp"
)

// ErrConfig is a config.json isobox refuses.
var ErrConfig = errors.New("config.json")

// Annotations naming a stored image as the bundle's root, written by
// `isobox oci spec --image`: its layers are stacked copy-on-write at run
// time on root.path (an empty directory), nothing copied. They survive
// Slurm, which rewrites root.path and keeps the rest of the config.
const (
	AnnotationImage      = "org.isobox.image"       // the image ID, sha256:...
	AnnotationImageStore = "org.isobox.image.store" // the store holding it
	AnnotationImageName  = "org.isobox.image.name"  // what it was pulled as
)

// Launch is a translated bundle.
type Launch struct {
	Options     userns.Options
	Annotations map[string]string
	// ImageID and ImageStore are set when the root is a stored image.
	ImageID, ImageStore string
	// OwnSeccomp: the bundle gave its own filter (Options.Seccomp);
	// otherwise the caller applies Docker's default.
	OwnSeccomp bool
	// Notes are what was ignored, one line each.
	Notes []string
}

func fieldError(field, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, a...))
}

// Parse reads config.json's bytes. Only the fields Translate reads are
// decoded: encoding/json builds its decoder for every struct type it meets,
// on each process's first use, and runtime-spec's Linux and Spec types are
// large (about 0.4 ms of every `oci run`, measured). What is rarely there
// (resources, devices, seccomp) stays raw until it is.
func Parse(b []byte) (*specs.Spec, error) {
	var c config
	if err := decodeField("", b, &c); err != nil {
		return nil, err
	}
	s := &specs.Spec{Version: c.Version, Process: c.Process, Root: c.Root, Hostname: c.Hostname, Domainname: c.Domainname,
		Mounts: c.Mounts, Hooks: c.Hooks, Annotations: c.Annotations}
	if lx := c.Linux; lx != nil {
		s.Linux = &specs.Linux{UIDMappings: lx.UIDMappings, GIDMappings: lx.GIDMappings, Sysctl: lx.Sysctl,
			Namespaces: lx.Namespaces, RootfsPropagation: lx.RootfsPropagation, MaskedPaths: lx.MaskedPaths, ReadonlyPaths: lx.ReadonlyPaths}
		for _, raw := range []struct {
			name string
			b    json.RawMessage
			to   any
		}{
			{"linux.resources", lx.Resources, &s.Linux.Resources},
			{"linux.devices", lx.Devices, &s.Linux.Devices},
			{"linux.seccomp", lx.Seccomp, &s.Linux.Seccomp},
		} {
			if len(raw.b) > 0 {
				if err := decodeField(raw.name+".", raw.b, raw.to); err != nil {
					return nil, err
				}
			}
		}
	}
	return s, nil
}

// config and linuxConfig are the parts of runtime-spec's Spec that
// Translate reads.
type config struct {
	Version     string            `json:"ociVersion"`
	Process     *specs.Process    `json:"process,omitempty"`
	Root        *specs.Root       `json:"root,omitempty"`
	Hostname    string            `json:"hostname,omitempty"`
	Domainname  string            `json:"domainname,omitempty"`
	Mounts      []specs.Mount     `json:"mounts,omitempty"`
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       *linuxConfig      `json:"linux,omitempty"`
}

type linuxConfig struct {
	UIDMappings       []specs.LinuxIDMapping `json:"uidMappings,omitempty"`
	GIDMappings       []specs.LinuxIDMapping `json:"gidMappings,omitempty"`
	Sysctl            map[string]string      `json:"sysctl,omitempty"`
	Namespaces        []specs.LinuxNamespace `json:"namespaces,omitempty"`
	RootfsPropagation string                 `json:"rootfsPropagation,omitempty"`
	MaskedPaths       []string               `json:"maskedPaths,omitempty"`
	ReadonlyPaths     []string               `json:"readonlyPaths,omitempty"`
	Resources         json.RawMessage        `json:"resources,omitempty"`
	Devices           json.RawMessage        `json:"devices,omitempty"`
	Seccomp           json.RawMessage        `json:"seccomp,omitempty"`
}

// decodeField decodes b into v, naming the field of a wrong type from the
// top of config.json (prefix is where b is in it).
func decodeField(prefix string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return fieldError(prefix+te.Field, "%s where %s was expected", te.Value, te.Type)
		case errors.As(err, &se):
			return fmt.Errorf("%w: malformed JSON at byte %d: %v", ErrConfig, se.Offset, err)
		}
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return nil
}

// Translate turns a spec into launch options. bundleDir is the bundle's
// absolute path (root.path is relative to it unless absolute).
func Translate(s *specs.Spec, bundleDir string) (*Launch, error) {
	l := &Launch{Annotations: s.Annotations}
	o := &l.Options
	if err := checkVersion(s.Version); err != nil {
		return nil, err
	}
	if s.Root == nil || s.Root.Path == "" {
		return nil, fieldError("root.path", "missing")
	}
	root := s.Root.Path
	if !filepath.IsAbs(root) {
		root = filepath.Join(bundleDir, root)
	}
	o.Rootfs = filepath.Clean(root)
	o.Readonly = s.Root.Readonly
	// runtime-spec lets create take a bundle without a process (start then
	// fails); the caller refuses it for anything else.
	if s.Process == nil {
		o.NoProcess, o.Workdir = true, "/"
	} else if err := l.process(s.Process); err != nil {
		return nil, err
	}
	o.Hostname = s.Hostname
	if o.Hostname == "" {
		o.Hostname = "isobox"
	}
	if err := userns.ValidateHostname(o.Hostname); err != nil {
		return nil, fieldError("hostname", "%v", err)
	}
	if s.Domainname != "" {
		l.note("domainname %q ignored: isobox sets no NIS domain name", s.Domainname)
	}
	if err := l.mounts(s.Mounts); err != nil {
		return nil, err
	}
	if err := l.linux(s.Linux); err != nil {
		return nil, err
	}
	for _, j := range o.Join {
		if j.Type == string(specs.UTSNamespace) && s.Hostname != "" {
			// As runc: the name belongs to whoever made the namespace.
			return nil, fieldError("hostname", "%q: the UTS namespace is joined (linux.namespaces), not the container's own to name", s.Hostname)
		}
	}
	if id := s.Annotations[AnnotationImage]; id != "" {
		store := s.Annotations[AnnotationImageStore]
		if !filepath.IsAbs(store) {
			return nil, fieldError("annotations."+AnnotationImageStore, "%q: must be an absolute path", store)
		}
		if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
			return nil, fieldError("annotations."+AnnotationImage, "%q: want sha256:HEX", id)
		}
		l.ImageID, l.ImageStore = id, filepath.Clean(store)
	}
	if err := l.hooks(s.Hooks); err != nil {
		return nil, err
	}
	l.Options.HookState = &hooks.State{OCIVersion: specs.Version, Bundle: bundleDir, Annotations: s.Annotations}
	return l, nil
}

// hooks reads the lifecycle hooks: absolute paths, positive timeouts.
func (l *Launch) hooks(h *specs.Hooks) error {
	if h == nil {
		return nil
	}
	var set hooks.Set
	for _, list := range []struct {
		name string
		from []specs.Hook
		to   *[]hooks.Hook
	}{
		{"prestart", h.Prestart, &set.Prestart}, //nolint:staticcheck // deprecated, still run, as runc does
		{"createRuntime", h.CreateRuntime, &set.CreateRuntime},
		{"createContainer", h.CreateContainer, &set.CreateContainer},
		{"startContainer", h.StartContainer, &set.StartContainer},
		{"poststart", h.Poststart, &set.Poststart},
		{"poststop", h.Poststop, &set.Poststop},
	} {
		for i, hk := range list.from {
			field := fmt.Sprintf("hooks.%s[%d]", list.name, i)
			if !path.IsAbs(hk.Path) {
				return fieldError(field+".path", "%q: must be an absolute path", hk.Path)
			}
			t := 0
			if hk.Timeout != nil {
				if *hk.Timeout <= 0 {
					return fieldError(field+".timeout", "%d: must be more than 0", *hk.Timeout)
				}
				t = *hk.Timeout
			}
			*list.to = append(*list.to, hooks.Hook{Path: hk.Path, Args: hk.Args, Env: hk.Env, Timeout: t})
		}
	}
	if set.Prestart != nil || set.CreateRuntime != nil || set.CreateContainer != nil || set.StartContainer != nil || set.Poststart != nil || set.Poststop != nil {
		l.Options.Hooks = &set
	}
	return nil
}

func (l *Launch) note(format string, a ...any) { l.Notes = append(l.Notes, fmt.Sprintf(format, a...)) }

// checkVersion accepts runtime-spec 1.x.
func checkVersion(v string) error {
	if v == "" {
		return fieldError("ociVersion", "missing")
	}
	major, _, _ := strings.Cut(v, ".")
	if major != "1" {
		return fieldError("ociVersion", "%q: isobox runs runtime-spec 1.x bundles", v)
	}
	return nil
}

func (l *Launch) process(p *specs.Process) error {
	o := &l.Options
	if len(p.Args) == 0 || p.Args[0] == "" {
		return fieldError("process.args", "missing")
	}
	if p.CommandLine != "" {
		return fieldError("process.commandLine", "Windows only")
	}
	o.Args = p.Args
	// Duplicates: the last one wins, as execve's callers expect (Slurm's
	// configs have them).
	env := userns.MergeEnv(nil, p.Env...)
	for _, kv := range env {
		if !strings.Contains(kv, "=") {
			return fieldError("process.env", "%q is not KEY=VALUE", kv)
		}
	}
	o.Env = env
	if p.Cwd == "" || !path.IsAbs(p.Cwd) {
		return fieldError("process.cwd", "%q: must be an absolute path", p.Cwd)
	}
	o.Workdir = path.Clean(p.Cwd)
	o.UID, o.GID = p.User.UID, p.User.GID
	if p.User.Username != "" {
		return fieldError("process.user.username", "Windows only")
	}
	o.Groups = p.User.AdditionalGids
	if p.User.Umask != nil && *p.User.Umask != 0o022 {
		l.note("process.user.umask %#o ignored: the process starts with 022", *p.User.Umask)
	}
	// A terminal from the container's devpts: the runner's own, or sent
	// to --console-socket.
	o.TTY = p.Terminal
	if p.ConsoleSize != nil && p.ConsoleSize.Height <= 0xffff && p.ConsoleSize.Width <= 0xffff {
		o.Rows, o.Cols = uint16(p.ConsoleSize.Height), uint16(p.ConsoleSize.Width)
	}
	caps := userns.CapSet(0)
	if p.Capabilities != nil {
		// isobox gives one set: root gets it, and it is the bounding set.
		var err error
		if caps, err = userns.ParseCapSet(p.Capabilities.Bounding); err != nil {
			return fieldError("process.capabilities.bounding", "%v", err)
		}
		eff, err := userns.ParseCapSet(p.Capabilities.Effective)
		if err != nil {
			return fieldError("process.capabilities.effective", "%v", err)
		}
		if len(p.Capabilities.Effective) > 0 {
			caps &= eff
		}
		inh, err := userns.ParseCapSet(p.Capabilities.Inheritable)
		if err != nil {
			return fieldError("process.capabilities.inheritable", "%v", err)
		}
		amb, err := userns.ParseCapSet(p.Capabilities.Ambient)
		if err != nil {
			return fieldError("process.capabilities.ambient", "%v", err)
		}
		// The kernel raises as ambient only what is inheritable too.
		o.InheritableCaps = inh & caps
		o.AmbientCaps = amb & o.InheritableCaps
	}
	o.Caps = caps
	o.NewPrivs = !p.NoNewPrivileges
	seen := map[int]bool{}
	for i, r := range p.Rlimits {
		n, err := userns.ParseRlimit(r.Type)
		if err != nil {
			return fieldError(fmt.Sprintf("process.rlimits[%d].type", i), "%v", err)
		}
		if seen[n] {
			return fieldError(fmt.Sprintf("process.rlimits[%d].type", i), "%s given twice", r.Type)
		}
		if r.Soft > r.Hard {
			return fieldError(fmt.Sprintf("process.rlimits[%d]", i), "%s: soft %d above hard %d", r.Type, r.Soft, r.Hard)
		}
		seen[n] = true
		o.Rlimits = append(o.Rlimits, userns.Rlimit{Resource: n, Soft: r.Soft, Hard: r.Hard})
	}
	if p.OOMScoreAdj != nil {
		if v := *p.OOMScoreAdj; v < -1000 || v > 1000 {
			return fieldError("process.oomScoreAdj", "%d: not in -1000..1000", v)
		}
		o.OOMScoreAdj = p.OOMScoreAdj
	}
	if p.ApparmorProfile != "" || p.SelinuxLabel != "" {
		l.note("process.apparmorProfile and selinuxLabel ignored: isobox applies no LSM labels")
	}
	return nil
}

// isoboxMounts are the mounts isobox makes itself, whatever the config
// asks for there.
var isoboxMounts = map[string]bool{
	"/proc": true, "/dev": true, "/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true,
	"/sys": true, "/sys/fs/cgroup": true,
}

func (l *Launch) mounts(ms []specs.Mount) error {
	for i, m := range ms {
		field := fmt.Sprintf("mounts[%d]", i)
		if !path.IsAbs(m.Destination) {
			return fieldError(field+".destination", "%q: must be an absolute path", m.Destination)
		}
		dest := path.Clean(m.Destination)
		if isoboxMounts[dest] {
			continue
		}
		typ := m.Type
		bind := typ == "bind" || typ == "rbind"
		for _, opt := range m.Options {
			if opt == "bind" || opt == "rbind" {
				bind = true
			}
		}
		switch {
		case bind:
			src := m.Source
			if !path.IsAbs(src) {
				return fieldError(field+".source", "%q: must be an absolute path", src)
			}
			mnt := rootfs.Mount{Source: path.Clean(src), Dest: dest}
			if err := bindOptions(&mnt, m.Options); err != nil {
				return fieldError(field+".options", "%v", err)
			}
			l.Options.Mounts = append(l.Options.Mounts, mnt)
		case typ == "tmpfs":
			mnt := rootfs.Mount{Dest: dest, Flags: unix.MS_NOSUID | unix.MS_NODEV}
			var data []string
			for _, opt := range m.Options {
				if p, ok := propagations[opt]; ok {
					mnt.Propagation = p
					continue
				}
				switch {
				case opt == "ro":
					mnt.Readonly = true
				case opt == "rw" || opt == "nosuid" || opt == "nodev" || opt == "":
				case opt == "noexec":
					mnt.Flags |= unix.MS_NOEXEC
				case strings.HasPrefix(opt, "size=") || strings.HasPrefix(opt, "mode=") || strings.HasPrefix(opt, "nr_inodes="):
					data = append(data, opt)
				case atimeFlags[opt] != 0 || opt == "exec" || opt == "async":
					mnt.Flags |= atimeFlags[opt]
				default:
					return fieldError(field+".options", "%q: not a tmpfs option isobox takes", opt)
				}
			}
			mnt.Data = strings.Join(data, ",")
			l.Options.Mounts = append(l.Options.Mounts, mnt)
		case typ == "proc" || typ == "sysfs" || typ == "devpts" || typ == "mqueue" || typ == "cgroup" || typ == "cgroup2":
			return fieldError(field, "a %s mount at %s: isobox mounts %s only where it makes them itself", typ, dest, typ)
		default:
			return fieldError(field+".type", "%q: not supported", typ)
		}
	}
	return nil
}

// propagations are the propagation options a mount may take.
var propagations = map[string]uintptr{
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// atimeFlags are the access-time options, and the defaults that change
// nothing (dev, suid, exec, async).
var atimeFlags = map[string]uintptr{
	"noatime": unix.MS_NOATIME, "relatime": unix.MS_RELATIME, "strictatime": unix.MS_STRICTATIME,
	"nodiratime": unix.MS_NODIRATIME, "dev": 0, "suid": 0, "exec": 0, "async": 0,
}

// bindOptions reads a bind mount's options.
func bindOptions(m *rootfs.Mount, opts []string) error {
	for _, o := range opts {
		if p, ok := propagations[o]; ok {
			m.Propagation = p
			continue
		}
		if _, ok := atimeFlags[o]; ok {
			// A bind keeps its source's access-time flags: a user
			// namespace may not change those of a mount it was given.
			continue
		}
		switch {
		case o == "bind" || o == "rbind" || o == "":
		case strings.Contains(o, "="):
			// Filesystem data (mode=, size=): mount(2) ignores it for a
			// bind, as it does under runc.
		default:
			if err := m.Option(o); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Launch) linux(lx *specs.Linux) error {
	o := &l.Options
	o.Net = userns.NetHost
	o.Map = idmap.ModeAuto
	if lx == nil {
		return nil
	}
	o.NoTimeNamespace = true
	for i, ns := range lx.Namespaces {
		field := fmt.Sprintf("linux.namespaces[%d]", i)
		if ns.Type == specs.TimeNamespace {
			o.NoTimeNamespace = false
		}
		if ns.Path != "" {
			if ok, why := userns.Joinable(string(ns.Type)); !ok {
				return fieldError(field+".path", "joining a %s namespace is not supported: %s", ns.Type, why)
			}
			if !path.IsAbs(ns.Path) {
				return fieldError(field+".path", "%q: not an absolute path", ns.Path)
			}
			o.Join = append(o.Join, userns.Join{Type: string(ns.Type), Path: ns.Path})
			if ns.Type == specs.NetworkNamespace {
				o.Net = userns.NetHost // the joined one: no loopback to set up, /sys bound
			}
			continue
		}
		switch ns.Type {
		case specs.NetworkNamespace:
			o.Net = userns.NetNone
		case specs.PIDNamespace, specs.MountNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace:
			// isobox makes every one of these, always.
		default:
			return fieldError(field+".type", "%q: unknown", ns.Type)
		}
	}
	if userns.JoinsUser(o.Join) {
		if len(lx.UIDMappings)+len(lx.GIDMappings) > 0 {
			l.note("linux.uidMappings and gidMappings ignored: the user namespace is joined, with its own maps")
		}
	} else if err := l.mappings(lx.UIDMappings, lx.GIDMappings); err != nil {
		return err
	}
	for key := range lx.Sysctl {
		if _, err := userns.SysctlPath(key); err != nil {
			return fieldError("linux.sysctl", "%v", err)
		}
	}
	if len(lx.Sysctl) > 0 {
		o.Sysctl = lx.Sysctl
	}
	if lx.Seccomp != nil {
		p, err := seccomp.Compile(lx.Seccomp)
		if err != nil {
			return fieldError("linux.seccomp", "%v", err)
		}
		o.Seccomp = p
		l.OwnSeccomp = true
	}
	if lx.Resources != nil {
		if err := l.resources(lx.Resources); err != nil {
			return err
		}
	}
	for i, d := range lx.Devices {
		field := fmt.Sprintf("linux.devices[%d]", i)
		p := path.Clean(d.Path)
		if !strings.HasPrefix(p, "/dev/") {
			return fieldError(field+".path", "%q: must be under /dev", d.Path)
		}
		if d.Type != "c" && d.Type != "b" {
			return fieldError(field+".type", "%q: isobox binds character (c) and block (b) devices from the host; a user namespace makes no nodes", d.Type)
		}
		o.Devices = append(o.Devices, rootfs.Device{Path: p, Type: rune(d.Type[0]), Major: d.Major, Minor: d.Minor})
	}
	if p := lx.RootfsPropagation; p != "" {
		f, ok := propagations[p]
		if !ok {
			return fieldError("linux.rootfsPropagation", "%q: want shared, slave, private or unbindable (or their r- forms)", p)
		}
		o.RootPropagation = f
	}
	// Added to runc's default lists, which isobox always applies; a
	// relative path is taken from the container's /, as runc does.
	for _, p := range lx.MaskedPaths {
		o.MaskedPaths = append(o.MaskedPaths, path.Join("/", p))
	}
	for _, p := range lx.ReadonlyPaths {
		o.ReadonlyPaths = append(o.ReadonlyPaths, path.Join("/", p))
	}
	return nil
}

// mappings chooses the mapping: one id (container root on the caller, as
// `runc spec --rootless` writes) or the caller's subordinate ranges.
func (l *Launch) mappings(uids, gids []specs.LinuxIDMapping) error {
	size := func(m []specs.LinuxIDMapping) uint64 {
		var n uint64
		for _, e := range m {
			n += uint64(e.Size)
		}
		return n
	}
	su, sg := size(uids), size(gids)
	if (su == 0) != (sg == 0) {
		return fieldError("linux.uidMappings", "uidMappings and gidMappings go together: give both or neither")
	}
	if su == 0 {
		l.Options.Map = idmap.ModeAuto
		return nil
	}
	if !maps0(uids) || !maps0(gids) {
		return fieldError("linux.uidMappings", "container id 0 must be mapped: isobox's init runs as container root")
	}
	// Mapped as given; the launcher checks them against the caller's own
	// ids and subordinate ranges.
	l.Options.Map = idmap.ModeFull
	if su == 1 && sg == 1 {
		l.Options.Map = idmap.ModeSingle
	}
	l.Options.UIDMap, l.Options.GIDMap = toMappings(uids), toMappings(gids)
	return nil
}

func maps0(m []specs.LinuxIDMapping) bool {
	for _, e := range m {
		if e.ContainerID == 0 && e.Size > 0 {
			return true
		}
	}
	return false
}

func toMappings(m []specs.LinuxIDMapping) []idmap.Mapping {
	out := make([]idmap.Mapping, len(m))
	for i, e := range m {
		out[i] = idmap.Mapping{ContainerID: e.ContainerID, HostID: e.HostID, Size: e.Size}
	}
	return out
}
