package main

import (
	"fmt"

	"github.com/isobox/isobox/rootfs"
)

// RootfsCmd groups the rootfs subcommands.
type RootfsCmd struct {
	Busybox RootfsBusyboxCmd `cmd:"" help:"Build a minimal root filesystem from a static BusyBox."`
}

// RootfsBusyboxCmd is `isobox rootfs busybox DIR`.
type RootfsBusyboxCmd struct {
	Busybox string `name:"busybox" type:"existingfile" placeholder:"PATH" help:"BusyBox binary to copy (default: a static one found on the host)."`
	Force   bool   `help:"Build into a directory that is not empty; entries already there are left untouched."`
	Dir     string `arg:"" placeholder:"DIR" help:"Directory to build in (created if missing)."`
}

func (c *RootfsBusyboxCmd) Run() error {
	if err := rootfs.Build(rootfs.BuildOptions{Dir: c.Dir, BusyBox: c.Busybox, Force: c.Force}); err != nil {
		return fmt.Errorf("rootfs busybox: %w", err)
	}
	return nil
}
