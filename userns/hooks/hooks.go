// Package hooks runs an OCI bundle's lifecycle hooks: each program gets the
// container's state as JSON on its stdin, runs with its own arguments and
// environment, and is killed when its timeout passes. The package knows
// how to run one hook list; when each list runs (and in which namespaces)
// is the launcher's business.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Hook is one program of a list, as runtime-spec's hooks give it.
type Hook struct {
	Path    string   `json:"path"`
	Args    []string `json:"args,omitempty"`
	Env     []string `json:"env,omitempty"`
	Timeout int      `json:"timeout,omitempty"` // seconds; 0 is none
}

// Set is a bundle's hooks, by the point of the lifecycle they run at.
type Set struct {
	Prestart        []Hook `json:"prestart,omitempty"`
	CreateRuntime   []Hook `json:"createRuntime,omitempty"`
	CreateContainer []Hook `json:"createContainer,omitempty"`
	StartContainer  []Hook `json:"startContainer,omitempty"`
	Poststart       []Hook `json:"poststart,omitempty"`
	Poststop        []Hook `json:"poststop,omitempty"`
}

// State is what a hook reads on its stdin: runtime-spec's state.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid,omitempty"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Run runs the hooks of list, named by which (for errors), in order, and
// stops at the first that fails or times out.
func Run(which string, list []Hook, st State) error {
	in, err := json.Marshal(st)
	if err != nil {
		return err
	}
	for i, h := range list {
		if err := runOne(h, in); err != nil {
			return fmt.Errorf("hooks.%s[%d] %s: %w", which, i, h.Path, err)
		}
	}
	return nil
}

func runOne(h Hook, state []byte) error {
	ctx := context.Background()
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args
	}
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	// The state comes from a memory file, not a pipe the caller writes:
	// a hook that exits without reading it would give the writer SIGPIPE,
	// which init, where the startContainer and createContainer hooks run,
	// passes on to the container's command.
	in, err := stateFile(state)
	if err != nil {
		return err
	}
	defer in.Close()
	cmd.Stdin = in
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Killed with the timeout, its children may keep the output open:
	// stop waiting for them soon after.
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %d s", h.Timeout)
	}
	if err != nil {
		var ee *exec.ExitError
		if msg := lastLine(out.String()); msg != "" && errors.As(err, &ee) {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// stateFile is an unlinked memory file holding state, read from its start.
func stateFile(state []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("oci-state", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "oci-state")
	if _, err := f.Write(state); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the state for the hook: %w", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
