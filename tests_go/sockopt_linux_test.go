package engine_test

import (
	"syscall"
	"testing"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// checkKeepParams: the keepalive idle and interval (seconds) and count.
func checkKeepParams(t *testing.T, c *engine.Conn, idle, intvl, count int) {
	t.Helper()
	got := [3]int{intOpt(t, c, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE),
		intOpt(t, c, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL), intOpt(t, c, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)}
	if got != [3]int{idle, intvl, count} {
		t.Errorf("keepalive idle, interval, count %v, want %v", got, [3]int{idle, intvl, count})
	}
}

// keepCount is a keepalive count to set: Linux sets any.
func keepCount(n int) int { return n }
