package poller

// maxGather bounds the buffers one send gathers: what passes it waits for
// the next post (a send may write less than it was given anyway).
const maxGather = 64

// gather appends to dst an OS buffer descriptor, made by mk, for each
// non-empty slice of bufs, at most maxGather of them, and returns them with
// the bytes they cover. Every backend builds its send's list with it, so
// all keep one rule: empty slices are skipped, and a send of nothing
// completes at once.
func gather[T any](dst []T, bufs [][]byte, mk func(b []byte) T) ([]T, int) {
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if len(dst) == maxGather {
			break
		}
		dst = append(dst, mk(b))
		total += len(b)
	}
	return dst, total
}

// empty reports whether bufs hold no byte: a send of them completes at once.
func empty(bufs [][]byte) bool {
	for _, b := range bufs {
		if len(b) > 0 {
			return false
		}
	}
	return true
}
