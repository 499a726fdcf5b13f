package engine_test

import (
	"errors"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestUnixIsRefused: the iocp backend offers no Unix domain sockets (Wine,
// which it is tested under, has no AF_UNIX): both calls fail at once with
// WSAEAFNOSUPPORT and leave nothing open.
func TestUnixIsRefused(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		m := startManager(t, echoHandler{}, backend)
		if engine.UnixSupported {
			t.Fatal("UnixSupported on Windows")
		}
		if _, err := m.ListenUnix(`C:\pyiocp.sock`, 0); !errors.Is(err, windows.WSAEAFNOSUPPORT) {
			t.Errorf("ListenUnix: %v, want WSAEAFNOSUPPORT", describe(err))
		}
		if _, err := m.ConnectUnix(`C:\pyiocp.sock`, 0); !errors.Is(err, windows.WSAEAFNOSUPPORT) {
			t.Errorf("ConnectUnix: %v, want WSAEAFNOSUPPORT", describe(err))
		}
		if s := m.Stats(); s.Connections != 0 || len(m.Listeners()) != 0 {
			t.Errorf("after the refused calls: %d connections, %d listeners", s.Connections, len(m.Listeners()))
		}
	})
}
