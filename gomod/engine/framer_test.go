package engine

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// collect is a frameSink that keeps copies of the frames.
type collect struct{ frames [][]byte }

func (c *collect) frame(b []byte)      { c.frames = append(c.frames, bytes.Clone(b)) }
func (c *collect) memory(n int) []byte { return make([]byte, n) }

// split feeds stream to a new framer of f in pieces cut at cuts, and
// returns the frames and the first error.
func split(f Framing, stream []byte, cuts []int, limit int) ([][]byte, error) {
	fr := newFramer(f)
	var out collect
	prev := 0
	for _, at := range append(cuts, len(stream)) {
		if at < prev || at > len(stream) {
			continue
		}
		if _, err := fr.feed(stream[prev:at], limit, &out); err != nil {
			return out.frames, err
		}
		prev = at
	}
	return out.frames, nil
}

func lines(term string, max int, keep bool) *Lines {
	return &Lines{MaxLine: max, Terminator: []byte(term), KeepTerminator: keep}
}

func TestLinesSplitAtEveryByte(t *testing.T) {
	stream := []byte("one\r\n\r\ntwo three\r\nfour\r")
	want := []string{"one", "", "two three"}
	for at := 0; at <= len(stream); at++ {
		for at2 := at; at2 <= len(stream); at2++ {
			got, err := split(lines("\r\n", 100, false), stream, []int{at, at2}, 1<<20)
			if err != nil || !equalFrames(got, want) {
				t.Fatalf("cut at %d, %d: %q, %v", at, at2, got, err)
			}
		}
	}
	got, _ := split(lines("\r\n", 100, true), stream, []int{4}, 1<<20)
	if !equalFrames(got, []string{"one\r\n", "\r\n", "two three\r\n"}) {
		t.Fatalf("keep_terminator: %q", got)
	}
}

func TestLengthPrefixedSplitAtEveryByte(t *testing.T) {
	for _, le := range []bool{false, true} {
		for _, h := range []int{1, 2, 4, 8} {
			p := &LengthPrefixed{HeaderSize: h, LittleEndian: le, MaxSize: 1000}
			var stream []byte
			want := []string{"", "a", strings.Repeat("x", 200), "end"}
			for _, w := range want {
				var hdr [8]byte
				before, _, err := p.encode([]byte(w), &hdr)
				if err != nil {
					t.Fatal(err)
				}
				stream = append(append(stream, before...), w...)
			}
			for at := 0; at <= len(stream); at++ {
				got, err := split(p, stream, []int{at, at + 3}, 1<<20)
				if err != nil || !equalFrames(got, want) {
					t.Fatalf("h=%d le=%v cut at %d: %q, %v", h, le, at, got, err)
				}
			}
		}
	}
}

func TestFramingLimits(t *testing.T) {
	var pe *ProtocolError
	// A line over max_line is refused before its end comes.
	_, err := split(lines("\n", 4, false), []byte("abcdefgh"), nil, 1<<20)
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "max_line (4)") {
		t.Fatalf("long line: %v", err)
	}
	// Exactly max_line is fine, the terminator not counted.
	if got, err := split(lines("\r\n", 4, false), []byte("abcd\r\n"), []int{5}, 1<<20); err != nil || len(got) != 1 {
		t.Fatalf("max_line line: %q %v", got, err)
	}
	// An announced length over max_size is refused from the header alone.
	_, err = split(&LengthPrefixed{HeaderSize: 4, MaxSize: 10}, []byte{0, 0, 0, 11}, nil, 1<<20)
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "max_size (10)") {
		t.Fatalf("long frame: %v", err)
	}
	// recv_buffer_limit bounds what a frame in progress holds.
	_, err = split(&LengthPrefixed{HeaderSize: 2, MaxSize: 1000}, []byte{0, 100}, nil, 50)
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "recv_buffer_limit (50)") {
		t.Fatalf("frame over the receive limit: %v", err)
	}
	_, err = split(lines("\n", 1000, false), bytes.Repeat([]byte("z"), 60), []int{30}, 50)
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "recv_buffer_limit (50)") {
		t.Fatalf("line over the receive limit: %v", err)
	}
}

// After a bad frame, unsplit and rest give back every byte from it on.
func TestFramerGivesBackTheRest(t *testing.T) {
	fr := newFramer(lines("\n", 3, false))
	var out collect
	rest, err := fr.feed([]byte("ok\ntoo long\nmore"), 1<<20, &out)
	if err == nil || string(rest) != "too long\nmore" || len(out.frames) != 1 {
		t.Fatalf("%q %q %v", out.frames, rest, err)
	}
	p := &LengthPrefixed{HeaderSize: 2, MaxSize: 5}
	fr = newFramer(p)
	if _, err := fr.feed([]byte{0}, 1<<20, &out); err != nil {
		t.Fatal(err)
	}
	rest, err = fr.feed([]byte{9, 1, 2}, 1<<20, &out)
	var q byteQueue
	fr.unsplit(&q)
	q.append(rest)
	b := make([]byte, q.len())
	q.read(b)
	if err == nil || !bytes.Equal(b, []byte{0, 9, 1, 2}) {
		t.Fatalf("%v %v", b, err)
	}
}

func TestFramingChecks(t *testing.T) {
	for _, f := range []Framing{
		lines("", 10, false), lines(strings.Repeat("x", 17), 10, false), lines("\n", 0, false),
		&LengthPrefixed{HeaderSize: 3, MaxSize: 1}, &LengthPrefixed{HeaderSize: 0, MaxSize: 1},
		&LengthPrefixed{HeaderSize: 4, MaxSize: -1},
	} {
		var oe *OptionError
		if _, err := cloneFraming(f); !errors.As(err, &oe) {
			t.Errorf("%+v: %v", f, err)
		}
	}
	var hdr [8]byte
	if _, _, err := lines("\n", 10, false).encode([]byte("a\nb"), &hdr); err == nil {
		t.Error("a line with the terminator in it was sent")
	}
	if _, _, err := (&LengthPrefixed{HeaderSize: 1, MaxSize: 255}).encode(make([]byte, 256), &hdr); err == nil {
		t.Error("256 bytes in a 1-byte header")
	}
}

func equalFrames(got [][]byte, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if string(got[i]) != want[i] {
			return false
		}
	}
	return true
}

// every is the places to cut n bytes into pieces of k.
func every(k, n int) []int {
	var cuts []int
	for at := k; at < n; at += k {
		cuts = append(cuts, at)
	}
	return cuts
}

// The fuzz targets check that however a stream is cut into reads, the
// frames (and the error, if any) are those of the whole stream at once.
func FuzzLines(f *testing.F) {
	f.Add([]byte("a\r\nbb\r\n\r\nccc"), "\r\n", uint8(3), uint16(5), false)
	f.Add([]byte("xx\nyyyy\n"), "\n", uint8(1), uint16(3), true)
	f.Add([]byte("abcabcab"), "abc", uint8(2), uint16(8), false)
	f.Fuzz(func(t *testing.T, stream []byte, term string, cut uint8, max uint16, keep bool) {
		l := lines(term, int(max)+1, keep)
		if l.check() != nil {
			return
		}
		whole, werr := split(l, stream, nil, 1<<20)
		parts, perr := split(l, stream, every(int(cut)+1, len(stream)), 1<<20)
		if (werr == nil) != (perr == nil) || len(whole) != len(parts) {
			t.Fatalf("whole %q %v, in pieces of %d %q %v", whole, werr, cut+1, parts, perr)
		}
		for i := range whole {
			if !bytes.Equal(whole[i], parts[i]) {
				t.Fatalf("frame %d: %q vs %q", i, whole[i], parts[i])
			}
		}
		if werr == nil {
			// The frames and the terminators are the stream, up to its
			// unfinished last line.
			var joined []byte
			for _, fr := range whole {
				joined = append(joined, fr...)
				if !keep {
					joined = append(joined, term...)
				}
			}
			if !bytes.HasPrefix(stream, joined) || bytes.Contains(stream[len(joined):], []byte(term)) {
				t.Fatalf("frames %q do not make up %q", whole, stream)
			}
		}
	})
}

func FuzzLengthPrefixed(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0}, uint8(4), uint8(2), false, uint16(100))
	f.Add([]byte{2, 'h', 'i', 1}, uint8(1), uint8(1), true, uint16(10))
	f.Fuzz(func(t *testing.T, stream []byte, h, cut uint8, le bool, max uint16) {
		p := &LengthPrefixed{HeaderSize: int(h), LittleEndian: le, MaxSize: int(max)}
		if p.check() != nil {
			return
		}
		whole, werr := split(p, stream, nil, 1<<20)
		parts, perr := split(p, stream, every(int(cut)+1, len(stream)), 1<<20)
		if (werr == nil) != (perr == nil) || len(whole) != len(parts) {
			t.Fatalf("whole %d frames %v, in pieces of %d: %d frames %v", len(whole), werr, cut+1, len(parts), perr)
		}
		var joined []byte
		for i := range whole {
			if !bytes.Equal(whole[i], parts[i]) {
				t.Fatalf("frame %d differs", i)
			}
			var hdr [8]byte
			before, _, _ := p.encode(whole[i], &hdr)
			joined = append(append(joined, before...), whole[i]...)
		}
		if !bytes.HasPrefix(stream, joined) {
			t.Fatalf("frames do not make up the stream")
		}
	})
}
