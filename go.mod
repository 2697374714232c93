module github.com/isobox/isobox

go 1.26.0

require (
	github.com/alecthomas/kong v1.17.0
	github.com/moby/sys/mountinfo v0.7.3
	github.com/rootless-containers/rootlesskit/v3 v3.3.0
	github.com/vishvananda/netlink v1.3.1
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
)

require (
	github.com/containernetworking/plugins v1.9.1 // indirect
	github.com/sirupsen/logrus v1.10.2 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
)
