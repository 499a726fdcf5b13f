/* callers.c: how many Python threads call into the engine, so that Go
 * keeps a P for each and one spare (procs.go).
 *
 * A thread returning from a call into Go keeps its P, as if in a system
 * call, until it calls again or Go's monitor takes the P back. A worker
 * waiting for completions holds one so; so does each thread that sent from
 * a thread pool, say, and then went back to wait for work. When no P is
 * left idle, the monitor takes one back on each of its wake-ups, which
 * start a thread looking for work and keep the monitor waking every 20 us;
 * and a thread calling in waits for a P meanwhile. With a P to spare it
 * leaves them alone for 10 ms. Measured (thread-pool echo, 1 connection x
 * 64 B, one CPU, GOMAXPROCS 2 for one worker): 3.9 context switches per
 * message, p50 round trip 115 us; with 3 Ps: 2.2 switches, 65 us (the
 * inline reply: 62 us).
 *
 * So each Python thread counts from its first call through the hot entry
 * points (the sends, post, call_later, a connection's close and pause,
 * connect, the pool, poll) until its thread state ends: a capsule in the
 * thread state's dict takes the count back when the dict is cleared. */
#include <stdatomic.h>
#include "pyiocp.h"

#define CAPSULE "pyiocp.caller"

/* The thread state this thread was counted under (a thread that makes a
 * new one, through PyGILState_Ensure, say, is counted again). */
static Py_tss_t counted = Py_tss_NEEDS_INIT;
static atomic_int callers;

int callers_init(void)
{
    return PyThread_tss_create(&counted) ? (PyErr_NoMemory(), -1) : 0;
}

int live_callers(void)
{
    return atomic_load_explicit(&callers, memory_order_relaxed);
}

static void caller_gone(PyObject *capsule)
{
    atomic_fetch_sub_explicit(&callers, 1, memory_order_relaxed);
}

void note_caller(void)
{
    PyThreadState *ts = PyThreadState_Get();
    PyObject *cap, *dict;
    if (PyThread_tss_get(&counted) == ts || PyThread_tss_set(&counted, ts) != 0)
        return; /* counted; or it cannot be remembered: then never counted */
    atomic_fetch_add_explicit(&callers, 1, memory_order_relaxed);
    cap = PyCapsule_New(&callers, CAPSULE, caller_gone);
    if (!cap) {
        atomic_fetch_sub_explicit(&callers, 1, memory_order_relaxed);
        PyErr_Clear();
        return;
    }
    dict = PyThreadState_GetDict(); /* borrowed; NULL without an exception */
    if (!dict || PyDict_SetItemString(dict, CAPSULE, cap) < 0)
        PyErr_Clear();
    Py_DECREF(cap); /* where the dict did not take it, this takes the count back */
    pyiocpCallersChanged();
}
