//go:debug containermaxprocs=0

// Command isobox-image is isobox's helper for the commands that fetch
// images: pull, load, login and logout. isobox runs it for those commands
// (`isobox pull ...` is `isobox-image pull ...`), and for `isobox run IMAGE`
// when the image is to be pulled. It is kept out of the isobox binary so
// that isobox's own processes, each container's start included, do not pay
// for the package initialization of go-containerregistry, its HTTP and
// digest machinery, the layer decoders and the progress bars (about 2 ms a
// start, measured). It unpacks layers in its own mapped stage: userns's
// stages, with the "unpack" task this binary registers.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/alecthomas/kong"
	"golang.org/x/term"

	"github.com/isobox/isobox/cmd/internal/cmdline"
	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/rootfs/image"
	"github.com/isobox/isobox/rootfs/image/fetch"
	"github.com/isobox/isobox/rootfs/image/layer"
	"github.com/isobox/isobox/rootfs/image/refs"
	"github.com/isobox/isobox/userns"
)

// version is set by the Makefile with -ldflags.
var version = "dev"

type cli struct {
	LogLevel string           `name:"log-level" enum:"debug,info,warn,error" default:"warn" help:"Log level."`
	Version  kong.VersionFlag `help:"Print the version and exit."`

	Pull   PullCmd   `cmd:"" help:"Pull an image from a registry into your image store."`
	Load   LoadCmd   `cmd:"" help:"Load images from a docker save archive or an OCI layout."`
	Login  LoginCmd  `cmd:"" help:"Log in to a registry (credentials in podman's auth.json)."`
	Logout LogoutCmd `cmd:"" help:"Remove a registry's credentials."`
	Names  NamesCmd  `cmd:"" hidden:"" help:"Print the names a reference may mean in the store, one a line (isobox's own look-ups)."`
}

// NamesCmd is what isobox asks when a reference is none of the stored
// images' names, aliases or IDs: the names it may mean, through
// registries.conf, with no registry asked.
type NamesCmd struct {
	Ref string `arg:""`
}

func (c *NamesCmd) Run() error {
	regs, err := refs.LoadRegistries()
	if err != nil {
		return fmt.Errorf("registries.conf: %w", err)
	}
	cands, err := regs.Resolve(c.Ref, true)
	if err != nil {
		return err
	}
	for _, cand := range cands {
		fmt.Println(cand.Name)
	}
	return nil
}

func main() {
	userns.RegisterMappedTask("unpack", unpackTask)
	userns.MaybeRunStage()
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if err := userns.CloseExecFrom3(); err != nil {
		fmt.Fprintf(os.Stderr, "isobox: mark descriptors close-on-exec: %v\n", err)
		return userns.ExitSetup
	}
	if os.Getuid() != os.Geteuid() || os.Getgid() != os.Getegid() {
		fmt.Fprintln(os.Stderr, "isobox: refusing to run setuid or setgid: isobox needs no privilege; remove the bit from its binary")
		return userns.ExitSetup
	}
	var c cli
	parser, err := kong.New(&c, kong.Name("isobox"), kong.Vars{"version": version},
		kong.Description("The image commands of isobox (run through isobox)."),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}))
	if err != nil {
		fmt.Fprintf(os.Stderr, "isobox: %v\n", err)
		return userns.ExitSetup
	}
	bind := func() []any { return []any{userns.NewLogger(os.Stderr, c.LogLevel)} }
	return cmdline.Run(parser, args, os.Stderr, bind, hint, userns.ExitSetup)
}

// hint names the fix for a registry that wants credentials.
func hint(err error) string {
	var auth *fetch.AuthError
	if errors.As(err, &auth) {
		return "isobox login " + auth.Registry + " (credentials go to podman's auth.json; Docker's ~/.docker/config.json is read too)"
	}
	return ""
}

// images is what the commands open.
type images struct {
	store *image.Store
	regs  *refs.Registries
	log   *slog.Logger
}

func openImages(log *slog.Logger) (*images, error) {
	s, err := image.Open()
	if err != nil {
		return nil, err
	}
	regs, err := refs.LoadRegistries()
	if err != nil {
		return nil, fmt.Errorf("registries.conf: %w", err)
	}
	return &images{store: s, regs: regs, log: log}, nil
}

// unpackRequest is the unpack task's argument.
type unpackRequest struct {
	Store string      `json:"store"`
	Jobs  []layer.Job `json:"jobs"`
	Quiet bool        `json:"quiet,omitempty"`
}

// unpackLayers runs layer.Unpack as root of a user namespace with run's
// mapping (this binary's mapped stage).
func unpackLayers(req unpackRequest, log *slog.Logger) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return userns.RunMappedTask(userns.MappedTaskOptions{Task: "unpack", Args: []string{string(b)}, Map: idmap.ModeAuto, Logger: log})
}

// unpackTask is the "unpack" task, in the mapped stage.
func unpackTask(args []string) error {
	var req unpackRequest
	if len(args) != 1 || json.Unmarshal([]byte(args[0]), &req) != nil {
		return errors.New("protocol: unpack takes one request")
	}
	s, err := image.OpenAt(req.Store)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	st, err := layer.Unpack(s, req.Jobs, func(j layer.Job) {
		if !req.Quiet {
			mu.Lock()
			fmt.Fprintf(os.Stderr, "Unpacked layer %.12s\n", image.Hex(j.DiffID))
			mu.Unlock()
		}
	})
	if err != nil {
		return err
	}
	if st.Devices > 0 {
		fmt.Fprintf(os.Stderr, "isobox: warning: %d device nodes left out of the image's layers (a user namespace cannot create them; the container gets /dev from isobox)\n", st.Devices)
	}
	if st.Unmapped > 0 {
		fmt.Fprintf(os.Stderr, "isobox: warning: %d entries owned by ids outside the mapping, left to you\n", st.Unmapped)
	}
	return nil
}

// PullCmd is `isobox pull`.
type PullCmd struct {
	Platform  string `placeholder:"OS/ARCH[/VARIANT]" help:"Platform to pull from an image index (default this host's)."`
	TLSVerify bool   `name:"tls-verify" default:"true" negatable:"" help:"Require HTTPS and a valid certificate (registries on localhost and 127.0.0.1 use HTTP anyway)."`
	Quiet     bool   `short:"q" help:"Print only the image ID."`
	Policy    string `enum:"always,missing,never" default:"always" help:"always ask the registry (default); missing: only when no image of that name is stored; never."`
	Ref       string `arg:"" placeholder:"REF" help:"Image reference: [REGISTRY/]REPOSITORY[:TAG|@DIGEST]; a short name is resolved through registries.conf (default docker.io)."`
}

func (p *PullCmd) Run(log *slog.Logger) error {
	im, err := openImages(log)
	if err != nil {
		return err
	}
	ctx, cancel := interruptible()
	defer cancel()
	o := im.options(p.TLSVerify, p.Platform, p.Quiet)
	o.Policy = p.Policy
	img, err := fetch.Pull(ctx, p.Ref, o)
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	fmt.Println(image.Hex(img.ID))
	return nil
}

// LoadCmd is `isobox load`.
type LoadCmd struct {
	Input string `short:"i" name:"input" placeholder:"FILE|DIR" help:"Archive or OCI layout to load (default the argument, or standard input)."`
	Quiet bool   `short:"q" help:"Print only the image IDs."`
	Path  string `arg:"" optional:"" placeholder:"FILE|DIR" help:"A docker save archive (plain or compressed), an OCI layout directory, or a tar of one."`
}

func (l *LoadCmd) Run(log *slog.Logger) error {
	src := l.Input
	if src == "" {
		src = l.Path
	}
	im, err := openImages(log)
	if err != nil {
		return err
	}
	if src == "" || src == "-" {
		if term.IsTerminal(int(os.Stdin.Fd())) {
			return errors.New("load: give an archive (-i FILE), or pipe one in")
		}
		f, err := im.store.TempFile("stdin")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		_, err = io.Copy(f, bufio.NewReaderSize(os.Stdin, 1<<20))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("load: standard input: %w", err)
		}
		src = f.Name()
	}
	ctx, cancel := interruptible()
	defer cancel()
	ids, err := fetch.Load(ctx, src, im.options(true, "", l.Quiet))
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	for _, id := range ids {
		if l.Quiet {
			fmt.Println(image.Hex(id))
			continue
		}
		img, err := im.store.Find(id)
		if err == nil && len(img.Names) > 0 {
			fmt.Println("Loaded image: " + strings.Join(img.Names, ", "))
		} else {
			fmt.Println("Loaded image: " + image.Hex(id))
		}
	}
	return nil
}

// LoginCmd is `isobox login`.
type LoginCmd struct {
	TLSVerify     bool   `name:"tls-verify" default:"true" negatable:"" help:"Require HTTPS and a valid certificate."`
	Username      string `short:"u" placeholder:"USER" help:"User name (asked for on a terminal when missing)."`
	Password      string `short:"p" placeholder:"PASSWORD" help:"Password (visible to other users in ps: prefer --password-stdin)."`
	PasswordStdin bool   `name:"password-stdin" help:"Read the password from standard input."`
	Registry      string `arg:"" placeholder:"REGISTRY" help:"Registry host[:port]."`
}

func (c *LoginCmd) Run(log *slog.Logger) error {
	user, pass := c.Username, c.Password
	in := bufio.NewReader(os.Stdin)
	tty := term.IsTerminal(int(os.Stdin.Fd()))
	if user == "" {
		if !tty {
			return errors.New("login: --username is needed when standard input is not a terminal")
		}
		fmt.Fprint(os.Stderr, "Username: ")
		line, err := in.ReadString('\n')
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		user = strings.TrimSpace(line)
	}
	switch {
	case c.PasswordStdin:
		b, err := io.ReadAll(in)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	case pass == "" && tty:
		fmt.Fprint(os.Stderr, "Password: ")
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		pass = string(b)
	case pass == "":
		return errors.New("login: give the password with --password-stdin")
	}
	im := &images{regs: &refs.Registries{}, log: log}
	ctx, cancel := interruptible()
	defer cancel()
	if _, err := fetch.Login(ctx, c.Registry, user, pass, im.options(c.TLSVerify, "", true)); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	fmt.Println("Login Succeeded!")
	return nil
}

// LogoutCmd is `isobox logout`.
type LogoutCmd struct {
	Registry string `arg:"" placeholder:"REGISTRY" help:"Registry host[:port]."`
}

func (c *LogoutCmd) Run() error {
	found, err := fetch.Logout(c.Registry)
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if !found {
		return fmt.Errorf("logout: not logged in to %s", c.Registry)
	}
	fmt.Println("Removed login credentials for " + c.Registry)
	return nil
}

// options are fetch's options for this store.
func (im *images) options(tlsVerify bool, platform string, quiet bool) fetch.Options {
	return fetch.Options{
		Store: im.store, Registries: im.regs, Platform: platform, TLSVerify: tlsVerify,
		Progress: os.Stderr, Quiet: quiet,
		Unpack: func(jobs []layer.Job) error {
			return unpackLayers(unpackRequest{Store: im.store.Root(), Jobs: jobs, Quiet: quiet}, im.log)
		},
	}
}

// interruptible is a context cancelled by SIGINT or SIGTERM, so that an
// interrupted pull removes what it had fetched.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
