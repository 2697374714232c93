package slirp

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// WaitLinkUp waits until the link named dev exists and is up in the
// caller's network namespace. The slirp4netns driver brings the tap up as
// the last step it runs in the target's mount namespace (ip link set up,
// through nsenter), so once it is up, that mount namespace is free again.
// The wait ends only that way or with an error: the caller is killed if
// the driver fails.
func WaitLinkUp(dev string) error {
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	defer close(done)
	errs := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case errs <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("netlink: watch links: %w", err)
	}
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				return fmt.Errorf("netlink: watch links for %s: closed", dev)
			}
			if a := u.Link.Attrs(); a.Name == dev && a.Flags&net.FlagUp != 0 {
				return nil
			}
		case err := <-errs:
			return fmt.Errorf("netlink: watch links for %s: %w", dev, err)
		}
	}
}
