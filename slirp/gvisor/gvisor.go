// Package gvisor runs RootlessKit's gvisor-tap-vsock network driver, both
// its sides. It is linked only into the isobox-gvisor helper, never into
// isobox itself: gvisor's packages cost about 14 ms of initialisation in
// every process that links them (gopacket's alone 8.5 ms, measured with
// GODEBUG=inittrace=1), and isobox runs three processes per container.
//
// Parent runs as the caller, in the caller's namespaces: the network stack
// and the socket the child side connects to. Child runs in the container's
// user namespace with the host's filesystem (started by the holder) and
// opens the tap inside the container's network namespace.
package gvisor

import (
	"io"
	"net"

	"github.com/rootless-containers/rootlesskit/v3/pkg/messages"
	"github.com/rootless-containers/rootlesskit/v3/pkg/network/gvisortapvsock"
	"github.com/sirupsen/logrus"
)

// MTU is the tap's MTU, as for slirp4netns.
const MTU = 65520

// Parent creates the tap (through nsenter into holderPID's namespaces and
// netnsPath) and starts the stack; the cleanup stops it.
func Parent(holderPID int, stateDir, netnsPath string, allowHostLoopback bool, log io.Writer) (*messages.ParentInitNetworkDriverCompleted, func() error, error) {
	logrus.SetOutput(log)
	// The driver dereferences its network unchecked: always give one.
	_, subnet, _ := net.ParseCIDR("10.0.2.0/24")
	d, err := gvisortapvsock.NewParentDriver(log, MTU, subnet, "tap0", !allowHostLoopback, false)
	if err != nil {
		return nil, nil, err
	}
	return d.ConfigureNetwork(holderPID, stateDir, netnsPath)
}

// Child opens the tap in netnsPath and pumps its frames to the parent's
// socket, in goroutines, until the process exits.
func Child(msg *messages.ParentInitNetworkDriverCompleted, netnsPath string) error {
	// The pumps log a disconnect at teardown; failures are reported by the
	// exit status instead.
	logrus.SetOutput(io.Discard)
	_, err := gvisortapvsock.NewChildDriver().ConfigureNetworkChild(msg, netnsPath)
	return err
}
