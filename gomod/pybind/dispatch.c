/* dispatch.c: a worker's loop with a handler: release the GIL, harvest a
 * batch in Go, take the GIL once, call the handler for the whole batch. */
#include "pyiocp.h"
#include <string.h>

const char *const cb_names[NKINDS] = {
    NULL, "on_accept", "on_connect", "on_recv", "on_send", "on_drain", "on_eof", "on_close", "on_post",
    "timer", /* not the handler's: a call_later callback */
    "on_datagram",
};

/* A Ctrl-C that lands while pyiocp's own code runs Python (logging, a
 * failing on_error) must not be lost in it: the KeyboardInterrupt is
 * dropped there and SIGINT tripped again, so the main thread's loop (or
 * poll()) raises it at its next signal check. Reports whether it was one. */
static int interrupt_again(void)
{
    if (!PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
        return 0;
    PyErr_Clear();
    PyErr_SetInterrupt();
    return 1;
}

void report(EngineObject *e, const char *msg, PyObject *exc)
{
    PyObject *r = PyObject_CallFunction(e->report, "sO", msg, exc ? exc : Py_None);
    if (!r && !interrupt_again())
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
        } else if (!interrupt_again()) {
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

/* Calls the handler with (conn, arg) and drops arg's reference. A NULL arg
 * (making it failed) is handled like a callback that raised. */
static inline void call_with(EngineObject *e, int kind, ConnObject *c, PyObject *arg, loop_state *ls)
{
    if (!arg) {
        callback_failed(e, (PyObject *)c, ls);
        return;
    }
    call(e, kind, (PyObject *)c, (PyObject *)c, arg, ls);
    Py_DECREF(arg);
}

void flush_logs(EngineObject *e)
{
    char buf[512];
    while (pyiocpTakeLog(e->h, buf, sizeof(buf)))
        report(e, buf, NULL);
}

/* Turns an accept event into the connection object, in the table (a
 * borrowed reference: the table's keeps it). NULL with the connection
 * reset on failure. */
ConnObject *accepted(EngineObject *e, const pyiocp_event *ev)
{
    ConnObject *c = conn_new(e, ev->slot, ev->id);
    if (!c) {
        pyiocpConnOp(e->h, ev->slot, ev->id, 1);
        return NULL;
    }
    peer_from(c, ev);
    FT_LOCK(&e->table_lock);
    if (!conn_publish_unlock(e, c, PYIOCP_OK, ev->slot, ev->id, NULL))
        return NULL;
    Py_DECREF(c);
    return c;
}

/* The peer an accept or a connect event names (a connect to a host name
 * learns its address only then). */
void peer_from(ConnObject *c, const pyiocp_event *ev)
{
    Py_BEGIN_CRITICAL_SECTION(c); /* Connection.peer reads them on any thread */
    c->family = ev->family;
    c->port = ev->port;
    memcpy(c->ip, ev->ip, 16);
    Py_END_CRITICAL_SECTION();
    /* A Unix domain connection's peer is named before the object is in
     * the table (accepted, connect_unix): no other thread sees it yet. */
    if (ev->family == 1 && !c->unix_peer) {
        /* Named now, while the connection is surely there. Without it (no
         * memory) the peer reads "": the event is delivered all the same. */
        PyObject *name = unix_name(c, 1);
        if (!name)
            PyErr_Clear();
        else if (PyUnicode_Check(name))
            c->unix_peer = name;
        else
            Py_DECREF(name); /* None: gone already */
    }
}

/* Runs a due timer's callback; an exception goes to on_error with the
 * timer's connection (None for the manager's). */
static void run_timer(EngineObject *e, const pyiocp_event *ev, loop_state *ls)
{
    TimerObject *t = timer_due(ev);
    PyObject *r;
    if (!t)
        return; /* cancelled meanwhile */
    r = timer_run(t);
    if (r)
        Py_DECREF(r);
    else
        callback_failed(e, ev->n & PYIOCP_TIMER_CONN ? (PyObject *)table_get(e, ev->slot, ev->id) : NULL, ls);
    Py_DECREF(t);
}

/* on_datagram(endpoint, data, addr); an exception goes to on_error with
 * the endpoint. */
static void dispatch_datagram(EngineObject *e, const pyiocp_event *ev, loop_state *ls)
{
    PyObject *data, *addr, *ep = datagram_args(e, ev, &data, &addr), *r;
    if (!ep) {
        if (PyErr_Occurred())
            callback_failed(e, NULL, ls);
        return; /* closed meanwhile */
    }
    PyObject *args[3] = {ep, data, addr};
    r = PyObject_Vectorcall(e->cb[PYIOCP_EV_DATAGRAM], args, 3, NULL);
    if (r)
        Py_DECREF(r);
    else
        callback_failed(e, ep, ls);
    Py_DECREF(data);
    Py_DECREF(addr);
    Py_DECREF(ep);
}

static void dispatch_one(EngineObject *e, pyiocp_event *ev, loop_state *ls)
{
    ConnObject *c = NULL;
    if (ev->kind == 0)
        return; /* taken back by a set_framing earlier in the batch (or a datagram not to deliver) */
    if (ev->kind == PYIOCP_EV_DATAGRAM) {
        dispatch_datagram(e, ev, ls);
        return;
    }
    if (ev->kind == PYIOCP_EV_TIMER) {
        run_timer(e, ev, ls);
        return;
    }
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
    if (ev->kind == PYIOCP_EV_CONNECT)
        peer_from(c, ev);
    switch (ev->kind) {
    case PYIOCP_EV_RECV:
        call_with(e, ev->kind, c, PyBytes_FromStringAndSize(ev->data, (Py_ssize_t)ev->n), ls);
        break;
    case PYIOCP_EV_SEND:
        call_with(e, ev->kind, c, PyLong_FromLongLong(ev->n), ls);
        break;
    case PYIOCP_EV_CLOSE:
        /* Exactly once: the object leaves the table before on_close. */
        Py_INCREF(c);
        conn_closed(e, c, &ev->err);
        call_with(e, ev->kind, c, close_error(&ev->err), ls);
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

/* The batches this thread is dispatching, innermost first (a callback may
 * run another manager's workers: its close() when it was never started),
 * in a thread-specific key: each thread reads and writes only its own, no
 * lock, with or without the GIL. (Not C11's _Thread_local: MinGW-w64
 * implements it with libgcc's DLL, which the Windows wheel does not ship.) */
static Py_tss_t dispatching = Py_tss_NEEDS_INIT;

int dispatch_init(void)
{
    return PyThread_tss_create(&dispatching) ? (PyErr_NoMemory(), -1) : 0;
}

/* The batch of e's callbacks this thread is dispatching, NULL: none. */
loop_state *dispatching_here(EngineObject *e)
{
    for (loop_state *d = PyThread_tss_get(&dispatching); d; d = d->outer)
        if (d->engine == e)
            return d;
    return NULL;
}

/* Delivers a batch. With slow_callback_warning on, one clock read per
 * event times each callback (with the making of its arguments). */
static void dispatch(EngineObject *e, pyiocp_event *evs, int n, loop_state *ls)
{
    int64_t start, last, worst = -1;
    int worst_kind = 0;
    ls->evs = evs;
    ls->n = n;
    ls->outer = PyThread_tss_get(&dispatching);
    /* Should it fail (no memory), this batch's sends and set_framing only
     * act as from another thread: written at once, applied at once. */
    PyThread_tss_set(&dispatching, ls);
    if (!e->slow_ns) {
        for (int i = 0; i < n; i++) {
            ls->cur = i;
            dispatch_one(e, &evs[i], ls);
        }
        PyThread_tss_set(&dispatching, ls->outer);
        return;
    }
    start = last = mono_ns(e->coarse);
    for (int i = 0; i < n; i++) {
        int64_t t;
        ls->cur = i;
        dispatch_one(e, &evs[i], ls);
        t = mono_ns(e->coarse);
        if (t - last > worst) {
            worst = t - last;
            worst_kind = evs[i].kind;
        }
        last = t;
    }
    PyThread_tss_set(&dispatching, ls->outer);
    if (last - start > e->slow_ns)
        warn_slow(e, worst_kind, worst, last - start);
}

/* One worker's loop: the GIL is released while Go harvests, taken once per
 * batch. Returns when the worker quits after shutdown, or with the
 * exception that stopped the main thread (Ctrl-C). */
PyObject *run_loop(EngineObject *e, int worker, int is_main)
{
    pyiocp_event *evs = PyMem_Malloc(BATCH * sizeof(*evs));
    loop_state ls = {is_main, NULL, NULL, NULL, e, worker, NULL, 0, 0, NULL};
    int quit = 0;
    if (!evs)
        return PyErr_NoMemory();
    Py_INCREF(e);
    note_caller();
    while (!quit) {
        int n, logs = 0, held = 0;
        PyThreadState *ts = PyEval_SaveThread();
        n = pyiocpPoll(e->h, worker, 0, evs, BATCH, is_main ? MAIN_SLICE_NS : -1, &quit, &logs, &held);
        worker_take_gil(ts);
        dispatch(e, evs, n, &ls);
        if (held)
            pyiocpPollDone(e->h, worker);
        if (logs)
            flush_logs(e);
        if (ls.stop)
            break;
        if (is_main && PyErr_CheckSignals() < 0)
            break;
        if (is_main && lost_interrupt) {
            lost_interrupt = 0;
            PyErr_SetNone(PyExc_KeyboardInterrupt);
            break;
        }
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
