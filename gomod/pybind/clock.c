/* clock.c: a monotonic clock for timing callbacks (slow_callback_warning). */
#include "pyiocp.h"
#ifdef _WIN32
#include <windows.h>
#else
#include <time.h>
#endif

#ifdef _WIN32
static LARGE_INTEGER qpc_hz; /* set once, by clock_init */
#endif

void clock_init(void)
{
#ifdef _WIN32
    QueryPerformanceFrequency(&qpc_hz);
#endif
}

/* A monotonic clock in nanoseconds. On Linux, coarse picks the kernel's
 * tick clock, CLOCK_MONOTONIC_COARSE: a few milliseconds coarse, and a
 * fifth of the cost of CLOCK_MONOTONIC (6 ns against 30 ns a read on the
 * project's VM), which it is read once per event. On Windows: QPC. */
int64_t mono_ns(int coarse)
{
#ifdef _WIN32
    LARGE_INTEGER t;
    (void)coarse;
    QueryPerformanceCounter(&t);
    return t.QuadPart / qpc_hz.QuadPart * 1000000000LL + t.QuadPart % qpc_hz.QuadPart * 1000000000LL / qpc_hz.QuadPart;
#else
    struct timespec t;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(coarse ? CLOCK_MONOTONIC_COARSE : CLOCK_MONOTONIC, &t);
#else
    (void)coarse;
    clock_gettime(CLOCK_MONOTONIC, &t);
#endif
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
#endif
}

/* Whether the coarse clock is fine enough for a threshold: its resolution
 * is a tenth of it or less. */
int coarse_enough(int64_t threshold_ns)
{
#if !defined(_WIN32) && defined(CLOCK_MONOTONIC_COARSE)
    struct timespec res;
    return clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 &&
           (int64_t)res.tv_sec * 1000000000LL + res.tv_nsec <= threshold_ns / 10;
#else
    (void)threshold_ns;
    return 0;
#endif
}
