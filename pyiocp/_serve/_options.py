"""The options of ``pyiocp serve`` and ``pyiocp.serve()``, checked once in
the supervisor: a bad value is a ValueError (TypeError for a wrong type)
that says which option and why, before any process starts. The checked
options travel to each child as JSON (ServeOptions.to_json)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .._args import MAX_CONNECTIONS, MAX_SECONDS, MAX_WORKERS
from .._proxy import proxy_args

DEFAULT_BIND = "127.0.0.1:8000"
DEFAULT_GRACEFUL_TIMEOUT = 30.0
MAX_PROCESSES = 1024
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
PROXY_PROTOCOLS = ("off", "v1", "v2", "auto")
BACKENDS = ("auto", "iocp") if sys.platform == "win32" else ("auto", "epoll", "io_uring")


@dataclass(frozen=True)
class Bind:
    """One address to listen on: TCP (host, port) or a Unix domain path;
    with fd, a listening socket the supervisor holds (for a Unix domain
    path, or from systemd), which every process shares."""

    host: str = ""
    port: int = 0
    unix: Optional[str] = None
    fd: Optional[int] = None

    def __str__(self) -> str:
        if self.fd is not None and self.unix is None:
            return f"the inherited socket {self.fd}"
        if self.unix is not None:
            return f"unix:{self.unix}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServeOptions:
    target: str
    binds: Tuple[Bind, ...] = ()
    processes: int = 1
    workers: int = 1
    backend: str = "auto"
    max_connections: Optional[int] = None
    idle_timeout: Optional[float] = None
    graceful_timeout: float = DEFAULT_GRACEFUL_TIMEOUT
    drain_delay: float = 0.0
    proxy_protocol: Optional[str] = None
    proxy_allow_from: Optional[str] = None
    metrics: Optional[Tuple[str, int]] = None
    log_level: str = "info"
    pid_file: Optional[str] = None
    # The supervisor's import path, so that a child finds the modules the
    # supervisor would (the directory of a script that called serve()).
    sys_path: Tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServeOptions":
        raw: Dict[str, Any] = json.loads(text)
        raw["binds"] = tuple(Bind(**b) for b in raw["binds"])
        raw["metrics"] = tuple(raw["metrics"]) if raw["metrics"] is not None else None
        raw["sys_path"] = tuple(raw["sys_path"])
        return cls(**raw)


def target_arg(target: Any) -> str:
    """MODULE:ATTR, or a class or function a child can import by name."""
    if not isinstance(target, str):
        module, name = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(name, str):
            raise TypeError(f"target must be 'MODULE:ATTR', a Handler class or a factory, "
                            f"not {type(target).__name__}")
        if module == "__main__" or "<" in name:
            raise ValueError(f"target {name}: the processes import it afresh, so it must live in an importable "
                             f"module (not __main__, not a local); pass 'MODULE:ATTR'")
        target = f"{module}:{name}"
    text: str = target
    module, sep, attr = text.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"target {target!r}: expected MODULE:ATTR, such as myapp:Handler")
    if not all(part.isidentifier() for part in module.split(".")):
        raise ValueError(f"target {target!r}: {module!r} is not a module name")
    if not all(part.isidentifier() for part in attr.split(".")):
        raise ValueError(f"target {target!r}: {attr!r} is not an attribute name")
    return text


def _host_port(option: str, text: str) -> Tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text:
        raise ValueError(f"{option} {text!r}: expected HOST:PORT, such as 127.0.0.1:8000 or [::1]:8000")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{option} {text!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{option} {text!r}: write an IPv6 address in brackets, such as [::1]:8000")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{option} {text!r}: {port_text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{option} {text!r}: the port must be 0-65535")
    return host, port


def bind_arg(text: Any) -> Bind:
    if not isinstance(text, str):
        raise TypeError(f"bind must be a str ('HOST:PORT' or 'unix:PATH'), not {type(text).__name__}")
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if sys.platform == "win32":
            raise ValueError(f"bind {text!r}: Unix domain sockets are not supported on Windows")
        if not path or "\0" in path:
            raise ValueError(f"bind {text!r}: expected unix:PATH")
        if len(os.fsencode(path)) > 107:
            raise ValueError(f"bind {text!r}: the path is longer than a Unix domain socket's name may be "
                             f"(107 bytes)")
        return Bind(unix=path)
    host, port = _host_port("bind", text)
    return Bind(host=host, port=port)


def processes_arg(value: Any) -> int:
    if value == "auto":
        # Windows cannot share a port between processes: one serves there.
        return 1 if sys.platform == "win32" else os.cpu_count() or 1
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"processes {value!r}: expected a number or 'auto'") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"processes must be an int or 'auto', not {type(value).__name__}")
    if not 1 <= value <= MAX_PROCESSES:
        raise ValueError(f"processes={value}: must be between 1 and {MAX_PROCESSES}")
    return value


def _int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"{name} {value!r}: expected a whole number") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value}: must be between {lo} and {hi}")
    return value


def _seconds(name: str, value: Any, zero_ok: bool) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{name} {value!r}: expected a number of seconds") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or value < 0 or (value == 0 and not zero_ok) or value > MAX_SECONDS:
        least = "0" if zero_ok else "more than 0"
        raise ValueError(f"{name}={value}: must be {least} and at most {MAX_SECONDS:g} seconds")
    return float(value)


def make_options(
    target: Any,
    *,
    bind: Union[str, Sequence[str], None] = None,
    processes: Union[int, str] = 1,
    workers: Union[int, str] = 1,
    backend: str = "auto",
    max_connections: Union[int, str, None] = None,
    idle_timeout: Union[float, str, None] = None,
    graceful_timeout: Union[float, str] = DEFAULT_GRACEFUL_TIMEOUT,
    drain_delay: Union[float, str] = 0.0,
    proxy_protocol: Optional[str] = None,
    proxy_allow_from: Union[str, Sequence[str], None] = None,
    metrics: Optional[str] = None,
    log_level: str = "info",
    pid_file: Union[str, "os.PathLike[str]", None] = None,
) -> ServeOptions:
    """The options, checked (see pyiocp.serve)."""
    target = target_arg(target)
    binds_in: List[str] = [DEFAULT_BIND] if bind is None else [bind] if isinstance(bind, str) else list(bind)
    if not binds_in:
        raise ValueError("bind: at least one address")
    binds = tuple(bind_arg(b) for b in binds_in)
    if len(set(binds)) != len(binds):
        raise ValueError(f"bind: an address is given twice: {', '.join(binds_in)}")
    n = processes_arg(processes)
    if n > 1 and sys.platform == "win32":
        raise ValueError(f"processes={n}: Windows has no SO_REUSEPORT, so pyiocp serve runs one process there")
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str, not {type(backend).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: must be one of {', '.join(BACKENDS)}")
    if proxy_protocol == "off":
        proxy_protocol = None
    if proxy_protocol is not None and proxy_protocol not in PROXY_PROTOCOLS:
        raise ValueError(f"proxy_protocol {proxy_protocol!r}: must be one of {', '.join(PROXY_PROTOCOLS)}")
    if proxy_allow_from is not None and proxy_protocol is None:
        raise ValueError("proxy_allow_from needs proxy_protocol (v1, v2 or auto)")
    _, allow = proxy_args(proxy_protocol, proxy_allow_from)
    metrics_at = _host_port("metrics", metrics) if metrics is not None else None
    if metrics_at is not None and metrics_at[0] == "":
        metrics_at = ("0.0.0.0", metrics_at[1])
    if not isinstance(log_level, str) or log_level.lower() not in LOG_LEVELS:
        raise ValueError(f"log_level {log_level!r}: must be one of {', '.join(LOG_LEVELS)}")
    pid_path: Optional[str] = None
    if pid_file is not None:
        pid_path = os.path.abspath(os.fspath(pid_file))
        parent = os.path.dirname(pid_path)
        if not os.path.isdir(parent):
            raise ValueError(f"pid_file {os.fspath(pid_file)!r}: the directory {parent!r} does not exist")
        if os.path.isdir(pid_path):
            raise ValueError(f"pid_file {os.fspath(pid_file)!r}: is a directory")
    return ServeOptions(
        target=target,
        binds=binds,
        processes=n,
        workers=_int("workers", workers, 1, MAX_WORKERS),
        backend=backend,
        max_connections=None if max_connections is None else _int("max_connections", max_connections, 1,
                                                                     MAX_CONNECTIONS),
        idle_timeout=None if idle_timeout is None else _seconds("idle_timeout", idle_timeout, zero_ok=False),
        graceful_timeout=_seconds("graceful_timeout", graceful_timeout, zero_ok=True),
        drain_delay=_seconds("drain_delay", drain_delay, zero_ok=True),
        proxy_protocol=proxy_protocol,
        proxy_allow_from=allow,
        metrics=metrics_at,
        log_level=log_level.lower(),
        pid_file=pid_path,
        # The working directory first, as gunicorn has it: the application
        # is found there however serve was started (-m, the script, -c).
        sys_path=tuple(dict.fromkeys([os.getcwd()] + [p for p in sys.path if p])),
    )


def log_level_number(name: str) -> int:
    return int(getattr(logging, name.upper()))
