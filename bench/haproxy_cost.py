"""What HAProxy in front costs: `pyiocp serve echo:Echo` (examples/echo.py) driven by
pyiocp-loadgen directly, then through HAProxy in TCP mode with
send-proxy-v2 (the server parsing the header), in the same run.

    python -m bench.haproxy_cost [--duration 5] [--reps 3]

Two loads: echo on 50 kept-open connections (the cost per message), and
churn, 50 at a time (connect, one echo, close: the cost per connection,
where the PROXY header and HAProxy's second connection are paid). For
each: the rate, p50 and p99, and CPU microseconds per unit of the server
(its process tree) and of HAProxy. Everything shares the machine's CPUs
(nothing pinned), as on a host that runs both.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from bench.suite.machine import tree_cpu
from bench.suite.servers import ROOT, build

PY = sys.executable
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: "subprocess.Popen[bytes]", timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} (exit status {proc.poll()})")


class Setup:
    """serve (and HAProxy before it when proxied) on fresh ports."""

    def __init__(self, tmp: Path, proxied: bool) -> None:
        self.port = free_port()
        argv = [PY, "-m", "pyiocp", "serve", "echo:Echo", "--bind", f"127.0.0.1:{self.port}",
                "--processes", "1", "--graceful-timeout", "1", "--log-level", "warning"]
        if proxied:
            argv += ["--proxy-protocol", "v2"]
        # examples/echo.py, imported from its directory (it imports _serving beside it)
        self.serve = subprocess.Popen(argv, cwd=ROOT / "examples", stdin=subprocess.DEVNULL)
        self.haproxy: Optional[subprocess.Popen[bytes]] = None
        self.target = self.port
        wait_port(self.port, self.serve)
        if proxied:
            self.target = free_port()
            cfg = tmp / "haproxy.cfg"
            cfg.write_text("\n".join([
                "global", "  maxconn 4000",
                "defaults", "  mode tcp", "  timeout connect 5s", "  timeout client 30s", "  timeout server 30s",
                "frontend f", f"  bind 127.0.0.1:{self.target}", "  default_backend b",
                "backend b", f"  server s 127.0.0.1:{self.port} send-proxy-v2"]) + "\n")
            self.haproxy = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL)
            wait_port(self.target, self.haproxy)

    def cpu(self) -> Dict[str, float]:
        return {"server": tree_cpu(self.serve.pid), "haproxy": tree_cpu(self.haproxy.pid) if self.haproxy else 0.0}

    def stop(self) -> None:
        for p in (self.haproxy, self.serve):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def run_once(bindir: Path, tmp: Path, proxied: bool, mode: str, duration: float) -> Dict[str, float]:
    setup = Setup(tmp, proxied)
    try:
        argv = [str(bindir / "pyiocp-loadgen"), "-addr", f"127.0.0.1:{setup.target}", "-conns", "50",
                "-size", "64", "-duration", f"{duration}s", "-warmup", "1s", "-json"]
        if mode == "churn":
            argv += ["-mode", "churn"]
        client = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        time.sleep(1.3)  # the warm-up, and a margin
        c0, t0 = setup.cpu(), time.monotonic()
        time.sleep(duration - 0.6)
        c1, t1 = setup.cpu(), time.monotonic()
        out, _ = client.communicate(timeout=120)
    finally:
        setup.stop()
    r = json.loads(out.strip().splitlines()[-1])
    if r.get("errors") or r.get("mismatches"):
        raise RuntimeError(f"{mode}: {r['errors']} errors, {r['mismatches']} mismatches: {r['first_error']}")
    rate = r["msgs_per_sec"] if mode == "echo" else r["conns_per_sec"]
    units = rate * (t1 - t0)
    return {"rate": rate, "p50_us": r["p50_s"] * 1e6, "p99_us": r["p99_s"] * 1e6,
            "server_us": (c1["server"] - c0["server"]) / units * 1e6,
            "haproxy_us": (c1["haproxy"] - c0["haproxy"]) / units * 1e6}


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    if not Path(HAPROXY).exists():
        print("haproxy is not installed (make deps installs it)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        build(tmp)
        print("| load | path | rate | p50 us | p99 us | server CPU us per unit | HAProxy CPU us per unit |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for mode, unit in (("echo", "msgs/s"), ("churn", "conns/s")):
            runs: Dict[bool, List[Dict[str, float]]] = {False: [], True: []}
            for _ in range(args.reps):  # interleaved, so that drift hits both
                for proxied in (False, True):
                    runs[proxied].append(run_once(tmp, tmp, proxied, mode, args.duration))
            for proxied in (False, True):
                med = {k: statistics.median(r[k] for r in runs[proxied]) for k in runs[proxied][0]}
                path = "through HAProxy (send-proxy-v2)" if proxied else "direct"
                print(f"| {mode} | {path} | {med['rate']:,.0f} {unit} | {med['p50_us']:,.0f} | "
                      f"{med['p99_us']:,.0f} | {med['server_us']:.1f} | {med['haproxy_us']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
