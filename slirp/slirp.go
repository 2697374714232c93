package slirp

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"github.com/rootless-containers/rootlesskit/v3/pkg/network/slirp4netns"
)

var (
	// ErrNotInstalled means the slirp4netns binary is missing.
	ErrNotInstalled = errors.New("slirp4netns is not installed")
	// ErrTunUnusable means the caller cannot open /dev/net/tun.
	ErrTunUnusable = errors.New("/dev/net/tun is not usable")
	// ErrToolMissing means nsenter or ip (iproute2), which the driver runs
	// to create the tap, is missing.
	ErrToolMissing = errors.New("a tool the network driver runs is missing")
)

// Network is what the container is given: the tap's address and route, and
// the DNS server. It travels from the parent to init.
type Network struct {
	Dev     string   `json:"dev"`
	IP      string   `json:"ip"`
	Netmask int      `json:"netmask"`
	Gateway string   `json:"gateway"`
	DNS     []string `json:"dns"`
	MTU     int      `json:"mtu"`
}

// Slirp4netns's fixed addresses (its defaults without --cidr), known before
// it starts so that init can write /etc/hosts and /etc/resolv.conf while it
// prepares the rootfs.
const (
	ContainerIP = "10.0.2.100"
	GatewayIP   = "10.0.2.2"
	DNSIP       = "10.0.2.3"
	mtu         = 65520
)

// Options for Start.
type Options struct {
	// HolderPID has the user and mount namespaces nsenter joins; InitPID
	// the network namespace the tap goes into.
	HolderPID, InitPID int
	// AllowHostLoopback lets the container reach the host's 127.0.0.1
	// through the gateway 10.0.2.2 (off by default, as in RootlessKit).
	AllowHostLoopback bool
	Log               io.Writer
}

// Preflight checks what Start needs, so that a missing piece is one clear
// error before any namespace is made.
func Preflight() error {
	if _, err := exec.LookPath("slirp4netns"); err != nil {
		return ErrNotInstalled
	}
	for _, tool := range []string{"nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s", ErrToolMissing, tool)
		}
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTunUnusable, err)
	}
	f.Close()
	return nil
}

// Running is a started network helper.
type Running struct {
	Network Network
	stop    chan struct{}
	stopped chan error
}

// Start creates the tap and starts slirp4netns. slirp4netns gets SIGKILL
// when the thread that started it exits: it is started from a goroutine
// that keeps its thread locked until Stop, so it lives exactly as long as
// the runner's interest in it, and dies with a runner that is killed.
func Start(o Options) (*Running, error) {
	bin, err := exec.LookPath("slirp4netns")
	if err != nil {
		return nil, ErrNotInstalled
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	r := &Running{stop: make(chan struct{}), stopped: make(chan error, 1)}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // slirp4netns's Pdeathsig: see above
		defer runtime.UnlockOSThread()
		d, err := slirp4netns.NewParentDriver(o.Log, bin, mtu, nil, "tap0", !o.AllowHostLoopback, "", false, false, false)
		if err != nil {
			started <- fmt.Errorf("slirp4netns: %w", err)
			return
		}
		netns := "/proc/" + strconv.Itoa(o.InitPID) + "/ns/net"
		msg, cleanup, err := d.ConfigureNetwork(o.HolderPID, "", netns)
		if err != nil {
			if cleanup != nil {
				cleanup()
			}
			started <- fmt.Errorf("slirp4netns: %w", err)
			return
		}
		r.Network = Network{Dev: msg.Dev, IP: msg.IP, Netmask: msg.Netmask, Gateway: msg.Gateway, DNS: msg.DNS, MTU: msg.MTU}
		started <- nil
		<-r.stop
		r.stopped <- cleanup()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return r, nil
}

// Stop kills slirp4netns and waits for it.
func (r *Running) Stop() error {
	close(r.stop)
	return <-r.stopped
}

// Files returns /etc/hosts and /etc/resolv.conf for a container on
// slirp4netns with the given hostname.
func Files(hostname string) (hosts, resolv string) {
	hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		ContainerIP + "\t" + hostname + "\n"
	resolv = "nameserver " + DNSIP + "\n"
	return hosts, resolv
}
