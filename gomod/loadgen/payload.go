package loadgen

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// A message is an 8-byte header followed by a slice of a shared pseudo-random
// pattern. The header is a hash of (connection, sequence), so every message of
// a run differs and an echo that is reordered, duplicated, truncated or
// corrupted does not compare equal; the body offset comes from the header, so
// the body moves too. Messages shorter than 8 bytes keep the header's first
// bytes only. Nothing is stored per message: the expected bytes are rebuilt
// when the echo arrives.

const (
	headerLen  = 8
	patternPad = 256 // body offsets range over 0..patternPad-1
)

// payload builds and checks the messages of one connection.
type payload struct {
	key     uint64 // per-connection hash seed
	pattern []byte // shared, read-only; len = size + patternPad
}

func newPattern(size int) []byte {
	p := make([]byte, size+patternPad)
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i < len(p); i += 8 {
		x = splitmix64(x)
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], x)
		copy(p[i:], w[:])
	}
	return p
}

func newPayload(conn int, pattern []byte) payload {
	return payload{key: splitmix64(uint64(conn) + 1), pattern: pattern}
}

// parts returns the header bytes of message seq and the body's offset in
// the pattern.
func (p payload) parts(seq uint64) (head [headerLen]byte, off int) {
	h := splitmix64(p.key + seq)
	binary.LittleEndian.PutUint64(head[:], h)
	return head, int(h % patternPad)
}

// build writes message seq into buf.
func (p payload) build(buf []byte, seq uint64) {
	head, off := p.parts(seq)
	n := copy(buf, head[:])
	copy(buf[n:], p.pattern[off:off+len(buf)-n])
}

// check compares buf with message seq and describes the first difference.
func (p payload) check(buf []byte, seq uint64) error {
	head, off := p.parts(seq)
	n := min(headerLen, len(buf))
	body := p.pattern[off : off+len(buf)-n]
	if bytes.Equal(buf[:n], head[:n]) && bytes.Equal(buf[n:], body) {
		return nil
	}
	for i, got := range buf {
		want := head[min(i, headerLen-1)]
		if i >= n {
			want = body[i-n]
		}
		if got != want {
			return fmt.Errorf("message %d byte %d: got 0x%02x, want 0x%02x", seq, i, got, want)
		}
	}
	return nil
}

// splitmix64 is a fast, well-mixed 64-bit hash (Steele et al.).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
