// Command tcpsend sends MIB MiB to ADDR, closes and exits at once, as a
// short-lived program does. The integration tests build it statically
// into a rootfs copy.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

func main() {
	mb, _ := strconv.Atoi(os.Args[2])
	c, err := net.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buf := make([]byte, 1<<20)
	for i := 0; i < mb; i++ {
		if _, err := c.Write(buf); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	c.Close()
}
