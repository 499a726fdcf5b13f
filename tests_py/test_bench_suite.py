"""The benchmark suite (bench/suite): its report arithmetic on known
figures, and one short run of every kind of scenario against pyiocp and
uvloop over real sockets (the figures must come back, verified by the load
generator; their values are not judged here: speed is for `make bench`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.suite import report  # noqa: E402
from bench.suite.__main__ import chosen, medians, parse  # noqa: E402
from bench.suite.machine import TICK, tree_threads, window_cpu  # noqa: E402
from bench.suite.timers import IMPLS, measure_timers  # noqa: E402


def _uvloop_importable() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


# The rows run uvloop beside pyiocp; Debian's uvloop is built for its 3.11
# only (on .venv-ft's path, found but not importable).
needs_uvloop = pytest.mark.skipif(not _uvloop_importable(), reason="no uvloop for this interpreter")


def suite_path() -> str:
    """PYTHONPATH for python -m bench.suite: the project root first, even
    under PYTHONSAFEPATH (make test's debug run)."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def cell(**median: Any) -> Dict[str, Any]:
    return {"runs": [median], "median": median, "errors": []}


def doc() -> Dict[str, Any]:
    fig = dict(peak_rss_mib=20.0, p50_us=100.0, p99_us=900.0)
    return {
        "command": "python -m bench.suite", "machine": {"cpu": "test", "date": "today"},
        "args": {"reps": 3, "duration": 5.0, "warmup": 1.0},
        "scenarios": [
            {"name": "echo-50x64", "title": "echo 50", "mode": "echo", "unit": "msgs", "conns": 50, "plot": True},
            {"name": "echo-1000x64", "title": "echo 1000", "mode": "echo", "unit": "msgs", "conns": 1000,
             "plot": True},
            {"name": "idle-10k", "title": "idle", "mode": "idle", "unit": "conns", "conns": 10000},
        ],
        "results": {
            "echo-50x64": {
                "pyiocp io_uring": cell(rate=120.0, per_cpu_s=160.0, cpu_us=6.25, **fig),
                "uvloop": cell(rate=100.0, per_cpu_s=100.0, cpu_us=10.0, **fig),
                "Go net": {"runs": [{"error": "boom"}], "median": {}, "errors": ["boom"]},
            },
            "echo-1000x64": {
                "pyiocp io_uring": cell(rate=100.0, per_cpu_s=120.0, cpu_us=8.0, **fig),
                "uvloop": cell(rate=100.0, per_cpu_s=100.0, cpu_us=10.0, busy=True, **fig),
            },
            "idle-10k": {"pyiocp io_uring": cell(rate=10000, rss_per_conn_kib=5.0, rss_mib=70.0, peak_rss_mib=71.0)},
        },
        "syscalls": {"pyiocp io_uring": {"syscalls_per_unit": 0.25}, "uvloop": {"error": "no perf"}},
        "timers": {
            "pyiocp": cell(arm_us=1.0, cancel_us=0.5, bytes_per_timer=250.0, late_median_ms=0.1, late_p99_ms=2.0,
                           late_max_ms=3.0),
            "uvloop": cell(arm_us=2.0, cancel_us=1.0, bytes_per_timer=500.0, late_median_ms=0.5, late_p99_ms=6.0,
                           late_max_ms=7.0),
            "asyncio": {"runs": [{"error": "boom"}], "median": {}, "errors": ["boom"]},
        },
    }


def test_targets_are_judged_from_the_medians() -> None:
    got = {what: (value, ok) for what, value, ok in report.targets(doc())}
    assert got["Python handler, 50 x 64 B: msgs/s vs uvloop >= 1.0x"] == ("1.20x", True)
    assert got["Python handler, 50 x 64 B: msgs per CPU-s vs uvloop >= 1.5x (io_uring issue: >= 1.3x)"] == \
        ("1.60x", True)
    assert got["Python handler, 1000 x 64 B: msgs per CPU-s vs uvloop >= 1.3x (io_uring issue)"] == ("1.20x", False)
    assert got["Python handler: 1000 x 64 B msgs/s vs 50 x 64 B >= 0.9x (no collapse)"] == ("0.83x", False)
    assert got["Idle: server RSS per idle connection at 10,000 <= 4 KiB"] == ("5.00 KiB", False)
    assert got["Go handler, 50 x 64 B: msgs/s vs Go net >= 1.0x"] == ("-", None)  # Go net failed
    assert got["System calls per echoed message, 50 x 64 B, io_uring <= 0.5 (io_uring issue)"] == ("0.25 ", True)


def test_markdown_has_ratio_columns_failures_and_busy_marks() -> None:
    md = report.markdown(doc(), "echo.png")
    assert "| pyiocp io_uring | 120 | 1.20x | 160 | 1.60x | - | 6.25 | - | 100 | 900 | 20 |" in md
    assert "| Go net | failed: boom |" in md
    assert "| uvloop (busy) |" in md
    assert "| pyiocp io_uring | 5.0 | - | 70 | 71 |" in md  # no uvloop row: no ratio
    assert "| uvloop | failed: no perf |" in md
    assert "![msgs/s against connections](echo.png)" in md
    assert "| pyiocp | 1.00 | 0.50 | 250 | 0.10 / 2.00 / 3.00 |" in md
    assert "| asyncio | failed: boom |" in md
    assert "pyiocp against uvloop: arm 0.50x the time, cancel 0.50x, memory 0.50x." in md


def test_markdown_shows_the_spread_of_repetitions_and_units_per_wake_up() -> None:
    d = doc()
    runs = [dict(rate=100.0, per_cpu_s=v, cpu_us=1e6 / v, per_switch=w, peak_rss_mib=20.0)
            for v, w in ((90.0, 10.0), (100.0, 12.0), (120.0, 30.0))]
    d["results"]["echo-50x64"]["pyiocp io_uring"] = {"runs": runs + [{"error": "x"}], "median": medians(runs),
                                                     "errors": ["x"]}
    md = report.markdown(d, None)
    assert "| pyiocp io_uring | 100 | 1.00x | 100 | 1.00x | -10%..+20% | 10000.00 | 12.0 |" in md


def test_window_cpu_is_exact_unless_threads_ended_within_it() -> None:
    tick = 1.0 / TICK
    before = {(1, 1): (1_000_000_000, 10), (1, 2): (500_000_000, 5)}
    after = {(1, 1): (1_123_456_789, 12), (1, 2): (600_000_000, 9), (1, 3): (7_000_000, 1)}  # (1, 3) started meanwhile
    exact = 0.123456789 + 0.1 + 0.007
    # The ticks' delta agrees within their rounding: the exact figure.
    assert window_cpu(0.23, before, after) == pytest.approx(exact)
    # A thread ended within the window took more than the rounding: the
    # ticks' delta, which still counts it.
    assert window_cpu(exact + 3 * tick, before, after) == exact + 3 * tick
    # This process's own threads, read twice: the counters only grow.
    me = tree_threads(os.getpid())
    assert (os.getpid(), os.getpid()) in me
    sum(range(200_000))
    again = tree_threads(os.getpid())
    assert again[(os.getpid(), os.getpid())] >= me[(os.getpid(), os.getpid())]


def test_medians_leave_out_failed_repetitions() -> None:
    runs: List[Dict[str, Any]] = [{"rate": 1.0, "busy": False}, {"error": "x"}, {"rate": 3.0, "busy": True}, {"rate": 2.0, "busy": False}]
    assert medians(runs) == {"rate": 2.0, "busy": True}
    assert medians([{"error": "x"}]) == {}


def test_quick_mode_shrinks_bulk_and_idle() -> None:
    quick = {sc.name: sc for sc in chosen(parse(["--quick"]))}
    assert quick["bulk-1GiB"].nbytes == 128 << 20 and quick["idle-10k"].conns == 2000
    assert quick["idle-10k"].hold == 1.0
    assert "echo-1x64" not in quick
    full = {sc.name: sc for sc in chosen(parse([]))}
    assert full["bulk-1GiB"].nbytes == 1 << 30 and full["idle-10k"].conns == 10_000
    with pytest.raises(SystemExit):
        parse(["--scenario", "no-such-thing"])


@needs_uvloop
@pytest.mark.timeout(240)
def test_every_kind_of_scenario_runs_against_pyiocp_and_uvloop(tmp_path: Path) -> None:
    scenarios = ["echo-50x64", "pipelined-50x64-d16", "churn-50", "bulk-1GiB", "idle-10k", "http-50",
                 "lines-50x64-d16", "length-50x64-d16", "pool-1x64", "tls-echo-50x64", "unix-echo-50x64",
                 "streams-echo-50x64", "udp-echo-50x64", "heavy-50x64", "sendfile-1GiB"]
    argv = [sys.executable, "-m", "bench.suite", "--quick", "--reps", "1", "--duration", "1", "--warmup", "0.2",
            "--quiet-wait", "0", "--no-syscalls", "--out", str(tmp_path), "--only", "pyiocp io_uring",
            "--only", "uvloop", "--only", "uvloop streams", "--only", report.INLINE]
    for name in scenarios:
        argv += ["--scenario", name]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=220,
                          env={**os.environ, "PYTHONPATH": suite_path()})
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    for name in scenarios:
        framed = name.startswith(("lines", "length"))
        extra = ("uvloop streams",) if framed else (report.INLINE,) if name.startswith("pool") else ()
        for server in ("pyiocp io_uring", "uvloop") + extra:
            cells = res["results"][name][server]
            assert cells["errors"] == [], (name, server, cells["errors"])
            m = cells["median"]
            assert m["rate"] > 0 and m["peak_rss_mib"] > 0, (name, server, m)
            if name == "idle-10k":
                assert m["rate"] == 2000 and m["rss_per_conn_kib"] > 0
            elif name.startswith("sendfile"):  # 128 MiB: a few ticks of CPU, maybe none
                assert m["cpu_us"] >= 0
            else:
                assert m["cpu_us"] > 0 and m["per_cpu_s"] > 0
    assert (tmp_path / "RESULTS.md").read_text().startswith("# pyiocp benchmark results")


@needs_uvloop
@pytest.mark.timeout(120)
def test_the_timers_row_measures_every_loop() -> None:
    env = {**os.environ, "PYTHONPATH": suite_path()}
    got = measure_timers(2000, 1, sys.executable, env)
    assert sorted(got) == sorted(IMPLS)
    for impl, cell in got.items():
        assert cell["errors"] == [], (impl, cell["errors"])
        m = cell["median"]
        assert m["arm_us"] > 0 and m["cancel_us"] > 0, (impl, m)
        # uvloop's clock is libuv's, in whole milliseconds: a timer may run up to 1 ms before time.monotonic()
        # says it is due.
        assert -1.5 <= m["late_median_ms"] <= m["late_p99_ms"] <= m["late_max_ms"], (impl, m)


def test_report_is_written_again_from_a_json_record(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    record.write_text(json.dumps({**doc(), "elapsed_s": 60.0}))
    # A process of its own: matplotlib, where installed, keeps its fonts open.
    done = subprocess.run([sys.executable, "-m", "bench.suite", "--from-json", str(record), "--out",
                           str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": suite_path()})
    assert done.returncode == 0, done.stderr[-2000:]
    md = (tmp_path / "out" / "RESULTS.md").read_text()
    assert "| pyiocp io_uring | 120 | 1.20x | 160 | 1.60x | - | 6.25 | - | 100 | 900 | 20 |" in md
