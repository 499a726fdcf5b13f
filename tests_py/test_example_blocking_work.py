"""examples/blocking_work.py: blocking jobs on a thread pool, replies sent
with conn.send from the pool threads; the I/O worker stays free."""

from __future__ import annotations

import hashlib
import time

import pytest

from example_procs import example, running
from pyiocp.testing import Client

# Linux: the servers run as subprocesses stopped with SIGINT or SIGTERM,
# which Windows cannot send to a child process.
pytestmark = pytest.mark.linux


def test_jobs_run_on_the_pool_and_the_worker_stays_free(backend: str) -> None:
    # One I/O worker, eight pool threads.
    with running(example("blocking_work.py", "--workers", "1", "--pool", "8", "--backend", backend)) as server:
        with Client(server.address) as a, Client(server.address) as b, Client(server.address) as c:
            t0 = time.monotonic()
            a.send(b"".join(b"%d sleep 0.8\n" % i for i in range(4)))
            b.send(b"".join(b"%d sleep 0.8\n" % i for i in range(4, 8)))
            time.sleep(0.05)
            # While all eight pool threads sleep, the worker answers at once.
            c.send(b"p1 ping\n")
            assert c.recv_until(b"\n") == b"p1 pong\n"
            ping_time = time.monotonic() - t0
            assert ping_time < 0.6, ping_time  # before any 0.8 s job is done
            got_a = sorted(a.recv_until(b"\n") for _ in range(4))
            got_b = sorted(b.recv_until(b"\n") for _ in range(4))
            elapsed = time.monotonic() - t0
            assert got_a == [b"%d slept 0.8\n" % i for i in range(4)]
            assert got_b == [b"%d slept 0.8\n" % i for i in range(4, 8)]
            # Concurrently: eight jobs of 0.8 s in well under 8 x 0.8 s.
            assert elapsed < 3.2, elapsed

            c.send(b"h sha256 hello world\nbad job\nx sleep forever\n")
            lines = [c.recv_until(b"\n") for _ in range(3)]
            # The pool's reply may come before the worker's own: on a loaded
            # machine its thread can take the GIL while the worker is still
            # on the next line. The worker's two replies keep their order.
            errors = [b"bad error: bad job 'bad job'\n", b"x error: bad job 'x sleep forever'\n"]
            assert [line for line in lines if line in errors] == errors, lines
            assert b"h " + hashlib.sha256(b"hello world").hexdigest().encode() + b"\n" in lines


def test_a_client_that_leaves_before_its_reply(backend: str) -> None:
    """The pool thread's conn.send finds the connection closed: the server
    carries on and stops cleanly (exit 0) with a job still running."""
    with running(example("blocking_work.py", "--backend", backend)) as server:
        with Client(server.address) as a:
            a.send(b"1 sleep 0.2\n")
        with Client(server.address) as b:
            b.send(b"2 sleep 0.3\n3 ping\n")
            assert b.recv_until(b"\n") == b"3 pong\n"
            time.sleep(0.3)
            assert b.recv_until(b"\n") == b"2 slept 0.3\n"
            b.send(b"4 sleep 0.5\n")
        assert "Traceback" not in server.stderr()
