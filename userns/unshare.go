package userns

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/isobox/isobox/idmap"
)

// UnshareOptions is a host command to run in a user namespace with the
// container's mapping (`isobox unshare`, like `podman unshare`).
type UnshareOptions struct {
	Args   []string
	Map    idmap.Mode
	Logger *slog.Logger
}

// Unshare runs o.Args as root of a new user namespace (and mount namespace)
// with the mapping `run` would use, in the caller's environment and working
// directory, and returns its exit status.
func Unshare(o UnshareOptions) (int, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	plan, err := PlanMapping(o.Map)
	if err != nil {
		return 0, setupError(err)
	}
	if plan.Fallback != nil {
		log.Warn("mapping only root to the caller: "+plan.Fallback.Error(), "stage", "parent")
	}
	if _, err := exec.LookPath(o.Args[0]); err != nil {
		return 0, &Error{Code: ExitNotFound, Err: fmt.Errorf("%s: command not found", o.Args[0])}
	}
	// The command runs in the caller's session and process group, like any
	// command the caller starts, so the terminal's SIGINT, SIGQUIT and
	// SIGWINCH reach it directly: the runner catches and drops those, as a
	// shell waiting for its job does. (Ignoring them would pass SIG_IGN on
	// to the command.) Signals sent to the runner alone are passed on.
	fromTerminal := make(chan os.Signal, 8)
	signal.Notify(fromTerminal, unix.SIGINT, unix.SIGQUIT, unix.SIGWINCH)
	defer signal.Stop(fromTerminal)
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, unix.SIGTERM, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2)
	defer signal.Stop(sigc)
	h, err := startHolder(stageUnshare, os.Environ(), stdStreams(), callers)
	if err != nil {
		return 0, setupError(err)
	}
	defer h.kill()
	go func() {
		for {
			select {
			case s := <-sigc:
				h.cmd.Process.Signal(s)
			case <-fromTerminal:
			}
		}
	}()
	if _, _, err := h.ch.expect(MsgReady); err != nil {
		return 0, setupError(err)
	}
	if err := idmap.Apply(h.cmd.Process.Pid, plan); err != nil {
		return 0, setupError(fmt.Errorf("write id maps: %w", err))
	}
	if err := h.ch.send(Message{Kind: MsgMapsWritten, Holder: &HolderConfig{Exec: o.Args}}); err != nil {
		return 0, setupError(err)
	}
	if _, _, err := h.ch.expect(); !errors.Is(err, errHungUp) {
		return 0, stageError(err)
	}
	h.wait()
	ws := h.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return exitSignalShift + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// unshareMain is the stage of `isobox unshare`: once mapped, it execs the
// host command. Its ambient capabilities carry over the exec, as they do for
// a shell started by `unshare -r`.
func unshareMain() error {
	ch, m, err := awaitMaps()
	if err != nil {
		return err
	}
	if m.Holder == nil || len(m.Holder.Exec) == 0 {
		return errors.New("protocol: unshare without a command")
	}
	argv0, err := exec.LookPath(m.Holder.Exec[0])
	if err != nil {
		return ch.fail(ExitNotFound, err)
	}
	err = unix.Exec(argv0, m.Holder.Exec, os.Environ())
	code, err := execError(m.Holder.Exec[0], err)
	return ch.fail(code, err)
}

// awaitMaps is how the stages that only need a mapped user namespace
// (unshare, mapped) begin: say ready on the channel, then wait until the
// parent has written the maps.
func awaitMaps() (*channel, Message, error) {
	ch := newChannel(fdChannel, "parent")
	if err := ch.send(Message{Kind: MsgReady}); err != nil {
		return ch, Message{}, err
	}
	m, _, err := ch.expect(MsgMapsWritten)
	return ch, m, err
}
