package engine_test

// Windows calls the tests' leak checks make that golang.org/x/sys/windows
// lacks; zsyscall_windows_test.go is generated from the //sys lines below.

//go:generate go run golang.org/x/sys/windows/mkwinsyscall -output zsyscall_windows_test.go syscall_windows_test.go

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

//sys	getProcessMemoryInfo(process windows.Handle, counters *processMemoryCounters, cb uint32) (err error) = psapi.GetProcessMemoryInfo
//sys	getHandleInformation(h windows.Handle, flags *uint32) (err error) = kernel32.GetHandleInformation
