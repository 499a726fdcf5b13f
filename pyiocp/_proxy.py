"""The checks of listen()'s and listen_unix()'s PROXY protocol options, as
the Go side takes them: the mode's number (engine.ProxyMode) and the
allowed sources as one comma-separated string of CIDR prefixes."""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Optional, Tuple, Union

ProxySources = Union[str, Iterable[str]]

# engine.ProxyMode's numbers; 0 is off.
PROXY_MODES = {"v1": 1, "v2": 2, "auto": 3}


def proxy_mode(proxy_protocol: Any) -> int:
    """None (off), "v1", "v2" or "auto" as the engine numbers it."""
    if proxy_protocol is None:
        return 0
    if not isinstance(proxy_protocol, str):
        raise TypeError(f"proxy_protocol must be None or a str, not {type(proxy_protocol).__name__}")
    if proxy_protocol not in PROXY_MODES:
        raise ValueError(f'proxy_protocol must be None, "v1", "v2" or "auto", not {proxy_protocol!r}')
    return PROXY_MODES[proxy_protocol]


def proxy_args(proxy_protocol: Any, proxy_allow_from: Any) -> Tuple[int, Optional[str]]:
    """(mode, allow) for the engine: allow is None for the default
    sources (loopback), else the prefixes, checked, comma-separated.
    proxy_allow_from is CIDR prefixes (a bare address is its own /32 or
    /128): an iterable of str, or one str separated by commas."""
    mode = proxy_mode(proxy_protocol)
    if proxy_allow_from is None:
        return mode, None
    if mode == 0:
        raise ValueError("proxy_allow_from needs proxy_protocol")
    if isinstance(proxy_allow_from, str):
        items = [s for s in proxy_allow_from.split(",") if s.strip()]
    else:
        try:
            items = list(proxy_allow_from)
        except TypeError:
            raise TypeError("proxy_allow_from must be a str or an iterable of str, "
                            f"not {type(proxy_allow_from).__name__}") from None
    nets = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"proxy_allow_from items must be str, not {type(item).__name__}")
        try:
            nets.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            raise ValueError(f"proxy_allow_from: {item!r} is not a CIDR prefix such as 10.0.0.0/8 or ::1") from None
    if not nets:
        raise ValueError("proxy_allow_from names no source: no connection could be accepted")
    return mode, ",".join(nets)
