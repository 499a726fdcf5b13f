/* turns.c: with several workers, a worker lets the others run before it
 * takes the GIL back.
 *
 * A worker releases the GIL while Go waits for its completions and takes it
 * back to run their callbacks. Under load a worker always finds completions
 * waiting, so it never sleeps: with two workers on one CPU, worker B, woken
 * by its own completions, runs only when the kernel's scheduler preempts A,
 * after a time slice of milliseconds, and B's connections wait that long
 * (measured, 50 x 64 B on one CPU: p99 5.8 ms with two workers, 1.2 ms
 * with one). So after each wait a worker yields the CPU to whatever else is
 * ready to run on it (p99 with two workers: 1.3 ms). B is then runnable,
 * not yet waiting for the GIL: only a yield lets it get there.
 *
 * With one worker in the process there is nobody to make way for, and the
 * yield costs more than its system call: it hands the CPU to Go's threads
 * looking for work. Measured, 50 x 64 B echo, net client, one worker on
 * one CPU, medians of 14 interleaved runs: 11.0 us of server CPU per
 * message with the yield, 9.7 us without. */
#include <stdatomic.h>
#include "pyiocp.h"
#ifdef _WIN32
#include <windows.h>
#define yield_cpu() SwitchToThread()
#else
#include <sched.h>
#define yield_cpu() sched_yield()
#endif

static atomic_int live_workers;

void set_live_workers(int n)
{
    atomic_store_explicit(&live_workers, n, memory_order_relaxed);
}

/* Free-threaded CPython has no GIL to take turns at: workers run at once,
 * and the yield would only cost a system call per batch. */
void worker_take_gil(PyThreadState *ts)
{
#ifndef Py_GIL_DISABLED
    if (atomic_load_explicit(&live_workers, memory_order_relaxed) > 1)
        yield_cpu();
#endif
    PyEval_RestoreThread(ts);
}
