"""post(payload): PostQueuedCompletionStatus; on_post gets the same object
on a worker, from any thread, exactly once."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import pytest

import pyiocp
from iocp_helpers import Recorder
from pyiocp.testing import ManagerFactory


class Payload:
    pass


def test_post_delivers_the_same_object_on_a_worker(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend)
    objs = [Payload(), None, 0, "s", b"b", [1], {"k": Payload()}]
    for o in objs:
        mgr.post(o)
    rec.wait_count("post", len(objs))
    assert len(rec.posts) == len(objs)
    assert all(a is b for a, b in zip(rec.posts, objs))  # same objects, in order
    assert all(t.startswith("pyiocp-worker-") for k, _, _, t in rec.events if k == "post")


def test_posts_before_start_are_delivered_after_start(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend, start=False)
    for i in range(5):
        mgr.post(i)
    mgr.start()
    rec.wait_count("post", 5)
    assert rec.posts == list(range(5))


def test_posts_from_many_threads_each_delivered_once(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend, workers=3)
    nthreads, n = 8, 500
    barrier = threading.Barrier(nthreads)

    def poster(t: int) -> None:
        barrier.wait(5)
        for i in range(n):
            mgr.post((t, i))

    ts = [threading.Thread(target=poster, args=(t,)) for t in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    rec.wait_count("post", nthreads * n, timeout=10)
    assert sorted(rec.posts) == sorted((t, i) for t in range(nthreads) for i in range(n))


def test_post_from_a_callback(iocp_manager: ManagerFactory, backend: str) -> None:
    class H(Recorder):
        mgr: pyiocp.SocketManager

        def on_post(self, payload: Any) -> None:
            super().on_post(payload)
            if payload < 10:
                self.mgr.post(payload + 1)

    rec = H()
    mgr = iocp_manager(rec, backend=backend)
    rec.mgr = mgr
    mgr.post(0)
    rec.wait_count("post", 11)
    assert rec.posts == list(range(11))


def test_payload_reference_is_released_after_delivery(iocp_manager: ManagerFactory, backend: str) -> None:
    got = threading.Event()

    class H(pyiocp.Handler):
        def on_post(self, payload: Any) -> None:
            got.set()

    mgr = iocp_manager(H(), backend=backend)
    p = Payload()
    ref = weakref.ref(p)
    mgr.post(p)
    del p
    assert got.wait(5)
    mgr.close()
    gc.collect()
    assert ref() is None


def test_posts_pending_at_close_are_delivered_then_released(backend: str) -> None:
    """Posts to a manager that never started are delivered by close()
    (which drives the workers nobody ran), once, and then let go."""
    seen = []

    class H(pyiocp.Handler):
        def on_post(self, payload: Any) -> None:
            seen.append(weakref.ref(payload))

    mgr = pyiocp.SocketManager(H(), backend=backend, workers=2)
    for _ in range(10):
        mgr.post(Payload())
    mgr.close()
    assert len(seen) == 10
    gc.collect()
    assert all(r() is None for r in seen)


def test_post_after_close_raises(backend: str) -> None:
    mgr = pyiocp.SocketManager(Recorder(), backend=backend)
    mgr.close()
    p = Payload()
    ref = weakref.ref(p)
    with pytest.raises(pyiocp.ManagerClosed):
        mgr.post(p)
    del p
    gc.collect()
    assert ref() is None  # the failed post kept no reference
