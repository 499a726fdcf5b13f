#!/usr/bin/env python3
"""Write docs/reliability.md from the records of a fault-suite run.

    python3 scripts/reliability_report.py build/reliability docs/reliability.md

`make soak` runs the long forms of the fault suite with PYIOCP_REPORT_DIR
set, so that every scenario appends a JSON record (sizes, measurements,
baseline figures, result) to go.jsonl (the Go suite) or py.jsonl (the Python suite); the fuzz targets' output is
in fuzz-<Target>.log and the debug-Python run's in debugpy.log. This script
turns them into one table, a row per scenario, and exits 1 if a scenario
failed or has no record from a suite that should have run it.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

GO, GO_RACE, PY, FUZZ, DEBUG = "Go", "Go -race", "Python", "fuzz", "debug"
# The soak runs the Go scenarios without the race detector (at the long
# sizes it takes hours on two cores); make test runs their short forms
# under it. A record from a -race run is still labelled as such.
ALL = (GO, PY)

# id, title, what it does, what is checked, the suites that run it.
SCENARIOS: List[Tuple[str, str, str, str, Tuple[str, ...]]] = [
    ("max_connections", "Limit: `max_connections`",
     "Waves of simultaneous connects, six times the cap of 50, held open.",
     "Connections over the cap are reset at once, never announced, counted in `rejected`; "
     "the open count (sampled every 0.2-0.5 ms) never passes the cap; a new client is served after.", ALL),
    ("slowloris", "Limit: `accept_timeout` (slowloris)",
     "Waves of 500 connected-but-silent peers while an echo client does a round trip every millisecond "
     "(Go: a first wave dialed without a goroutine per peer).",
     "Every silent peer is reset after the timeout, never before and less than 1 s late, with "
     "`TimeoutError` to `on_close`, counted in `timed_out`; the echo client's worst round trip stays "
     "under 250 ms (1 s under `-race`): no stall; the 500 pending deadlines add no goroutine.", ALL),
    ("idle_timeout", "Limit: `idle_timeout`",
     "Peers talk once, then go quiet, while an echo client keeps talking.",
     "Every quiet peer is reset between the timeout and 1 s after its last byte, with `TimeoutError`, "
     "counted in `timed_out`; the talking client is never closed, its worst round trip under 250 ms "
     "(1 s under `-race`).", ALL),
    ("timers", "Timers under churn",
     "Connections arm three timers each in `on_accept` (due at once, within 5 ms, an hour away) and "
     "close or reset at once, from 4 threads, while 4 more threads arm manager timers and cancel every "
     "other one.",
     "No connection's timer runs after its `on_close`, and the one an hour away ends cancelled; every "
     "manager timer not cancelled runs exactly once, none that `cancel()` stopped runs; nothing is left "
     "behind.", (PY,)),
    ("framing", "Framing under hostile peers",
     "From 4 threads, peers of a `Lines` and a `LengthPrefixed` listener: good frames cut at random "
     "places, lines and announced lengths over the limits, resets in the middle of a frame, garbage.",
     "Every good frame is echoed whole; a frame over its limit ends its connection with `ProtocolError` "
     "before the rest is sent; every connection closes exactly once, with nothing but `ProtocolError` or a "
     "reset; nothing is left behind.", (PY,)),
    ("close_timeout", "Limit: `close_timeout` (a flood while closing)",
     "Peers flood the server and never read; the server closes each connection with 1 MiB of reply "
     "they cannot take.",
     "After `close()` the server reads at most a few MiB per peer (`recv_buffer_limit`, then TCP pushes "
     "back), not the whole flood; every connection is reset by `close_timeout` (not before, less than "
     "1 s late) with `TimeoutError`, counted in `timed_out`.", ALL),
    ("send_buffer_limit", "Limit: `send_buffer_limit`",
     "Peers with 4 KiB receive buffers that never read; the server sends to each until `BufferFull`, "
     "and again on every drain.",
     "Each connection's pending bytes stay at most the limit; nothing more is written while they do not "
     "read; memory stays within peers x limit (+16 MiB Go heap, +64 MiB RSS in Python); `close(0.2)` "
     "resets each with `TimeoutError`.", ALL),
    ("recv_buffer_limit", "Limit: `recv_buffer_limit`",
     "Peers write as fast as they can; the application pauses reading mid-flood, from another thread.",
     "Not a byte is read while paused; the peers stall on the closed TCP window; memory stays within "
     "peers x limit (+slack); resumed, every byte arrives, in order (SHA-256).", ALL),
    ("emfile", "Limit: out of descriptors (EMFILE)",
     "RLIMIT_NOFILE lowered and the rest of the descriptors filled (Python: in a child process), "
     "a peer connects and waits; then the descriptors are freed.",
     "Accepts fail with EMFILE without a busy loop (CPU under 10 %, failed accepts paced by the 100 ms "
     "retry), the listener stays, the episode is logged once and counted in `accept_error_episodes`; "
     "once freed the waiting peer is served, then 24 peers at once (more than the 16 accepts posted).", ALL),
    ("reset_mid_transfer", "Peer reset mid-transfer, both directions",
     "Peers reset (RST) after reading part of an endless stream from the server, or while uploading.",
     "Each of those connections ends exactly once with an OS error (ECONNRESET/EPIPE); an echo client "
     "on the same listener never errs; the listener lives on (`listeners` = 1) and serves a new client. "
     "(Uploads reset while still in the kernel's SYN queue, more connections at once than the listen "
     "backlog, never reach the server: counted, not failures.)", ALL),
    ("tls_peers", "TLS: full handshakes among hostile peers, the certificate reloaded",
     "Clients make full TLS 1.3 handshakes (one echo each) from 8 threads while peers send garbage, stay "
     "silent, cut a handshake record then FIN, reset mid-handshake-record, or reset mid-record after "
     "the handshake; the listener's certificate is reloaded every 5 ms meanwhile.",
     "Every good client gets its echo; every failed handshake is counted in `tls_handshake_errors` and "
     "never announced (a peer reset before it was accepted may go unseen where AcceptEx drops it); those "
     "reset mid-record close with an error; nothing is left (descriptors, goroutines, heap, RSS).", (GO,)),
    ("unix_peers", "Unix domain sockets: peers of every kind at once",
     "On a Unix domain listener, from 8 threads: echo clients, downloads closed with the server's stream "
     "unread, uploads cut mid-stream, peers that connect and leave at once; an echo client all along.",
     "Every echo byte checked; every connection ends exactly once (interrupted downloads with an OS "
     "error); the control client is never disturbed; nothing is left behind, the socket file included "
     "once the manager closes.", (GO,)),
    ("first_data_silent", "Accept with the first data: a crowd of silent peers",
     "Peers that connect and never send, more than the 16 accepts posted, on a `first_data` listener "
     "(accept timeout 1 s), while 4 clients that speak first make short connections.",
     "Every silent peer is dropped (on Windows never accepted: its AcceptEx is swept); every speaking "
     "client gets its echo; no connection is left; nothing leaks.", (GO,)),
    ("half_close", "Half-close both ways",
     "Peers send FIN first and read the whole reply; and the server sends FIN first and reads the "
     "whole upload.",
     "Every byte both ways (SHA-256); every connection closed once, cleanly (error `None`).", ALL),
    ("one_byte_at_a_time", "One byte at a time",
     "Peers send one byte per segment (TCP_NODELAY), 1 ms apart, under 1 s accept and idle timeouts.",
     "Every byte echoed in order; the bytes arrive as separate receives; no trickling peer times out.",
     ALL),
    ("churn", "Connection churn",
     "Connect/close cycles from 4 threads: echo then close, close at once, reset, the server closes first.",
     "`accepted` = `closed` = cycles; every `on_close` exactly once; nothing left behind.", ALL),
    ("close_under_load", "`close()` under load",
     "The manager is closed (timeout 2 s) while 200 connections stream both ways.",
     "Every `on_close` exactly once; close returns within 4 s; every peer sees the end; worker "
     "threads / goroutines joined.", ALL),
    ("many_managers", "Many managers in one process",
     "Managers (1-3 workers) made and closed one after another, each with 3 inbound and 1 outbound "
     "connections open and data in flight.",
     "Every `on_close` once, every listener closed, no worker thread or goroutine left, fds and memory "
     "back to baseline.", ALL),
    ("callbacks_raise", "Callbacks that raise, every kind",
     "`on_accept`, `on_connect`, `on_recv`, `on_send`, `on_drain`, `on_eof`, `on_close`, `on_post` raise "
     "in turn, then `on_error` itself, while an echo client is served (Python only: a Go handler has no "
     "exceptions).",
     "Every exception reaches `on_error` with its traceback (conn `None` for `on_post`); an `on_error` "
     "that raises is logged with its traceback; every `on_close` once; the workers never die.", (PY,)),
    ("blocking_callback", "A callback that blocks",
     "One callback sleeps for seconds on one of 4 workers; 8 peers.",
     "The other workers' peers are served all along (worst round trip under 250 ms, 1 s under "
     "`-race`); the peer that shares the blocked worker waits; everything is answered after.", ALL),
    ("eight_senders", "8 threads send to one connection",
     "8 threads (goroutines) send frames of 1 B-64 KiB to one connection through a 1 MiB send buffer, "
     "waiting for `on_drain` after `BufferFull`.",
     "Every frame whole, each sender's in order, no byte lost; the buffer filled (drains > 0).", ALL),
    ("integrity", "Integrity soak",
     "Connections all at once, each sends a uniform random size from 1 B to 1 MiB (the first 1 B, the "
     "second 1 MiB), half-closes and reads the echo.",
     "SHA-256 of what the server received and of the echo, per connection: zero mismatches; byte counters "
     "match.", ALL),
    ("refcount", "Reference counts (C glue)",
     "Messages bounced between 50 connection pairs of one manager: each is an `on_recv` and an "
     "`on_send`, every 1000th also a post to `on_post`.",
     "After the warm-up, `sys.getallocatedblocks()` grows by under 1,000 and RSS by under 4 MiB "
     "(a leaked reference per message would be a block per message); a leaky handler fails the same check.",
     (PY,)),
    ("fuzz_FuzzParseAddr", "Fuzz: `engine.ParseAddr`",
     "`go test -fuzz` on the address parser the bindings use (host string, port int); committed seed "
     "corpus in gomod/engine/testdata/fuzz.",
     "No panic; accepts exactly what `netip` accepts with a port in 0-65535 and prints back to itself; "
     "refuses with an `*OptionError` naming the bad argument.", (FUZZ,)),
    ("fuzz_FuzzFromRaw", "Fuzz: poller `fromRaw`",
     "`go test -fuzz` on the decoder of the raw sockaddr accept4 fills in; committed seed corpus in "
     "gomod/internal/poller/testdata/fuzz.",
     "No panic or read past the buffer; AF_INET/AF_INET6 decode to the address and port the bytes spell "
     "(decoded independently), anything else to the zero address; `toSockaddr` gives it back.", (FUZZ,)),
    ("fuzz_FuzzLines", "Fuzz: the `Lines` splitter",
     "`go test -fuzz` on a byte stream cut into reads of a fuzzed size, through the engine's line "
     "splitter (terminator and limit fuzzed too).",
     "No panic; the same lines, and the same over-the-limit error at the same point, however the stream "
     "is cut, as for the whole stream at once.", (FUZZ,)),
    ("fuzz_FuzzLengthPrefixed", "Fuzz: the `LengthPrefixed` splitter",
     "`go test -fuzz` on a byte stream cut into reads of a fuzzed size, through the engine's "
     "length-prefix splitter (header size, byte order and limit fuzzed too).",
     "No panic; the same frames, and the same over-the-limit error as soon as a header announces it, "
     "however the stream is cut.", (FUZZ,)),
    ("fuzz_FuzzServerHandshakeInput", "Fuzz: a TLS server's handshake input",
     "`go test -fuzz` feeding arbitrary bytes, in two pieces, then the end of stream, to a server "
     "handshake of gomod/internal/tlsio (stock crypto/tls over the engine's bytes).",
     "No panic; the handshake ends with an error, never hangs, and leaves no goroutine waiting.", (FUZZ,)),
    ("debug_python", "The Python suite under debug checks",
     "All of tests_py with `PYTHONMALLOC=debug`, `python -X dev`, and the extension built with "
     "`GOEXPERIMENT=cgocheck2` (strictest cgo pointer checks).",
     "Every test passes; a test asserts the debug build and the debug interpreter settings are the ones "
     "in use.", (DEBUG,)),
]

LIMITS = """\
The limits, each an option of `SocketManager` (Python, keyword-only) and of
`engine.New` (Go, `With...`), with the scenario that tests it below:

| option | default | at the limit |
|---|---|---|
| `max_connections` / `WithMaxConnections` | none | a connection over the cap is accepted and reset at once, never announced (no `on_accept`), counted in `stats()["rejected"]` |
| `accept_timeout` / `WithAcceptTimeout` | none | an accepted connection that sent nothing for that long is reset; `on_close(conn, TimeoutError)`; `timed_out` |
| `idle_timeout` / `WithIdleTimeout` | none | a connection that moved no byte either way for that long is reset; `on_close(conn, TimeoutError)`; `timed_out` |
| `close_timeout` / `WithCloseTimeout` | 10 s | a graceful close (`close()`, the default `on_eof`, the manager's close) still flushing after that long is reset; `on_close(conn, TimeoutError)`; `timed_out`. While it flushes, what the peer sends is read and dropped up to `recv_buffer_limit`, then not read (TCP pushes back) |
| `send_buffer_limit` / `WithSendBufferLimit` | 4 MiB | `send` raises `BufferFull` and queues nothing; `on_drain` once pending falls to `send_low_watermark` (a quarter of the limit) |
| `recv_buffer_limit` / `WithRecvBufferLimit` | 256 KiB | received bytes not yet delivered (reading paused) are held up to the limit; the socket is not read further, so the peer's TCP window closes |
| `listen(..., accepts=)` / `WithAccepts` | 16 | accepts kept posted per listener; when accepts fail (EMFILE, ENFILE, ENOMEM) they are posted again every 100 ms, the listener never closes, each episode is logged once (logger `"pyiocp"`) and counted: `stats()["accept_errors"]`, `["accept_error_episodes"]` |

The timeouts are kept in one min-heap per worker (gomod/engine/timeouts.go): no
goroutine and no runtime timer per connection (the Go slowloris scenario
checks that 500 connections with deadlines add no goroutine).

"""

TOLERANCES = """\
After every scenario the process must be back to its baseline, within:

| figure | tolerance | where |
|---|---|---|
| open file descriptors | 0 (the same descriptors) | Go and Python |
| goroutines | 0 (at most the baseline) | Go |
| Python threads | 0 (no new thread alive) | Python |
| Go heap in use, after `runtime.GC` | +16 MiB | Go |
| RSS, after `debug.FreeOSMemory` | +32 MiB | Go without `-race` (the race detector's shadow memory is never returned; the heap check stands in) |
| RSS | +64 MiB | Python (the Go heap in a Python process shrinks only after a collection, which comes with Go allocation or every 2 minutes; the reference-count scenario checks flatness precisely) |

Goroutines cannot be counted from Python; the binding starts none (its
workers are Python threads), and the Go suite checks them after the same
scenarios. Each figure is checked after a settle of up to 5 s.
"""


def load(path: Path) -> List[Dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def suite_of(rec: Dict[str, Any]) -> str:
    if rec["suite"] == "go":
        return GO_RACE if rec.get("race") else GO
    return PY


def fuzz_records(d: Path) -> List[Dict[str, Any]]:
    out = []
    for log in sorted(d.glob("fuzz-*.log")):
        target = log.stem[len("fuzz-"):]
        text = log.read_text(errors="replace")
        execs = re.findall(r"execs: (\d+)", text)
        elapsed = re.findall(r"elapsed: (\d+)s", text)
        corpus = re.findall(r"\(total: (\d+)\)", text)
        # Go 1.26 can end a clean run with "context deadline exceeded" as
        # -fuzztime expires (go.dev/issue/75804): a failure only with an input.
        race = "context deadline exceeded" in text and "Failing input written" not in text
        ok = re.search(r"^ok\s", text, re.M) is not None or race
        out.append({
            "scenario": "fuzz_" + target, "suite": FUZZ, "result": "pass" if ok else "fail",
            "size": [f"{elapsed[-1] if elapsed else '?'} s, {int(execs[-1]) if execs else 0:,} executions, "
                     f"corpus {corpus[-1] if corpus else '?'} entries"],
            "notes": (["ended by the fuzz coordinator's deadline race (go.dev/issue/75804), no failing input"]
                      if race else []) if ok else ["a failing input; see " + log.name],
        })
    return out


def debug_record(d: Path) -> List[Dict[str, Any]]:
    log = d / "debugpy.log"
    if not log.exists():
        return []
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    summary = next((ln.strip("= ") for ln in reversed(lines) if re.search(r"\d+ (passed|failed)", ln)), "no summary")
    ok = "passed" in summary and not re.search(r"failed|error", summary)
    return [{"scenario": "debug_python", "suite": DEBUG, "result": "pass" if ok else "fail",
             "size": ["all of tests_py (short forms)"], "notes": [summary]}]


def figures(rec: Dict[str, Any]) -> str:
    b = rec.get("baseline") or {}
    parts = []
    if "fds" in b:
        parts.append("fds {}→{}".format(*b["fds"]))
    if "goroutines" in b:
        parts.append("goroutines {}→{}".format(*b["goroutines"]))
    if "threads" in b:
        parts.append("threads {}→{}".format(*b["threads"]))
    if "heap_mib" in b:
        parts.append("heap {}→{} MiB".format(*b["heap_mib"]))
    if "rss_mib" in b:
        parts.append("RSS {}→{} (peak) →{} MiB".format(*b["rss_mib"]))
    return ", ".join(parts)


def scale_text(recs: List[Dict[str, Any]]) -> str:
    """The CI and soak values of a scenario's scaled parameters."""
    for rec in recs:
        scale = (rec.get("counters") or {}).get("scale")
        if scale:
            return "; ".join(f"{k} {fmt(v[0])} / {fmt(v[1])}" for k, v in scale.items())
    return ""


def fmt(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        if v >= 1 << 20 and v % (1 << 20) == 0:
            return f"{v >> 20} MiB"
        if v >= 1 << 10 and v % (1 << 10) == 0:
            return f"{v >> 10} KiB"
        return f"{v:,}"
    return str(v)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def tool_version(cmd: List[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main(argv: List[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    d, out = Path(argv[1]), Path(argv[2])
    records = load(d / "go.jsonl") + load(d / "py.jsonl")
    for r in records:
        r["suite"] = suite_of(r)
    records += fuzz_records(d) + debug_record(d)
    by: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
    backends_of: Dict[str, Set[str]] = {}  # suite -> the backends it ran on
    for r in records:
        b = r.get("backend") or ""
        by[(r["scenario"], r["suite"], b)] = r  # the last record wins
        if b:
            backends_of.setdefault(r["suite"], set()).add(b)
    multi = len(set().union(*backends_of.values())) > 1 if backends_of else False
    problems: List[str] = []
    modes = sorted({r.get("mode", "") for r in records if r.get("mode")})
    rows = []
    for sid, title, what, checked, suites in SCENARIOS:
        recs: List[Dict[str, Any]] = []
        sized: Dict[str, List[str]] = {}  # size -> the runs that had it
        results = []
        runs = [(s, b) for s in suites for b in sorted(backends_of.get(s) or {""})]
        for s, b in runs:
            label = f"{s} ({b})" if multi and b else s
            if (sid, s, b) not in by:
                problems.append(f"{sid}: no record from {label}")
                results.append(f"**{label}: not run**")
                continue
            r = by[(sid, s, b)]
            recs.append(r)
            size = "; ".join(r.get("size") or [])
            if size:
                sized.setdefault(size, []).append(label)
            res = r["result"]
            if res != "pass":
                problems.append(f"{sid}: {label} {res}")
            head = f"**{label}: {res}**"
            if "seconds" in r:
                head += f" ({r['seconds']} s)"
            detail = "; ".join(r.get("notes") or [])
            fig = figures(r)
            results.append(head + (f" {detail}." if detail else "") + (f" {fig}." if fig else ""))
        scaled = scale_text(recs)
        sizes = [f"{', '.join(who)}: {size}" if len(runs) > 1 else size for size, who in sized.items()]
        size_cell = "\n".join(sizes) + (f"\n*CI / soak:* {scaled}" if scaled else "")
        rows.append(f"| {cell(title)} | {cell(what)} | {cell(size_cell)} | {cell(checked)} | "
                    f"{cell(chr(10).join(results))} |")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    head = git("rev-parse", "--short", "HEAD")
    doc = f"""# Reliability: faults, hostile peers, limits, leaks

Written by `make soak` ({Path(argv[0]).as_posix()}) from the records of its
run; do not edit by hand. Every row is a scenario of the fault suite
(tests_go/faults_*_test.go, tests_py/test_faults_*.py), run by CI in its
short form (`make test`) and by `make soak` in its long form: one code path,
sized by `PYIOCP_SOAK=1`. The soak runs the Go scenarios without the race
detector (the long sizes under it take hours on two cores, and it hides
RSS); `make test` runs their short forms under it.

Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, mode {', '.join(modes) or '?'},
commit {head}{' with uncommitted changes' if dirty else ''}; {platform.system()} {platform.release()},
{tool_version(['nproc'])} CPUs, {tool_version(['go', 'version'])}, Python {platform.python_version()};
backends: {', '.join(sorted({r.get('backend', '') for r in records if r.get('backend')}))}; loopback only.

{LIMITS}{TOLERANCES}
Results give each suite's verdict and time, what it measured, and the
process's figures before → after (RSS: before → peak → after).

| Scenario | What it does | Size (last run) | Checked | Result (last run) |
|---|---|---|---|---|
""" + "\n".join(rows) + "\n"
    if problems:
        doc += "\n**Problems in this run:** " + "; ".join(problems) + "\n"
    out.write_text(doc)
    for p in problems:
        print("reliability:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
