// Command tcpio is the benchmark's endpoint inside the container, so that
// BusyBox nc's small buffers do not limit what is measured.
//
//	tcpio sink PORT        accept one connection and discard what it sends
//	tcpio send ADDR MIB    send MIB MiB to ADDR
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tcpio:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 2 && args[0] == "sink" {
		l, err := net.Listen("tcp", ":"+args[1])
		if err != nil {
			return err
		}
		fmt.Println("ready")
		c, err := l.Accept()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, c)
		return err
	}
	if len(args) == 3 && args[0] == "send" {
		mb, err := strconv.Atoi(args[2])
		if err != nil {
			return err
		}
		c, err := net.Dial("tcp", args[1])
		if err != nil {
			return err
		}
		buf := make([]byte, 1<<20)
		for i := 0; i < mb; i++ {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		// Wait for the receiver to close: a network helper that has
		// acknowledged bytes may not have delivered them yet, and the
		// container's exit tears it down.
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
		io.Copy(io.Discard, c)
		return c.Close()
	}
	return fmt.Errorf("usage: tcpio sink PORT | tcpio send ADDR MIB")
}
