"""pyiocp's benchmark suite: echo, pipelining, churn, bulk, idle memory and
HTTP against asyncio, uvloop and Go, each server pinned to CPU 0 and the
load generator to CPU 1, servers interleaved within each repetition; and
timers (call_later against asyncio's and uvloop's, in-process).

    python -m bench.suite [--quick] [--reps N] [--duration S] [--only SERVER]... [--scenario NAME]...

Run from the project root (``make bench``, ``make bench-quick``). See
bench/README.md for what each figure means.
"""
