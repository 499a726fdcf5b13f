"""The supervisor's HTTP endpoint (--metrics HOST:PORT): /metrics in the
Prometheus text format (every numeric stats() counter of every process,
labelled process="<index>",pid="<pid>"; the supervisor's restarts and
process count) and /healthz (200 while accepting, 503 otherwise: draining,
or no process ready yet)."""

from __future__ import annotations

import http.server
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

# stats() values that go up and down; every other number only grows.
GAUGES = frozenset({"connections", "pending_send_bytes", "paused_reading", "listeners", "workers",
                    "tls_connections"})


class ProcessStats(NamedTuple):
    slot: int
    pid: int
    stats: Dict[str, Any]


class Snapshot(NamedTuple):
    accepting: bool
    processes: List[ProcessStats]
    restarts: int


def render(snap: Snapshot) -> str:
    names: List[str] = []
    for p in snap.processes:
        for key, value in p.stats.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in names:
                names.append(key)
    lines: List[str] = []
    for key in names:
        kind = "gauge" if key in GAUGES else "counter"
        lines.append(f'# HELP pyiocp_{key} SocketManager.stats()["{key}"] of each serving process.')
        lines.append(f"# TYPE pyiocp_{key} {kind}")
        for p in snap.processes:
            value = p.stats.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                lines.append(f'pyiocp_{key}{{process="{p.slot}",pid="{p.pid}"}} {value}')
    lines += [
        "# HELP pyiocp_supervisor_restarts_total Serving processes started again after they died unasked.",
        "# TYPE pyiocp_supervisor_restarts_total counter",
        f"pyiocp_supervisor_restarts_total {snap.restarts}",
        "# HELP pyiocp_processes Serving processes running (starting, serving or draining).",
        "# TYPE pyiocp_processes gauge",
        f"pyiocp_processes {len(snap.processes)}",
    ]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """http.server on its own thread; snapshot() is called per request."""

    def __init__(self, address: Tuple[str, int], snapshot: Callable[[], Snapshot]) -> None:
        take = snapshot

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self.reply(200, render(take()), "text/plain; version=0.0.4; charset=utf-8")
                elif path == "/healthz":
                    ok = take().accepting
                    self.reply(200 if ok else 503, "ok\n" if ok else "draining\n", "text/plain")
                else:
                    self.reply(404, "not found: try /metrics or /healthz\n", "text/plain")

            def reply(self, code: int, body: str, ctype: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a scrape every few seconds is not news

        self.httpd = http.server.ThreadingHTTPServer(address, Handler)
        self.httpd.daemon_threads = True
        self.address: Tuple[str, int] = self.httpd.server_address[:2]  # type: ignore[assignment]
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.1,), name="pyiocp-serve-metrics",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()
