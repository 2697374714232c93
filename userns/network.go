package userns

import (
	"bufio"
	"io"
	"log/slog"
	"strconv"

	"github.com/isobox/isobox/slirp"
)

// publish starts the builtin port driver: its state on a tmpfs private to
// the holder, its child side in the holder, and every host port open
// before the command runs, so a port in use is an error, not a surprise.
func publish(h *holder, stateDir string, specs []slirp.Publish, logw io.Writer) (*slirp.Ports, error) {
	ports, opaque, err := slirp.NewPorts(stateDir, logw)
	if err != nil {
		return nil, err
	}
	if err := h.ch.send(Message{Kind: MsgPortsStart, Opaque: opaque}); err != nil {
		return nil, err
	}
	if err := ports.Publish(specs, h.done); err != nil {
		ports.Stop()
		return nil, err
	}
	return ports, nil
}

// prepareState has the holder mount its private tmpfs and returns the path
// under which the runner reaches it.
func (h *holder) prepareState() (string, error) {
	if err := h.ch.send(Message{Kind: MsgStatePrepare}); err != nil {
		return "", err
	}
	if _, _, err := h.ch.expect(MsgStatePrepared); err != nil {
		return "", err
	}
	return "/proc/" + strconv.Itoa(h.cmd.Process.Pid) + "/root" + StateDir, nil
}

// slirpLog passes what a network helper prints to the log, at debug level.
func slirpLog(log *slog.Logger, stage string) io.Writer {
	r, w := io.Pipe()
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			log.Debug(sc.Text(), "stage", stage)
		}
	}()
	return w
}
