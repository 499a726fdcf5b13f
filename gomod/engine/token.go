package engine

// A socket's token (poller.Completion.Token) says whose completion it is:
//
//	bit 63     set: a listener's; bits 0-31 index the worker's listeners
//	bit 62     set: a connect attempt's (race.go); bits 0-31 index the
//	           worker's attempts
//	bits 32-61 a connection's id, its low 30 bits
//	bits 0-31  the connection's slot in the manager's table
//
// Ids grow for the manager's life, so only their low bits fit; the slot
// finds the connection and those bits tell a completion of a connection
// freed meanwhile from one of the slot's new occupant.
const (
	listenerBit = 1 << 63
	raceBit     = 1 << 62
	tokenIDMask = 1<<30 - 1
)

func (c *Conn) token() uint64 { return uint64(c.slot) | (c.id&tokenIDMask)<<32 }

// ownsToken reports whether tok is c's.
func (c *Conn) ownsToken(tok uint64) bool { return c.id&tokenIDMask == tok>>32&tokenIDMask }
