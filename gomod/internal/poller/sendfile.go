package poller

// File is an open file as the OS names it: a descriptor on Linux, a
// HANDLE on Windows. PostSendFile reads from it.
type File = uintptr

// maxSendFile bounds one PostSendFile: TransmitFile's count is 32 bits,
// and the kernel takes at most about 2 GiB in one sendfile(2).
const maxSendFile = 1 << 30
