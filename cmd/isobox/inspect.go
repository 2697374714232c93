package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/isobox/isobox/userns"
	"github.com/isobox/isobox/userns/state"
)

// InspectCmd is `isobox inspect`.
type InspectCmd struct {
	Format string   `short:"f" placeholder:"TEMPLATE" help:"Print each container through a Go template ({{.Name}} {{.State.Status}}...) instead of JSON."`
	Names  []string `predictor:"containers" arg:"" placeholder:"NAME" help:"Containers."`
}

// inspectEntry is one container as inspect prints it.
type inspectEntry struct {
	Name       string            `json:"name"`
	Created    time.Time         `json:"created"`
	Command    []string          `json:"command"`
	Rootfs     string            `json:"rootfs"`
	Image      string            `json:"image,omitempty"`
	ImageID    string            `json:"imageId,omitempty"`
	Net        string            `json:"network"`
	Ports      []string          `json:"ports"`
	Config     *state.Config     `json:"config,omitempty"`
	State      inspectState      `json:"state"`
	Namespaces map[string]uint64 `json:"namespaces,omitempty"`
	IDMaps     *idMaps           `json:"idMaps,omitempty"`
	Dir        string            `json:"stateDir"`
}

type inspectState struct {
	Status    string    `json:"status"`
	Running   bool      `json:"running"`
	Pid       int       `json:"pid"`
	RunnerPid int       `json:"runnerPid"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	EndedAt   time.Time `json:"finishedAt,omitzero"`
	ExitCode  *int      `json:"exitCode"`
	// OOMKilled: the kernel's OOM killer acted in the container's cgroup.
	OOMKilled bool   `json:"oomKilled"`
	Cgroup    string `json:"cgroup,omitempty"`
	NoInit    bool   `json:"noInit,omitempty"`
	Detached  bool   `json:"detached,omitempty"`
}

// idMaps are the user namespace's maps, as the kernel has them.
type idMaps struct {
	UID []string `json:"uidMap"`
	GID []string `json:"gidMap"`
}

func (c *InspectCmd) Run() error {
	tmpl, err := parseFormat(c.Format)
	if err != nil {
		return err
	}
	var out []inspectEntry
	err = forEach(c.Names, func(name string) error {
		_, info, err := lookup(name)
		if err != nil {
			return err
		}
		out = append(out, inspectOf(info))
		return nil
	})
	if len(out) > 0 {
		if tmpl != nil {
			for _, e := range out {
				if werr := execTemplate(tmpl, e); werr != nil {
					return werr
				}
			}
		} else if perr := printJSON(out); perr != nil {
			return perr
		}
	}
	return err
}

func inspectOf(i state.Info) inspectEntry {
	e := inspectEntry{
		Name: i.Name, Created: i.Created, Command: i.Command, Rootfs: i.Rootfs, Image: i.Image, ImageID: i.ImageID,
		Net: i.Net, Ports: orEmpty(i.Ports), Config: i.Config, Dir: i.Dir,
		State: inspectState{Status: i.Status(), Running: i.Running, RunnerPid: i.RunnerPID, StartedAt: i.Started,
			EndedAt: i.Finished, ExitCode: i.ExitCode, OOMKilled: i.OOMKilled, Cgroup: i.Cgroup, NoInit: i.NoInit, Detached: i.Detached},
	}
	if i.Err != nil {
		e.State.Status = "unknown"
	}
	if e.State.Status != "running" {
		return e
	}
	e.State.Pid = i.PID
	if nss, err := userns.Namespaces(i.PID); err == nil {
		e.Namespaces = map[string]uint64{}
		for _, ns := range nss {
			e.Namespaces[ns.Type] = ns.Inode
		}
	}
	uid, err1 := os.ReadFile(filepath.Join("/proc", fmt.Sprint(i.PID), "uid_map"))
	gid, err2 := os.ReadFile(filepath.Join("/proc", fmt.Sprint(i.PID), "gid_map"))
	if err1 == nil && err2 == nil {
		e.IDMaps = &idMaps{UID: mapLines(uid), GID: mapLines(gid)}
	}
	return e
}

// mapLines are an id map file's lines, "INSIDE OUTSIDE COUNT".
func mapLines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			out = append(out, strings.Join(f, " "))
		}
	}
	return out
}

// WaitCmd is `isobox wait`.
type WaitCmd struct {
	Names []string `predictor:"containers" arg:"" placeholder:"NAME" help:"Containers."`
}

func (c *WaitCmd) Run() error {
	return forEach(c.Names, func(name string) error {
		dir, info, err := lookup(name)
		if err != nil {
			return err
		}
		if err := state.WaitExit(info.Dir); err != nil {
			return err
		}
		after, err := dir.Get(name)
		switch {
		case errors.Is(err, state.ErrNoSuch):
			return fmt.Errorf("%q exited and its record was removed (--rm): its exit status is gone", name)
		case err != nil:
			return err
		case after.ExitCode == nil:
			return fmt.Errorf("%q: exit status unknown (its runner was killed)", name)
		}
		fmt.Println(*after.ExitCode)
		return nil
	})
}

// PortCmd is `isobox port`.
type PortCmd struct {
	Name string `predictor:"containers" arg:"" placeholder:"NAME" help:"Container."`
}

func (c *PortCmd) Run() error {
	_, info, err := lookup(c.Name)
	if err != nil {
		return err
	}
	for _, p := range info.Ports {
		// "127.0.0.1:8080->80/tcp" as podman prints it: "80/tcp -> 127.0.0.1:8080".
		host, ctr, ok := strings.Cut(p, "->")
		if !ok {
			fmt.Println(p)
			continue
		}
		fmt.Printf("%s -> %s\n", ctr, host)
	}
	return nil
}

// ContainerCmd groups `isobox container ...`.
type ContainerCmd struct {
	Ls      PsCmd             `cmd:"" aliases:"list,ps" help:"List your containers."`
	Inspect InspectCmd        `cmd:"" help:"Print containers' configuration and state as JSON."`
	Prune   ContainerPruneCmd `cmd:"" help:"Remove the records of every exited container."`
	Rm      RmCmd             `cmd:"" help:"Remove containers' records."`
	Wait    WaitCmd           `cmd:"" help:"Wait for containers to exit and print their exit statuses."`
	Port    PortCmd           `cmd:"" help:"List a container's published ports."`
}

// ContainerPruneCmd is `isobox container prune`.
type ContainerPruneCmd struct {
	Force bool `short:"f" help:"Do not ask (isobox never asks; accepted for habit)."`
}

func (c *ContainerPruneCmd) Run() error {
	dir, err := state.Open()
	if err != nil {
		return err
	}
	list, err := dir.List()
	if err != nil {
		return err
	}
	for _, i := range list {
		if i.Running {
			continue
		}
		switch err := dir.Delete(i.Name); {
		case errors.Is(err, state.ErrNoSuch), errors.Is(err, state.ErrRunning):
			continue // removed, or started again, meanwhile
		case err != nil:
			return err
		}
		fmt.Println(i.Name)
	}
	return nil
}
