package engine

import "sync/atomic"

// workerStats are one worker's counters; each worker writes only its own.
type workerStats struct {
	accepted     atomic.Uint64
	connected    atomic.Uint64
	closed       atomic.Uint64
	timedOut     atomic.Uint64
	bytesIn      atomic.Uint64
	bytesOut     atomic.Uint64
	completions  atomic.Uint64
	acceptErrors atomic.Uint64
	waitErrors   atomic.Uint64
	stray        atomic.Uint64

	tlsHandshakeErrors atomic.Uint64
	proxyErrors        atomic.Uint64

	acceptErrorEpisodes atomic.Uint64

	datagramsIn        atomic.Uint64
	datagramsOut       atomic.Uint64
	datagramsTruncated atomic.Uint64
	datagramErrors     atomic.Uint64
}

// Stats is a snapshot of a manager's counters; the names are those of
// Python's stats() dict.
type Stats struct {
	Connections      int    // open now
	Accepted         uint64 // inbound connections announced
	Connected        uint64 // outbound connects that completed
	Closed           uint64 // announced connections that closed
	Rejected         uint64 // accepted over max_connections and closed at once
	TimedOut         uint64 // closed by connect/accept/idle timeouts
	BytesIn          uint64
	BytesOut         uint64
	PendingSendBytes int64 // queued by Send, not yet written
	PausedReading    int   // connections with reading paused
	Completions      uint64
	AcceptErrors     uint64 // accepts that failed (the listener carried on)
	Stray            uint64 // completions for no live operation; always 0
	Listeners        int
	Workers          int
	Backend          string

	// AcceptErrorEpisodes counts runs of failed accepts on a listener (out
	// of descriptors until some free up, say): each is logged once, and
	// ends at the listener's next accept that succeeds.
	AcceptErrorEpisodes uint64

	TLSConnections     int    // announced TLS connections open now
	TLSHandshakeErrors uint64 // inbound TLS connections closed before their handshake succeeded

	ProxyErrors uint64 // connections of PROXY listeners reset unseen: no, a bad or a late header, or a source not allowed

	// UDP (udp.go); their bytes count in BytesIn and BytesOut.
	Endpoints          int    // open now
	DatagramsIn        uint64 // delivered
	DatagramsOut       uint64 // sent (or dropped for an error the socket reported)
	DatagramsTruncated uint64 // longer than the receive size: dropped, reported
	DatagramErrors     uint64 // sends and receives that failed (the endpoint carried on)
}

// Stats returns the current counters.
func (m *Manager) Stats() Stats {
	s := Stats{
		Connections:      m.Connections(),
		Rejected:         m.rejected.Load(),
		PendingSendBytes: m.pendingSend.Load(),
		PausedReading:    int(m.pausedReading.Load()),
		Listeners:        len(m.Listeners()),
		Workers:          len(m.workers),
		Backend:          m.backend,
		TLSConnections:   int(m.tlsConns.Load()),
		Endpoints:        len(m.Endpoints()),
	}
	for _, w := range m.workers {
		st := &w.stats
		s.Accepted += st.accepted.Load()
		s.Connected += st.connected.Load()
		s.Closed += st.closed.Load()
		s.TimedOut += st.timedOut.Load()
		s.BytesIn += st.bytesIn.Load()
		s.BytesOut += st.bytesOut.Load()
		s.Completions += st.completions.Load()
		s.AcceptErrors += st.acceptErrors.Load()
		s.AcceptErrorEpisodes += st.acceptErrorEpisodes.Load()
		s.Stray += st.stray.Load()
		s.TLSHandshakeErrors += st.tlsHandshakeErrors.Load()
		s.ProxyErrors += st.proxyErrors.Load()
		s.DatagramsIn += st.datagramsIn.Load()
		s.DatagramsOut += st.datagramsOut.Load()
		s.DatagramsTruncated += st.datagramsTruncated.Load()
		s.DatagramErrors += st.datagramErrors.Load()
	}
	return s
}
