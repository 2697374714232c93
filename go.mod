module github.com/isobox/isobox

go 1.26.0

require (
	github.com/alecthomas/kong v1.17.0
	github.com/moby/sys/mountinfo v0.7.3
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
)
