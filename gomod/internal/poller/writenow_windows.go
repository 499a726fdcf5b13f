package poller

import "errors"

// CanWriteNow reports whether WriteNow works on this OS. Not on Windows: a
// socket associated with a completion port is written with overlapped
// WSASend on its worker only.
const CanWriteNow = false

// WriteNow is not available on Windows (CanWriteNow).
func WriteNow(s Sock, p []byte) (int, error) { return 0, errors.ErrUnsupported }
