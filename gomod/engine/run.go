package engine

import (
	"errors"
	"runtime"
	"time"
)

// ErrNoHandler: Run and Start need a Handler (use Poll without one).
var ErrNoHandler = errors.New("manager has no handler")

// ErrStarted: Run or Start was already called.
var ErrStarted = errors.New("manager already started")

// pollBatch is how many events a Go worker takes per round.
const pollBatch = 256

// Start runs every worker on its own goroutine, locked to an OS thread,
// calling the handler; it returns at once. Close stops them.
func (m *Manager) Start() error {
	if m.h == nil {
		return ErrNoHandler
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing.Load() {
		return ErrManagerClosed
	}
	if m.started {
		return ErrStarted
	}
	m.started = true
	for _, w := range m.workers {
		m.runWG.Add(1)
		go m.runWorker(w)
	}
	return nil
}

// Run is Start, then waits until the manager is closed.
func (m *Manager) Run() error {
	if err := m.Start(); err != nil {
		return err
	}
	<-m.closed
	return nil
}

func (m *Manager) runWorker(w *worker) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer m.runWG.Done()
	for m.dispatchRound(w.idx) {
	}
}

// dispatchRound polls worker i as its one driver and hands the events to
// the handler, if any, holding the worker until they are handled; false
// once the worker has quit.
func (m *Manager) dispatchRound(i int) bool {
	evs, quit, _ := m.PollShared(i, 0, pollBatch, -1)
	if m.h != nil {
		for j := range evs {
			dispatch(m.h, &evs[j])
		}
	}
	m.EndPoll(i)
	return !quit
}

// Close shuts the manager down gracefully (see Shutdown) and returns once
// every worker has quit and the ports are released. Workers nobody runs are
// driven to the end by the calling goroutine, with the handler called if
// there is one. Do not call it from a handler (it would wait for itself):
// call Shutdown there. Idempotent.
func (m *Manager) Close(timeout time.Duration) error {
	m.Shutdown(timeout)
	m.mu.RLock()
	started := m.started
	m.mu.RUnlock()
	if started {
		m.runWG.Wait()
	} else {
		for _, w := range m.workers {
			m.Drain(w.idx)
		}
	}
	m.Release()
	return nil
}

// Drain drives worker i until it quits, calling the handler, if any, for
// its events. For bindings closing a manager whose workers nobody runs.
func (m *Manager) Drain(i int) {
	runtime.LockOSThread() // a worker is driven from one thread (WithFixedThreads)
	defer runtime.UnlockOSThread()
	for m.dispatchRound(i) {
	}
}

// Poll runs one round of worker i on the calling thread and returns its
// events (at most max; 0: no limit), valid until the worker's next round.
// quit reports that the worker has finished after Shutdown. It blocks up to
// timeout (negative: no limit) when nothing happens, but a round that was
// woken for the worker's own work (a Listen or Connect to apply, a log
// line for the binding to take) returns before it with no events: a caller
// that wants the whole timeout polls again. Poll is for the one thread that
// drives a worker (Run does); several threads polling one worker use
// PollShared. Poll takes over from them: it releases their connections.
func (m *Manager) Poll(i, max int, timeout time.Duration) (evs []Event, quit bool) {
	evs, quit, _ = m.PollShared(i, 0, max, timeout)
	m.EndPoll(i)
	return evs, quit
}

// PollShared is Poll for a thread among several polling worker i at once,
// as threads of a pool call GetQueuedCompletionStatus on one port. poller
// names the calling thread: any value but 0, the same on each of its calls
// (0 is Poll's single driver). Each event goes to one caller; a
// connection's events go to one poller at a time, in order: once poller P
// took some, the connection's next events (and its next receive) wait until
// P polls again, or ReleasePoller(P).
//
// If held is true, the caller holds the worker: its events, Data included,
// stay valid, and no other thread polls worker i, until the caller calls
// EndPoll(i), which it must, and soon. held is false when timeout passed
// while another thread held the worker (then evs is empty and there is
// nothing to end).
func (m *Manager) PollShared(i int, poller uint64, max int, timeout time.Duration) (evs []Event, quit, held bool) {
	w := m.workers[i]
	var start time.Time
	if timeout > 0 {
		start = time.Now()
	}
	if !w.lock(timeout) {
		return nil, false, false
	}
	if w.released {
		return nil, true, true
	}
	if timeout > 0 {
		timeout -= min(time.Since(start), timeout) // the wait for the worker counts
	}
	evs, quit = w.poll(max, timeout, poller)
	return evs, quit, true
}

// EndPoll ends the hold PollShared gave on worker i.
func (m *Manager) EndPoll(i int) { m.workers[i].unlock() }

// ReleasePoller lets go of the connections poller holds on worker i, for a
// thread that stops polling: their waiting events go to the other pollers.
// Safe from any thread; it takes effect at the worker's next round.
func (m *Manager) ReleasePoller(i int, poller uint64) {
	if poller != 0 {
		m.workers[i].enqueue(request{kind: reqRelease, v: poller})
	}
}

// Release frees the ports once every worker has quit; it reports whether
// they all had. Close calls it; bindings call it after joining their threads.
func (m *Manager) Release() bool {
	for _, w := range m.workers {
		if !w.releasePort() {
			return false
		}
	}
	m.release.Do(func() { close(m.closed) })
	return true
}

// Done is closed once the manager is closed and released.
func (m *Manager) Done() <-chan struct{} { return m.closed }
