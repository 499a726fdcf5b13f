package engine

import (
	"bytes"
	"fmt"
)

// frameSink takes what a framer cuts. frame gets each whole frame, in
// memory valid until the worker's next round; memory gives round memory to
// assemble a frame that came in pieces in (nil: none to be had).
type frameSink interface {
	frame(b []byte)
	memory(n int) []byte
}

// framer is a connection's splitting state: the Framing and the frame in
// progress. Worker-owned. A frame that arrives in one piece is handed out
// where it lies; only one that spans reads is gathered in part (pooled
// chunks, so an idle connection holds no memory) and assembled once whole.
type framer struct {
	f     Framing
	part  byteQueue // Lines: the line so far; LengthPrefixed: the payload so far
	hdr   [8]byte   // LengthPrefixed: the header so far
	nhdr  int
	need  int                     // LengthPrefixed: the payload's length, -1 while the header is read
	tail  [MaxTerminator - 1]byte // Lines: part's last bytes, where a terminator may begin
	ntail int
}

func newFramer(f Framing) *framer { return &framer{f: f, need: -1} }

// held is the bytes of the frame in progress.
func (fr *framer) held() int { return fr.nhdr + fr.part.len() }

// feed cuts d, the next bytes of the stream, into frames; limit bounds
// fr.held() (recv_buffer_limit). An error (a frame over a limit) stops the
// cutting, and rest is what of d the cutting did not take: with what the
// framer holds, the bytes from the bad frame on, kept in case a new
// Framing is set before the connection ends.
func (fr *framer) feed(d []byte, limit int, out frameSink) (rest []byte, err error) {
	switch f := fr.f.(type) {
	case *Lines:
		return fr.feedLines(f, d, limit, out)
	case *LengthPrefixed:
		return fr.feedPrefixed(f, d, limit, out)
	}
	return nil, nil
}

func (fr *framer) feedLines(l *Lines, d []byte, limit int, out frameSink) ([]byte, error) {
	t := l.Terminator
	for len(d) > 0 {
		if fr.part.len() == 0 {
			i := index(d, t)
			if i < 0 {
				break
			}
			end, err := l.frameLen(i)
			if err != nil {
				return d, err
			}
			out.frame(d[:end:end])
			d = d[i+len(t):]
			continue
		}
		// A line begun in an earlier read: its terminator may start in
		// part's last bytes.
		p := fr.part.len()
		line, used := -1, 0
		var win [2*MaxTerminator - 2]byte
		k := copy(win[:], fr.tail[:fr.ntail])
		w := copy(win[k:], d[:min(len(d), len(t)-1)])
		if i := bytes.Index(win[:k+w], t); i >= 0 && i < k {
			line, used = p-k+i, i+len(t)-k
		} else if i := index(d, t); i >= 0 {
			line, used = p+i, i+len(t)
		} else {
			break
		}
		n, err := l.frameLen(line)
		if err != nil {
			return d, err
		}
		mem := out.memory(n)
		if mem == nil && n > 0 {
			return d, errNoFrameMemory(n)
		}
		got := fr.part.read(mem[:min(p, n)])
		copy(mem[got:n], d[:n-got])
		fr.part.reset()
		fr.ntail = 0
		out.frame(mem[:n:n])
		d = d[used:]
	}
	if len(d) == 0 {
		return nil, nil
	}
	// No terminator in what is left: it waits for the rest of its line.
	// Its last len(t)-1 bytes may be the start of a terminator; anything
	// before them is line.
	if sure := fr.part.len() + len(d) - (len(t) - 1); sure > l.MaxLine {
		return d, lineTooLong(l, sure)
	}
	if fr.part.len()+len(d) >= limit {
		return d, overRecvLimit(fr.part.len()+len(d), limit)
	}
	fr.part.append(d)
	fr.keepTail(d, len(t)-1)
	return nil, nil
}

// frameLen is the length of the frame of a line of n bytes (without its
// terminator), or the error if the line is too long.
func (l *Lines) frameLen(n int) (int, error) {
	if n > l.MaxLine {
		return 0, lineTooLong(l, n)
	}
	if l.KeepTerminator {
		n += len(l.Terminator)
	}
	return n, nil
}

// keepTail keeps the last n bytes of part (whose newest bytes are d).
func (fr *framer) keepTail(d []byte, n int) {
	if len(d) >= n {
		fr.ntail = copy(fr.tail[:], d[len(d)-n:])
		return
	}
	drop := max(fr.ntail+len(d)-n, 0)
	copy(fr.tail[:], fr.tail[drop:fr.ntail])
	fr.ntail -= drop
	fr.ntail += copy(fr.tail[fr.ntail:], d)
}

func (fr *framer) feedPrefixed(p *LengthPrefixed, d []byte, limit int, out frameSink) ([]byte, error) {
	h := p.HeaderSize
	for len(d) > 0 {
		if fr.need < 0 {
			var n uint64
			var at []byte // d from the frame's first byte in it
			if fr.nhdr == 0 && len(d) >= h {
				n, at, d = p.length(d[:h]), d, d[h:]
			} else {
				k := copy(fr.hdr[fr.nhdr:h], d)
				fr.nhdr += k
				d = d[k:]
				if fr.nhdr < h {
					if fr.nhdr >= limit {
						return d, overRecvLimit(fr.nhdr, limit)
					}
					return nil, nil
				}
				n, at = p.length(fr.hdr[:h]), d // the header stays in hdr until the frame is taken
			}
			if n > uint64(p.MaxSize) {
				return at, &ProtocolError{fmt.Sprintf("a frame of %d bytes is over max_size (%d)", n, p.MaxSize)}
			}
			if uint64(h)+n > uint64(limit) {
				return at, overRecvLimit(h+int(n), limit)
			}
			fr.need, fr.nhdr = int(n), 0
		}
		if fr.part.len() == 0 && len(d) >= fr.need {
			out.frame(d[:fr.need:fr.need])
			d = d[fr.need:]
			fr.need = -1
			continue
		}
		take := min(fr.need-fr.part.len(), len(d))
		if fr.part.len()+take < fr.need {
			fr.part.append(d[:take])
			return nil, nil
		}
		mem := out.memory(fr.need)
		if mem == nil {
			return d, errNoFrameMemory(fr.need)
		}
		got := fr.part.read(mem)
		copy(mem[got:], d[:take])
		fr.part.reset()
		out.frame(mem[:fr.need:fr.need])
		d = d[take:]
		fr.need = -1
	}
	return nil, nil
}

// unsplit appends to q the bytes of the frame in progress, as they were
// in the stream, and forgets them.
func (fr *framer) unsplit(q *byteQueue) {
	if p, ok := fr.f.(*LengthPrefixed); ok {
		if fr.need >= 0 {
			var h [8]byte
			q.append(p.header(uint64(fr.need), &h))
		} else {
			q.append(fr.hdr[:fr.nhdr])
		}
	}
	q.appendQueue(&fr.part)
	fr.nhdr, fr.need, fr.ntail = 0, -1, 0
}

func (fr *framer) reset() {
	fr.part.reset()
	fr.nhdr, fr.need, fr.ntail = 0, -1, 0
}

// index finds t in d, with the fast single-byte search for the usual
// one-byte terminator.
func index(d, t []byte) int {
	if len(t) == 1 {
		return bytes.IndexByte(d, t[0])
	}
	return bytes.Index(d, t)
}

func lineTooLong(l *Lines, n int) error {
	return &ProtocolError{fmt.Sprintf("a line of %d bytes or more is over max_line (%d)", n, l.MaxLine)}
}

func overRecvLimit(n, limit int) error {
	return &ProtocolError{fmt.Sprintf("a frame of %d bytes or more is over recv_buffer_limit (%d)", n, limit)}
}

func errNoFrameMemory(n int) error {
	return &ProtocolError{fmt.Sprintf("no memory to assemble a frame of %d bytes", n)}
}
