package engine

import (
	"bytes"
	"math/rand"
	"testing"
)

// TestByteQueueModel checks byteQueue against bytes.Buffer under random
// appends, partial consumes (as sends complete) and reads.
func TestByteQueueModel(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	var q byteQueue
	var model bytes.Buffer
	for step := 0; step < 4000; step++ {
		switch rng.Intn(3) {
		case 0:
			p := make([]byte, rng.Intn(3*chunkSize))
			rng.Read(p)
			q.append(p)
			model.Write(p)
		case 1:
			views := q.views(nil, 1+rng.Intn(maxSendViews))
			var joined []byte
			for _, v := range views {
				joined = append(joined, v...)
			}
			if !bytes.HasPrefix(model.Bytes(), joined) {
				t.Fatalf("step %d: views are not the queue's front", step)
			}
			n := 0
			if len(joined) > 0 {
				n = rng.Intn(len(joined) + 1)
			}
			q.consume(n)
			model.Next(n)
		case 2:
			p := make([]byte, rng.Intn(2*chunkSize))
			n := q.read(p)
			want := model.Next(len(p))
			if !bytes.Equal(p[:n], want) {
				t.Fatalf("step %d: read differs", step)
			}
		}
		if q.len() != model.Len() {
			t.Fatalf("step %d: len %d, model %d", step, q.len(), model.Len())
		}
	}
	q.reset()
	if q.len() != 0 || len(q.chunks) != 0 {
		t.Fatal("reset left bytes")
	}
}

// TestByteQueueIdleHoldsNoChunk: a queue that drained gives its chunk back.
func TestByteQueueIdleHoldsNoChunk(t *testing.T) {
	var q byteQueue
	q.append([]byte("hello"))
	q.consume(5)
	if len(q.chunks) != 0 {
		t.Fatalf("%d chunks held by an empty queue", len(q.chunks))
	}
}

// TestByteQueueSmallSendsDoNotAllocate: the echo path (append one small
// message, write it, consume it) allocates nothing once warm.
func TestByteQueueSmallSendsDoNotAllocate(t *testing.T) {
	var q byteQueue
	msg := make([]byte, 64)
	views := make([][]byte, 0, maxSendViews)
	q.append(msg)
	q.consume(64)
	allocs := testing.AllocsPerRun(1000, func() {
		q.append(msg)
		views = q.views(views[:0], maxSendViews)
		q.consume(64)
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per message", allocs)
	}
}
