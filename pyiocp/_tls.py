"""TLSConfig and TLSInfo: TLS in the engine (Go's crypto/tls, below the
Handler: callbacks see plaintext)."""

from __future__ import annotations

import base64
import json
import math
import os
import weakref
from typing import Any, Iterable, NamedTuple, Optional, Tuple

from . import _pyiocp
from ._args import _seconds

_CLIENT_AUTH = ("none", "optional", "required")
_VERSIONS = ("1.2", "1.3")


class TLSInfo(NamedTuple):
    """A TLS connection's negotiated state (Connection.tls)."""

    version: str  # "TLSv1.2" or "TLSv1.3"
    cipher: str  # the IANA name, e.g. "TLS_AES_128_GCM_SHA256"
    alpn: Optional[str]  # the protocol agreed by ALPN, None: none
    server_name: Optional[str]  # the SNI name the client asked for
    peer_cert: Optional[bytes]  # the peer's certificate (DER), None: it sent none
    resumed: bool  # the session was resumed (no full handshake)

    @classmethod
    def _from_json(cls, text: str) -> "TLSInfo":
        d = json.loads(text)
        cert = d["peer_cert"]
        return cls(d["version"], d["cipher"], d["alpn"], d["server_name"],
                   base64.b64decode(cert) if cert is not None else None, d["resumed"])




def _path(name: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, not {type(value).__name__}")
    return os.fspath(value)


class TLSConfig:
    """A TLS configuration.

    For listen(tls=...): a server's certificate chain and key (certfile,
    keyfile; the key may be in certfile), more pairs chosen by the name
    the client asks for (certs, SNI), the CAs client certificates are
    checked against (cafile, with client_auth "optional" or "required":
    mutual TLS).

    For connect(tls=...): the server's certificate is checked against
    cafile, or the system's CAs without it, and against server_name
    (default: the host given to connect); verify=False checks nothing.
    certfile and keyfile are the client's certificate, for a server that
    asks for one.

    Both: the protocols offered by ALPN, the lowest version ("1.2" or
    "1.3") and how long a handshake may take. The files are read here: a
    missing one raises OSError, one without a PEM certificate or key
    ValueError."""

    def __init__(
        self,
        certfile: Any = None,
        keyfile: Any = None,
        *,
        certs: Iterable[Tuple[Any, Any]] = (),
        cafile: Any = None,
        client_auth: str = "none",
        alpn: Iterable[str] = (),
        min_version: str = "1.2",
        server_name: Optional[str] = None,
        verify: bool = True,
        handshake_timeout: float = 10.0,
    ) -> None:
        pairs = []
        for pair in certs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"certs must hold (certfile, keyfile) pairs, not {pair!r}")
            pairs.append([_path("certs' certfile", pair[0]), _path("certs' keyfile", pair[1])])
        if client_auth not in _CLIENT_AUTH:
            raise ValueError(f"client_auth={client_auth!r}: must be one of {', '.join(_CLIENT_AUTH)}")
        if min_version not in _VERSIONS:
            raise ValueError(f"min_version={min_version!r}: must be \"1.2\" or \"1.3\"")
        if isinstance(alpn, str):
            raise TypeError("alpn must be a sequence of protocol names, not a str")
        protocols = list(alpn)
        for p in protocols:
            if not isinstance(p, str) or not 0 < len(p.encode()) < 256:
                raise ValueError(f"alpn: {p!r} is not a protocol name (1 to 255 bytes)")
        if server_name is not None and not isinstance(server_name, str):
            raise TypeError(f"server_name must be a str, not {type(server_name).__name__}")
        if not isinstance(verify, bool):
            raise TypeError(f"verify must be a bool, not {type(verify).__name__}")
        timeout = _seconds("handshake_timeout", handshake_timeout)
        if timeout == 0 or math.isinf(timeout):
            raise ValueError(f"handshake_timeout={handshake_timeout}: must be a positive, finite number of seconds")
        self.certfile = _path("certfile", certfile)
        self.keyfile = _path("keyfile", keyfile)
        self.certs = tuple((c, k) for c, k in pairs)
        self.cafile = _path("cafile", cafile)
        self.client_auth = client_auth
        self.alpn = tuple(protocols)
        self.min_version = min_version
        self.server_name = server_name
        self.verify = verify
        self.handshake_timeout = timeout
        spec = {
            "certfile": self.certfile, "keyfile": self.keyfile, "certs": pairs, "cafile": self.cafile,
            "client_auth": client_auth, "alpn": protocols, "min_version": min_version,
            "server_name": server_name, "verify": verify, "handshake_timeout_ns": max(1, int(timeout * 1e9)),
        }
        self._handle: int = _pyiocp.tls_config(json.dumps(spec))
        weakref.finalize(self, _pyiocp.tls_config_free, self._handle)

    def __repr__(self) -> str:
        return f"<pyiocp.TLSConfig certfile={self.certfile!r} certs={len(self.certs)} client_auth={self.client_auth!r}>"


_pyiocp._tls_init(TLSInfo._from_json, TLSConfig)


def tls_handle(tls: Any, server: bool = True) -> int:
    """The engine's handle of a listen()'s (server) or connect()'s tls
    argument (0: none)."""
    if tls is None:
        return 0
    if not isinstance(tls, TLSConfig):
        raise TypeError(f"tls must be a pyiocp.TLSConfig, not {type(tls).__name__}")
    if server and tls.certfile is None and not tls.certs:
        raise ValueError("a listener's TLSConfig needs certfile or certs")
    return tls._handle
