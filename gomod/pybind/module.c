/* module.c: the pyiocp._pyiocp extension module, written with the CPython
 * C API. It defines two types, Engine (one engine.Manager) and Connection,
 * and the worker loop: release the GIL, harvest a batch in Go, take the GIL
 * once, call the handler for the whole batch.
 *
 * Ownership, in one place:
 *   - Engine.conns[slot] holds the one strong reference the engine keeps to
 *     each Connection, from on_accept (or connect()) until on_close has
 *     been delivered. All access is under the GIL.
 *   - A posted payload's reference travels through Go as an integer and is
 *     released right after on_post (or the poll() Completion) took it.
 *   - Go memory is never kept here: event data lives outside the Go heap and
 *     is copied into bytes while this thread holds the worker: from
 *     pyiocpPoll (held set) to pyiocpPollDone, no other thread polls it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h> /* inet_pton, inet_ntop */
#else
#include <arpa/inet.h>
#endif
#include <string.h>
#ifndef _WIN32
#include <time.h>
#endif
#include "glue.h"
#include "_cgo_export.h"

#define BATCH 64
#define NKINDS 9
/* The main thread (serve_forever, poll) wakes this often to run signal
 * handlers: Ctrl-C is seen within it. */
#define MAIN_SLICE_NS 100000000LL

static PyObject *ErrBase, *ErrConnectionClosed, *ErrBufferFull, *ErrManagerClosed, *ErrTooManyConnections;
static PyObject *kind_names[NKINDS];

typedef struct EngineObject EngineObject;

typedef struct {
    PyObject_HEAD
    EngineObject *engine;
    uint64_t id;
    uint32_t slot;
    uint16_t port;
    uint8_t family; /* of the peer; 0: unknown */
    uint8_t ip[16];
    uint8_t gone;   /* on_close was delivered */
    PyObject *dict;
    PyObject *weaklist;
} ConnObject;

struct EngineObject {
    PyObject_HEAD
    int64_t h;
    int workers;
    int released;
    PyObject *cb[NKINDS]; /* the handler's bound methods by event kind */
    PyObject *on_error;
    PyObject *report;     /* report(message, exc): logs through "pyiocp" */
    PyObject *completion; /* the Completion class, for poll() */
    ConnObject **conns;
    uint32_t cap;
    int64_t slow_ns;      /* slow_callback_warning; 0: off */
    int coarse;           /* time it with the coarse clock (see mono_ns) */
};

static PyTypeObject EngineType, ConnType;

/* ---------------------------------------------------------------- clock */

#ifdef _WIN32
static LARGE_INTEGER qpc_hz; /* set once, by the module's init */
#endif

/* A monotonic clock in nanoseconds. On Linux, coarse picks the kernel's
 * tick clock, CLOCK_MONOTONIC_COARSE: a few milliseconds coarse, and a
 * fifth of the cost of CLOCK_MONOTONIC (6 ns against 30 ns a read on the
 * project's VM), which it is read once per event. On Windows: QPC. */
static int64_t mono_ns(int coarse)
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
static int coarse_enough(int64_t threshold_ns)
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

/* ---------------------------------------------------------------- errors */

/* Sets the exception for an export's error code; returns NULL. */
static PyObject *raise_code(int code, const pyiocp_error *e)
{
    const char *msg = e ? e->msg : "";
    switch (code) {
    case PYIOCP_E_CLOSED:
        PyErr_SetString(ErrConnectionClosed, msg[0] ? msg : "connection closed");
        break;
    case PYIOCP_E_BUFFER_FULL:
        PyErr_SetString(ErrBufferFull, "send buffer full: pending + len(data) would exceed send_buffer_limit");
        break;
    case PYIOCP_E_MANAGER_CLOSED:
        PyErr_SetString(ErrManagerClosed, "manager closed");
        break;
    case PYIOCP_E_VALUE:
        PyErr_SetString(PyExc_ValueError, msg);
        break;
    case PYIOCP_E_OS: {
        /* OSError(errno, reason): the errno's subclass, worded by the engine
         * (a backend unavailable says why) or else by strerror. Not through
         * the C errno: on Windows this module's C runtime and Python's are
         * two, each with its own errno. */
        int code = e ? e->err_errno : EIO;
        PyObject *args = Py_BuildValue("(is)", code, msg[0] ? msg : strerror(code));
        if (args) {
            PyErr_SetObject(PyExc_OSError, args);
            Py_DECREF(args);
        }
        break;
    }
    case PYIOCP_E_TIMEOUT:
        PyErr_SetString(PyExc_TimeoutError, msg);
        break;
    case PYIOCP_E_TOO_MANY_CONNS: {
        /* This C runtime's EMFILE: 24 on Linux and in Windows' CRTs alike. */
        PyObject *args = Py_BuildValue("(is)", EMFILE, msg);
        if (args) {
            PyErr_SetObject(ErrTooManyConnections, args);
            Py_DECREF(args);
        }
        break;
    }
    default:
        PyErr_SetString(ErrBase, msg[0] ? msg : "internal error");
    }
    return NULL;
}

/* The exception on_close receives: None for a clean close. */
static PyObject *close_error(const pyiocp_error *e)
{
    PyObject *type, *value, *tb;
    if (e->code == PYIOCP_OK)
        Py_RETURN_NONE;
    raise_code(e->code, e);
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

/* ---------------------------------------------------------------- connection table */

static ConnObject *table_get(EngineObject *e, uint32_t slot, uint64_t id)
{
    if (slot < e->cap && e->conns[slot] && e->conns[slot]->id == id)
        return e->conns[slot];
    return NULL;
}

static int table_put(EngineObject *e, ConnObject *c)
{
    if (c->slot >= e->cap) {
        uint32_t cap = e->cap ? e->cap : 64;
        while (cap <= c->slot)
            cap *= 2;
        ConnObject **n = PyMem_Realloc(e->conns, cap * sizeof(*n));
        if (!n) {
            PyErr_NoMemory();
            return -1;
        }
        memset(n + e->cap, 0, (cap - e->cap) * sizeof(*n));
        e->conns = n;
        e->cap = cap;
    }
    /* Go frees a slot only after its close event was delivered. */
    Py_XDECREF(e->conns[c->slot]);
    Py_INCREF(c);
    e->conns[c->slot] = c;
    return 0;
}

static void table_del(EngineObject *e, ConnObject *c)
{
    if (c->slot < e->cap && e->conns[c->slot] == c) {
        e->conns[c->slot] = NULL;
        Py_DECREF(c);
    }
}

static ConnObject *conn_new(EngineObject *e, uint32_t slot, uint64_t id)
{
    ConnObject *c = PyObject_GC_New(ConnObject, &ConnType);
    if (!c)
        return NULL;
    Py_INCREF(e);
    c->engine = e;
    c->id = id;
    c->slot = slot;
    c->port = 0;
    c->family = 0;
    memset(c->ip, 0, sizeof(c->ip));
    c->gone = 0;
    c->dict = NULL;
    c->weaklist = NULL;
    PyObject_GC_Track(c);
    return c;
}

/* ---------------------------------------------------------------- dispatch */

static const char *const cb_names[NKINDS] = {
    NULL, "on_accept", "on_connect", "on_recv", "on_send", "on_drain", "on_eof", "on_close", "on_post",
};

typedef struct {
    int is_main;         /* serve_forever's thread: BaseExceptions stop the loop */
    PyObject *stop;      /* that exception, raised after the batch */
    PyObject *stop_type, *stop_tb;
} loop_state;

static void report(EngineObject *e, const char *msg, PyObject *exc)
{
    PyObject *r = PyObject_CallFunction(e->report, "sO", msg, exc ? exc : Py_None);
    if (!r)
        PyErr_WriteUnraisable(e->report);
    Py_XDECREF(r);
}

/* A callback raised: KeyboardInterrupt/SystemExit on the main thread stop
 * the loop once the batch is done; anything else goes to on_error(conn, exc)
 * and, if that raises too, to the log. The worker never dies. */
static void callback_failed(EngineObject *e, PyObject *conn, loop_state *ls)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value)
        PyException_SetTraceback(value, tb);
    if (ls->is_main && !PyErr_GivenExceptionMatches(type, PyExc_Exception)) {
        if (!ls->stop) {
            ls->stop = value;
            ls->stop_type = type;
            ls->stop_tb = tb;
            return;
        }
    } else if (e->on_error) {
        PyObject *r = PyObject_CallFunctionObjArgs(e->on_error, conn ? conn : Py_None, value, NULL);
        if (r) {
            Py_DECREF(r);
        } else {
            PyObject *t2, *v2, *tb2;
            PyErr_Fetch(&t2, &v2, &tb2);
            PyErr_NormalizeException(&t2, &v2, &tb2);
            if (tb2 && v2)
                PyException_SetTraceback(v2, tb2);
            report(e, "on_error raised", v2);
            Py_XDECREF(t2);
            Py_XDECREF(v2);
            Py_XDECREF(tb2);
        }
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

static void call(EngineObject *e, int kind, PyObject *conn, PyObject *a, PyObject *b, loop_state *ls)
{
    PyObject *fn = e->cb[kind];
    PyObject *args[3];
    size_t n = 0;
    PyObject *r;
    if (!fn)
        return;
    if (a)
        args[n++] = a;
    if (b)
        args[n++] = b;
    r = PyObject_Vectorcall(fn, args, n, NULL);
    if (r)
        Py_DECREF(r);
    else
        callback_failed(e, conn, ls);
}

static void flush_logs(EngineObject *e)
{
    char buf[512];
    while (pyiocpTakeLog(e->h, buf, sizeof(buf)))
        report(e, buf, NULL);
}

/* Turns an accept event into the connection object, in the table. */
static ConnObject *accepted(EngineObject *e, const pyiocp_event *ev)
{
    ConnObject *c = conn_new(e, ev->slot, ev->id);
    if (!c || table_put(e, c) < 0) {
        Py_XDECREF(c);
        /* Without an object the application can never close it: reset it. */
        pyiocpConnOp(e->h, ev->slot, ev->id, 1);
        return NULL;
    }
    c->family = ev->family;
    c->port = ev->port;
    memcpy(c->ip, ev->ip, 16);
    Py_DECREF(c); /* the table's reference keeps it */
    return c;
}

static void dispatch_one(EngineObject *e, pyiocp_event *ev, loop_state *ls)
{
    ConnObject *c = NULL;
    PyObject *arg;
    if (ev->kind == PYIOCP_EV_POST) {
        PyObject *payload = (PyObject *)(uintptr_t)ev->value;
        call(e, ev->kind, NULL, payload, NULL, ls);
        Py_DECREF(payload);
        return;
    }
    if (ev->kind == PYIOCP_EV_ACCEPT)
        c = accepted(e, ev);
    else
        c = table_get(e, ev->slot, ev->id);
    if (!c) {
        if (PyErr_Occurred())
            callback_failed(e, NULL, ls);
        return;
    }
    switch (ev->kind) {
    case PYIOCP_EV_RECV:
        arg = PyBytes_FromStringAndSize(ev->data, (Py_ssize_t)ev->n);
        if (!arg) {
            callback_failed(e, (PyObject *)c, ls);
            break;
        }
        call(e, ev->kind, (PyObject *)c, (PyObject *)c, arg, ls);
        Py_DECREF(arg);
        break;
    case PYIOCP_EV_SEND:
        arg = PyLong_FromLongLong(ev->n);
        if (!arg) {
            callback_failed(e, (PyObject *)c, ls);
            break;
        }
        call(e, ev->kind, (PyObject *)c, (PyObject *)c, arg, ls);
        Py_DECREF(arg);
        break;
    case PYIOCP_EV_CLOSE:
        /* Exactly once: the object leaves the table before on_close. */
        Py_INCREF(c);
        c->gone = 1;
        table_del(e, c);
        arg = close_error(&ev->err);
        if (arg) {
            call(e, ev->kind, (PyObject *)c, (PyObject *)c, arg, ls);
            Py_DECREF(arg);
        } else {
            callback_failed(e, (PyObject *)c, ls);
        }
        Py_DECREF(c);
        break;
    default:
        call(e, ev->kind, (PyObject *)c, (PyObject *)c, NULL, ls);
    }
}

/* "Echo.on_recv": the handler's class and the method of an event kind. */
static PyObject *callback_name(EngineObject *e, int kind)
{
    PyObject *fn = e->cb[kind], *name;
    if (fn && PyMethod_Check(fn))
        return PyUnicode_FromFormat("%s.%s", Py_TYPE(PyMethod_GET_SELF(fn))->tp_name, cb_names[kind]);
    name = fn ? PyObject_GetAttrString(fn, "__qualname__") : NULL;
    if (name && PyUnicode_Check(name))
        return name;
    Py_XDECREF(name);
    PyErr_Clear();
    return PyUnicode_FromString(cb_names[kind]);
}

/* One warning for a batch that held its worker longer than
 * slow_callback_warning, naming its slowest callback. */
static void warn_slow(EngineObject *e, int kind, int64_t took, int64_t batch)
{
    char msg[512];
    PyObject *name = callback_name(e, kind);
    const char *text = name ? PyUnicode_AsUTF8(name) : NULL;
    if (!text) {
        PyErr_Clear();
        text = cb_names[kind];
    }
    PyOS_snprintf(msg, sizeof(msg), "%s took %.3f s (one batch of callbacks: %.3f s; slow_callback_warning=%g)",
                  text, took / 1e9, batch / 1e9, e->slow_ns / 1e9);
    Py_XDECREF(name);
    report(e, msg, NULL);
}

/* Delivers a batch. With slow_callback_warning on, one clock read per
 * event times each callback (with the making of its arguments). */
static void dispatch(EngineObject *e, pyiocp_event *evs, int n, loop_state *ls)
{
    int64_t start, last, worst = -1;
    int worst_kind = 0;
    if (!e->slow_ns) {
        for (int i = 0; i < n; i++)
            dispatch_one(e, &evs[i], ls);
        return;
    }
    start = last = mono_ns(e->coarse);
    for (int i = 0; i < n; i++) {
        int64_t t;
        dispatch_one(e, &evs[i], ls);
        t = mono_ns(e->coarse);
        if (t - last > worst) {
            worst = t - last;
            worst_kind = evs[i].kind;
        }
        last = t;
    }
    if (last - start > e->slow_ns)
        warn_slow(e, worst_kind, worst, last - start);
}

/* One worker's loop: the GIL is released while Go harvests, taken once per
 * batch. Returns when the worker quits after shutdown, or with the
 * exception that stopped the main thread (Ctrl-C). */
static PyObject *run_loop(EngineObject *e, int worker, int is_main)
{
    pyiocp_event *evs = PyMem_Malloc(BATCH * sizeof(*evs));
    loop_state ls = {is_main, NULL, NULL, NULL};
    int quit = 0;
    if (!evs)
        return PyErr_NoMemory();
    Py_INCREF(e);
    while (!quit) {
        int n, logs = 0, held = 0;
        Py_BEGIN_ALLOW_THREADS
        n = pyiocpPoll(e->h, worker, 0, evs, BATCH, is_main ? MAIN_SLICE_NS : -1, &quit, &logs, &held);
        Py_END_ALLOW_THREADS
        dispatch(e, evs, n, &ls);
        if (held)
            pyiocpPollDone(e->h, worker);
        if (logs)
            flush_logs(e);
        if (ls.stop)
            break;
        if (is_main && PyErr_CheckSignals() < 0)
            break;
    }
    PyMem_Free(evs);
    Py_DECREF(e);
    if (ls.stop) {
        PyErr_Restore(ls.stop_type, ls.stop, ls.stop_tb);
        return NULL;
    }
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- Engine */

static int Engine_init(EngineObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"handler", "report", "completion", "workers", "backend",
                             "recv_buffer_limit", "send_buffer_limit", "send_low_watermark",
                             "idle_timeout_ns", "accept_timeout_ns", "close_timeout_ns", "max_connections",
                             "events", "slow_callback_ns", NULL};
    PyObject *handler, *rep, *completion;
    const char *backend;
    pyiocp_options o;
    pyiocp_error err;
    long long slow_ns;
    if (self->h)
        return PyErr_SetString(PyExc_RuntimeError, "Engine already initialised"), -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOLsLLLLLLLLL", kwlist, &handler, &rep, &completion,
                                     &o.workers, &backend, &o.recv_buffer_limit, &o.send_buffer_limit,
                                     &o.send_low_watermark, &o.idle_timeout_ns, &o.accept_timeout_ns,
                                     &o.close_timeout_ns, &o.max_connections, &o.events, &slow_ns))
        return -1;
    self->slow_ns = handler != Py_None && slow_ns > 0 ? slow_ns : 0;
    self->coarse = coarse_enough(self->slow_ns);
    /* With a handler each worker is run by one Python thread; in poll()
     * mode any thread may poll. */
    o.fixed_threads = handler != Py_None;
    if (handler != Py_None) {
        for (int k = 1; k < NKINDS; k++) {
            self->cb[k] = PyObject_GetAttrString(handler, cb_names[k]);
            if (!self->cb[k])
                return -1;
        }
        self->on_error = PyObject_GetAttrString(handler, "on_error");
        if (!self->on_error)
            return -1;
    }
    Py_INCREF(rep);
    self->report = rep;
    Py_INCREF(completion);
    self->completion = completion;
    int rc;
    /* Opening the ports probes the backends (a ring set up and tried): no GIL. */
    Py_BEGIN_ALLOW_THREADS
    rc = pyiocpNew(&o, (char *)backend, &self->h, &err);
    Py_END_ALLOW_THREADS
    if (rc != PYIOCP_OK) {
        self->h = 0;
        raise_code(err.code, &err);
        return -1;
    }
    self->workers = (int)o.workers;
    flush_logs(self); /* what opening said (a backend falling back) reaches logging now */
    return 0;
}

static int Engine_traverse(EngineObject *self, visitproc visit, void *arg)
{
    for (int k = 0; k < NKINDS; k++)
        Py_VISIT(self->cb[k]);
    Py_VISIT(self->on_error);
    Py_VISIT(self->report);
    Py_VISIT(self->completion);
    for (uint32_t i = 0; i < self->cap; i++)
        Py_VISIT(self->conns[i]);
    return 0;
}

static int Engine_clear(EngineObject *self)
{
    for (int k = 0; k < NKINDS; k++)
        Py_CLEAR(self->cb[k]);
    Py_CLEAR(self->on_error);
    Py_CLEAR(self->report);
    Py_CLEAR(self->completion);
    for (uint32_t i = 0; i < self->cap; i++)
        Py_CLEAR(self->conns[i]);
    return 0;
}

/* Drives every worker to its end, dropping events: the last resort of an
 * Engine collected without close(). */
static void engine_abandon(EngineObject *self)
{
    pyiocp_event evs[BATCH];
    if (!self->h || self->released)
        return;
    pyiocpShutdown(self->h, 0);
    for (int w = 0; w < self->workers; w++) {
        int quit = 0, logs = 0;
        while (!quit) {
            int n, held = 0;
            Py_BEGIN_ALLOW_THREADS
            n = pyiocpPoll(self->h, w, 0, evs, BATCH, -1, &quit, &logs, &held);
            Py_END_ALLOW_THREADS
            for (int i = 0; i < n; i++)
                if (evs[i].kind == PYIOCP_EV_POST)
                    Py_DECREF((PyObject *)(uintptr_t)evs[i].value);
            if (held)
                pyiocpPollDone(self->h, w);
        }
    }
    self->released = pyiocpRelease(self->h);
}

static void Engine_dealloc(EngineObject *self)
{
    PyObject_GC_UnTrack(self);
    engine_abandon(self);
    Engine_clear(self);
    PyMem_Free(self->conns);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Engine_listen(EngineObject *self, PyObject *args)
{
    const char *ip;
    int port, backlog, accepts, reuse, bound = 0;
    int64_t lh = 0;
    pyiocp_error err;
    if (!PyArg_ParseTuple(args, "siiip", &ip, &port, &backlog, &accepts, &reuse))
        return NULL;
    if (pyiocpListen(self->h, (char *)ip, port, backlog, accepts, reuse, &lh, &bound, &err) != PYIOCP_OK)
        return raise_code(err.code, &err);
    return Py_BuildValue("Li", (long long)lh, bound);
}

static PyObject *Engine_close_listener(EngineObject *self, PyObject *arg)
{
    long long lh = PyLong_AsLongLong(arg);
    if (lh == -1 && PyErr_Occurred())
        return NULL;
    pyiocpListenerClose(self->h, lh);
    Py_RETURN_NONE;
}

/* listener_waiting(handle) -> bool: connections wait in the listener's
 * backlog and no worker has taken it up yet. */
static PyObject *Engine_listener_waiting(EngineObject *self, PyObject *arg)
{
    long long lh = PyLong_AsLongLong(arg);
    if (lh == -1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(pyiocpListenerWaiting(self->h, lh));
}

/* connect() returns the Connection at once. The GIL is held from the Go
 * call until the object is in the table, so no worker can deliver the
 * connect's outcome before the object exists. */
static PyObject *Engine_connect(EngineObject *self, PyObject *args)
{
    const char *ip;
    int port;
    long long timeout_ns;
    uint32_t slot = 0;
    uint64_t id = 0;
    pyiocp_error err;
    ConnObject *c;
    unsigned char buf[16];
    int family = 0;
    if (!PyArg_ParseTuple(args, "siL", &ip, &port, &timeout_ns))
        return NULL;
    if (pyiocpConnect(self->h, (char *)ip, port, timeout_ns, &slot, &id, &err) != PYIOCP_OK)
        return raise_code(err.code, &err);
    c = conn_new(self, slot, id);
    if (!c || table_put(self, c) < 0) {
        Py_XDECREF(c);
        pyiocpConnOp(self->h, slot, id, 1);
        return NULL;
    }
    if (inet_pton(AF_INET, ip, buf) == 1) {
        family = 4;
        memset(c->ip, 0, 10);
        c->ip[10] = c->ip[11] = 0xff;
        memcpy(c->ip + 12, buf, 4);
    } else if (inet_pton(AF_INET6, ip, buf) == 1) {
        family = 6;
        memcpy(c->ip, buf, 16);
    }
    c->family = family;
    c->port = (uint16_t)port;
    return (PyObject *)c;
}

static PyObject *Engine_run_worker(EngineObject *self, PyObject *args)
{
    int worker, is_main;
    if (!PyArg_ParseTuple(args, "ip", &worker, &is_main))
        return NULL;
    if (worker < 0 || worker >= self->workers)
        return PyErr_Format(PyExc_ValueError, "no worker %d", worker);
    return run_loop(self, worker, is_main);
}

/* A Completion for poll(): (kind, conn, data, error). */
static PyObject *completion(EngineObject *e, const pyiocp_event *ev)
{
    ConnObject *c = NULL;
    PyObject *data = Py_None, *error = Py_None, *r;
    if (ev->kind == PYIOCP_EV_POST) {
        PyObject *payload = (PyObject *)(uintptr_t)ev->value;
        r = PyObject_CallFunctionObjArgs(e->completion, kind_names[ev->kind], Py_None, payload, Py_None, NULL);
        Py_DECREF(payload);
        return r;
    }
    c = ev->kind == PYIOCP_EV_ACCEPT ? accepted(e, ev) : table_get(e, ev->slot, ev->id);
    if (!c)
        return PyErr_Occurred() ? NULL : (Py_INCREF(Py_None), Py_None);
    Py_INCREF(c);
    if (ev->kind == PYIOCP_EV_RECV)
        data = PyBytes_FromStringAndSize(ev->data, (Py_ssize_t)ev->n);
    else if (ev->kind == PYIOCP_EV_SEND)
        data = PyLong_FromLongLong(ev->n);
    else
        Py_INCREF(data);
    if (ev->kind == PYIOCP_EV_CLOSE) {
        c->gone = 1;
        table_del(e, c);
        error = close_error(&ev->err);
    } else {
        Py_INCREF(error);
    }
    r = data && error ? PyObject_CallFunctionObjArgs(e->completion, kind_names[ev->kind], c, data, error, NULL) : NULL;
    Py_XDECREF(data);
    Py_XDECREF(error);
    Py_DECREF(c);
    return r;
}

/* A polling thread's name for the engine: never 0, which is the one
 * driving thread of run_loop. */
static uint64_t poller_id(unsigned long ident)
{
    return ident ? (uint64_t)ident : 1;
}

static PyObject *Engine_poll(EngineObject *self, PyObject *args)
{
    long long timeout_ns;
    int max, is_main;
    pyiocp_event *evs;
    PyObject *list = NULL;
    long long deadline = 0;
    /* This thread's connections: theirs until it polls again (pollers.go). */
    uint64_t poller = poller_id(PyThread_get_thread_ident());
    if (!PyArg_ParseTuple(args, "Lip", &timeout_ns, &max, &is_main))
        return NULL;
    if (max < 1)
        return PyErr_Format(PyExc_ValueError, "max=%d: must be at least 1", max);
    if (timeout_ns >= 0)
        deadline = pyiocpMonotonicNs() + timeout_ns;
    evs = PyMem_Malloc((size_t)max * sizeof(*evs));
    if (!evs)
        return PyErr_NoMemory();
    for (;;) {
        long long slice = timeout_ns < 0 ? -1 : deadline - pyiocpMonotonicNs();
        int n, quit = 0, logs = 0, held = 0;
        if (timeout_ns >= 0 && slice < 0)
            slice = 0;
        if (is_main && (slice < 0 || slice > MAIN_SLICE_NS))
            slice = MAIN_SLICE_NS;
        Py_BEGIN_ALLOW_THREADS
        n = pyiocpPoll(self->h, 0, poller, evs, max, slice, &quit, &logs, &held);
        Py_END_ALLOW_THREADS
        if (logs)
            flush_logs(self);
        if (n > 0 || quit) {
            list = PyList_New(0);
            for (int i = 0; i < n; i++) {
                int taken = list != NULL; /* completion() settled evs[i] */
                PyObject *item = taken ? completion(self, &evs[i]) : NULL;
                if (!item || (item != Py_None && PyList_Append(list, item) < 0)) {
                    /* Settle the rest of the batch so no reference leaks,
                     * then raise the first error. */
                    PyObject *t, *v, *tb;
                    Py_XDECREF(item);
                    Py_CLEAR(list);
                    PyErr_Fetch(&t, &v, &tb);
                    for (int j = taken ? i + 1 : i; j < n; j++) {
                        Py_XDECREF(completion(self, &evs[j]));
                        PyErr_Clear();
                    }
                    PyErr_Restore(t, v, tb);
                    break;
                }
                Py_DECREF(item);
            }
        }
        /* The batch is bytes and Completions now: other threads may poll. */
        if (held)
            pyiocpPollDone(self->h, 0);
        if (n > 0 || quit)
            break;
        if (is_main && PyErr_CheckSignals() < 0)
            break;
        if (timeout_ns >= 0 && pyiocpMonotonicNs() >= deadline) {
            list = PyList_New(0);
            break;
        }
    }
    PyMem_Free(evs);
    return list;
}

/* release_poller(ident): the thread ident (threading.get_ident()) has
 * stopped polling; its connections go to the other pollers. */
static PyObject *Engine_release_poller(EngineObject *self, PyObject *arg)
{
    unsigned long ident = PyLong_AsUnsignedLong(arg);
    if (ident == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    pyiocpReleasePoller(self->h, 0, poller_id(ident));
    Py_RETURN_NONE;
}

static PyObject *Engine_shutdown(EngineObject *self, PyObject *arg)
{
    long long timeout_ns = PyLong_AsLongLong(arg);
    if (timeout_ns == -1 && PyErr_Occurred())
        return NULL;
    pyiocpShutdown(self->h, timeout_ns);
    Py_RETURN_NONE;
}

static PyObject *Engine_release(EngineObject *self, PyObject *unused)
{
    if (!self->released && pyiocpRelease(self->h)) {
        self->released = 1;
        for (uint32_t i = 0; i < self->cap; i++)
            Py_CLEAR(self->conns[i]);
    }
    return PyBool_FromLong(self->released);
}

static PyObject *Engine_post(EngineObject *self, PyObject *payload)
{
    int rc;
    Py_INCREF(payload);
    rc = pyiocpPost(self->h, (uint64_t)(uintptr_t)payload);
    if (rc != PYIOCP_OK) {
        Py_DECREF(payload);
        return raise_code(rc, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *Engine_stats(EngineObject *self, PyObject *unused)
{
    pyiocp_stats s;
    memset(&s, 0, sizeof(s));
    if (!pyiocpStats(self->h, &s))
        return raise_code(PYIOCP_E_MANAGER_CLOSED, NULL);
    return Py_BuildValue("{sLsLsLsLsLsLsLsLsLsLsLsLsLsLsLsLss}",
                         "connections", (long long)s.connections, "accepted", (long long)s.accepted,
                         "connected", (long long)s.connected, "closed", (long long)s.closed,
                         "rejected", (long long)s.rejected, "timed_out", (long long)s.timed_out,
                         "bytes_in", (long long)s.bytes_in, "bytes_out", (long long)s.bytes_out,
                         "pending_send_bytes", (long long)s.pending_send_bytes,
                         "paused_reading", (long long)s.paused_reading,
                         "completions", (long long)s.completions, "accept_errors", (long long)s.accept_errors,
                         "accept_error_episodes", (long long)s.accept_error_episodes,
                         "stray_completions", (long long)s.stray, "listeners", (long long)s.listeners,
                         "workers", (long long)s.workers, "backend", s.backend);
}

static PyObject *Engine_get(EngineObject *self, PyObject *arg)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    uint32_t slot = 0;
    ConnObject *c;
    if (id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (pyiocpGet(self->h, id, &slot) && (c = table_get(self, slot, id))) {
        Py_INCREF(c);
        return (PyObject *)c;
    }
    Py_RETURN_NONE;
}

static PyMethodDef Engine_methods[] = {
    {"listen", (PyCFunction)Engine_listen, METH_VARARGS, "listen(ip, port, backlog, accepts, reuse_port) -> (handle, port)"},
    {"close_listener", (PyCFunction)Engine_close_listener, METH_O, "close_listener(handle)"},
    {"listener_waiting", (PyCFunction)Engine_listener_waiting, METH_O, "listener_waiting(handle) -> bool: connections wait, no worker has the listener"},
    {"connect", (PyCFunction)Engine_connect, METH_VARARGS, "connect(ip, port, timeout_ns) -> Connection"},
    {"run_worker", (PyCFunction)Engine_run_worker, METH_VARARGS, "run_worker(index, is_main): dispatch until the worker quits"},
    {"poll", (PyCFunction)Engine_poll, METH_VARARGS, "poll(timeout_ns, max, is_main) -> list of Completion"},
    {"release_poller", (PyCFunction)Engine_release_poller, METH_O, "release_poller(thread_ident)"},
    {"shutdown", (PyCFunction)Engine_shutdown, METH_O, "shutdown(timeout_ns): start a graceful close"},
    {"release", (PyCFunction)Engine_release, METH_NOARGS, "release() -> True once every worker has quit"},
    {"post", (PyCFunction)Engine_post, METH_O, "post(payload)"},
    {"stats", (PyCFunction)Engine_stats, METH_NOARGS, "stats() -> dict"},
    {"get", (PyCFunction)Engine_get, METH_O, "get(conn_id) -> Connection or None"},
    {NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyiocp._pyiocp.Engine",
    .tp_doc = "The Go engine behind one SocketManager (internal).",
    .tp_basicsize = sizeof(EngineObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_traverse = (traverseproc)Engine_traverse,
    .tp_clear = (inquiry)Engine_clear,
    .tp_methods = Engine_methods,
};

/* ---------------------------------------------------------------- Connection */

static PyObject *conn_op(ConnObject *self, int op)
{
    int rc = pyiocpConnOp(self->engine->h, self->slot, self->id, op);
    if (rc != PYIOCP_OK)
        return raise_code(rc, NULL);
    Py_RETURN_NONE;
}

static PyObject *Conn_send(ConnObject *self, PyObject *data)
{
    Py_buffer view;
    int rc;
    if (PyBytes_CheckExact(data)) {
        rc = pyiocpSend(self->engine->h, self->slot, self->id, PyBytes_AS_STRING(data),
                        (size_t)PyBytes_GET_SIZE(data));
    } else {
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        rc = pyiocpSend(self->engine->h, self->slot, self->id, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
    }
    if (rc != PYIOCP_OK)
        return raise_code(rc, NULL);
    Py_RETURN_NONE;
}

static PyObject *Conn_close(ConnObject *self, PyObject *unused) { return conn_op(self, 0); }
static PyObject *Conn_abort(ConnObject *self, PyObject *unused) { return conn_op(self, 1); }
static PyObject *Conn_shutdown_write(ConnObject *self, PyObject *unused) { return conn_op(self, 2); }
static PyObject *Conn_pause_reading(ConnObject *self, PyObject *unused) { return conn_op(self, 3); }
static PyObject *Conn_resume_reading(ConnObject *self, PyObject *unused) { return conn_op(self, 4); }

static PyObject *address(int family, const uint8_t *ip, uint16_t port)
{
    char text[INET6_ADDRSTRLEN];
    if (family == 4 && inet_ntop(AF_INET, ip + 12, text, sizeof(text)))
        return Py_BuildValue("(si)", text, port);
    if (family == 6 && inet_ntop(AF_INET6, ip, text, sizeof(text)))
        return Py_BuildValue("(si)", text, port);
    Py_RETURN_NONE;
}

static PyObject *Conn_get_peer(ConnObject *self, void *unused)
{
    return address(self->family, self->ip, self->port);
}

static PyObject *Conn_get_local(ConnObject *self, void *unused)
{
    uint8_t ip[16];
    uint16_t port = 0;
    int family = pyiocpConnLocal(self->engine->h, self->slot, self->id, ip, &port);
    return address(family, ip, port);
}

static PyObject *Conn_get_id(ConnObject *self, void *unused)
{
    return PyLong_FromUnsignedLongLong(self->id);
}

static PyObject *Conn_get_pending(ConnObject *self, void *unused)
{
    int closed;
    long long n = pyiocpConnState(self->engine->h, self->slot, self->id, &closed);
    return PyLong_FromLongLong(n < 0 ? 0 : n);
}

static PyObject *Conn_get_closed(ConnObject *self, void *unused)
{
    int closed = 1;
    if (!self->gone)
        pyiocpConnState(self->engine->h, self->slot, self->id, &closed);
    return PyBool_FromLong(closed);
}

static PyObject *Conn_repr(ConnObject *self)
{
    PyObject *peer = Conn_get_peer(self, NULL), *closed = Conn_get_closed(self, NULL), *r;
    if (!peer || !closed) {
        Py_XDECREF(peer);
        Py_XDECREF(closed);
        return NULL;
    }
    r = PyUnicode_FromFormat("<pyiocp.Connection id=%llu peer=%R%s>", (unsigned long long)self->id, peer,
                             closed == Py_True ? " closed" : "");
    Py_DECREF(peer);
    Py_DECREF(closed);
    return r;
}

static int Conn_traverse(ConnObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->engine);
    Py_VISIT(self->dict);
    return 0;
}

static int Conn_clear(ConnObject *self)
{
    Py_CLEAR(self->dict);
    return 0;
}

static void Conn_dealloc(ConnObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weaklist)
        PyObject_ClearWeakRefs((PyObject *)self);
    Conn_clear(self);
    Py_CLEAR(self->engine);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Conn_methods[] = {
    {"send", (PyCFunction)Conn_send, METH_O,
     "send(data): queue bytes to write; raises BufferFull (nothing queued) over send_buffer_limit, "
     "ConnectionClosed once closing. Safe from any thread."},
    {"close", (PyCFunction)Conn_close, METH_NOARGS, "close(): flush pending bytes, then close. Idempotent."},
    {"abort", (PyCFunction)Conn_abort, METH_NOARGS, "abort(): reset now, dropping pending bytes. Idempotent."},
    {"shutdown_write", (PyCFunction)Conn_shutdown_write, METH_NOARGS, "shutdown_write(): send FIN after pending bytes."},
    {"pause_reading", (PyCFunction)Conn_pause_reading, METH_NOARGS, "pause_reading(): stop on_recv and reading."},
    {"resume_reading", (PyCFunction)Conn_resume_reading, METH_NOARGS, "resume_reading(): undo pause_reading()."},
    {NULL},
};

static PyGetSetDef Conn_getset[] = {
    {"id", (getter)Conn_get_id, NULL, "unique id (never reused)", NULL},
    {"peer", (getter)Conn_get_peer, NULL, "(host, port) of the other end", NULL},
    {"local", (getter)Conn_get_local, NULL, "(host, port) of this end, None once closed", NULL},
    {"pending", (getter)Conn_get_pending, NULL, "bytes queued and not yet written", NULL},
    {"closed", (getter)Conn_get_closed, NULL, "True once closing or closed", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL},
};

static PyTypeObject ConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyiocp.Connection",
    .tp_doc = "One TCP connection; the same object for every callback of it.",
    .tp_basicsize = sizeof(ConnObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)Conn_dealloc,
    .tp_traverse = (traverseproc)Conn_traverse,
    .tp_clear = (inquiry)Conn_clear,
    .tp_repr = (reprfunc)Conn_repr,
    .tp_methods = Conn_methods,
    .tp_getset = Conn_getset,
    .tp_dictoffset = offsetof(ConnObject, dict),
    .tp_weaklistoffset = offsetof(ConnObject, weaklist),
};

/* ---------------------------------------------------------------- load generator */

static PyObject *bench_start(PyObject *mod, PyObject *args)
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

static PyObject *bench_progress(PyObject *mod, PyObject *arg)
{
    long long h = PyLong_AsLongLong(arg);
    double elapsed = 0, rate = 0;
    int64_t messages = 0;
    if (h == -1 && PyErr_Occurred())
        return NULL;
    pyiocpBenchProgress(h, &elapsed, &messages, &rate);
    return Py_BuildValue("(dLd)", elapsed, (long long)messages, rate);
}

static PyObject *bench_cancel(PyObject *mod, PyObject *arg)
{
    long long h = PyLong_AsLongLong(arg);
    if (h == -1 && PyErr_Occurred())
        return NULL;
    pyiocpBenchCancel(h);
    Py_RETURN_NONE;
}

static PyObject *bench_wait(PyObject *mod, PyObject *args)
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

/* ---------------------------------------------------------------- module */

static PyObject *mod_init(PyObject *mod, PyObject *errors)
{
    PyObject **slots[] = {&ErrBase, &ErrConnectionClosed, &ErrBufferFull, &ErrManagerClosed, &ErrTooManyConnections};
    const char *names[] = {"Error", "ConnectionClosed", "BufferFull", "ManagerClosed", "TooManyConnections"};
    for (int i = 0; i < 5; i++) {
        PyObject *cls = PyObject_GetAttrString(errors, names[i]);
        if (!cls)
            return NULL;
        Py_XSETREF(*slots[i], cls);
    }
    Py_RETURN_NONE;
}

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

static PyMethodDef module_methods[] = {
    {"_init", mod_init, METH_O, "_init(errors_module): the exception classes to raise"},
    {"go_allocations", mod_go_allocations, METH_NOARGS, "go_allocations() -> objects the Go side has allocated"},
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
    static const char *const names[NKINDS] = {"", "accept", "connect", "recv", "send", "drain", "eof", "close", "post"};
    PyObject *m;
#ifdef _WIN32
    QueryPerformanceFrequency(&qpc_hz);
#endif
    if (PyType_Ready(&EngineType) < 0 || PyType_Ready(&ConnType) < 0)
        return NULL;
    for (int k = 0; k < NKINDS; k++)
        if (!kind_names[k] && !(kind_names[k] = PyUnicode_InternFromString(names[k])))
            return NULL;
    ErrBase = PyExc_RuntimeError;
    ErrConnectionClosed = PyExc_ConnectionError;
    ErrBufferFull = PyExc_BlockingIOError;
    ErrManagerClosed = PyExc_RuntimeError;
    ErrTooManyConnections = PyExc_OSError;
    Py_INCREF(ErrBase);
    Py_INCREF(ErrConnectionClosed);
    Py_INCREF(ErrBufferFull);
    Py_INCREF(ErrManagerClosed);
    Py_INCREF(ErrTooManyConnections);
    m = PyModule_Create(&moduledef);
    if (!m)
        return NULL;
    Py_INCREF(&EngineType);
    Py_INCREF(&ConnType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddObject(m, "Connection", (PyObject *)&ConnType) < 0 ||
        PyModule_AddIntConstant(m, "MASK_SEND", PYIOCP_MASK_SEND) < 0 ||
        PyModule_AddIntConstant(m, "MASK_DRAIN", PYIOCP_MASK_DRAIN) < 0 ||
        PyModule_AddIntConstant(m, "MASK_EOF", PYIOCP_MASK_EOF) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
