package engine

import "time"

// Parking: a caller with an event loop of its own (pyiocp.aio on asyncio or
// uvloop) drives a worker from that loop's thread instead of blocking in
// it. It watches the port's descriptor (WaitFD) with the loop and runs a
// round (PollPark) when it turns readable; a round never blocks. A round
// that would have blocked, had it been a Poll, leaves the worker parked:
// sleeping stays set, so a request from another thread wakes the port as
// it wakes a blocked Wait, and the descriptor turns readable. The same
// pairing as a blocking round (inbox.go) keeps a request from being left
// behind a parked worker.

// WaitFD is a descriptor that turns readable when worker i has completions
// to harvest or was woken: the loop watches it between PollPark rounds.
// ok is false where the port has none (see poller.Poller.WaitFD): such a
// worker is driven by a thread that blocks in Poll or PollShared.
func (m *Manager) WaitFD(i int) (fd int, ok bool) { return m.workers[i].p.WaitFD() }

// PollPark runs one round of worker i for poller (PollShared's rules: the
// caller holds the worker until EndPoll, which it must call) and never
// blocks in the port. park says what comes next: 0, poll again at once
// (the round had events or work left); otherwise the worker is parked, and
// the caller polls again when WaitFD is readable or after park (negative:
// no deadline), whichever comes first. It waits for the worker if another
// thread holds it.
func (m *Manager) PollPark(i int, poller uint64, max int) (evs []Event, quit bool, park time.Duration) {
	w := m.workers[i]
	w.lock(-1)
	if w.released {
		return nil, true, 0
	}
	w.sleeping.Store(false) // awake until this round parks again
	w.parking, w.parked = true, 0
	evs, quit = w.poll(max, -1, poller)
	w.parking = false
	return evs, quit, w.parked
}

// settlePark ends a PollPark round that harvested nothing from the port:
// the worker is parked unless the round's timers made events or the
// worker quit. parked is then the time until its next deadline.
func (w *worker) settlePark() {
	w.parked = 0
	if len(w.out) == 0 && !w.quit {
		w.parked = w.waitTime(-1)
	}
	if w.parked == 0 {
		w.sleeping.Store(false)
	}
}
