package engine

import "net/netip"

// Handler receives a Manager's events on the workers' threads (Run/Start).
// Callbacks of one connection come in order and never two at once; a
// callback that blocks stalls only its own worker.
type Handler interface {
	OnOpen(c *Conn)              // accepted or connected (see Conn.Outbound)
	OnRecv(c *Conn, data []byte) // data is valid only during the call
	OnSend(c *Conn, n int)       // n bytes written; counts add up to every byte sent
	OnClose(c *Conn, err error)  // exactly once per opened connection
}

// DrainHandler is implemented by handlers that want EventDrain.
type DrainHandler interface{ OnDrain(c *Conn) }

// EOFHandler is implemented by handlers that take the peer's FIN
// themselves; without it the connection closes once its data is sent.
type EOFHandler interface{ OnEOF(c *Conn) }

// PostHandler is implemented by handlers that receive Manager.Post values.
type PostHandler interface{ OnPost(v any) }

// TimerHandler is implemented by handlers that receive due timers; for
// other handlers a timer whose value is a func() is called.
type TimerHandler interface{ OnTimer(t *Timer) }

// DatagramHandler is implemented by handlers that receive UDP datagrams
// (BindUDP). data is valid only during the call; a reply to addr goes
// back to where the datagram came from.
type DatagramHandler interface {
	OnDatagram(e *Endpoint, data []byte, addr netip.AddrPort)
}

// DatagramErrorHandler is implemented by handlers told of datagrams that
// were dropped: err is a *TruncatedError (errors.Is(err, ErrTruncated)).
type DatagramErrorHandler interface {
	OnDatagramError(e *Endpoint, addr netip.AddrPort, err error)
}

// NopHandler does nothing; embed it to implement only some callbacks.
type NopHandler struct{}

func (NopHandler) OnOpen(*Conn)         {}
func (NopHandler) OnRecv(*Conn, []byte) {}
func (NopHandler) OnSend(*Conn, int)    {}
func (NopHandler) OnClose(*Conn, error) {}

func maskFor(h Handler) EventMask {
	m := MaskSend
	if _, ok := h.(DrainHandler); ok {
		m |= MaskDrain
	}
	if _, ok := h.(EOFHandler); ok {
		m |= MaskEOF
	}
	return m
}

// dispatch hands one event to h.
func dispatch(h Handler, ev *Event) {
	switch ev.Kind {
	case EventAccept, EventConnect:
		h.OnOpen(ev.Conn)
	case EventRecv:
		h.OnRecv(ev.Conn, ev.Data)
	case EventSend:
		h.OnSend(ev.Conn, ev.N)
	case EventDrain:
		h.(DrainHandler).OnDrain(ev.Conn)
	case EventEOF:
		h.(EOFHandler).OnEOF(ev.Conn)
	case EventClose:
		h.OnClose(ev.Conn, ev.Err)
	case EventPost:
		if ph, ok := h.(PostHandler); ok {
			ph.OnPost(ev.Value)
		}
	case EventDatagram:
		if ev.Err != nil {
			if eh, ok := h.(DatagramErrorHandler); ok {
				eh.OnDatagramError(ev.Endpoint, ev.Addr, ev.Err)
			}
		} else if dh, ok := h.(DatagramHandler); ok {
			dh.OnDatagram(ev.Endpoint, ev.Data, ev.Addr)
		}
	case EventTimer:
		t := ev.Value.(*Timer)
		if t.Canceled() {
			return // its connection closed first
		}
		if th, ok := h.(TimerHandler); ok {
			th.OnTimer(t)
		} else if f, ok := t.Value().(func()); ok {
			f()
		}
	}
}
