package main

import (
	"errors"

	"github.com/isobox/isobox/idmap"
	"github.com/isobox/isobox/rootfs"
	"github.com/isobox/isobox/slirp"
	"github.com/isobox/isobox/userns/cgroups"
)

// hintFor returns the fix for failures with a known host cause.
func hintFor(err error) string {
	switch {
	case errors.Is(err, errImageHelperMissing):
		return "make build puts bin/isobox-image next to bin/isobox; install both together"
	case errors.Is(err, idmap.ErrHelperMissing):
		return "install newuidmap and newgidmap: sudo apt-get install uidmap (or use --map single)"
	case errors.Is(err, idmap.ErrRootWithoutRange):
		return "isobox never maps container root to host root: give root a range with `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 root`, or run isobox as an ordinary user"
	case errors.Is(err, idmap.ErrNoSubIDRange):
		return "ask for a subordinate range: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER (or use --map single)"
	case errors.Is(err, slirp.ErrNotInstalled):
		return "install it: sudo apt-get install slirp4netns, or use --net gvisor (nothing to install)"
	case errors.Is(err, slirp.ErrTunUnusable):
		return "sudo chmod 0666 /dev/net/tun: the mode distributions ship; it grants nothing without a user namespace (or use --net none)"
	case errors.Is(err, slirp.ErrPastaUnusable):
		return "--net slirp (slirp4netns) and --net gvisor (nothing to install) give the same network"
	case errors.Is(err, slirp.ErrGvisorHelperMissing):
		return "make build puts bin/isobox-gvisor next to bin/isobox; install both together, or use --net slirp"
	case errors.Is(err, slirp.ErrToolMissing):
		return "sudo apt-get install iproute2 util-linux (the driver runs nsenter and ip on the host)"
	case errors.Is(err, cgroups.ErrNotDelegated):
		return cgroups.DelegateHint
	case errors.Is(err, rootfs.ErrBusyBoxNotFound):
		return "install a static busybox: sudo apt-get install busybox-static (or pass --busybox PATH)"
	}
	return ""
}
