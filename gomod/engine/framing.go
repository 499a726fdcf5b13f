package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Framing splits a connection's incoming bytes into frames: with one set
// (WithFraming, Conn.SetFraming), each EventRecv carries exactly one whole
// frame. The worker splits them before anyone sees the bytes; a frame that
// came whole in one read is handed out where it lies, without a copy.
// Lines and LengthPrefixed are the two kinds.
type Framing interface {
	check() error
	// encode returns the bytes to send before and after payload.
	encode(payload []byte, hdr *[8]byte) (before, after []byte, err error)
	// unsplit returns what frame f stood for in the stream: the bytes to
	// put before and after it (the header, or the terminator).
	unsplit(f []byte, hdr *[8]byte) (before, after []byte)
}

// Lines frames end with Terminator. A frame is the line without its
// terminator (with it if KeepTerminator); MaxLine bounds the line without
// its terminator.
type Lines struct {
	MaxLine        int
	Terminator     []byte
	KeepTerminator bool
}

// MaxTerminator is the longest Lines terminator.
const MaxTerminator = 16

// LengthPrefixed frames are an unsigned length of HeaderSize bytes (1, 2, 4
// or 8; big-endian unless LittleEndian), then that many bytes of payload.
// A frame is the payload; MaxSize bounds it (a MaxSize over what the
// header can say is no bound beyond the header's own).
type LengthPrefixed struct {
	HeaderSize   int
	LittleEndian bool
	MaxSize      int
}

// ProtocolError ends a connection whose peer broke its framing: a frame
// over a limit. Python: pyiocp.ProtocolError.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return e.Msg }

func (l *Lines) check() error {
	switch {
	case len(l.Terminator) == 0 || len(l.Terminator) > MaxTerminator:
		return &OptionError{"terminator", fmt.Sprintf("%q", l.Terminator), "must be 1 to 16 bytes"}
	case l.MaxLine < 1:
		return &OptionError{"max_line", l.MaxLine, "must be at least 1"}
	}
	return nil
}

// encode adds the terminator; with KeepTerminator, a payload that ends with
// it (a frame as received) is sent as it is.
func (l *Lines) encode(payload []byte, _ *[8]byte) ([]byte, []byte, error) {
	i := bytes.Index(payload, l.Terminator)
	if l.KeepTerminator && i >= 0 && i == len(payload)-len(l.Terminator) {
		return nil, nil, nil
	}
	if i >= 0 {
		return nil, nil, &OptionError{"frame", fmt.Sprintf("%d bytes", len(payload)), fmt.Sprintf("must not contain the terminator %q", l.Terminator)}
	}
	return nil, l.Terminator, nil
}

func (l *Lines) unsplit(f []byte, _ *[8]byte) ([]byte, []byte) {
	if l.KeepTerminator {
		return nil, nil
	}
	return nil, l.Terminator
}

func (p *LengthPrefixed) check() error {
	switch {
	case p.HeaderSize != 1 && p.HeaderSize != 2 && p.HeaderSize != 4 && p.HeaderSize != 8:
		return &OptionError{"header_size", p.HeaderSize, "must be 1, 2, 4 or 8"}
	case p.MaxSize < 0:
		return &OptionError{"max_size", p.MaxSize, "must not be negative"}
	}
	return nil
}

// maxLength is the largest length the header can say.
func (p *LengthPrefixed) maxLength() uint64 {
	if p.HeaderSize == 8 {
		return 1<<63 - 1
	}
	return 1<<(8*p.HeaderSize) - 1
}

func (p *LengthPrefixed) encode(payload []byte, hdr *[8]byte) ([]byte, []byte, error) {
	if uint64(len(payload)) > p.maxLength() {
		return nil, nil, &OptionError{"frame", fmt.Sprintf("%d bytes", len(payload)), fmt.Sprintf("must fit in a %d-byte header (at most %d)", p.HeaderSize, p.maxLength())}
	}
	return p.header(uint64(len(payload)), hdr), nil, nil
}

func (p *LengthPrefixed) unsplit(f []byte, hdr *[8]byte) ([]byte, []byte) {
	return p.header(uint64(len(f)), hdr), nil
}

// header writes n as the frame header into hdr.
func (p *LengthPrefixed) header(n uint64, hdr *[8]byte) []byte {
	if p.LittleEndian {
		binary.LittleEndian.PutUint64(hdr[:], n)
		return hdr[:p.HeaderSize]
	}
	binary.BigEndian.PutUint64(hdr[:], n)
	return hdr[8-p.HeaderSize:]
}

// length reads a header.
func (p *LengthPrefixed) length(h []byte) uint64 {
	var b [8]byte
	if p.LittleEndian {
		copy(b[:], h)
		return binary.LittleEndian.Uint64(b[:])
	}
	copy(b[8-len(h):], h)
	return binary.BigEndian.Uint64(b[:])
}

// cloneFraming copies f, so that the caller's value can change afterwards.
func cloneFraming(f Framing) (Framing, error) {
	switch f := f.(type) {
	case nil:
		return nil, nil
	case *Lines:
		if f == nil {
			return nil, nil
		}
		l := *f
		l.Terminator = bytes.Clone(f.Terminator)
		return &l, l.check()
	case *LengthPrefixed:
		if f == nil {
			return nil, nil
		}
		p := *f
		return &p, p.check()
	}
	return nil, &OptionError{"framing", fmt.Sprintf("%T", f), "must be *Lines or *LengthPrefixed"}
}
