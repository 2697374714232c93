package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// The commands that fetch images (pull, load, login, logout) are
// isobox-image's, a helper installed next to isobox: go-containerregistry
// and its company would cost every isobox process, each container's start
// included, their package initialization (cmd/isobox-image says more).
// Each command here hands its arguments over unparsed; the helper parses,
// reports and exits as isobox does.

// errImageHelperMissing: isobox-image is neither next to isobox nor on PATH.
var errImageHelperMissing = errors.New("isobox-image, the helper that fetches images, is not installed")

// imageHelper finds isobox-image: next to the running isobox first, as
// `make build` puts it, then on PATH.
func imageHelper() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "isobox-image")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("isobox-image"); err == nil {
		return p, nil
	}
	return "", errImageHelperMissing
}

// execImageHelper replaces this process with isobox-image COMMAND ARGS.
func execImageHelper(g *Globals, command string, args []string) error {
	p, err := imageHelper()
	if err != nil {
		return err
	}
	argv := append([]string{"isobox-image", "--log-level", g.LogLevel, command}, args...)
	return fmt.Errorf("exec %s: %w", p, syscall.Exec(p, argv, os.Environ()))
}

// pullWithHelper runs `isobox-image pull` for `run IMAGE`: its progress on
// stderr, its one line of output (the ID) returned.
func pullWithHelper(g *Globals, flags []string, ref string) (string, error) {
	return helperOutput(g, "pull", append(flags, "--", ref)...)
}

// helperOutput runs isobox-image COMMAND ARGS and returns its output; its
// messages go to stderr, and its failure is its exit status alone.
func helperOutput(g *Globals, command string, args ...string) (string, error) {
	p, err := imageHelper()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(p, append([]string{"--log-level", g.LogLevel, command}, args...)...)
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, &out, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			// The helper said what went wrong, on stderr.
			return "", commandExit(ee.ExitCode())
		}
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}

// namesWithHelper asks isobox-image which names ref may mean.
func namesWithHelper(g *Globals, ref string) ([]string, error) {
	out, err := helperOutput(g, "names", ref)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// PullCmd is `isobox pull`, LoadCmd `isobox load`, LoginCmd `isobox
// login`, LogoutCmd `isobox logout`: isobox-image's.
type (
	PullCmd   struct{ helperArgs }
	LoadCmd   struct{ helperArgs }
	LoginCmd  struct{ helperArgs }
	LogoutCmd struct{ helperArgs }
)

type helperArgs struct {
	Args []string `arg:"" optional:"" help:"See isobox COMMAND --help."`
}

func (c *PullCmd) Run(g *Globals) error   { return execImageHelper(g, "pull", c.Args) }
func (c *LoadCmd) Run(g *Globals) error   { return execImageHelper(g, "load", c.Args) }
func (c *LoginCmd) Run(g *Globals) error  { return execImageHelper(g, "login", c.Args) }
func (c *LogoutCmd) Run(g *Globals) error { return execImageHelper(g, "logout", c.Args) }
