package slirp

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Configure brings up the tap that the driver created in the network
// namespace at netnsPath: MTU, address, up, and the default route through
// the gateway. It runs in the holder, which may act on that namespace (its
// user namespace owns it), through a netlink socket opened inside it, and
// closed before the container's command runs.
func Configure(n *Network, netnsPath string) error {
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("open %s: %w", netnsPath, err)
	}
	defer ns.Close()
	// NETLINK_ROUTE only: with no family named, the handle opens XFRM and
	// netfilter sockets too, which kernels without those modules loaded
	// (Debian's cloud kernel) refuse with EPROTONOSUPPORT.
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", netnsPath, err)
	}
	defer h.Close()
	return configure(h, n)
}

// ConfigureHere is Configure for a caller in the tap's network namespace
// (init, started without a holder). Its /proc may not be its own yet, so it
// names no namespace: the socket is opened where the caller is.
func ConfigureHere(n *Network) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	return configure(h, n)
}

func configure(h *netlink.Handle, n *Network) error {
	link, err := h.LinkByName(n.Dev)
	if err != nil {
		return fmt.Errorf("find %s: %w", n.Dev, err)
	}
	if err := h.LinkSetMTU(link, n.MTU); err != nil {
		return fmt.Errorf("set mtu %d on %s: %w", n.MTU, n.Dev, err)
	}
	addr, err := netlink.ParseAddr(fmt.Sprintf("%s/%d", n.IP, n.Netmask))
	if err != nil {
		return err
	}
	if err := h.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("add %s to %s: %w", addr, n.Dev, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", n.Dev, err)
	}
	gw := net.ParseIP(n.Gateway)
	if gw == nil {
		return fmt.Errorf("bad gateway %q", n.Gateway)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}); err != nil {
		return fmt.Errorf("add default route via %s: %w", gw, err)
	}
	return nil
}
