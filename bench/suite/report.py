"""Results to Markdown: the targets and whether they hold, a table per
scenario with ratio columns against uvloop, system calls per message, the
machine; and the plot of msgs/s against connection count."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

YARDSTICK = "uvloop"
PYIOCP = "pyiocp io_uring"  # what backend="auto" picks where io_uring works
INLINE = "pyiocp io_uring, inline reply"  # the thread-pool rows' reference
# The framing rows' ceiling: the engine echoing bytes, no framing, no Python.
RAW_CEILING = "engine io_uring (Go), raw echo"
# The file rows' other servers: pyiocp's read+send loop, asyncio's zero-copy sendfile.
READ_SEND = "pyiocp io_uring, read+send"
ASYNCIO_SENDFILE = "asyncio loop.sendfile"
# The CPU-heavy rows' servers the targets compare.
SERVE_1, SERVE_2 = "pyiocp serve, 1 process", "pyiocp serve, 2 processes"
FT_W1, FT_W2 = "pyiocp io_uring, 3.13t", "pyiocp io_uring w2, 3.13t"
UNIT_RATE = {"msgs": "msgs/s", "conns": "conns/s", "MB": "MB/s", "reqs": "req/s", "lines": "lines/s",
             "frames": "frames/s", "datagrams": "datagrams/s"}

Results = Dict[str, Any]  # the suite's JSON document


def _med(res: Results, scenario: str, server: str) -> Optional[Dict[str, Any]]:
    cell = res["results"].get(scenario, {}).get(server)
    return dict(cell["median"]) if cell and cell.get("median") else None


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def _x(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _num(v: Optional[float], fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def _get(res: Results, scenario: str, server: str, key: str) -> Optional[float]:
    m = _med(res, scenario, server)
    v = m.get(key) if m else None
    return float(v) if v is not None else None


def targets(res: Results) -> List[Tuple[str, str, Optional[bool]]]:
    """(target, measured, met) for every target the suite can judge."""
    def g(sc: str, srv: str, key: str) -> Optional[float]:
        return _get(res, sc, srv, key)

    def vs(sc: str, key: str, other: str = YARDSTICK) -> Optional[float]:
        """pyiocp's figure over other's in scenario sc."""
        return _ratio(g(sc, PYIOCP, key), g(sc, other, key))

    rows: List[Tuple[str, str, Optional[bool]]] = []

    def add(what: str, value: Optional[float], ok: Callable[[float], bool], shown: str = "x") -> None:
        text = "-" if value is None else (f"{value:.2f}x" if shown == "x" else f"{value:.2f} {shown}")
        rows.append((what, text, None if value is None else ok(value)))

    e50, e1k = "echo-50x64", "echo-1000x64"
    add("Python handler, 50 x 64 B: msgs/s vs uvloop >= 1.0x",
        vs(e50, "rate"), lambda v: v >= 1.0)
    add("Python handler, 50 x 64 B: msgs per CPU-s vs uvloop >= 1.5x (io_uring issue: >= 1.3x)",
        vs(e50, "per_cpu_s"), lambda v: v >= 1.5)
    add("Python handler, 1000 x 64 B: msgs per CPU-s vs uvloop >= 1.3x (io_uring issue)",
        vs(e1k, "per_cpu_s"), lambda v: v >= 1.3)
    add("Go handler, 50 x 64 B: msgs/s vs Go net >= 1.0x",
        _ratio(g(e50, "engine io_uring (Go)", "rate"), g(e50, "Go net", "rate")), lambda v: v >= 1.0)
    add("Go handler, 50 x 64 B: CPU per msg vs Go net <= 0.7x (io_uring issue: per CPU-s >= 1.3x)",
        _ratio(g(e50, "engine io_uring (Go)", "cpu_us"), g(e50, "Go net", "cpu_us")), lambda v: v <= 0.7)
    add("Python handler: 1000 x 64 B msgs/s vs 50 x 64 B >= 0.9x (no collapse)",
        _ratio(g(e1k, PYIOCP, "rate"), g(e50, PYIOCP, "rate")), lambda v: v >= 0.9)
    add("Idle: server RSS per idle connection at 10,000 <= 4 KiB",
        g("idle-10k", PYIOCP, "rss_per_conn_kib"), lambda v: v <= 4.0, shown="KiB")
    add("HTTP keep-alive: req/s vs uvloop (same parser) >= 1.0x",
        vs("http-50", "rate"), lambda v: v >= 1.0)
    add("Churn: conns/s vs uvloop >= 1.0x",
        vs("churn-50", "rate"), lambda v: v >= 1.0)
    add("Bulk: MB per CPU-s, io_uring vs epoll >= 1.0x (io_uring issue)",
        vs("bulk-1GiB", "per_cpu_s", "pyiocp epoll"), lambda v: v >= 1.0)
    lines, length = "lines-50x64-d16", "length-50x64-d16"
    add("Line echo, 50 x 64 B, 16 in flight: lines per CPU-s vs uvloop splitting with bytes.split >= 1.5x",
        vs(lines, "per_cpu_s"), lambda v: v >= 1.5)
    add("Line echo: lines per CPU-s vs uvloop with StreamReader.readline() >= 2x",
        vs(lines, "per_cpu_s", "uvloop streams"), lambda v: v >= 2.0)
    add("Length-prefixed echo, 50 x 64 B, 16 in flight: frames per CPU-s vs uvloop (a Protocol) >= 1.5x",
        vs(length, "per_cpu_s"), lambda v: v >= 1.5)
    add("Two workers keep the tail, 50 x 64 B, pinned to one CPU: p99 vs one worker's <= 1.5x",
        _ratio(g(e50, PYIOCP + " w2", "p99_us"), g(e50, PYIOCP, "p99_us")), lambda v: v <= 1.5)
    add("Two workers keep the tail, 50 x 64 B, unpinned: p99 vs one worker's <= 1.5x",
        _ratio(g(e50, PYIOCP + " w2 unpinned", "p99_us"), g(e50, PYIOCP + " unpinned", "p99_us")),
        lambda v: v <= 1.5)
    add("Thread-pool reply, 1 x 64 B: p50 round trip vs pyiocp's inline reply <= 1.3x",
        vs("pool-1x64", "p50_us", INLINE), lambda v: v <= 1.3)
    add("Thread-pool reply, 50 x 64 B: msgs per CPU-s vs uvloop's run_in_executor >= 1.0x",
        vs("pool-50x64", "per_cpu_s"), lambda v: v >= 1.0)
    calls = res.get("syscalls", {}).get(PYIOCP, {}).get("syscalls_per_unit")
    add("System calls per echoed message, 50 x 64 B, io_uring <= 0.5 (io_uring issue)",
        calls, lambda v: v <= 0.5, shown="")
    tls_echo, tls_churn, tls_bulk = "tls-echo-50x64", "tls-churn-50", "tls-bulk-1GiB"
    add("TLS echo, 50 x 64 B: msgs per CPU-s vs uvloop's ssl >= 2x",
        vs(tls_echo, "per_cpu_s"), lambda v: v >= 2.0)
    add("TLS full handshakes per CPU-s vs uvloop's ssl >= 1x",
        vs(tls_churn, "per_cpu_s"), lambda v: v >= 1.0)
    add("TLS bulk, 1 GiB: MB per CPU-s vs uvloop's ssl >= 1x",
        vs(tls_bulk, "per_cpu_s"), lambda v: v >= 1.0)
    add("TLS idle: memory per idle connection at 10,000 vs uvloop's <= 1x",
        vs("tls-idle-10k", "rss_per_conn_kib"), lambda v: v <= 1.0)
    add("asyncio streams echo, 50 x 64 B, pyiocp.aio vs uvloop's streams: msgs per CPU-s >= 1x",
        vs("streams-echo-50x64", "per_cpu_s"), lambda v: v >= 1.0)
    add("Unix-socket echo, 50 x 64 B: msgs per CPU-s vs uvloop >= 1.1x",
        vs("unix-echo-50x64", "per_cpu_s"), lambda v: v >= 1.1)
    add("UDP echo, 50 clients x 64 B datagrams: datagrams per CPU-s vs uvloop's DatagramProtocol >= 1.3x",
        vs("udp-echo-50x64", "per_cpu_s"), lambda v: v >= 1.3)
    add("sendfile, 1 GiB to one client: MB per CPU-s vs asyncio's loop.sendfile (uvloop has none) >= 1x",
        vs("sendfile-1GiB", "per_cpu_s", ASYNCIO_SENDFILE), lambda v: v >= 1.0)
    add("sendfile, 1 GiB to one client: MB per CPU-s vs pyiocp's read+send loop >= 2x",
        vs("sendfile-1GiB", "per_cpu_s", READ_SEND), lambda v: v >= 2.0)
    heavy = "heavy-50x64"
    add("CPU-heavy handler, 50 x 64 B: msgs/s of `pyiocp serve --processes 2` vs `--processes 1` >= 1.8x",
        _ratio(g(heavy, SERVE_2, "rate"), g(heavy, SERVE_1, "rate")), lambda v: v >= 1.8)
    add("CPU-heavy handler on free-threaded 3.13t: msgs/s of workers=2 vs workers=1 >= 1.7x",
        _ratio(g(heavy, FT_W2, "rate"), g(heavy, FT_W1, "rate")), lambda v: v >= 1.7)
    return rows


def _spread(cell: Dict[str, Any], key: str) -> str:
    """How far the repetitions' key lies from their median: "-8%..+5%"
    ("-" for fewer than two)."""
    vals = [r[key] for r in cell.get("runs", []) if key in r and "error" not in r]
    med = cell["median"].get(key)
    if len(vals) < 2 or not med:
        return "-"
    return f"{min(vals) / med - 1:+.0%}..{max(vals) / med - 1:+.0%}"


def _scenario_table(res: Results, sc: Dict[str, Any]) -> List[str]:
    name, unit = sc["name"], sc["unit"]
    cells = res["results"].get(name, {})
    if not cells:
        return []
    out = [f"### {sc['title']}", ""]
    ref = _med(res, name, YARDSTICK) or {}
    if sc["mode"] == "idle":
        out += ["| server | KiB per idle connection | vs uvloop | RSS with all open MiB | peak RSS MiB |",
                "|---|---:|---:|---:|---:|"]
    else:
        out += [f"| server | {UNIT_RATE[unit]} | vs uvloop | {unit} per CPU-s | vs uvloop | spread | CPU us per "
                f"{unit.rstrip('s')} | {unit} per wake-up | p50 us | p99 us | peak RSS MiB |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for server, cell in cells.items():
        m = cell.get("median")
        if not m:
            out.append(f"| {server} | failed: {'; '.join(cell.get('errors', []))[:200]} |")
            continue
        mark = " (busy)" if m.get("busy") else ""
        if sc["mode"] == "idle":
            out.append(f"| {server}{mark} | {m['rss_per_conn_kib']:.1f} | "
                       f"{_x(_ratio(m['rss_per_conn_kib'], ref.get('rss_per_conn_kib')))} | "
                       f"{m['rss_mib']:.0f} | {m['peak_rss_mib']:.0f} |")
            continue
        rate_fmt = ",.1f" if unit == "MB" else ",.0f"
        out.append(f"| {server}{mark} | {_num(m['rate'], rate_fmt)} | {_x(_ratio(m['rate'], ref.get('rate')))} | "
                   f"{_num(m['per_cpu_s'], rate_fmt)} | {_x(_ratio(m['per_cpu_s'], ref.get('per_cpu_s')))} | "
                   f"{_spread(cell, 'per_cpu_s')} | {m['cpu_us']:.2f} | {_num(m.get('per_switch'), '.1f')} | "
                   f"{_num(m.get('p50_us'))} | {_num(m.get('p99_us'))} | "
                   f"{m['peak_rss_mib']:.0f} |")
    errors = [f"{srv}: {e}" for srv, cell in cells.items() if cell.get("median") for e in cell.get("errors", [])]
    if errors:
        out += ["", "Failed repetitions (left out of the medians): " + "; ".join(errors)[:500]]
    return out + [""]


def _client_text(client: str) -> str:
    """How the echo scenarios were driven (records before --client: net)."""
    if client == "engine":
        return ("The echo scenarios' client is `-client engine`: every connection on one worker of pyiocp's "
                "engine, its system calls batched, so that the client is not what saturates first.")
    return "The echo scenarios' client is `-client net`: a goroutine per connection on Go's net package."


def markdown(res: Results, plot_name: Optional[str]) -> str:
    a = res["args"]
    lines = [
        "# pyiocp benchmark results",
        "",
        f"Written by `{res['command']}` (bench/suite) on {res['machine']['date']}; do not edit by hand. "
        f"Each server runs alone, pinned to CPU 0; the load generator (pyiocp-loadgen, Go, verifying every "
        f"byte; wrk for HTTP) is pinned to CPU 1. {_client_text(a.get('client', 'net'))} Servers take turns within each repetition; figures are "
        f"medians of {a['reps']} ({a['duration']:g} s measured after {a['warmup']:g} s of warm-up). "
        f"Server CPU is read from each thread's /proc schedstat (nanoseconds) over the middle of the measured "
        f"window (the whole transfer for bulk and file rows). On two cores the load "
        f"generator may saturate first, so **units per server CPU-second** is the figure that compares "
        f"servers; a row marked (busy) had other processes using more than 0.15 of a core meanwhile.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---:|:---:|",
    ]
    for what, value, ok in targets(res):
        lines.append(f"| {what} | {value} | {'-' if ok is None else ('yes' if ok else '**no**')} |")
    lines += ["", f"`{PYIOCP}` is `examples/echo.py` (or `examples/http_server.py`) with `backend=\"io_uring\"`, "
              "what `auto` picks where io_uring works; `w2` is the same with `workers=2`.", ""]
    lines += ["## Scenarios", ""]
    for sc in res["scenarios"]:
        lines += _scenario_table(res, sc)
    if res.get("syscalls"):
        lines += ["## System calls per echoed message (50 x 64 B, perf syscall tracepoints, separate run)", "",
                  "| server | syscalls per msg |", "|---|---:|"]
        for server, s in res["syscalls"].items():
            lines.append(f"| {server} | {s['syscalls_per_unit']:.2f} |" if "syscalls_per_unit" in s
                         else f"| {server} | failed: {s.get('error', '')[:200]} |")
        lines.append("")
    lines += _timers_table(res)
    if plot_name:
        lines += ["## Echo throughput against connection count", "", f"![msgs/s against connections]({plot_name})",
                  ""]
    lines += ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in res["machine"].items()]
    return "\n".join(lines) + "\n"


def _timers_table(res: Results) -> List[str]:
    """The timers row (bench/suite/timers.py): per implementation, with
    pyiocp's ratios to uvloop."""
    timers = res.get("timers")
    if not timers:
        return []
    lines = ["## Timers: 100,000 armed an hour ahead, then cancelled; 2,000 due in 1-20 ms (in-process)", "",
             "| timers | arm (us) | cancel (us) | RSS per pending timer (B) | late: median / p99 / max (ms) |",
             "|---|---:|---:|---:|---:|"]
    for impl, cell in timers.items():
        m = cell.get("median") or {}
        if not m:
            lines.append(f"| {impl} | failed: {'; '.join(cell.get('errors', []))[:200]} | | | |")
            continue
        lines.append(f"| {impl} | {m['arm_us']:.2f} | {m['cancel_us']:.2f} | {m['bytes_per_timer']:,.0f} | "
                     f"{m['late_median_ms']:.2f} / {m['late_p99_ms']:.2f} / {m['late_max_ms']:.2f} |")
    mine, yard = (timers.get(k, {}).get("median") or {} for k in ("pyiocp", YARDSTICK))
    if mine and yard:
        lines += ["", f"pyiocp against uvloop: arm {_x(_ratio(mine['arm_us'], yard['arm_us']))} the time, "
                      f"cancel {_x(_ratio(mine['cancel_us'], yard['cancel_us']))}, memory "
                      f"{_x(_ratio(mine['bytes_per_timer'], yard['bytes_per_timer']))}."]
    return lines + [""]


def plot(res: Results, path: Path) -> bool:
    """msgs/s against connection count for every echo server; False
    without matplotlib or without at least two points."""
    try:
        import matplotlib  # type: ignore[import]
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import]
    except ImportError:
        return False
    points = [sc for sc in res["scenarios"] if sc.get("plot")]
    if len(points) < 2:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    servers = list(dict.fromkeys(s for sc in points for s in res["results"].get(sc["name"], {})))
    panels = (("rate", "msgs/s (median)", "Throughput"),
              ("per_cpu_s", "msgs per server CPU-second (median)", "Server efficiency"))
    for ax, (key, ylabel, title) in zip(axes, panels):
        for server in servers:
            xy = [(sc["conns"], _get(res, sc["name"], server, key)) for sc in points]
            pts = [(x, y) for x, y in xy if y is not None]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=server)
        ax.set_xscale("log")
        ax.set_xlabel("connections (64 B echo, one message in flight each)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize="small")
    fig.suptitle("Echo against connection count, server on one CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
