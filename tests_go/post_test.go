package engine_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

type postRecorder struct {
	engine.NopHandler
	mu  sync.Mutex
	got []any
}

func (p *postRecorder) OnPost(v any) {
	p.mu.Lock()
	p.got = append(p.got, v)
	p.mu.Unlock()
}

func TestPost(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := &postRecorder{}
		m, _ := serve(t, p, backend, engine.WithWorkers(3))
		type token struct{ n int }
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 250; i++ {
					if err := m.Post(&token{g*1000 + i}); err != nil {
						t.Error(err)
					}
				}
			}(g)
		}
		wg.Wait()
		eventually(t, "1000 posts", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.got) == 1000 })
		seen := map[int]bool{}
		p.mu.Lock()
		for _, v := range p.got {
			seen[v.(*token).n] = true
		}
		p.mu.Unlock()
		if len(seen) != 1000 {
			t.Errorf("%d distinct posts of 1000", len(seen))
		}
		m.Close(time.Second)
		if err := m.Post(1); !errors.Is(err, engine.ErrManagerClosed) {
			t.Errorf("post after close: %v", err)
		}
	})
}

// TestPostsBoundedPerRound: a flood of posts is applied a bounded number
// per round (the rest the next rounds, in order, without blocking), so
// other threads cannot starve the worker's own completions.
func TestPostsBoundedPerRound(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		m := newManager(t, nil, backend)
		defer m.Close(time.Second)
		const posts = 3000
		for i := 0; i < posts; i++ {
			m.Post(i)
		}
		var got []any
		rounds := 0
		for deadline := time.Now().Add(5 * time.Second); len(got) < posts && time.Now().Before(deadline); {
			evs, _ := m.Poll(0, 0, time.Second)
			if len(evs) > 1024 {
				t.Fatalf("one round applied %d posts", len(evs))
			}
			for _, ev := range evs {
				got = append(got, ev.Value)
			}
			rounds++
		}
		if len(got) != posts || rounds < 3 {
			t.Fatalf("%d posts in %d rounds", len(got), rounds)
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("post %d came as %v: out of order", i, v)
			}
		}
	})
}
