// Command isobox runs containers without root: a user namespace first, the
// caller's subordinate ids mapped by newuidmap/newgidmap, then every other
// namespace nested inside it.
//
// The runtime's cgroup-aware GOMAXPROCS keeps host cgroup files open for
// the life of every process, init included, where the container would see
// them in /proc/1/fd. A runner that mostly waits does not need it.
//
//go:debug containermaxprocs=0

// main is thin: it dispatches the binary's internal stages (userns owns
// them), parses flags with kong, and turns errors into one line on stderr and
// an exit status.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/alecthomas/kong"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/isobox/isobox/cmd/internal/cmdline"
	"github.com/isobox/isobox/userns"
)

// version is set by the Makefile with -ldflags.
var version = "dev"

// Globals are the flags every command takes.
type Globals struct {
	LogLevel string `name:"log-level" enum:"debug,info,warn,error" default:"warn" help:"Log level: debug shows every stage of the launch."`
}

type cli struct {
	Globals
	Version kong.VersionFlag `help:"Print the version and exit."`

	Run        RunCmd        `cmd:"" help:"Run a command in a new rootless container, from a directory or an image."`
	Ps         PsCmd         `cmd:"" help:"List your containers."`
	Stats      StatsCmd      `cmd:"" help:"Show containers' CPU, memory, PIDs, network and block I/O (a delegated cgroup v2)."`
	Exec       ExecCmd       `cmd:"" help:"Run a command in a running container."`
	Stop       StopCmd       `cmd:"" help:"Stop containers: SIGTERM, then SIGKILL after a timeout."`
	Kill       KillCmd       `cmd:"" help:"Send a signal to containers (SIGKILL by default; then waits until they are gone)."`
	Rm         RmCmd         `cmd:"" help:"Remove containers' records (-f kills running ones first)."`
	Logs       LogsCmd       `cmd:"" help:"Print a detached container's output."`
	Ns         NsCmd         `cmd:"" help:"List a container's namespaces, as lsns does."`
	Inspect    InspectCmd    `cmd:"" help:"Print containers' configuration and state as JSON."`
	Wait       WaitCmd       `cmd:"" help:"Wait for containers to exit and print their exit statuses."`
	Port       PortCmd       `cmd:"" help:"List a container's published ports."`
	Container  ContainerCmd  `cmd:"" help:"Manage containers (ls, inspect, prune, rm, wait, port)."`
	Pull       PullCmd       `cmd:"" passthrough:"" help:"Pull an image from a registry into your image store."`
	Load       LoadCmd       `cmd:"" passthrough:"" help:"Load images from a docker save archive or an OCI layout."`
	Images     ImagesCmd     `cmd:"" help:"List stored images."`
	Image      ImageCmd      `cmd:"" help:"Manage stored images (ls, inspect, rm, prune, pull, load)."`
	Rmi        RmiCmd        `cmd:"" help:"Remove images."`
	Login      LoginCmd      `cmd:"" passthrough:"" help:"Log in to a registry (credentials in podman's auth.json)."`
	Logout     LogoutCmd     `cmd:"" passthrough:"" help:"Remove a registry's credentials."`
	Rootfs     RootfsCmd     `cmd:"" help:"Build root filesystems."`
	Check      CheckCmd      `cmd:"" help:"Report what rootless containers need on this machine, and how to fix what is missing."`
	Unshare    UnshareCmd    `cmd:"" help:"Run a host command in a user namespace with the container's id mapping (like podman unshare)."`
	Oci        OciCmd        `cmd:"" help:"runc's command line over OCI bundles (create a link named isobox-oci for callers that take a runtime path)."`
	Completion CompletionCmd `cmd:"" help:"Print a shell completion script: source <(isobox completion bash)."`
}

func main() {
	userns.MaybeRunStage()
	args := os.Args[1:]
	// Callers that take a runtime's path (Slurm, containerd, podman
	// --runtime) are given a link named isobox-oci.
	if filepath.Base(os.Args[0]) == "isobox-oci" {
		args = append([]string{"oci"}, args...)
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	// Descriptors the caller left open without close-on-exec must not reach
	// the container through any process this one starts.
	if err := userns.CloseExecFrom3(); err != nil {
		fmt.Fprintf(stderr, "isobox: mark descriptors close-on-exec: %v\n", err)
		return userns.ExitSetup
	}
	if os.Getuid() != os.Geteuid() || os.Getgid() != os.Getegid() {
		fmt.Fprintln(stderr, "isobox: refusing to run setuid or setgid: isobox needs no privilege; remove the bit from its binary")
		return userns.ExitSetup
	}
	// kong builds its model by reflection over every flag's tag and help,
	// about 2.5 ms for all commands on a cold start. `isobox run`, the
	// command whose start time matters, is parsed with its own model only.
	var c cli
	var model any = &c
	globals, ociGlobals := &c.Globals, &c.Oci.ociFlags
	switch {
	case completing() || len(args) == 0:
	case args[0] == "run":
		r := &runOnly{}
		model, globals = r, &r.Globals
	case args[0] == "oci":
		// What Slurm and containerd call for every container.
		model, globals, ociGlobals = ociModel(args)
	}
	parser, err := kong.New(model,
		kong.Name("isobox"),
		kong.Description("Rootless containers: user namespace first, no privilege needed."),
		kong.Writers(stdout, stderr),
		kong.Vars{"version": "isobox version " + version + "\nspec: " + specs.Version + "\ngo: " + runtime.Version()},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "isobox: %v\n", err)
		return userns.ExitSetup
	}
	if completing() {
		completeFor(parser)
	}
	bind := func() []any { return []any{globals, ociGlobals, userns.NewLogger(stderr, globals.LogLevel)} }
	parseFail := userns.ExitSetup
	if len(args) > 0 && args[0] == "oci" {
		parseFail = 1 // runc's status for a bad command line
	}
	return cmdline.Run(parser, args, stderr, bind, hintFor, parseFail)
}

// ociOnly is cli with `oci` alone (see run).
type ociOnly struct {
	Globals
	Version kong.VersionFlag `help:"Print the version and exit."`

	Oci OciCmd `cmd:"" help:"runc's command line over OCI bundles (create a link named isobox-oci for callers that take a runtime path)."`
}

// runOnly is cli with `run` alone (see run).
type runOnly struct {
	Globals
	Version kong.VersionFlag `help:"Print the version and exit."`

	Run RunCmd `cmd:"" help:"Run a command in a new rootless container, from a directory or an image."`
}

// commandExit carries the container command's own exit status: no message.
type commandExit int

func (e commandExit) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e commandExit) ExitCode() int { return int(e) }
func (e commandExit) Silent()       {}

func exitWith(code int) error {
	if code == 0 {
		return nil
	}
	return commandExit(code)
}
