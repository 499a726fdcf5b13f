package engine

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

const (
	completionsPerWait = 128
	maxSendViews       = 64       // chunks gathered into one send
	maxRead            = 64 << 10 // bytes one receive may take
	spillSize          = 64 << 10 // delivery memory for data held while paused
)

// worker is one completion port and the connections assigned to it. One
// thread at a time drives it through poll: a Python worker thread, a Go
// goroutine locked to its thread, the thread closing the manager, or one
// of several threads polling it (pollers.go). That thread harvests the
// completions and runs the handlers: no thread hop.
type worker struct {
	m   *Manager
	idx int
	p   poller.Poller

	inbox    inbox
	sleeping atomic.Bool   // in (or about to enter) a blocking Wait, or parked
	drive    chan struct{} // full while a thread holds the worker (a lock that can time out)
	parking  bool          // this round is PollPark's: it never blocks (park.go)
	parked   time.Duration // PollPark's answer: 0 not parked, else the next deadline (negative: none)

	batch        []poller.Completion
	out          []Event  // this round's events
	pos          int      // out[pos:] not yet returned
	handed       int      // out[handed:pos] were returned by the last take
	sink         frameOut // where framed connections' frames go (framing_conn.go)
	rearm        []*Conn  // received last round: post the next receive
	resume       []*Conn  // held data to deliver
	freeing      []*Conn  // closed last round: free their slots now
	holds        []*Conn  // connections a poller holds (pollers.go)
	undefer      []*Conn  // no longer held, with deferred events to deliver
	ndeferred    int      // events deferred and not yet delivered
	spent        [][]byte // the memory of deferred bytes handed out this round
	iov          [][]byte
	now          int64
	timers       connTimers
	apptimers    minHeap[*Timer] // the application's (timer.go)
	timerCancels atomic.Int64    // cancelled timers still on apptimers or on their way to it
	conns        connList
	listeners    []*Listener
	nlisteners   int
	endpoints    []*Endpoint // by token index (udp_worker.go)
	nendpoints   int
	attempts     []*attempt // connect attempts by token (race.go)
	freeAttempts []int
	shutdown     bool
	shutdownAt   int64
	deadlineHit  bool
	quit         bool
	lost         bool // the port is lost and closed (lost.go)
	released     bool
	spill        spillArena
	plain        spillArena // TLS plaintext (tls.go); allocated with the first TLS connection
	stats        workerStats
}

func newWorker(m *Manager, idx int, p poller.Poller) (*worker, error) {
	w := &worker{
		m:     m,
		idx:   idx,
		p:     p,
		drive: make(chan struct{}, 1),
		batch: make([]poller.Completion, completionsPerWait),
		iov:   make([][]byte, 0, maxSendViews),
	}
	w.sink.w = w
	if err := w.spill.init(spillSize); err != nil {
		return nil, err
	}
	return w, nil
}

// poll runs one round for poller pid and returns at most max events, valid
// until the next round. A round first does what the last round's handlers
// asked for (sends, closes, the next receives), then harvests completions,
// blocking up to timeout (negative: no limit) when there is nothing to
// report. Events left from the last round are handed out first.
func (w *worker) poll(max int, timeout time.Duration, pid uint64) ([]Event, bool) {
	w.release(pid)
	if w.pos < len(w.out) {
		if evs, quit := w.next(max, pid); len(evs) > 0 || quit {
			return evs, quit
		}
		// What was left belonged to connections other pollers hold.
	}
	clear(w.out) // hold no closed connection or payload past its round
	w.out = w.out[:0]
	w.pos, w.handed = 0, 0
	if w.quit {
		return nil, true
	}
	w.now = w.m.clock()
	w.spill.reset()
	w.plain.reset()
	w.freeSpent()
	w.freeSlots()
	w.applyInbox()
	w.undeferAll()
	w.rearmAll()
	w.deliverHeld()
	// Timers fire only after this round's completions are harvested (the
	// Wait does not block while one is due): after a stall of the thread,
	// bytes that came meanwhile count as activity before idle_timeout or
	// accept_timeout judges a connection.
	if w.checkQuit() {
		return w.next(max, pid)
	}

	if w.lost {
		return w.next(max, pid) // nothing to wait on: what is left is handed out
	}
	wait := w.waitTime(timeout)
	if len(w.out) > 0 {
		wait = 0
	}
	if wait != 0 {
		w.sleeping.Store(true)
		if w.inbox.pending.Load() > 0 {
			wait = 0
		}
	}
	block := wait
	if w.parking {
		block = 0 // the caller waits on the port's descriptor instead (park.go)
	}
	n, err := w.p.Wait(w.batch, block)
	parking := w.parking && wait != 0 && n == 0 && err == nil && w.p.Quiet()
	if !parking {
		w.sleeping.Store(false)
	}
	lost := errors.Is(err, poller.ErrPortLost)
	if err != nil && !lost {
		w.stats.waitErrors.Add(1)
		w.m.logf("worker %d: wait: %v", w.idx, err)
		time.Sleep(10 * time.Millisecond)
	}
	w.now = w.m.clock()
	for i := 0; i < n; i++ {
		w.complete(&w.batch[i])
	}
	clear(w.batch[:n])
	w.stats.completions.Add(uint64(n))
	if lost {
		w.abandon(err)
		return w.next(max, pid)
	}
	w.expire()
	w.checkQuit()
	if parking {
		w.settlePark()
	}
	return w.next(max, pid)
}

func (w *worker) next(max int, pid uint64) ([]Event, bool) {
	evs := w.take(max, pid)
	return evs, w.quit && w.pos == len(w.out)
}

// emit reports ev, or defers it while its connection is held by a poller.
func (w *worker) emit(ev Event) {
	if c := ev.Conn; c != nil && c.blocked() {
		w.deferEvent(c, ev)
		return
	}
	w.out = append(w.out, ev)
}

// freeSlots frees the slots of the connections whose close was handed out
// last round (a deferred close keeps its slot until it is).
func (w *worker) freeSlots() {
	keep := w.freeing[:0]
	for _, c := range w.freeing {
		if len(c.deferred) > 0 {
			keep = append(keep, c)
			continue
		}
		w.m.table.remove(c)
	}
	clear(w.freeing[len(keep):])
	w.freeing = keep
}

func (w *worker) applyInbox() {
	reqs := w.inbox.take(inboxRound)
	if len(reqs) > 0 {
		// The round's clock was read before the take, and these requests
		// may have been made since: long since, if this thread was
		// preempted or waited for a lock in between. What they start (an
		// adopted connection's accept_timeout, a connect's timeout, a
		// write's idle time) must count from after they were made.
		w.now = w.m.clock()
	}
	for i := range reqs {
		w.apply(&reqs[i])
	}
	w.inbox.done(reqs)
}

func (w *worker) apply(r *request) {
	switch r.kind {
	case reqFlush:
		w.flush(r.c)
	case reqClose:
		w.closeGracefully(r.c)
	case reqAbort:
		w.abort(r.c, nil, true)
	case reqResume:
		w.resume = append(w.resume, r.c)
	case reqAdopt:
		w.adopt(r.c)
	case reqTLSReady:
		w.tlsReady(r.c)
	case reqStartTLS:
		w.upgrade(r.c)
	case reqConnect:
		w.startConnect(r.c, r.t)
	case reqListen:
		w.startListen(r.v.(*Listener))
	case reqCloseListener:
		w.closeListener(r.v.(*Listener))
	case reqBindUDP:
		w.startEndpoint(r.v.(*Endpoint))
	case reqFlushUDP:
		w.flushEndpoint(r.v.(*Endpoint))
	case reqCloseUDP:
		w.closeEndpoint(r.v.(*Endpoint))
	case reqPost:
		w.emit(Event{Kind: EventPost, Value: r.v})
	case reqShutdown:
		w.beginShutdown(r.t)
	case reqRelease:
		w.release(r.v.(uint64))
	case reqTimer:
		w.addTimer(r.v.(*Timer))
	case reqResolved:
		w.applyResolved(r.c, r.v.(resolved))
	case reqFraming:
		f, _ := r.v.(Framing)
		w.reframe(r.c, f, -1)
	case reqIdleTimeout:
		w.setIdleTimeout(r.c, time.Duration(r.t))
	}
}

func (w *worker) complete(cpl *poller.Completion) {
	if cpl.Token&endpointBits == endpointBits {
		w.endpointDone(cpl)
		return
	}
	if cpl.Token&listenerBit != 0 {
		w.acceptDone(cpl)
		return
	}
	if cpl.Token&raceBit != 0 {
		w.attemptDone(cpl)
		return
	}
	c := w.m.table.occupant(uint32(cpl.Token))
	if c == nil || !c.ownsToken(cpl.Token) || c.w != w {
		// A completion for a connection already freed would break the
		// exactly-once rule; it is counted (tests assert zero) and dropped.
		w.stats.stray.Add(1)
		return
	}
	switch cpl.Op {
	case poller.OpRecv:
		w.recvDone(c, cpl)
	case poller.OpSend:
		w.sendDone(c, cpl)
	case poller.OpConnect:
		w.connectDone(c, cpl)
	}
}

// waitTime bounds the caller's timeout by the earliest deadline.
func (w *worker) waitTime(timeout time.Duration) time.Duration {
	limit := func(at int64) {
		d := time.Duration(max(at-w.now, 0))
		if timeout < 0 || d < timeout {
			timeout = d
		}
	}
	if c := w.timers.peek(); c != nil {
		limit(c.deadline)
	}
	if at := w.nextTimer(); at != 0 {
		limit(at)
	}
	if w.shutdown && !w.deadlineHit {
		limit(w.shutdownAt)
	}
	for _, l := range w.listeners {
		if l != nil && l.retrying > 0 {
			limit(l.retryAt)
		}
		if l != nil && l.sweepEvery > 0 {
			limit(l.sweepAt)
		}
	}
	return timeout
}

// expire fires the timers that are due.
func (w *worker) expire() {
	if w.shutdown && !w.deadlineHit && w.now >= w.shutdownAt {
		w.deadlineHit = true
		for c := w.conns.head; c != nil; {
			next := c.next
			w.abort(c, ErrCloseTimeout, true)
			c = next
		}
		for _, e := range w.endpoints {
			if e != nil {
				w.cancelEndpoint(e) // what is still queued is dropped
			}
		}
	}
	for {
		c := w.timers.peek()
		if c == nil || c.deadline > w.now {
			break
		}
		w.timers.remove(c)
		w.fire(c)
	}
	w.fireTimers()
	w.retryAccepts()
	w.sweepAccepts()
}

// checkQuit ends the worker once shutdown has closed everything it owned.
// Requests that arrive after that find the inbox closed (enqueue fails);
// those already queued are settled here.
func (w *worker) checkQuit() bool {
	if !w.shutdown || w.quit || w.conns.n > 0 || w.nlisteners > 0 || w.nendpoints > 0 || w.ndeferred > 0 {
		return w.quit
	}
	for _, r := range w.inbox.close() {
		w.apply(&r)
	}
	w.quit = w.conns.n == 0 && w.ndeferred == 0
	return w.quit
}

func (w *worker) beginShutdown(deadline int64) {
	if w.shutdown {
		return
	}
	w.shutdown = true
	w.shutdownAt = deadline
	for _, l := range w.listeners {
		if l != nil {
			w.closeListener(l)
		}
	}
	for _, e := range w.endpoints {
		if e != nil {
			w.closeEndpoint(e)
		}
	}
	for c := w.conns.head; c != nil; {
		next := c.next
		if c.state == stateConnecting {
			w.abort(c, ErrManagerClosed, true)
		} else {
			w.closeGracefully(c)
		}
		c = next
	}
}

// lock takes the worker for the calling thread, waiting up to timeout
// (negative: no limit); false if it passed first.
func (w *worker) lock(timeout time.Duration) bool {
	select {
	case w.drive <- struct{}{}:
		return true
	default:
	}
	if timeout == 0 {
		return false
	}
	if timeout < 0 {
		w.drive <- struct{}{}
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case w.drive <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func (w *worker) unlock() { <-w.drive }

// releasePort frees the port once the worker has quit. It never waits for
// a thread still polling (a binding may call it holding its interpreter
// lock).
func (w *worker) releasePort() bool {
	if !w.lock(0) {
		return false
	}
	defer w.unlock()
	if !w.quit {
		return false
	}
	if !w.released {
		w.released = true
		for _, c := range w.freeing {
			w.m.table.remove(c)
		}
		w.freeing = nil
		w.holds = nil
		w.freeSpent()
		if !w.lost {
			w.p.Close()
		}
		w.spill.free()
		w.plain.free()
	}
	return true
}

// connList is a worker's connections, linked through the Conn.
type connList struct {
	head *Conn
	n    int
}

func (l *connList) push(c *Conn) {
	c.prev = nil
	c.next = l.head
	if l.head != nil {
		l.head.prev = c
	}
	l.head = c
	l.n++
}

func (l *connList) remove(c *Conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
	l.n--
}
