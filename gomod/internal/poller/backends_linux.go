package poller

// The Linux backends, preferred first: io_uring where the kernel offers it
// and allows it, else epoll.
var backends = []backend{
	{name: "io_uring", probe: func() error { _, err := uringAvailable(); return err }, open: newUring},
	{name: "epoll", open: newEpoll},
}
