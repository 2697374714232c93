// Command udpecho answers every UDP datagram on the port given with
// "udp-pong:" and the datagram. The integration tests build it statically
// into a rootfs copy: BusyBox has no UDP server.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	c, err := net.ListenPacket("udp", ":"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	buf := make([]byte, 1500)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			os.Exit(1)
		}
		c.WriteTo(append([]byte("udp-pong:"), buf[:n]...), addr)
	}
}
