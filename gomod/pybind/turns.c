/* turns.c: a worker lets other threads run before it takes the GIL back.
 *
 * A worker releases the GIL while Go waits for its completions and takes it
 * back to run their callbacks. Under load a worker always finds completions
 * waiting, so it never sleeps: with two workers on one CPU, worker B, woken
 * by its own completions, runs only when the kernel's scheduler preempts A,
 * after a time slice of milliseconds, and B's connections wait that long
 * (measured, 50 x 64 B on one CPU: p99 5.8 ms with two workers, 1.2 ms
 * with one). So after each wait a worker yields the CPU to whatever else is
 * ready to run on it: the other workers, a thread pool's threads (p99 with
 * two workers: 1.3 ms). With nothing else ready, or a CPU each, that is one
 * cheap system call per batch. */
#include "pyiocp.h"
#ifdef _WIN32
#include <windows.h>
#define yield_cpu() SwitchToThread()
#else
#include <sched.h>
#define yield_cpu() sched_yield()
#endif

void worker_take_gil(PyThreadState *ts)
{
    yield_cpu();
    PyEval_RestoreThread(ts);
}
