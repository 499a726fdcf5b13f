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
