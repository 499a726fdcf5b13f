/* bench.c: the load generator behind `python -m pyiocp bench`; none of
 * the engine's glue. */
#include "pyiocp.h"

PyObject *bench_start(PyObject *mod, PyObject *args)
{
    const char *addr;
    long long conns, size, depth, duration_ns, warmup_ns;
    int64_t h = 0;
    pyiocp_error err;
    if (!PyArg_ParseTuple(args, "sLLLLL", &addr, &conns, &size, &depth, &duration_ns, &warmup_ns))
        return NULL;
    if (pyiocpBenchStart((char *)addr, conns, size, depth, duration_ns, warmup_ns, &h, &err) != PYIOCP_OK)
        return raise_code(err.code, &err);
    return PyLong_FromLongLong(h);
}

PyObject *bench_progress(PyObject *mod, PyObject *arg)
{
    long long h = PyLong_AsLongLong(arg);
    double elapsed = 0, rate = 0;
    int64_t messages = 0;
    if (h == -1 && PyErr_Occurred())
        return NULL;
    pyiocpBenchProgress(h, &elapsed, &messages, &rate);
    return Py_BuildValue("(dLd)", elapsed, (long long)messages, rate);
}

PyObject *bench_cancel(PyObject *mod, PyObject *arg)
{
    long long h = PyLong_AsLongLong(arg);
    if (h == -1 && PyErr_Occurred())
        return NULL;
    pyiocpBenchCancel(h);
    Py_RETURN_NONE;
}

PyObject *bench_wait(PyObject *mod, PyObject *args)
{
    long long h, timeout_ns;
    pyiocp_bench_result r;
    pyiocp_error err;
    int done;
    if (!PyArg_ParseTuple(args, "LL", &h, &timeout_ns))
        return NULL;
    memset(&r, 0, sizeof(r));
    memset(&err, 0, sizeof(err));
    Py_BEGIN_ALLOW_THREADS
    done = pyiocpBenchWait(h, timeout_ns, &r, &err);
    Py_END_ALLOW_THREADS
    if (!done)
        Py_RETURN_NONE;
    if (err.code != PYIOCP_OK)
        return raise_code(err.code, &err);
    return Py_BuildValue("{sLsLsLsLsLsLsLsLsdsdsdsdsdsdsdsdssss}",
                         "conns", (long long)r.conns, "size", (long long)r.size, "depth", (long long)r.depth,
                         "connected", (long long)r.connected, "messages", (long long)r.messages,
                         "bytes", (long long)r.bytes, "errors", (long long)r.errors,
                         "mismatches", (long long)r.mismatches, "elapsed_s", r.elapsed,
                         "msgs_per_sec", r.msgs_per_sec, "mb_per_sec", r.mb_per_sec, "p50_s", r.p50,
                         "p90_s", r.p90, "p99_s", r.p99, "max_s", r.max, "mean_s", r.mean,
                         "first_error", r.first_error, "table", r.table);
}
