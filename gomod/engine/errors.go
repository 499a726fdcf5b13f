package engine

import (
	"errors"
	"fmt"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// Errors are values the caller tests with errors.Is / errors.As; the Python
// binding maps each to its exception class.
var (
	// ErrClosed: the connection is closing or closed, or the reference to it
	// is stale (ids are never reused). Python: ConnectionClosed.
	ErrClosed = errors.New("connection closed")
	// ErrBufferFull: the send would take the connection's pending bytes over
	// the send buffer limit; nothing was queued. Python: BufferFull.
	ErrBufferFull = errors.New("send buffer full")
	// ErrManagerClosed: the manager is closing or closed. Python: ManagerClosed.
	ErrManagerClosed = errors.New("manager closed")
	// ErrPortLost ends the connections of a worker whose completion port
	// cannot be driven any more: with WithFixedThreads, io_uring takes only
	// the thread that drove it first, and that thread is gone. Python:
	// pyiocp.Error.
	ErrPortLost = poller.ErrPortLost
	// ErrTimeout is wrapped by every timeout a connection can end with.
	// Python: the builtin TimeoutError.
	ErrTimeout = errors.New("timed out")
	// ErrTooManyConnections: Connect would take the open connections
	// (accepted and outbound) over max_connections; nothing was started.
	// Python: TooManyConnections, an OSError with errno EMFILE.
	ErrTooManyConnections = errors.New("max_connections reached")
)

// Timeouts a connection can end with; each wraps ErrTimeout.
var (
	ErrConnectTimeout = fmt.Errorf("connect %w", ErrTimeout)
	ErrAcceptTimeout  = fmt.Errorf("no data within accept_timeout: %w", ErrTimeout)
	ErrIdleTimeout    = fmt.Errorf("idle longer than idle_timeout: %w", ErrTimeout)
	ErrCloseTimeout   = fmt.Errorf("pending data not sent before the close timeout: %w", ErrTimeout)
)

// OptionError reports a bad option or argument value. Python: ValueError.
type OptionError struct {
	Name   string // the option's name as in Python (send_buffer_limit)
	Value  any
	Reason string // what the value must be
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("%s=%v: %s", e.Name, e.Value, e.Reason)
}
