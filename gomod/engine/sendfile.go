package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// ErrFileShrunk ends a connection whose SendFile's file ended before the
// bytes queued from it were sent (it was truncated meanwhile): the bytes
// that existed were sent, and the connection is reset, so that the peer
// does not wait for the rest. Python: pyiocp.Error.
var ErrFileShrunk = errors.New("the file ended before the bytes sendfile queued from it were sent (truncated meanwhile)")

// SendFile queues count bytes of the file f from offset (count < 0: to
// the end of the file) to be written in order with the connection's other
// sends. The bytes go from the file to the socket in the kernel where it
// allows (sendfile(2), TransmitFile); where it refuses, and on a TLS
// connection, they are read and sent. f (an *os.File, say) is
// duplicated: the caller may close it once SendFile returns, and the copy
// is closed once its bytes are sent or the connection is closed.
//
// The bytes count as Send's do in Pending and against the send buffer
// limit: ErrBufferFull, queueing nothing, when they would take the pending
// bytes over it (send a large file in pieces, from OnDrain). It fails with
// ErrClosed as Send does, and with an *OptionError for a negative offset,
// a range past the file's end, or a file that is not a regular file. A
// file truncated before its bytes are sent ends the connection with
// ErrFileShrunk.
func (c *Conn) SendFile(f syscall.Conn, offset, count int64) error {
	if offset < 0 {
		return &OptionError{Name: "offset", Value: offset, Reason: "must be >= 0"}
	}
	if c.Closed() {
		return ErrClosed
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var dup poller.File
	if cerr := rc.Control(func(fd uintptr) { dup, err = poller.DupFile(fd) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return err
	}
	file := os.NewFile(dup, "sendfile")
	r, err := c.fileRange(file, dup, offset, count)
	if err != nil || r == nil {
		file.Close()
		return err
	}
	if c.tlsc() != nil {
		// The session encrypts what it is given, in order: the bytes
		// are read here and sent as Send's (read once they fit).
		c.mu.Lock()
		full := c.sendq.len()+r.left > c.m.opts.sendLimit
		if full {
			c.drainArmed = true
		}
		c.mu.Unlock()
		if full {
			file.Close()
			return ErrBufferFull
		}
		buf := make([]byte, r.left)
		k, err := file.ReadAt(buf, offset)
		file.Close()
		if k < len(buf) {
			return fmt.Errorf("sendfile: %w", err)
		}
		return c.sendTLS(nil, buf, nil)
	}
	c.mu.Lock()
	if c.req != closeNone || c.writeShut || c.freed {
		c.mu.Unlock()
		file.Close()
		return ErrClosed
	}
	if c.sendq.len()+r.left > c.m.opts.sendLimit {
		c.drainArmed = true
		c.mu.Unlock()
		file.Close()
		return ErrBufferFull
	}
	c.sendq.appendFile(r)
	c.queuedLocked(r.left)
	return nil
}

// fileRange checks the range against the file: nil (and no error) when
// it is empty.
func (c *Conn) fileRange(file *os.File, fd poller.File, offset, count int64) (*fileRange, error) {
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &OptionError{Name: "file", Value: st.Mode().Type(), Reason: "must be a regular file"}
	}
	size := st.Size()
	if offset > size {
		return nil, &OptionError{Name: "offset", Value: offset, Reason: fmt.Sprintf("past the end of the file (%d bytes)", size)}
	}
	if count < 0 {
		count = size - offset
	}
	if count > size-offset {
		return nil, &OptionError{Name: "count", Value: count,
			Reason: fmt.Sprintf("past the end of the file (%d bytes from offset %d)", size-offset, offset)}
	}
	if count == 0 {
		return nil, nil
	}
	return &fileRange{f: file, fd: fd, info: st, off: offset, left: int(count)}, nil
}

// fileRange is one SendFile's bytes still to send.
type fileRange struct {
	f    *os.File
	fd   poller.File // f's descriptor or handle
	info os.FileInfo // f's, to tell whether the next range is of the same file
	at   int         // where it sits in the connection's bytes (sendQueue.in)
	off  int64       // the file's next byte to send
	left int         // bytes still to send
	// The range queued before it is of the same file and ends where this
	// one starts, with no bytes queued between: one sendfile may send
	// both (a file queued in pieces then goes in calls as long as the
	// socket's buffer allows, not one short call at each piece's end).
	joins bool
	// The kernel refused to send this file without a copy: the bytes are
	// read into buf and sent from there (buf[lo:hi] not yet sent).
	copy   bool
	buf    *[chunkSize]byte
	lo, hi int
}

// sent accounts n bytes of r written.
func (r *fileRange) sent(n int) {
	r.off += int64(n)
	r.left -= n
	if r.copy {
		r.lo += n
	}
}

// close closes the duplicated file, exactly once: its bytes are sent, or
// the connection is gone.
func (r *fileRange) close() {
	r.f.Close()
	if r.buf != nil {
		chunkPool.Put(r.buf)
		r.buf = nil
	}
}

// sendQueue is a connection's pending sends: bytes, and between them the
// file ranges SendFile queued, in the order they were queued.
type sendQueue struct {
	byteQueue
	in, out  int          // bytes ever appended to, and written from, byteQueue
	files    []*fileRange // in order; files[0] goes once the bytes queued before it are written
	fileLeft int          // the files' bytes still to send
}

// len is the bytes pending, the files' among them.
func (q *sendQueue) len() int { return q.byteQueue.len() + q.fileLeft }

func (q *sendQueue) append(p []byte) {
	q.byteQueue.append(p)
	q.in += len(p)
}

func (q *sendQueue) appendFile(r *fileRange) {
	r.at = q.in
	if n := len(q.files); n > 0 {
		p := q.files[n-1]
		r.joins = p.at == r.at && p.off+int64(p.left) == r.off && os.SameFile(p.info, r.info)
	}
	q.files = append(q.files, r)
	q.fileLeft += r.left
}

// front is the file range to send next, or nil when bytes come first.
func (q *sendQueue) front() *fileRange {
	if len(q.files) > 0 && q.files[0].at == q.out {
		return q.files[0]
	}
	return nil
}

// fileSpan is how many bytes one sendfile may send from the front file
// range: its own and those of the ranges that join it.
func (q *sendQueue) fileSpan() int {
	n := q.files[0].left
	for _, r := range q.files[1:] {
		if !r.joins || r.copy {
			break
		}
		n += r.left
	}
	return n
}

// views is byteQueue's, up to the next file range.
func (q *sendQueue) views(dst [][]byte, max int) [][]byte {
	from := len(dst)
	dst = q.byteQueue.views(dst, max)
	if len(q.files) == 0 {
		return dst
	}
	limit := q.files[0].at - q.out
	for i := from; i < len(dst); i++ {
		if limit == 0 {
			clear(dst[i:])
			return dst[:i]
		}
		if len(dst[i]) > limit {
			dst[i] = dst[i][:limit:limit]
		}
		limit -= len(dst[i])
	}
	return dst
}

// consume drops n written bytes from the front: bytes, or the front file
// range's and, past its end, those of the ranges that joined it.
func (q *sendQueue) consume(n int) {
	if q.front() == nil {
		q.byteQueue.consume(n)
		q.out += n
		return
	}
	for n > 0 {
		r := q.files[0]
		k := min(n, r.left)
		r.sent(k)
		q.fileLeft -= k
		n -= k
		if r.left == 0 {
			r.close()
			q.files[0] = nil
			q.files = q.files[1:]
		}
	}
}

// reset drops everything queued; the files are closed.
func (q *sendQueue) reset() {
	for _, r := range q.files {
		r.close()
	}
	q.byteQueue.reset()
	*q = sendQueue{byteQueue: q.byteQueue}
}

// postFile posts the next send of file range r, which is at the front of
// c's queue (the send slot is claimed): the kernel's sendfile of up to
// span bytes (sendQueue.fileSpan), or, once it refused, the next chunk of
// r read into r.buf. n == 0 with done: the file has ended.
func (w *worker) postFile(c *Conn, r *fileRange, span int) (n int, done bool, err error) {
	if !r.copy {
		n, done, err = w.p.PostSendFile(c.ref, r.fd, r.off, span)
		if err == nil || !poller.SendFileRefused(err) {
			return n, done, err
		}
		r.copy = true
	}
	if r.lo == r.hi {
		if r.buf == nil {
			r.buf = chunkPool.Get().(*[chunkSize]byte)
		}
		k, err := r.f.ReadAt(r.buf[:min(r.left, chunkSize)], r.off)
		if k == 0 {
			if err == io.EOF {
				err = nil
			}
			return 0, err == nil, err
		}
		r.lo, r.hi = 0, k
	}
	bufs := append(w.iov[:0], r.buf[r.lo:r.hi])
	n, done, err = w.p.PostSend(c.ref, bufs)
	clear(bufs)
	return n, done, err
}
