package tlsio

import "sync"

// Pool runs handshakes on goroutines, at most size of them working at
// once; more wait in order. A handshake waiting for the peer's next bytes
// is not working: it gives its slot back meanwhile (Park) and takes one
// again when they come (Unpark), so peers that connect and stay silent, or
// trickle their handshake, hold no slot until their timeout while others'
// handshakes wait behind them. An idle pool has no goroutine.
type Pool struct {
	mu      sync.Mutex
	size    int
	running int             // slots held
	queue   []func()        // handshakes not started
	resume  []chan struct{} // parked goroutines whose input came, waiting for a slot: served first
}

// NewPool makes a pool of at most size working goroutines (at least 1).
func NewPool(size int) *Pool { return &Pool{size: max(size, 1)} }

// Go runs f on a goroutine of the pool, now or once a slot is free; it
// never waits.
func (p *Pool) Go(f func()) {
	p.mu.Lock()
	if p.running == p.size {
		p.queue = append(p.queue, f)
		p.mu.Unlock()
		return
	}
	p.running++
	p.mu.Unlock()
	go p.run(f)
}

// run runs f, then the queued handshakes its slot goes to.
func (p *Pool) run(f func()) {
	for f != nil {
		f()
		p.mu.Lock()
		f = p.handOver()
		p.mu.Unlock()
	}
}

// handOver gives up the caller's slot (p.mu held): to a parked goroutine
// waiting for one, or else to the next queued handshake, which it returns
// for the caller to run; else the slot is free.
func (p *Pool) handOver() func() {
	if len(p.resume) > 0 {
		ch := p.resume[0]
		p.resume[0] = nil
		p.resume = p.resume[1:]
		close(ch) // the slot is its now: running stays
		return nil
	}
	if len(p.queue) > 0 {
		f := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		return f
	}
	p.running--
	return nil
}

// Park gives up the calling goroutine's slot while it waits for input; it
// never waits.
func (p *Pool) Park() {
	p.mu.Lock()
	f := p.handOver()
	p.mu.Unlock()
	if f != nil {
		go p.run(f)
	}
}

// Unpark takes a slot back for a parked goroutine, waiting for one.
func (p *Pool) Unpark() {
	p.mu.Lock()
	if p.running < p.size {
		p.running++
		p.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	p.resume = append(p.resume, ch)
	p.mu.Unlock()
	<-ch
}

// Running is how many slots are held now.
func (p *Pool) Running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}
