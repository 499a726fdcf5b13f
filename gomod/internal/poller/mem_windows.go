package poller

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

// AllocMemory returns n bytes outside the Go heap. Data handed to C (the
// Python binding reads received bytes after the Go call returns) must not
// live in Go memory, and the garbage collector never scans, moves or frees
// it: the kernel may write into it (OVERLAPPED contexts) long after the call
// that handed it over returned.
func AllocMemory(n int) ([]byte, error) {
	addr, err := windows.VirtualAlloc(0, uintptr(n), windows.MEM_COMMIT|windows.MEM_RESERVE, windows.PAGE_READWRITE)
	if err != nil {
		return nil, err
	}
	// VirtualAlloc returns the address as a uintptr; read it as a pointer
	// without the uintptr-to-pointer conversion vet rightly distrusts for Go
	// memory (this is not Go memory).
	return unsafe.Slice(*(**byte)(unsafe.Pointer(&addr)), n), nil
}

// FreeMemory releases memory from AllocMemory.
func FreeMemory(b []byte) error {
	return windows.VirtualFree(uintptr(unsafe.Pointer(unsafe.SliceData(b))), 0, windows.MEM_RELEASE)
}
