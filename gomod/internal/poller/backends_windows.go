package poller

// The Windows backend: the I/O completion port, which the contract models.
var backends = []backend{
	{name: "iocp", open: newIOCP},
}
