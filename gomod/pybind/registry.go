package main

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// C holds no Go pointer, so it names a manager by a handle: a registry
// index plus a generation, checked on every call, so a handle kept past
// the manager's release fails cleanly instead of reaching a newer manager.
// The lookup is an atomic load, not a map lookup: send goes through it.
const maxManagers = 1 << 16

type entry struct {
	m   *engine.Manager
	gen uint32

	lmu       sync.Mutex
	listeners map[int64]*engine.Listener
	nextL     int64
	pools     map[int64]*engine.Pool // by handle (pool.go), under lmu as the listeners

	emu         sync.RWMutex               // guards the two below (udp.go)
	endpoints   map[int64]*engine.Endpoint // open endpoints by the handle C gave
	endpointIDs map[*engine.Endpoint]int64 // and back, for fill

	logmu   sync.Mutex
	logs    []string
	nlogs   atomic.Int32
	dropped int

	ticks []schedTick // by worker (schedtick.go)

	tmu         sync.Mutex               // guards the three below (timers.go)
	timers      map[uint64]*engine.Timer // pending timers by their value
	leftTimers  []uint64                 // pending when the workers quit, not yet taken
	timersTaken bool                     // leftTimers is filled: the workers have quit
}

const maxQueuedLogs = 256

var registry struct {
	mu    sync.Mutex
	slots [maxManagers]atomic.Pointer[entry]
	gens  [maxManagers]uint32
	free  []int
	used  int
}

func newEntry() *entry { return &entry{listeners: make(map[int64]*engine.Listener)} }

// register gives e (its manager set) a handle.
func register(e *entry) (int64, bool) {
	r := &registry
	r.mu.Lock()
	defer r.mu.Unlock()
	var idx int
	if n := len(r.free); n > 0 {
		idx = r.free[n-1]
		r.free = r.free[:n-1]
	} else if r.used < maxManagers {
		idx = r.used
		r.used++
	} else {
		return 0, false
	}
	r.gens[idx]++
	e.gen = r.gens[idx]
	r.slots[idx].Store(e)
	return int64(e.gen)<<16 | int64(idx), true
}

func lookup(h int64) *entry {
	idx := int(h & (maxManagers - 1))
	if h < 0 || idx >= maxManagers {
		return nil
	}
	e := registry.slots[idx].Load()
	if e == nil || int64(e.gen) != h>>16 {
		return nil
	}
	return e
}

func unregister(h int64) {
	r := &registry
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := lookup(h); e != nil {
		idx := int(h & (maxManagers - 1))
		r.slots[idx].Store(nil)
		r.free = append(r.free, idx)
	}
}

// log queues an engine log line for the Python side, which passes it to
// logging.getLogger("pyiocp") after the batch it came with.
func (e *entry) log(s string) {
	e.logmu.Lock()
	defer e.logmu.Unlock()
	if len(e.logs) >= maxQueuedLogs {
		e.dropped++
	} else {
		e.logs = append(e.logs, s)
	}
	e.nlogs.Store(int32(len(e.logs) + min(e.dropped, 1)))
}

func (e *entry) takeLog() (string, bool) {
	e.logmu.Lock()
	defer e.logmu.Unlock()
	if len(e.logs) == 0 {
		if e.dropped > 0 {
			n := e.dropped
			e.dropped = 0
			e.nlogs.Store(0)
			return strconv.Itoa(n) + " more log lines dropped", true
		}
		return "", false
	}
	s := e.logs[0]
	e.logs = e.logs[1:]
	e.nlogs.Store(int32(len(e.logs) + min(e.dropped, 1)))
	return s, true
}
