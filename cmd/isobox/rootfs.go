package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/rootfs"
	"github.com/isobox/isobox/userns"
)

// RootfsCmd groups the rootfs subcommands.
type RootfsCmd struct {
	Busybox RootfsBusyboxCmd `cmd:"" help:"Build a minimal root filesystem from a static BusyBox."`
	Import  RootfsImportCmd  `cmd:"" help:"Unpack a root filesystem archive (docker export, an Alpine minirootfs...) with its owners mapped to your subordinate ids."`
	Rm      RootfsRmCmd      `cmd:"" help:"Remove a root filesystem made or imported by isobox, files of subordinate ids included."`
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

// RootfsImportCmd is `isobox rootfs import ARCHIVE DIR`.
type RootfsImportCmd struct {
	Archive string `arg:"" placeholder:"ARCHIVE" help:"A tar archive, plain or compressed with gzip, bzip2, xz or zstd; - for standard input."`
	Dir     string `arg:"" placeholder:"DIR" help:"Directory to unpack into: created if missing, else it must be empty."`
}

func (c *RootfsImportCmd) Run(log *slog.Logger) error {
	in := os.Stdin
	if c.Archive != "-" {
		f, err := os.Open(c.Archive)
		if err != nil {
			return fmt.Errorf("rootfs import: %w", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err != nil || st.IsDir() {
			return fmt.Errorf("rootfs import: %s: not an archive file", c.Archive)
		}
		in = f
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return err
	}
	created := false
	switch entries, err := os.ReadDir(dir); {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("rootfs import: %w", err)
		}
		created = true
	case err != nil:
		return fmt.Errorf("rootfs import: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("rootfs import: %s exists and is not empty", dir)
	}
	err = userns.RunMappedTask(userns.MappedTaskOptions{Task: "import", Args: []string{dir}, Stdin: in, Map: idmap.ModeAuto, Logger: log})
	if err != nil {
		if created {
			os.Remove(dir) // emptied by the task
		}
		return fmt.Errorf("rootfs import: %w", err)
	}
	return nil
}

// RootfsRmCmd is `isobox rootfs rm DIR...`.
type RootfsRmCmd struct {
	Force bool     `help:"Remove a directory even without isobox's mark (made before isobox marked its rootfs, or on a filesystem without user xattrs)."`
	Dirs  []string `arg:"" placeholder:"DIR" help:"Root filesystems to remove."`
}

func (c *RootfsRmCmd) Run(log *slog.Logger) error {
	var dirs []string
	for _, d := range c.Dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(abs, &st); err != nil {
			return fmt.Errorf("rootfs rm: %w", &os.PathError{Op: "lstat", Path: abs, Err: err})
		}
		switch {
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return fmt.Errorf("rootfs rm: %s is not a directory", abs)
		case abs == "/" || abs == os.Getenv("HOME"):
			return fmt.Errorf("rootfs rm: refusing to remove %s", abs)
		case !c.Force && !rootfs.Marked(abs):
			return fmt.Errorf("rootfs rm: %s does not look like a root filesystem made or imported by isobox (use --force to remove it anyway)", abs)
		}
		dirs = append(dirs, abs)
	}
	if err := userns.RunMappedTask(userns.MappedTaskOptions{Task: "remove", Args: dirs, Map: idmap.ModeAuto, Logger: log}); err != nil {
		return fmt.Errorf("rootfs rm: %w", err)
	}
	return nil
}
