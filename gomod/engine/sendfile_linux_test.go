package engine

import "syscall"

// errSendFileRefused is how the kernel says it cannot splice a file.
var errSendFileRefused error = syscall.EINVAL
