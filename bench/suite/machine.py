"""What the suite reads about the machine: CPU time of processes and of
the whole machine from /proc, memory of a process, waiting for a quiet
machine, and the description printed at the top of the results."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

TICK = os.sysconf("SC_CLK_TCK")

# A machine is quiet when processes other than the ones measured use less
# than this many cores; a window where they used more is marked busy.
QUIET_CORES = 0.15


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_pids(pid: int) -> List[int]:
    """pid and every process descended from it (a server such as
    `pyiocp serve` does its work in child processes)."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds used by pid and its descendants alive now."""
    total = 0.0
    for p in tree_pids(pid):
        try:
            total += proc_cpu(p)
        except OSError:
            pass  # exited meanwhile
    return total


Threads = Dict[Tuple[int, int], Tuple[int, int]]


def tree_threads(pid: int) -> Threads:
    """(process, thread) -> (nanoseconds on a CPU, context switches) of
    every thread of pid and its descendants alive now, in one walk. The
    nanoseconds (/proc/.../schedstat) are exact, where /proc/PID/stat counts
    in clock ticks (10 ms), too coarse for a transfer that takes a second.
    The switches (voluntary and not) are about one per wake-up of a thread
    that sleeps between rounds, so units per switch is about the work one
    wake-up finds."""
    out: Threads = {}
    for p in tree_pids(pid):
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue  # exited meanwhile
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    ns = int(f.read().split()[0])
                status = Path(f"/proc/{p}/task/{t}/status").read_text().splitlines()
            except (OSError, IndexError, ValueError):
                continue  # ended meanwhile
            out[(p, int(t))] = (ns, sum(int(line.split()[1]) for line in status if "ctxt_switches:" in line))
    return out


def window_cpu(coarse: float, before: Threads, after: Threads) -> float:
    """A window's CPU seconds from the threads' exact counters, unless
    threads that ended within it took more than the clock ticks' rounding
    (the coarse delta, from /proc/PID/stat, still counts them): then the
    coarse delta."""
    exact = sum(ns - before.get(tid, (0, 0))[0] for tid, (ns, _) in after.items()) / 1e9
    return exact if exact >= coarse - 2.0 / TICK else coarse


def machine_busy() -> float:
    """CPU seconds all CPUs have spent busy since boot (not idle or iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICK


def rss_bytes(pid: int, key: str = "VmRSS") -> int:
    """VmRSS (resident now) or VmHWM (peak resident) of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def tree_rss_bytes(pid: int, key: str = "VmRSS") -> int:
    """rss_bytes summed over pid and its descendants."""
    total = 0
    for p in tree_pids(pid):
        try:
            total += rss_bytes(p, key)
        except OSError:
            pass  # exited meanwhile
    return total


class Window:
    """CPU used over a window by a server, its client, and everything else.

    start() and stop() are called while the server runs, and the client too
    unless stop() is given the client's CPU seconds (it has exited by then);
    `others_cores` is the machine's busy time minus theirs, in cores (1.0 =
    one CPU all the time).
    """

    def __init__(self, server: int, client: Optional[int]) -> None:
        self.server, self.client = server, client

    def _sample(self) -> Tuple[Tuple[float, float, float, float, float], Threads]:
        client = proc_cpu(self.client) if self.client else 0.0
        threads = tree_threads(self.server)
        switches = float(sum(sw for _, sw in threads.values()))
        return (time.monotonic(), machine_busy(), tree_cpu(self.server), client, switches), threads

    def start(self) -> None:
        self.t0, self.threads0 = self._sample()

    def stop(self, client_cpu: Optional[float] = None) -> Dict[str, float]:
        t1, threads1 = self._sample()
        wall, busy, server, client, switches = (b - a for a, b in zip(self.t0, t1))
        server = window_cpu(server, self.threads0, threads1)
        if client_cpu is not None:
            client = client_cpu
        return {"wall_s": wall, "server_cpu_s": server, "client_cpu_s": client, "server_switches": switches,
                "others_cores": max(0.0, busy - server - client) / wall if wall > 0 else 0.0}


def wait_quiet(max_wait: float) -> float:
    """Wait (up to max_wait seconds) until the machine is quiet; return the
    cores in use over the last half second sampled."""
    deadline = time.monotonic() + max_wait
    while True:
        b0, t0 = machine_busy(), time.monotonic()
        time.sleep(0.5)
        cores = (machine_busy() - b0) / (time.monotonic() - t0)
        if cores < QUIET_CORES or time.monotonic() >= deadline:
            return cores


def _version(cmd: List[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "not available"


def describe(root: Path, go: str) -> Dict[str, str]:
    """The machine and the versions of everything measured."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    try:
        import uvloop
        uv = str(getattr(uvloop, "__version__", "unknown"))
    except ImportError:
        uv = "not installed"
    commit = _version(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "cpu": f"{model}, {os.cpu_count()} CPUs",
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "kernel": platform.release(),
        "os": _version(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "go": _version([go, "version"]),
        "uvloop": uv,
        "wrk": _version(["wrk", "--version"]),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
