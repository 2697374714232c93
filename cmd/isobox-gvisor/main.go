//go:debug containermaxprocs=0

// Command isobox-gvisor is isobox's helper for --net gvisor: RootlessKit's
// gvisor-tap-vsock driver, kept out of the isobox binary so that isobox's
// own processes start fast (see package slirp/gvisor). isobox starts it;
// it is not meant to be run by hand.
//
//	isobox-gvisor parent HOLDER_PID STATE_DIR NETNS_PATH allow|deny
//	    prints the network as one JSON line, runs until stdin closes
//	isobox-gvisor child NETNS_PATH
//	    reads that JSON line on stdin, prints "ready", runs until killed
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/rootless-containers/rootlesskit/v3/pkg/messages"

	"github.com/isobox/isobox/slirp/gvisor"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "isobox-gvisor: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 5 && args[0] == "parent":
		holder, err := strconv.Atoi(args[1])
		if err != nil {
			return fmt.Errorf("holder pid %q: %w", args[1], err)
		}
		msg, cleanup, err := gvisor.Parent(holder, args[2], args[3], args[4] == "allow", os.Stderr)
		if err != nil {
			if cleanup != nil {
				cleanup()
			}
			return err
		}
		defer cleanup()
		if err := json.NewEncoder(os.Stdout).Encode(msg); err != nil {
			return err
		}
		// isobox closes stdin to stop the stack (or dies: then the
		// parent-death signal it set ends this process).
		io.Copy(io.Discard, os.Stdin)
		return nil
	case len(args) == 2 && args[0] == "child":
		line, err := bufio.NewReader(os.Stdin).ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("read network: %w", err)
		}
		var msg messages.ParentInitNetworkDriverCompleted
		if err := json.Unmarshal(line, &msg); err != nil {
			return fmt.Errorf("network: %w", err)
		}
		if err := gvisor.Child(&msg, args[1]); err != nil {
			return err
		}
		fmt.Println("ready")
		select {}
	}
	return fmt.Errorf("usage: isobox-gvisor parent HOLDER_PID STATE_DIR NETNS allow|deny | isobox-gvisor child NETNS")
}
