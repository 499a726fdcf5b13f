package poller

import "golang.org/x/sys/unix"

// AllocMemory returns n bytes outside the Go heap. Data handed to C (the
// Python binding reads received bytes after the Go call returns) must not
// live in Go memory, and the garbage collector never scans or moves it.
func AllocMemory(n int) ([]byte, error) {
	return unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
}

// FreeMemory releases memory from AllocMemory.
func FreeMemory(b []byte) error { return unix.Munmap(b) }
