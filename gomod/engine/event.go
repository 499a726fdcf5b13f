package engine

import "net/netip"

// EventKind says what an Event reports; the names follow the Python
// callbacks (on_accept, on_recv, ...) and Completion kinds.
type EventKind uint8

const (
	EventAccept   EventKind = iota + 1 // an inbound connection is open
	EventConnect                       // an outbound connect completed
	EventRecv                          // Data arrived
	EventSend                          // N bytes were written
	EventDrain                         // pending bytes fell to the low watermark
	EventEOF                           // the peer half-closed (sent FIN)
	EventClose                         // the connection is gone; Err says why (nil: clean)
	EventPost                          // Value came from Manager.Post
	EventTimer                         // Value is the *Timer that is due (or cancelled by its connection's close)
	EventDatagram                      // Data arrived on Endpoint from Addr (udp.go); Err: a *TruncatedError, no Data
)

var eventNames = [...]string{"", "accept", "connect", "recv", "send", "drain", "eof", "close", "post", "timer", "datagram"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// EventMask selects optional events (EventSend, EventDrain, EventEOF).
type EventMask uint8

const (
	MaskSend  EventMask = 1 << iota // produce EventSend for every write
	MaskDrain                       // produce EventDrain
	MaskEOF                         // produce EventEOF; without it EOF closes after flushing
)

// Event is one thing that happened, delivered in order per connection on
// the connection's worker.
type Event struct {
	Kind  EventKind
	Conn  *Conn  // nil for EventPost and a manager's EventTimer
	Data  []byte // EventRecv, EventDatagram: valid until the worker's next Poll
	N     int    // EventSend: bytes written; EventDatagram: the datagram's length
	Err   error  // EventClose: why (nil after a clean close by either side); EventDatagram: see EventDatagram
	Value any    // EventPost: the value posted; EventTimer: the *Timer

	Endpoint *Endpoint      // EventDatagram: the endpoint it arrived on
	Addr     netip.AddrPort // EventDatagram: where it came from
}
