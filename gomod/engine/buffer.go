package engine

import "sync"

// chunkSize is the unit of send and hold buffers. Buffers come from a pool
// and go back as soon as their bytes are written, so an idle connection
// holds none.
const chunkSize = 16 << 10

var chunkPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// byteQueue is a FIFO of bytes in pooled chunks. Appending never moves or
// rewrites bytes already queued, so a send posted on the front bytes stays
// valid while other threads append behind it.
type byteQueue struct {
	chunks []*[chunkSize]byte
	head   int // first unread byte in chunks[0]
	tail   int // first free byte in the last chunk
	n      int // bytes queued
}

func (q *byteQueue) len() int { return q.n }

func (q *byteQueue) append(p []byte) {
	for len(p) > 0 {
		if len(q.chunks) == 0 || q.tail == chunkSize {
			q.chunks = append(q.chunks, chunkPool.Get().(*[chunkSize]byte))
			q.tail = 0
		}
		k := copy(q.chunks[len(q.chunks)-1][q.tail:], p)
		q.tail += k
		q.n += k
		p = p[k:]
	}
}

// views appends to dst the queued bytes, in order, as at most max slices.
func (q *byteQueue) views(dst [][]byte, max int) [][]byte {
	for i, c := range q.chunks {
		if i == max {
			break
		}
		lo, hi := 0, chunkSize
		if i == 0 {
			lo = q.head
		}
		if i == len(q.chunks)-1 {
			hi = q.tail
		}
		if hi > lo {
			dst = append(dst, c[lo:hi:hi])
		}
	}
	return dst
}

// read copies up to len(p) front bytes into p and drops them.
func (q *byteQueue) read(p []byte) int {
	done := 0
	for done < len(p) && q.n > 0 {
		hi := chunkSize
		if len(q.chunks) == 1 {
			hi = q.tail
		}
		k := copy(p[done:], q.chunks[0][q.head:hi])
		done += k
		q.consume(k)
	}
	return done
}

// consume drops the first n bytes, returning emptied chunks to the pool.
func (q *byteQueue) consume(n int) {
	q.n -= n
	for n > 0 {
		avail := chunkSize - q.head
		if len(q.chunks) == 1 {
			avail = q.tail - q.head
		}
		if n < avail {
			q.head += n
			return
		}
		n -= avail
		q.dropFront()
	}
	if q.n == 0 && len(q.chunks) == 1 && q.head == q.tail {
		q.dropFront()
	}
}

// dropFront recycles the first chunk. The slice keeps its backing array,
// so a connection sending one small message at a time allocates nothing.
func (q *byteQueue) dropFront() {
	chunkPool.Put(q.chunks[0])
	last := len(q.chunks) - 1
	copy(q.chunks, q.chunks[1:])
	q.chunks[last] = nil
	q.chunks = q.chunks[:last]
	q.head = 0
	if last == 0 {
		q.tail = 0
	}
}

// reset drops everything queued.
func (q *byteQueue) reset() {
	for len(q.chunks) > 0 {
		q.dropFront()
	}
	q.n = 0
}

// appendQueue moves o's bytes behind q's, leaving o empty.
func (q *byteQueue) appendQueue(o *byteQueue) {
	if q.n == 0 {
		q.reset()
		*q, *o = *o, byteQueue{}
		return
	}
	for _, b := range o.views(nil, len(o.chunks)) {
		q.append(b)
	}
	o.reset()
}
