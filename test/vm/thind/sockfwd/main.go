// Command sockfwd forwards connections: sockfwd LISTEN DIAL, each
// unix:PATH or tcp:HOST:PORT. The VM suite's csi part uses it to reach
// the host daemon's control socket from the guest (guest unix socket →
// tcp 10.0.2.2 → host unix socket), where qemu's user network carries
// only TCP. Static (CGO_ENABLED=0), so it runs in the guest as built.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

func split(a string) (network, addr string) {
	n, ad, ok := strings.Cut(a, ":")
	if !ok || (n != "unix" && n != "tcp") {
		fmt.Fprintf(os.Stderr, "sockfwd: %q: want unix:PATH or tcp:HOST:PORT\n", a)
		os.Exit(2)
	}
	return n, ad
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sockfwd LISTEN DIAL (each unix:PATH or tcp:HOST:PORT)")
		os.Exit(2)
	}
	ln, la := split(os.Args[1])
	dn, da := split(os.Args[2])
	if ln == "unix" {
		os.Remove(la)
	}
	l, err := net.Listen(ln, la)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sockfwd:", err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "sockfwd:", err)
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			u, err := net.Dial(dn, da)
			if err != nil {
				fmt.Fprintln(os.Stderr, "sockfwd:", err)
				return
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			cp := func(dst, src net.Conn) {
				io.Copy(dst, src)
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
				done <- struct{}{}
			}
			go cp(u, c)
			go cp(c, u)
			<-done
			<-done
		}()
	}
}
