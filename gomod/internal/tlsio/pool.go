package tlsio

import "sync"

// Pool runs handshakes on at most its size of goroutines; more wait in
// order. An idle pool has no goroutine.
type Pool struct {
	mu      sync.Mutex
	size    int
	running int
	queue   []func()
}

// NewPool makes a pool of at most size goroutines (at least 1).
func NewPool(size int) *Pool { return &Pool{size: max(size, 1)} }

// Go runs f on a goroutine of the pool, now or once one is free; it never
// waits.
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

func (p *Pool) run(f func()) {
	for f != nil {
		f()
		p.mu.Lock()
		f = nil
		if len(p.queue) > 0 {
			f = p.queue[0]
			p.queue[0] = nil
			p.queue = p.queue[1:]
		} else {
			p.running--
		}
		p.mu.Unlock()
	}
}

// Running is how many of its goroutines run now.
func (p *Pool) Running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}
