package engine

import (
	"sync"
	"time"
)

// Pool keeps outbound connections to one place open for reuse, as an HTTP
// client's transport does: Take hands out an idle one, or leave to dial a
// new one while fewer than its size are open; Release gives one back.
// The application dials (Manager.Connect or ConnectHost) and gives the
// connection to Adopt, so that a binding makes its own objects for it
// first. A connection that closes, busy or idle (the peer went away),
// leaves the pool at once; one idle longer than the pool's idle time is
// closed. All methods are safe from any thread; none blocks but Wait.
type Pool struct {
	m    *Manager
	size int
	idle time.Duration

	mu      sync.Mutex
	conns   map[*Conn]*pooled // every connection of the pool
	byID    map[uint64]*Conn  // the same, by id (Lookup)
	dialing int               // slots reserved by Take for a dial not yet adopted
	free    []*Conn           // idle and connected, the most recently released last
	changed chan struct{}     // closed (and replaced) whenever a connection comes or goes
	version uint64            // how many times changed was closed
	expiry  *time.Timer       // closes the idle connections past their time
	closed  bool
	stats   PoolStats
}

type pooled struct {
	ready     bool  // connected
	gone      bool  // closed: out of the pool
	err       error // why it closed (nil: a clean close)
	idle      bool  // in free, or to go there once connected
	idleSince time.Time
}

// PoolStats are a pool's figures.
type PoolStats struct {
	Open  int // connections open or connecting, busy or idle
	Idle  int // connected and waiting to be taken
	Waits int // Takes that found none idle and no room to dial
	Dials int // connections dialled for it
}

// NewPool makes a pool of up to size connections; idle ones are closed
// after idle (0: never).
func (m *Manager) NewPool(size int, idle time.Duration) (*Pool, error) {
	if size < 1 {
		return nil, &OptionError{"size", size, "must be at least 1"}
	}
	if idle < 0 {
		return nil, &OptionError{"idle_timeout", idle.Seconds(), "must not be negative"}
	}
	return &Pool{m: m, size: size, idle: idle, conns: map[*Conn]*pooled{}, byID: map[uint64]*Conn{},
		changed: make(chan struct{})}, nil
}

// Take returns an idle connection, now the caller's; or dial true: a slot
// is reserved for a connection the caller dials and gives to Adopt (nil
// if the dial failed). With neither, every slot is busy: Wait (with the
// Version read before the Take), then Take again. ErrClosed once the pool
// is closed.
func (p *Pool) Take() (c *Conn, dial bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false, ErrClosed
	}
	if n := len(p.free); n > 0 {
		c = p.free[n-1]
		p.free = p.free[:n-1]
		p.conns[c].idle = false
		return c, false, nil
	}
	if len(p.conns)+p.dialing < p.size {
		p.dialing++
		p.stats.Dials++
		return nil, true, nil
	}
	p.stats.Waits++
	return nil, false, nil
}

// Adopt takes c, dialled on a slot Take reserved, into the pool, busy (the
// caller's). A nil c gives the slot back.
func (p *Pool) Adopt(c *Conn) {
	p.mu.Lock()
	p.dialing--
	if c == nil {
		p.changedLocked()
		p.mu.Unlock()
		return
	}
	p.conns[c] = &pooled{}
	p.byID[c.id] = c
	p.mu.Unlock()
	// Either the worker sees c.pool, or this sees what the worker did.
	c.mu.Lock()
	c.pool = p
	opened, freed, err := c.opened, c.freed, c.finalErr
	c.mu.Unlock()
	switch {
	case freed:
		p.gone(c, err)
	case opened:
		p.connected(c)
	}
}

// Ready reports whether c's connect is over: done, or failed with err (a
// clean close before it connected is ErrClosed).
func (p *Pool) Ready(c *Conn) (done bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc := p.conns[c]
	switch {
	case pc == nil:
		return true, ErrClosed // never the pool's, or gone and forgotten
	case pc.gone:
		if pc.err == nil {
			return true, ErrClosed
		}
		return true, pc.err
	}
	return pc.ready, nil
}

// Version counts the pool's changes; Wait takes it, read before the Take
// or Ready that found nothing, so that a change in between is not missed.
func (p *Pool) Version() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version
}

// Wait blocks until the pool has changed since version (a connection
// came, went, was released or connected), or until deadline; false if
// the deadline passed first. A zero deadline waits for ever.
func (p *Pool) Wait(version uint64, deadline time.Time) bool {
	p.mu.Lock()
	if p.version != version {
		p.mu.Unlock()
		return true
	}
	ch := p.changed
	p.mu.Unlock()
	if deadline.IsZero() {
		<-ch
		return true
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// Release gives c back: idle once connected, or closed at once if the
// pool is closed. A closed connection is just forgotten. It reports false
// for a connection not the pool's, or already released.
func (p *Pool) Release(c *Conn) bool {
	p.mu.Lock()
	pc := p.conns[c]
	if pc == nil || pc.idle {
		p.mu.Unlock()
		return false
	}
	if pc.gone { // closed while it was out: nothing to keep
		p.forget(c)
		p.changedLocked()
		p.mu.Unlock()
		return true
	}
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return true
	}
	pc.idle = true
	if pc.ready {
		p.toFree(c, pc)
	}
	p.mu.Unlock()
	return true
}

// Close closes the idle connections, and each busy one when it is
// released; Take fails from now on. Idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	free := p.free
	p.free = nil
	if p.expiry != nil {
		p.expiry.Stop()
	}
	p.changedLocked()
	p.mu.Unlock()
	for _, c := range free {
		c.Close()
	}
}

// Stats returns the pool's figures.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Open = len(p.conns) + p.dialing
	s.Idle = len(p.free)
	return s
}

// connected is told by c's worker, or by Adopt, that c connected.
func (p *Pool) connected(c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc := p.conns[c]
	if pc == nil || pc.ready || pc.gone {
		return
	}
	pc.ready = true
	if pc.idle {
		p.toFree(c, pc)
	}
	p.changedLocked()
}

// gone is told by c's worker, or by Adopt, that c closed: it leaves the
// pool. Its record stays until Ready has reported it, for the caller
// waiting on its connect.
func (p *Pool) gone(c *Conn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc := p.conns[c]
	if pc == nil || pc.gone {
		return
	}
	pc.gone, pc.err = true, err
	if pc.idle {
		for i, f := range p.free {
			if f == c {
				p.free = append(p.free[:i], p.free[i+1:]...)
				break
			}
		}
	}
	if pc.ready || pc.idle {
		p.forget(c) // nobody waits on its connect
	}
	p.changedLocked()
}

// Forget drops the record of c, a connection whose failed connect the
// caller has seen through Ready.
func (p *Pool) Forget(c *Conn) {
	p.mu.Lock()
	if pc := p.conns[c]; pc != nil && pc.gone {
		p.forget(c)
		p.changedLocked()
	}
	p.mu.Unlock()
}

// Lookup is the pool's connection of this id, nil if none (a binding
// names connections by id).
func (p *Pool) Lookup(id uint64) *Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byID[id]
}

// forget drops c's record. Called with p.mu held.
func (p *Pool) forget(c *Conn) {
	delete(p.conns, c)
	delete(p.byID, c.id)
}

// toFree makes c idle and arms the expiry; in a closed pool it closes c
// instead. Called with p.mu held.
func (p *Pool) toFree(c *Conn, pc *pooled) {
	if p.closed {
		pc.idle = false
		c.Close() // its close takes it out of the pool (gone)
		return
	}
	pc.idleSince = time.Now()
	p.free = append(p.free, c)
	p.changedLocked()
	if p.idle > 0 && p.expiry == nil {
		p.expiry = time.AfterFunc(p.idle, p.expire)
	}
}

// expire closes the connections idle for longer than the pool's idle
// time, and runs again when the next one's time comes: one runtime timer
// per pool, not one per connection.
func (p *Pool) expire() {
	p.mu.Lock()
	now := time.Now()
	var old []*Conn
	keep := p.free[:0]
	for _, c := range p.free {
		if pc := p.conns[c]; now.Sub(pc.idleSince) >= p.idle {
			old = append(old, c)
			pc.idle = false
			continue
		}
		keep = append(keep, c)
	}
	clear(p.free[len(keep):])
	p.free = keep
	p.expiry = nil
	if len(p.free) > 0 && !p.closed {
		next := p.idle
		for _, c := range p.free {
			next = min(next, p.idle-now.Sub(p.conns[c].idleSince))
		}
		p.expiry = time.AfterFunc(next, p.expire)
	}
	p.mu.Unlock()
	for _, c := range old {
		c.Close() // its close takes it out of the pool (gone)
	}
}

// changedLocked wakes every Wait. Called with p.mu held.
func (p *Pool) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
	p.version++
}
