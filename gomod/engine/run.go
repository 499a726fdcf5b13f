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
	for {
		evs, quit := m.Poll(w.idx, pollBatch, -1)
		for i := range evs {
			dispatch(m.h, &evs[i])
		}
		if quit {
			return
		}
	}
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
	for {
		evs, quit := m.Poll(i, pollBatch, -1)
		if m.h != nil {
			for j := range evs {
				dispatch(m.h, &evs[j])
			}
		}
		if quit {
			return
		}
	}
}

// Poll runs one round of worker i on the calling thread and returns its
// events (at most max; 0: no limit), valid until the worker's next Poll.
// quit reports that the worker has finished after Shutdown. It blocks up to
// timeout (negative: no limit) when nothing happens, but a round that was
// woken for the worker's own work (a Listen or Connect to apply, a log
// line for the binding to take) returns before it with no events: a caller
// that wants the whole timeout polls again. One thread at a time polls a
// worker; the Python binding's worker threads and Go's Run call it.
func (m *Manager) Poll(i, max int, timeout time.Duration) (evs []Event, quit bool) {
	w := m.workers[i]
	w.drive.Lock()
	defer w.drive.Unlock()
	if w.released {
		return nil, true
	}
	return w.poll(max, timeout)
}

// Release frees the ports once every worker has quit; it reports whether
// they all had. Close calls it; bindings call it after joining their threads.
func (m *Manager) Release() bool {
	for _, w := range m.workers {
		if !w.release() {
			return false
		}
	}
	m.release.Do(func() { close(m.closed) })
	return true
}

// Done is closed once the manager is closed and released.
func (m *Manager) Done() <-chan struct{} { return m.closed }
