package engine_test

import (
	"net"
	"os"
	"testing"
)

// TestMain starts the Go runtime's network poller before any test runs.
// It opens its own descriptors (an epoll and an eventfd on Linux) the first
// time anything uses package net, and keeps them: opened inside the first
// test, they would count as that test's leak (checkLeaks).
func TestMain(m *testing.M) {
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
	os.Exit(m.Run())
}
