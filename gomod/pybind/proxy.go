package main

/*
#include "glue.h"
*/
import "C"

import (
	"net/netip"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// listenProxy is a listener's PROXY protocol option: mode as
// engine.ProxyMode numbers it, allow a comma-separated list of CIDR
// prefixes (NULL: the engine's default, loopback).
func listenProxy(mode C.int, allow *C.char) (engine.ListenOption, error) {
	var prefixes []netip.Prefix
	if allow != nil {
		p, err := engine.ParsePrefixes(C.GoString(allow))
		if err != nil {
			return nil, err
		}
		prefixes = p
	}
	return engine.WithProxyProtocol(engine.ProxyMode(mode), prefixes), nil
}

// pyiocpConnProxy writes the address of the load balancer whose PROXY
// header named the connection's peer: 4 or 6, or 0 when there is none; 1
// for a Unix domain connection, whose balancer is its peer's name
// (pyiocpConnUnixName).
//
//export pyiocpConnProxy
func pyiocpConnProxy(h C.int64_t, slot C.uint32_t, id C.uint64_t, ip *C.uint8_t, port *C.uint16_t) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return 0
	}
	if c.IsUnix() && c.Peer().IsValid() {
		return 1
	}
	return putAddr(c.Proxy(), ip, port)
}
