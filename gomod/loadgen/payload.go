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

// Framings of a message (Config.Framing). No message has a "\n" but a
// line's last byte, so either framing fits the same pattern.
const (
	FramingLines  = "lines"
	FramingLength = "length"
	lengthHeader  = 4
)

// payload builds and checks the messages of one connection.
type payload struct {
	key     uint64 // per-connection hash seed
	pattern []byte // shared, read-only; len = size + patternPad
	framing string
}

// framed is p with its messages framed by f.
func (p payload) framed(f string) payload {
	p.framing = f
	return p
}

// frame splits a message buffer into its frame bytes (a length header
// before, a terminator after) and the hashed part between.
func (p payload) frame(buf []byte) (before, mid, after []byte) {
	switch p.framing {
	case FramingLines:
		return nil, buf[:len(buf)-1], buf[len(buf)-1:]
	case FramingLength:
		return buf[:lengthHeader], buf[lengthHeader:], nil
	}
	return nil, buf, nil
}

// framing writes the frame bytes of a message of n bytes.
func (p payload) frameBytes(before, after []byte, n int) {
	if p.framing == FramingLength {
		binary.BigEndian.PutUint32(before, uint32(n-lengthHeader))
	}
	if len(after) > 0 {
		after[0] = '\n'
	}
}

func newPattern(size int) []byte {
	p := make([]byte, size+patternPad)
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i < len(p); i += 8 {
		x = splitmix64(x)
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], noNewline(x))
		copy(p[i:], w[:])
	}
	return p
}

// noNewline turns every "\n" byte of x into another byte.
func noNewline(x uint64) uint64 {
	for i := 0; i < 64; i += 8 {
		if byte(x>>i) == '\n' {
			x ^= 0x80 << i
		}
	}
	return x
}

func newPayload(conn int, pattern []byte) payload {
	return payload{key: splitmix64(uint64(conn) + 1), pattern: pattern}
}

// parts returns the header bytes of message seq and the body's offset in
// the pattern.
func (p payload) parts(seq uint64) (head [headerLen]byte, off int) {
	h := splitmix64(p.key + seq)
	binary.LittleEndian.PutUint64(head[:], noNewline(h))
	return head, int(h % patternPad)
}

// build writes message seq into buf.
func (p payload) build(buf []byte, seq uint64) {
	before, mid, after := p.frame(buf)
	p.frameBytes(before, after, len(buf))
	head, off := p.parts(seq)
	n := copy(mid, head[:])
	copy(mid[n:], p.pattern[off:off+len(mid)-n])
}

// check compares buf with message seq and describes the first difference.
func (p payload) check(buf []byte, seq uint64) error {
	before, mid, after := p.frame(buf)
	var want [lengthHeader]byte
	var term [1]byte
	p.frameBytes(want[:len(before)], term[:len(after)], len(buf))
	if !bytes.Equal(before, want[:len(before)]) || !bytes.Equal(after, term[:len(after)]) {
		return frameMismatch(seq, before, after)
	}
	return p.checkHashed(mid, seq)
}

func frameMismatch(seq uint64, before, after []byte) error {
	return fmt.Errorf("message %d: frame bytes %x...%x are not its framing's", seq, before, after)
}

// checkHashed compares buf with the hashed part of message seq.
func (p payload) checkHashed(buf []byte, seq uint64) error {
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
