package engine_test

import (
	"math/rand"
	"sync"
	"testing"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

func TestEchoOneClient(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		_, addr := serve(t, echoHandler{}, backend)
		c := dial(t, addr)
		rng := rand.New(rand.NewSource(1))
		for _, size := range []int{1, 2, 63, 64, 4096, 16 << 10, 16<<10 + 1, 200 << 10, 1 << 20} {
			msg := make([]byte, size)
			rng.Read(msg)
			if err := roundTrip(c, msg); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestEcho200Clients(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		_, addr := serve(t, echoHandler{}, backend, engine.WithWorkers(2))
		var wg sync.WaitGroup
		for i := 0; i < 200; i++ {
			c := dial(t, addr)
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				rng := rand.New(rand.NewSource(int64(i)))
				for j := 0; j < 5; j++ {
					msg := make([]byte, 1+rng.Intn(32<<10))
					rng.Read(msg)
					if err := roundTrip(c, msg); err != nil {
						t.Error(err)
						return
					}
				}
			}(i)
		}
		wg.Wait()
	})
}
