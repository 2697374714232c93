package slirp

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// Configure brings up the tap that the driver created in this network
// namespace: MTU, address, up, and the default route through the gateway.
func Configure(n *Network) error {
	link, err := netlink.LinkByName(n.Dev)
	if err != nil {
		return fmt.Errorf("find %s: %w", n.Dev, err)
	}
	if err := netlink.LinkSetMTU(link, n.MTU); err != nil {
		return fmt.Errorf("set mtu %d on %s: %w", n.MTU, n.Dev, err)
	}
	addr, err := netlink.ParseAddr(fmt.Sprintf("%s/%d", n.IP, n.Netmask))
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("add %s to %s: %w", addr, n.Dev, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", n.Dev, err)
	}
	gw := net.ParseIP(n.Gateway)
	if gw == nil {
		return fmt.Errorf("bad gateway %q", n.Gateway)
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}); err != nil {
		return fmt.Errorf("add default route via %s: %w", gw, err)
	}
	return nil
}
