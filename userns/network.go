package userns

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/isobox/isobox/slirp"
)

// networkSetup is what setUpNetwork did: the stops to run when the
// container is done (also after a failure), and the failure.
type networkSetup struct {
	stops  []func()
	drains []func()
	err    error
}

// drain lets the helpers deliver what the container sent before it exited.
func (n networkSetup) drain() {
	for _, d := range n.drains {
		d()
	}
}

func (n networkSetup) stop() {
	for i := len(n.stops) - 1; i >= 0; i-- {
		n.stops[i]()
	}
}

// setUpNetwork gives the container its user-mode network and published
// ports: the holder's private state directory, the driver (its child side
// and the tap's address in the holder), then the port driver. It talks only
// to the holder, so it can run while init prepares the rootfs. Without a
// holder (h.ch is nil: slirp4netns with a direct init), init configures the
// tap itself, and only the driver's report is checked here.
func setUpNetwork(h *holder, driver slirp.Driver, prepared <-chan slirp.PreparedDriver, netLog io.Writer, userMode, allowHostLoopback bool, publishes []slirp.Publish, log *slog.Logger) (n networkSetup) {
	if !userMode && len(publishes) == 0 {
		return n
	}
	// Only the gvisor helper's socket and the port driver's state need the
	// holder's private directory; slirp4netns and pasta use none, and the
	// round trip to the holder is on the start's critical path.
	var stateDir string
	if driver == slirp.DriverGvisor || len(publishes) > 0 {
		var err error
		if stateDir, err = h.prepareState(); err != nil {
			n.err = err
			return n
		}
	}
	if userMode {
		net, err := slirp.Start(slirp.Options{Driver: driver, StateDir: stateDir, HolderPID: h.cmd.Process.Pid,
			NetNS: h.netns, AllowHostLoopback: allowHostLoopback, Log: netLog, Prepared: prepared})
		if err != nil {
			n.err = err
			return n
		}
		// A killed runner takes the helper along by its parent-death signal.
		n.stops = append(n.stops, func() { net.Stop() })
		n.drains = append(n.drains, net.Drain)
		if !net.Configured && h.ch == nil {
			// init configured the tap as the driver's defaults say.
			if want := driver.Expected(); !net.Network.Equal(want) {
				n.err = fmt.Errorf("%s: reported the network %+v, expected %+v", driver, net.Network, want)
				return n
			}
		} else if !net.Configured {
			if err := h.ch.send(Message{Kind: MsgNetStart, Network: &net.Network, Opaque: net.ChildOpaque, Helper: net.Helper}); err != nil {
				n.err = err
				return n
			}
			if _, _, err := h.ch.expect(MsgNetStarted); err != nil {
				n.err = err
				return n
			}
		}
		log.Debug("network ready", "driver", driver, "ip", net.Network.IP)
	}
	if len(publishes) > 0 {
		ports, err := publish(h, stateDir, publishes, slirpLog(log, "ports"))
		if err != nil {
			n.err = err
			return n
		}
		n.stops = append(n.stops, ports.Stop)
		log.Debug("ports published", "count", len(publishes))
	}
	return n
}

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
