package engine_test

// Windows calls the tests' leak checks make that golang.org/x/sys/windows
// lacks. Two calls do not need a generated file: each is a LazyProc.Call,
// whose arguments keep the pointers they carry alive for the call.

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	procGetHandleInformation = windows.NewLazySystemDLL("kernel32.dll").NewProc("GetHandleInformation")
	procGetProcessMemoryInfo = windows.NewLazySystemDLL("psapi.dll").NewProc("GetProcessMemoryInfo")
)

// processMemoryCounters is PROCESS_MEMORY_COUNTERS.
type processMemoryCounters struct {
	Cb                         uint32
	PageFaultCount             uint32
	PeakWorkingSetSize         uintptr
	WorkingSetSize             uintptr
	QuotaPeakPagedPoolUsage    uintptr
	QuotaPagedPoolUsage        uintptr
	QuotaPeakNonPagedPoolUsage uintptr
	QuotaNonPagedPoolUsage     uintptr
	PagefileUsage              uintptr
	PeakPagefileUsage          uintptr
}

func getProcessMemoryInfo(process windows.Handle, counters *processMemoryCounters, cb uint32) error {
	r, _, err := procGetProcessMemoryInfo.Call(uintptr(process), uintptr(unsafe.Pointer(counters)), uintptr(cb))
	return boolResult(r, err)
}

func getHandleInformation(h windows.Handle, flags *uint32) error {
	r, _, err := procGetHandleInformation.Call(uintptr(h), uintptr(unsafe.Pointer(flags)))
	return boolResult(r, err)
}

// boolResult is the error of a call that returns a Win32 BOOL: FALSE is a
// failure, and then GetLastError says why.
func boolResult(r uintptr, lastErr error) error {
	if r != 0 {
		return nil
	}
	return lastErr
}
