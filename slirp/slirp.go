package slirp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"

	"github.com/rootless-containers/rootlesskit/v3/pkg/network"
	"github.com/rootless-containers/rootlesskit/v3/pkg/network/pasta"
	"github.com/rootless-containers/rootlesskit/v3/pkg/network/slirp4netns"
	"github.com/sirupsen/logrus"
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

// Driver is a user-mode network implementation.
type Driver string

const (
	// DriverSlirp4netns runs the slirp4netns binary.
	DriverSlirp4netns Driver = "slirp4netns"
	// DriverGvisor runs gvisor-tap-vsock's network stack in the
	// isobox-gvisor helper, installed next to isobox; nothing else is needed.
	DriverGvisor Driver = "gvisor"
	// DriverPasta runs passt's pasta, which configures the tap itself.
	DriverPasta Driver = "pasta"
)

// The drivers' fixed addresses (their defaults without --cidr), known before
// they start so that init can write /etc/hosts and /etc/resolv.conf while it
// prepares the rootfs.
const (
	ContainerIP = "10.0.2.100"
	mtu         = 65520
)

// Gateway is the driver's gateway, which is also where the host's loopback
// is reached when allowed.
func (d Driver) Gateway() string {
	if d == DriverGvisor {
		return "10.0.2.1"
	}
	return "10.0.2.2"
}

// DNS is the driver's DNS server.
func (d Driver) DNS() string {
	if d == DriverGvisor {
		return "10.0.2.1" // gvisor-tap-vsock answers DNS on its gateway
	}
	return "10.0.2.3"
}

// Options for Start.
type Options struct {
	Driver Driver
	// StateDir holds the gvisor driver's socket; it must be private to the
	// caller.
	StateDir string
	// HolderPID has the user and mount namespaces nsenter joins (the
	// holder's, or init's before it pivots); NetNS is the path of the
	// network namespace the tap goes into.
	HolderPID int
	NetNS     string
	// AllowHostLoopback lets the container reach the host's 127.0.0.1
	// through the gateway 10.0.2.2 (off by default, as in RootlessKit).
	AllowHostLoopback bool
	Log               io.Writer
	// Prepared is the parent driver made ahead by PrepareDriver; nil makes
	// it in Start.
	Prepared <-chan PreparedDriver
}

// PreparedDriver is a RootlessKit parent driver made ahead of Start.
type PreparedDriver struct {
	driver network.ParentDriver
	err    error
}

// PrepareDriver makes the parent driver of slirp4netns or pasta in the
// background. RootlessKit's slirp4netns driver runs `slirp4netns --help`
// to learn its features when it is made: begun with the runner, while the
// namespaces are made, that exec is off the start's path. Start takes the
// result. The gvisor driver has nothing to prepare: nil.
func PrepareDriver(d Driver, allowHostLoopback bool, log io.Writer) <-chan PreparedDriver {
	if d == DriverGvisor {
		return nil
	}
	ch := make(chan PreparedDriver, 1)
	go func() {
		drv, err := newParentDriver(Options{Driver: d, AllowHostLoopback: allowHostLoopback, Log: log})
		ch <- PreparedDriver{drv, err}
	}()
	return ch
}

// Preflight checks what Start needs, so that a missing piece is one clear
// error before any namespace is made.
func Preflight(d Driver) error {
	if d == DriverPasta {
		_, _, err := CheckPasta()
		return err
	}
	if d == DriverGvisor {
		if _, err := GvisorHelper(); err != nil {
			return err
		}
	}
	if d == DriverSlirp4netns && !Slirp4netnsInstalled() {
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

// Slirp4netnsInstalled says whether the default driver can be had.
func Slirp4netnsInstalled() bool {
	_, err := exec.LookPath("slirp4netns")
	return err == nil
}

// Running is a started network helper.
type Running struct {
	Network Network
	// Configured: the driver set the tap's address and route itself (pasta).
	Configured bool
	// Helper is the isobox-gvisor binary, whose child side the holder runs.
	Helper string
	// pids is the helper process to drain (isobox-gvisor); nil means find
	// slirp4netns among this process's children.
	pids []int
	// ChildOpaque is what the driver's child side needs (gvisor's socket);
	// nil when the driver has no child side.
	ChildOpaque map[string]string
	stop        chan struct{}
	stopped     chan error
}

// Start creates the tap and starts the driver. slirp4netns gets SIGKILL
// when the thread that started it exits: it is started from a goroutine
// that keeps its thread locked until Stop, so it lives exactly as long as
// the runner's interest in it, and dies with a runner that is killed; the
// isobox-gvisor helper is started the same way. Call Preflight first.
func Start(o Options) (*Running, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	// RootlessKit's drivers log through logrus's global logger, to stderr
	// by default: keep it to the caller's log (debug output).
	logrus.SetOutput(o.Log)
	r := &Running{stop: make(chan struct{}), stopped: make(chan error, 1)}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // slirp4netns's Pdeathsig: see above
		defer runtime.UnlockOSThread()
		if o.Driver == DriverGvisor {
			r.runGvisorHelper(o, started)
			return
		}
		var d network.ParentDriver
		var err error
		if o.Prepared != nil {
			p := <-o.Prepared
			d, err = p.driver, p.err
		} else {
			d, err = newParentDriver(o)
		}
		if err != nil {
			started <- fmt.Errorf("%s: %w", o.Driver, err)
			return
		}
		msg, cleanup, err := d.ConfigureNetwork(o.HolderPID, o.StateDir, o.NetNS)
		if err != nil {
			if cleanup != nil {
				cleanup()
			}
			started <- fmt.Errorf("%s: %w", o.Driver, err)
			return
		}
		r.Network = Network{Dev: msg.Dev, IP: msg.IP, Netmask: msg.Netmask, Gateway: msg.Gateway, DNS: msg.DNS, MTU: msg.MTU}
		r.ChildOpaque = msg.NetworkDriverOpaque
		r.Configured = o.Driver == DriverPasta
		started <- nil
		<-r.stop
		r.stopped <- cleanup()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return r, nil
}

func newParentDriver(o Options) (network.ParentDriver, error) {
	if o.Driver == DriverPasta {
		// Preflight has checked its version.
		bin, err := exec.LookPath("pasta")
		if err != nil {
			return nil, fmt.Errorf("%w: not installed", ErrPastaUnusable)
		}
		_, subnet, _ := net.ParseCIDR("10.0.2.0/24")
		return pasta.NewParentDriver(o.Log, bin, mtu, subnet, "tap0", "", !o.AllowHostLoopback, false, false)
	}
	bin, err := exec.LookPath("slirp4netns")
	if err != nil {
		return nil, ErrNotInstalled
	}
	return slirp4netns.NewParentDriver(o.Log, bin, mtu, nil, "tap0", !o.AllowHostLoopback, "", false, false, false)
}

// Drain waits, at most DrainLimit, until the helper has delivered what the
// container sent: call it after the container's last process exits, while
// its network namespace is still held (its kernel may still be sending).
func (r *Running) Drain() {
	pids := r.pids
	if pids == nil {
		pids = childrenNamed("slirp4netns")
	}
	for _, pid := range pids {
		drain(pid, DrainLimit)
	}
}

// Stop kills slirp4netns (or closes the gvisor stack) and waits for it.
func (r *Running) Stop() error {
	close(r.stop)
	return <-r.stopped
}

// Files returns /etc/hosts and /etc/resolv.conf for a container on the
// driver with the given hostname.
func Files(d Driver, hostname string) (hosts, resolv string) {
	hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		ContainerIP + "\t" + hostname + "\n"
	resolv = "nameserver " + d.DNS() + "\n"
	return hosts, resolv
}

// Expected is the network the driver will report, known before it starts
// (its defaults, without --cidr): init configures the tap as soon as the
// driver has created it, while the helper is still starting, and the
// runner checks the driver's report against it.
func (d Driver) Expected() Network {
	return Network{Dev: "tap0", IP: ContainerIP, Netmask: 24, Gateway: d.Gateway(), DNS: []string{d.DNS()}, MTU: mtu}
}

// Equal reports whether n and o are the same configuration.
func (n Network) Equal(o Network) bool {
	return n.Dev == o.Dev && n.IP == o.IP && n.Netmask == o.Netmask && n.Gateway == o.Gateway &&
		n.MTU == o.MTU && slices.Equal(n.DNS, o.DNS)
}
