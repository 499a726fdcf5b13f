/* module.c: the pyiocp._pyiocp extension module, written with the CPython
 * C API: its functions and its init. The rest is one file a job (see
 * pyiocp.h). */
#include "pyiocp.h"

PyObject *kind_names[NKINDS];


/* backends() -> list of str: the engine's backends that work here,
 * preferred first. */
static PyObject *mod_backends(PyObject *mod, PyObject *unused)
{
    char names[256];
    PyObject *text, *list;
    pyiocpBackends(names, (int)sizeof(names));
    text = PyUnicode_FromString(names);
    if (!text)
        return NULL;
    list = PyUnicode_Split(text, NULL, -1);
    Py_DECREF(text);
    return list;
}

/* go_allocations() -> int: objects the Go side has allocated so far, for
 * the leak checks (messages must allocate none). */
static PyObject *mod_go_allocations(PyObject *mod, PyObject *unused)
{
    return PyLong_FromLongLong((long long)pyiocpGoAllocations());
}

/* Set by lost_interrupt(), taken by the main thread's worker loop. Only
 * the main thread, with the GIL, touches it. */
int lost_interrupt;

/* lost_interrupt(): called by pyiocp's unraisable hook for a
 * KeyboardInterrupt Python swallowed (a signal handler that ran inside a
 * weakref callback or __del__). No Python code runs after it in the hook
 * that a re-tripped signal could be lost in again. */
static PyObject *mod_lost_interrupt(PyObject *mod, PyObject *unused)
{
    lost_interrupt = 1;
    Py_RETURN_NONE;
}

/* go_heap() -> int: bytes the Go heap holds live, after a collection that
 * also returns freed memory to the OS (memory tests). */
static PyObject *mod_go_heap(PyObject *mod, PyObject *unused)
{
    long long n;
    Py_BEGIN_ALLOW_THREADS
    n = (long long)pyiocpGoHeap();
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(n);
}

/* go_maxprocs() -> int: the Go runtime's GOMAXPROCS. */
static PyObject *mod_go_maxprocs(PyObject *mod, PyObject *unused)
{
    return PyLong_FromLongLong((long long)pyiocpGoMaxProcs());
}

static PyMethodDef module_methods[] = {
    {"_init", mod_init, METH_O, "_init(errors_module): the exception classes to raise"},
    {"go_allocations", mod_go_allocations, METH_NOARGS, "go_allocations() -> objects the Go side has allocated"},
    {"lost_interrupt", mod_lost_interrupt, METH_NOARGS,
     "lost_interrupt(): a KeyboardInterrupt was swallowed on the main thread: serve_forever's loop raises one"},
    {"go_heap", mod_go_heap, METH_NOARGS, "go_heap() -> bytes live on the Go heap, after a collection"},
    {"go_maxprocs", mod_go_maxprocs, METH_NOARGS, "go_maxprocs() -> the Go runtime's GOMAXPROCS"},
    {"_tls_init", mod_tls_init, METH_VARARGS,
     "_tls_init(factory, config_class): makes Connection.tls's TLSInfo of the engine's JSON; start_tls's argument type"},
    {"tls_config", mod_tls_config, METH_O, "tls_config(spec_json) -> handle: a TLS configuration, its files read"},
    {"tls_config_free", mod_tls_config_free, METH_O, "tls_config_free(handle)"},
    {"backends", mod_backends, METH_NOARGS, "backends() -> the backends that work here, preferred first"},
    {"bench_start", bench_start, METH_VARARGS, "bench_start(addr, conns, size, depth, duration_ns, warmup_ns) -> handle"},
    {"bench_progress", bench_progress, METH_O, "bench_progress(handle) -> (elapsed_s, messages, msgs_per_sec)"},
    {"bench_wait", bench_wait, METH_VARARGS, "bench_wait(handle, timeout_ns) -> result dict, or None while running"},
    {"bench_cancel", bench_cancel, METH_O, "bench_cancel(handle)"},
    {NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_pyiocp", "pyiocp's Go engine, bound with the CPython C API.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__pyiocp(void)
{
    static const char *const names[NKINDS] = {"", "accept", "connect", "recv", "send", "drain", "eof", "close", "post", "timer",
                                                "datagram"};
    PyObject *m;
    clock_init();
    if (PyType_Ready(&EngineType) < 0 || PyType_Ready(&ConnType) < 0 || PyType_Ready(&TimerType) < 0 ||
        PyType_Ready(&PoolType) < 0 ||
        timer_init() < 0 || dispatch_init() < 0 || callers_init() < 0)
        return NULL;
    for (int k = 0; k < NKINDS; k++)
        if (!kind_names[k] && !(kind_names[k] = PyUnicode_InternFromString(names[k])))
            return NULL;
    errors_defaults();
    m = PyModule_Create(&moduledef);
    if (!m)
        return NULL;
#ifdef Py_GIL_DISABLED
    /* Free-threaded CPython: the glue keeps its state safe without the GIL
     * (PyMutex, critical sections, strong references), so importing
     * pyiocp leaves the GIL off and workers run handlers in parallel. */
    if (PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    Py_INCREF(&EngineType);
    Py_INCREF(&ConnType);
    Py_INCREF(&TimerType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddObject(m, "Connection", (PyObject *)&ConnType) < 0 ||
        PyModule_AddObject(m, "Timer", (PyObject *)&TimerType) < 0 ||
        PyModule_AddIntConstant(m, "MASK_SEND", PYIOCP_MASK_SEND) < 0 ||
        PyModule_AddIntConstant(m, "MASK_DRAIN", PYIOCP_MASK_DRAIN) < 0 ||
        PyModule_AddIntConstant(m, "MASK_EOF", PYIOCP_MASK_EOF) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
