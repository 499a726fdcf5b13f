// Package engine is pyiocp's networking engine: the I/O completion port
// model for Go programs, and the core the Python package binds to.
//
// A Manager owns N workers; each worker is one completion port (an
// io_uring, else an epoll instance, on Linux; an I/O completion port on
// Windows) and the connections assigned to it, round-robin, for their
// whole life. Posting and harvesting follow the rules the design is
// built on: one outstanding receive and one outstanding send per socket; a
// send is posted only when there are bytes to send and a receive only when
// the receive buffer is not full; a failed post produces no completion;
// every outstanding operation completes once on close, and a connection's
// resources are freed exactly once, after the last of them.
//
// Go programs implement Handler and call Run (or Start and Close):
//
//	m, _ := engine.New(echo{}, engine.WithWorkers(2))
//	m.Listen(netip.MustParseAddrPort("127.0.0.1:7000"))
//	m.Run()
//
// BindUDP opens a UDP Endpoint on a worker: its datagrams arrive as
// EventDatagram (DatagramHandler), each whole with the address it came
// from, received and sent many to a system call; Endpoint.SendTo queues
// one, within the same send buffer limit as a connection's Send.
//
// Bindings and handler-less programs drive the workers themselves with
// Poll, the GetQueuedCompletionStatus of this package (PollShared for
// several threads on one worker).
package engine
