// Package nettest holds network helpers for tests.
package nettest

import (
	"fmt"
	"net"
	"testing"
)

// FreePort returns a port free for both TCP and UDP on 127.0.0.1 (serf
// listens on both), or fails the test.
func FreePort(tb testing.TB) int {
	tb.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	tb.Fatal("no free port")
	return 0
}
