"""One measurement: a server is started pinned to CPU 0, the client
(pyiocp-loadgen or wrk) pinned to CPU 1 drives one scenario against it, and
the figures come back as a dict (see FIGURES)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import resource
import select
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from .machine import QUIET_CORES, Window, rss_bytes, tree_rss_bytes, wait_quiet
from .scenarios import Scenario
from .servers import CLIENT_CPU, PY, ROOT, Running, Server, file_path

# The keys of a measurement (those that apply to its scenario):
#   rate           units per second (msgs/s, conns/s, MB/s, reqs/s), from the client
#   per_cpu_s      units per server CPU-second
#   cpu_us         server CPU microseconds per unit
#   p50_us, p99_us latency of one unit (round trip, connect+echo+close, request)
#   peak_rss_mib   the server's peak resident memory (VmHWM)
#   rss_per_conn_kib  idle: server memory per idle connection
#   others_cores   CPU used by other processes over the window, in cores
#   busy           others_cores was over QUIET_CORES: the figure is suspect
#   error          the run failed (then no figures)
Fig = Dict[str, Any]
MARGIN = 0.3  # seconds kept off each end of the client's measured window


@dataclass
class Knobs:
    duration: float
    warmup: float
    quiet_wait: float
    client: str = "engine"  # pyiocp-loadgen -client of the echo scenarios


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _loadgen(bindir: Path, target: str, sc: Scenario, k: Knobs) -> List[str]:
    if sc.udp:
        target = "udp:" + target
    argv = ["taskset", "-c", CLIENT_CPU, str(bindir / "pyiocp-loadgen"), "-addr", target,
            "-conns", str(sc.conns), "-size", str(sc.size), "-json"]
    if sc.mode == "echo":
        argv += ["-depth", str(sc.depth), "-duration", f"{k.duration}s", "-warmup", f"{k.warmup}s",
                 "-client", k.client]
        if sc.framing:
            argv += ["-framing", sc.framing]
    elif sc.mode == "churn":
        argv += ["-mode", "churn", "-duration", f"{k.duration}s", "-warmup", f"{k.warmup}s"]
    elif sc.mode == "bulk":
        argv += ["-mode", "bulk", "-bytes", str(sc.nbytes), "-duration", "300s"]
    elif sc.mode == "idle":
        argv += ["-mode", "idle", "-duration", f"{sc.hold}s", "-connect-timeout", "20s"]
    if sc.tls:
        argv.append("-tls")
    return argv


def _check(r: Fig, what: str) -> None:
    if r.get("errors") or r.get("mismatches"):
        raise RuntimeError(f"{what}: {r['errors']} errors, {r['mismatches']} mismatches: {r['first_error']}")


def _windowed(run: Running, client: "subprocess.Popen[str]", k: Knobs) -> Dict[str, float]:
    """Server CPU over the middle of the client's measured window."""
    time.sleep(k.warmup + MARGIN)
    w = Window(run.pid, client.pid)
    w.start()
    time.sleep(max(0.1, k.duration - 2 * MARGIN))
    return w.stop()


def _per_unit(fig: Fig, rate: float, server_cpu_s: float, wall_s: float) -> None:
    units = rate * wall_s
    fig["per_cpu_s"] = units / server_cpu_s if server_cpu_s else float("inf")
    fig["cpu_us"] = server_cpu_s / units * 1e6 if units else float("inf")
    if fig.get("server_switches"):  # the work a wake-up of the server finds: its rounds' size
        fig["per_switch"] = units / fig["server_switches"]


def _loadgen_run(run: Running, bindir: Path, sc: Scenario, k: Knobs) -> Fig:
    fig: Fig = {}
    win: Optional[Dict[str, float]] = None
    bulk: Optional[Window] = None
    cpu0 = _children_cpu()
    client = subprocess.Popen(_loadgen(bindir, run.target, sc, k), stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        if sc.mode in ("echo", "churn"):
            win = _windowed(run, client, k)
        elif sc.mode == "bulk":
            bulk = Window(run.pid, None)
            bulk.start()
        elif sc.mode == "idle":
            fig.update(_idle(run, client, sc))
        out, _ = client.communicate(timeout=600)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    if not out.strip():
        raise RuntimeError(f"load generator exited {client.returncode} without a result")
    r = json.loads(out.strip().splitlines()[-1])
    _check(r, sc.mode)
    if win is not None:
        rate = r["msgs_per_sec"] if sc.mode == "echo" else r["conns_per_sec"]
        fig.update(win, rate=rate, p50_us=r["p50_s"] * 1e6, p99_us=r["p99_s"] * 1e6)
        _per_unit(fig, rate, win["server_cpu_s"], win["wall_s"])
    elif bulk is not None:
        fig.update(bulk.stop(client_cpu=_children_cpu() - cpu0), rate=r["mb_per_sec"])
        _per_unit(fig, r["mb_per_sec"], fig["server_cpu_s"], r["elapsed_s"])
    return fig


def _idle(run: Running, client: "subprocess.Popen[str]", sc: Scenario) -> Fig:
    """Server memory per connection once every connection is open and idle."""
    assert client.stdout is not None
    before = rss_bytes(run.pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([client.stdout], [], [], 0.5)
        if not ready:
            continue
        line = client.stdout.readline()
        if not line:
            raise RuntimeError("load generator ended before all connections were open")
        m = re.match(r"ready (\d+)", line)
        if m:
            break
    else:
        raise RuntimeError("connections not all open within 120 s")
    n = int(m.group(1))
    time.sleep(min(0.5, sc.hold / 2))  # let the server settle into idle
    after = rss_bytes(run.pid)
    return {"rate": n, "rss_per_conn_kib": (after - before) / n / 1024, "rss_mib": after / 2**20}


_WRK_LAT = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_WRK_UNIT = {"us": 1.0, "ms": 1e3, "s": 1e6}


def _wrk_run(run: Running, sc: Scenario, k: Knobs) -> Fig:
    url = f"http://127.0.0.1:{run.port}/"
    wrk = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{sc.conns}"]
    subprocess.run([*wrk, f"-d{max(1, round(k.warmup))}s", url], capture_output=True, check=True, timeout=120)
    client = subprocess.Popen([*wrk, f"-d{max(1, round(k.duration))}s", "--latency", url],
                              stdout=subprocess.PIPE, text=True)
    try:
        win = _windowed(run, client, Knobs(k.duration, 0.0, k.quiet_wait, k.client))
        out, _ = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if client.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed (exit {client.returncode}): {out[-500:]}")
    for bad in ("Non-2xx or 3xx responses", "Socket errors"):
        if bad in out:
            raise RuntimeError(f"wrk: {out[out.index(bad):].splitlines()[0]}")
    fig: Fig = dict(win, rate=float(m.group(1)))
    for pct, value, unit in _WRK_LAT.findall(out):
        fig[f"p{pct}_us"] = float(value) * _WRK_UNIT[unit]
    _per_unit(fig, fig["rate"], win["server_cpu_s"], win["wall_s"])
    return fig


def _file(bindir: Path, size: int) -> str:
    """The file rows' file, made (or remade at another size) before a
    server that sends it starts: pseudo-random bytes. Its SHA-256."""
    path = file_path(bindir)
    digest = path.with_suffix(".sha256")
    if not path.exists() or path.stat().st_size != size:
        block = random.Random(size).randbytes(1 << 20)
        h = hashlib.sha256()
        with open(path, "wb") as f:
            for off in range(0, size, len(block)):
                piece = block[:size - off]
                f.write(piece)
                h.update(piece)
        digest.write_text(h.hexdigest())
    return digest.read_text()


def _download_run(run: Running, sc: Scenario, digest: str) -> Fig:
    """One client takes the whole file (bench/suite/download.py, pinned to
    the client's CPU); the server's CPU over the whole transfer."""
    win = Window(run.pid, None)
    cpu0 = _children_cpu()
    win.start()
    client = subprocess.run(["taskset", "-c", CLIENT_CPU, PY, "-m", "bench.suite.download", "127.0.0.1",
                             str(run.port), str(sc.nbytes), digest], capture_output=True, text=True, timeout=600,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    fig: Fig = dict(win.stop(client_cpu=_children_cpu() - cpu0))
    if not client.stdout.strip():
        raise RuntimeError(f"download client exited {client.returncode}: {client.stderr[-300:]}")
    r = json.loads(client.stdout.strip().splitlines()[-1])
    if not r["ok"]:
        raise RuntimeError(f"the file came back wrong: {r['bytes']} bytes, header {r['header']!r}")
    fig["rate"] = sc.nbytes / 1e6 / r["seconds"]
    _per_unit(fig, fig["rate"], fig["server_cpu_s"], r["seconds"])
    return fig


def measure(server: Server, sc: Scenario, bindir: Path, k: Knobs) -> Fig:
    """Start server, drive sc against it, stop it: the figures, or {"error": why}."""
    quiet = wait_quiet(k.quiet_wait)
    try:
        digest = _file(bindir, sc.nbytes) if sc.mode == "download" else ""
        with Running(server) as run:
            if sc.mode == "http":
                fig = _wrk_run(run, sc, k)
            elif sc.mode == "download":
                fig = _download_run(run, sc, digest)
            else:
                fig = _loadgen_run(run, bindir, sc, k)
            fig["peak_rss_mib"] = tree_rss_bytes(run.pid, "VmHWM") / 2**20
            if run.proc.poll() is not None:
                raise RuntimeError(f"server exited ({run.proc.returncode}) during the run")
    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
        return {"error": str(exc)[:300]}
    fig["quiet_before_cores"] = quiet
    fig["busy"] = fig.get("others_cores", 0.0) > QUIET_CORES or quiet > QUIET_CORES
    return fig


def count_syscalls(server: Server, sc: Scenario, bindir: Path, k: Knobs) -> Fig:
    """System calls per unit over the middle of an echo run (perf's syscall
    tracepoints). Its CPU figures are not kept: perf attached slows the server."""
    try:
        with Running(server) as run:
            client = subprocess.Popen(_loadgen(bindir, run.target, sc, k), stdout=subprocess.PIPE, text=True)
            time.sleep(k.warmup + MARGIN)
            span = max(0.5, k.duration - 2 * MARGIN)
            perf = subprocess.run(["perf", "stat", "-x", ",", "-e", "syscalls:sys_enter_*", "-p", str(run.pid),
                                   "--", "sleep", f"{span}"], capture_output=True, text=True, timeout=120)
            out, _ = client.communicate(timeout=120)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        return {"error": str(exc)[:300]}
    r = json.loads(out.strip().splitlines()[-1])
    _check(r, sc.mode)
    calls = sum(int(line.split(",")[0]) for line in perf.stderr.splitlines() if line.split(",")[0].isdigit())
    if perf.returncode != 0 or not calls:
        return {"error": f"perf stat failed: {perf.stderr.strip()[-300:]}"}
    return {"syscalls_per_unit": calls / (r["msgs_per_sec"] * span)}
