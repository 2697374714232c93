package main

import (
	"log/slog"
	"os"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/userns"
)

// UnshareCmd is `isobox unshare`.
type UnshareCmd struct {
	Map     string   `enum:"auto,full,single" default:"auto" help:"Id mapping, as for run."`
	Command []string `arg:"" optional:"" passthrough:"" placeholder:"COMMAND [ARG...]" help:"Host command to run (default $SHELL, else /bin/sh)."`
}

func (u *UnshareCmd) Run(log *slog.Logger) error {
	args := u.Command
	if len(args) == 0 {
		sh := os.Getenv("SHELL")
		if sh == "" {
			sh = "/bin/sh"
		}
		args = []string{sh}
	}
	code, err := userns.Unshare(userns.UnshareOptions{Args: args, Map: idmap.Mode(u.Map), Logger: log})
	if err != nil {
		return err
	}
	return exitWith(code)
}
