package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/isobox/isobox/cmd/internal/cmdline"
	"github.com/isobox/isobox/userns"
	"github.com/isobox/isobox/userns/cgroups"
	"github.com/isobox/isobox/userns/state"
)

// The commands on the caller's containers. Each looks its containers up in
// the caller's state directory; there is no daemon to ask.

func lookup(name string) (*state.Dir, state.Info, error) {
	dir, err := state.Open()
	if err != nil {
		return nil, state.Info{}, err
	}
	info, err := dir.Get(name)
	return dir, info, err
}

// forEach runs f on every name, going on after a failure as podman does;
// all failures but the last are printed here, the last is returned.
func forEach(names []string, f func(name string) error) error {
	var last error
	for _, n := range names {
		if err := f(n); err != nil {
			if last != nil {
				fmt.Fprintf(os.Stderr, "isobox: %s\n", cmdline.OneLine(last.Error()))
			}
			last = err
		}
	}
	return last
}

// PsCmd is `isobox ps`.
type PsCmd struct {
	All     bool     `short:"a" help:"Also list exited containers, with their exit status."`
	JSON    bool     `name:"json" help:"Print a JSON array, one object per container."`
	Quiet   bool     `short:"q" help:"Print only the names."`
	Filter  []string `short:"f" placeholder:"KEY=VALUE" help:"Only containers with name=GLOB, status=created|running|exited, network=MODE or image=REF (repeatable; all must hold)."`
	Format  string   `placeholder:"TEMPLATE" help:"A Go template over the fields of --json ({{.Name}} {{.Status}}), or json, or table."`
	Last    int      `short:"n" placeholder:"N" help:"Only the N most recently created (implies -a)."`
	NoTrunc bool     `name:"no-trunc" help:"Do not shorten the command and the image in the table."`
}

type psEntry struct {
	Name     string     `json:"name"`
	PID      int        `json:"pid"`
	Status   string     `json:"status"`
	Started  *time.Time `json:"started,omitempty"`
	Uptime   float64    `json:"uptimeSeconds,omitempty"`
	ExitCode *int       `json:"exitCode,omitempty"`
	Command  []string   `json:"command"`
	Ports    []string   `json:"ports"`
	Net      string     `json:"net"`
	Rootfs   string     `json:"rootfs"`
	Image    string     `json:"image,omitempty"`
	ImageID  string     `json:"imageId,omitempty"`
	Created  time.Time  `json:"created"`
	// Limits print as podman's flags in a template ({{.Limits}}).
	Limits    cgroups.Limits `json:"limits,omitzero"`
	OOMKilled bool           `json:"oomKilled,omitempty"`
}

// listAll reads every record of the caller's.
func listAll() ([]state.Info, error) {
	dir, err := state.Open()
	if err != nil {
		return nil, err
	}
	return dir.List()
}

func (p *PsCmd) Run() error {
	filters, err := parseFilters(p.Filter)
	if err != nil {
		return err
	}
	tmpl, err := parseFormat(p.Format)
	if err != nil {
		return err
	}
	list, err := listAll()
	if err != nil {
		return err
	}
	if p.Last > 0 {
		p.All = true
		sort.SliceStable(list, func(a, b int) bool { return list[a].Created.After(list[b].Created) })
		if len(list) > p.Last {
			list = list[:p.Last]
		}
	}
	now := time.Now()
	entries := []psEntry{}
	for _, i := range list {
		if !i.Running && !p.All && !filters.asksExited() {
			continue
		}
		e := psEntry{Name: i.Name, Status: i.Status(), ExitCode: i.ExitCode, Command: i.Command,
			Ports: i.Ports, Net: i.Net, Rootfs: i.Rootfs, Image: i.Image, ImageID: i.ImageID, Created: i.Created,
			OOMKilled: i.OOMKilled}
		if i.Config != nil && i.Config.Limits != nil {
			e.Limits = *i.Config.Limits
		}
		if e.Ports == nil {
			e.Ports = []string{}
		}
		if i.Running {
			e.PID = i.PID
		}
		if !i.Started.IsZero() {
			t := i.Started
			e.Started = &t
			if i.Running {
				e.Uptime = now.Sub(t).Seconds()
			}
		}
		if i.Err != nil {
			e.Status = "unknown"
		}
		if filters.match(e) {
			entries = append(entries, e)
		}
	}
	switch {
	case p.Quiet:
		for _, e := range entries {
			fmt.Println(e.Name)
		}
		return nil
	case p.JSON || p.Format == "json":
		return printJSON(entries)
	case tmpl != nil:
		for _, e := range entries {
			if err := execTemplate(tmpl, e); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tIMAGE\tPID\tSTATUS\tNET\tPORTS\tCOMMAND")
	for _, e := range entries {
		pid := "-"
		if e.PID != 0 {
			pid = strconv.Itoa(e.PID)
		}
		ports := strings.Join(e.Ports, ",")
		if ports == "" {
			ports = "-"
		}
		img := e.Image
		if img == "" {
			img = e.Rootfs
		}
		command := strings.Join(e.Command, " ")
		if !p.NoTrunc {
			img, command = truncate(img, 40), truncate(command, 40)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, img, pid, describe(e, now), orDash(e.Net), ports, command)
	}
	return w.Flush()
}

// truncate shortens s to n runes, the last one an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// describe is podman's STATUS column: "Up 5 seconds", "Exited (0) 3
// minutes ago", "Exited (unknown)" for a runner that was killed.
func describe(e psEntry, now time.Time) string {
	switch e.Status {
	case "running":
		return "Up " + human(time.Duration(e.Uptime*float64(time.Second)))
	case "created":
		return "Created"
	case "unknown":
		return "Unknown (unreadable record)"
	}
	code := "unknown"
	if e.ExitCode != nil {
		code = strconv.Itoa(*e.ExitCode)
	}
	return "Exited (" + code + ")"
}

func human(d time.Duration) string {
	switch {
	case d < time.Minute:
		return plural(int(d.Seconds()), "second")
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute")
	case d < 48*time.Hour:
		return plural(int(d.Hours()), "hour")
	}
	return plural(int(d.Hours()/24), "day")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// NsCmd is `isobox ns`.
type NsCmd struct {
	JSON bool   `name:"json" help:"Print a JSON array, one object per namespace."`
	Name string `predictor:"containers" arg:"" optional:"" placeholder:"NAME" help:"Container (default: every running container of yours)."`
}

type nsEntry struct {
	Container string `json:"container"`
	userns.Namespace
}

func (n *NsCmd) Run() error {
	var infos []state.Info
	if n.Name != "" {
		_, info, err := lookup(n.Name)
		if err != nil {
			return err
		}
		if info.Status() != "running" {
			return fmt.Errorf("%q: %w", n.Name, state.ErrNotRunning)
		}
		infos = append(infos, info)
	} else {
		list, err := listAll()
		if err != nil {
			return err
		}
		for _, i := range list {
			if i.Status() == "running" {
				infos = append(infos, i)
			}
		}
	}
	entries := []nsEntry{}
	for _, i := range infos {
		nss, err := userns.Namespaces(i.PID)
		if err != nil {
			if n.Name == "" {
				continue // it exited meanwhile
			}
			return err
		}
		for _, ns := range nss {
			entries = append(entries, nsEntry{Container: i.Name, Namespace: ns})
		}
	}
	if n.JSON {
		return printJSON(entries)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONTAINER\tNS\tTYPE\tNPROCS\tPID\tCOMMAND")
	for _, e := range entries {
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%s\n", e.Container, e.Inode, e.Type, e.NProcs, e.PID, e.Command)
	}
	return w.Flush()
}

// ExecCmd is `isobox exec`.
type ExecCmd struct {
	TTY         bool     `short:"t" name:"tty" help:"Allocate a terminal from the container's own devpts."`
	Interactive bool     `short:"i" help:"Keep stdin connected (always on; accepted for compatibility)."`
	Env         []string `short:"e" sep:"none" placeholder:"KEY[=VALUE]" help:"Set a variable over the container's; KEY alone takes the caller's value. Repeatable."`
	Workdir     string   `short:"w" placeholder:"DIR" help:"Working directory (default the container's)."`
	User        string   `short:"u" placeholder:"UID[:GID]" help:"User to run as, by number or by name from the container's /etc/passwd (default the container's)."`
	Explain     bool     `help:"Start nothing: print what isobox would do, as the commands a user would type (nsenter...)."`
	JSON        bool     `name:"json" help:"With --explain: the plan as JSON."`

	Name    string   `predictor:"containers" arg:"" placeholder:"NAME" help:"Running container."`
	Command []string `arg:"" passthrough:"" placeholder:"COMMAND [ARG...]" help:"Command to run."`
}

func (e *ExecCmd) Run() error {
	if e.Workdir != "" && !filepath.IsAbs(e.Workdir) {
		return fmt.Errorf("--workdir %q: must be an absolute path", e.Workdir)
	}
	if e.User != "" {
		if _, err := userns.ParseUserSpec(e.User); err != nil {
			return err
		}
	}
	env, err := userns.ParseEnvArgs(e.Env, os.LookupEnv)
	if err != nil {
		return err
	}
	_, info, err := lookup(e.Name)
	if err != nil {
		return err
	}
	if info.Status() != "running" {
		return fmt.Errorf("%q: %w", e.Name, state.ErrNotRunning)
	}
	if info.NoInit {
		return fmt.Errorf("%q was started with --no-init: exec asks the container's isobox init to start the process, and its PID 1 is the command itself (start it without --no-init)", e.Name)
	}
	req := userns.ExecRequest{Args: e.Command, Env: env, Workdir: e.Workdir, User: e.User, TTY: e.TTY}
	if e.Explain {
		wd := ""
		if info.Config != nil {
			wd = info.Config.Workdir
		}
		return printPlan(userns.ExplainExec(info.PID, filepath.Join(info.Dir, state.SocketFile), wd, req), e.JSON, "isobox exec")
	}
	code, err := userns.Exec(info.Dir, req)
	if err != nil {
		return err
	}
	return exitWith(code)
}

// StopCmd is `isobox stop`.
type StopCmd struct {
	Time  int      `short:"t" name:"time" default:"10" placeholder:"SECONDS" help:"Seconds to wait after SIGTERM before SIGKILL."`
	Names []string `predictor:"containers" arg:"" placeholder:"NAME" help:"Running containers."`
}

func (s *StopCmd) Run() error {
	if s.Time < 0 {
		return fmt.Errorf("--time %d: must not be negative", s.Time)
	}
	return forEach(s.Names, func(name string) error {
		_, info, err := lookup(name)
		if err != nil {
			return err
		}
		if err := userns.Stop(info, time.Duration(s.Time)*time.Second); err != nil {
			return err
		}
		fmt.Println(name)
		return nil
	})
}

// KillCmd is `isobox kill`.
type KillCmd struct {
	Signal string   `predictor:"signals" short:"s" default:"KILL" placeholder:"SIGNAL" help:"Signal to send to the container's PID 1, by name or number."`
	Names  []string `predictor:"containers" arg:"" placeholder:"NAME" help:"Running containers."`
}

func (k *KillCmd) Run() error {
	sig, err := userns.ParseSignal(k.Signal)
	if err != nil {
		return err
	}
	return forEach(k.Names, func(name string) error {
		_, info, err := lookup(name)
		if err != nil {
			return err
		}
		if err := userns.Kill(info, sig); err != nil {
			return err
		}
		fmt.Println(name)
		return nil
	})
}

// RmCmd is `isobox rm`.
type RmCmd struct {
	Force bool     `short:"f" help:"Kill a running container (SIGKILL) before removing it."`
	All   bool     `short:"a" help:"Remove every container (running ones only with -f)."`
	Names []string `predictor:"containers" arg:"" optional:"" placeholder:"NAME" help:"Containers."`
}

func (r *RmCmd) Validate() error {
	switch {
	case r.All && len(r.Names) > 0:
		return errors.New("rm: -a takes no names")
	case !r.All && len(r.Names) == 0:
		return errors.New("rm: name at least one container, or -a")
	}
	return nil
}

func (r *RmCmd) Run() error {
	names := r.Names
	if r.All {
		list, err := listAll()
		if err != nil {
			return err
		}
		for _, i := range list {
			names = append(names, i.Name)
		}
	}
	return forEach(names, func(name string) error {
		dir, info, err := lookup(name)
		if err != nil {
			return err
		}
		if err := removeContainer(dir, info, r.Force); err != nil {
			return err
		}
		fmt.Println(name)
		return nil
	})
}

// removeContainer removes a record; force kills a running container first.
func removeContainer(dir *state.Dir, info state.Info, force bool) error {
	if info.Running {
		if !force {
			return fmt.Errorf("%q: %w: stop it first, or use rm -f", info.Name, state.ErrRunning)
		}
		// A SIGKILL waits until the runner is gone; a container whose
		// PID 1 is already gone has its runner still to wait for.
		err := userns.Kill(info, syscall.SIGKILL)
		if errors.Is(err, state.ErrNotRunning) {
			err = userns.WaitRunner(info)
		}
		if err != nil {
			return err
		}
	}
	if err := dir.Delete(info.Name); err != nil && !errors.Is(err, state.ErrNoSuch) {
		return err
	}
	if info.Cgroup != "" {
		cgroups.Sweep() // its runner, killed, could not remove it
	}
	return nil
}

// LogsCmd is `isobox logs`.
type LogsCmd struct {
	Follow bool   `short:"f" help:"Keep printing what the container writes until it exits."`
	Name   string `predictor:"containers" arg:"" placeholder:"NAME" help:"Container started with -d."`
}

func (l *LogsCmd) Run() error {
	_, info, err := lookup(l.Name)
	if err != nil {
		return err
	}
	if !info.Detached {
		return fmt.Errorf("%q was not started with -d: its output went to the terminal that ran it, and no log was kept", l.Name)
	}
	return userns.CopyLog(os.Stdout, info, l.Follow)
}

// printJSON prints v indented, as `--json` does everywhere.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
