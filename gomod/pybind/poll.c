/* poll.c: poll mode, the GetQueuedCompletionStatus loop: a batch turned
 * into Completions, any number of threads polling at once. */
#include "pyiocp.h"

/* A Completion (the named tuple _manager.py passes in, a tuple subtype,
 * checked by Engine_init): what tuple.__new__(cls, items) makes, allocated
 * as the subtype at once, without the class's own __new__ nor the two
 * temporary tuples tuple.__new__ would take. */
static PyObject *new_completion(EngineObject *e, PyObject *kind, PyObject *conn, PyObject *data, PyObject *error)
{
    PyTypeObject *type = (PyTypeObject *)e->completion;
    PyObject *r = type->tp_alloc(type, 4);
    if (!r)
        return NULL;
    PyTuple_SET_ITEM(r, 0, Py_NewRef(kind));
    PyTuple_SET_ITEM(r, 1, Py_NewRef(conn));
    PyTuple_SET_ITEM(r, 2, Py_NewRef(data));
    PyTuple_SET_ITEM(r, 3, Py_NewRef(error));
    return r;
}

/* A Completion for poll(): (kind, conn, data, error). */
static PyObject *completion(EngineObject *e, const pyiocp_event *ev)
{
    ConnObject *c = NULL;
    PyObject *data = Py_None, *error = Py_None, *r;
    if (ev->kind == 0)
        return Py_INCREF(Py_None), Py_None; /* taken back by a set_framing */
    if (ev->kind == PYIOCP_EV_TIMER) {
        TimerObject *t = timer_due(ev);
        if (!t)
            return Py_INCREF(Py_None), Py_None; /* cancelled meanwhile: no Completion */
        c = ev->n & PYIOCP_TIMER_CONN ? table_get(e, ev->slot, ev->id) : NULL;
        r = new_completion(e, kind_names[ev->kind], c ? (PyObject *)c : Py_None, (PyObject *)t, Py_None);
        Py_DECREF(t);
        return r;
    }
    if (ev->kind == PYIOCP_EV_DATAGRAM) {
        PyObject *bytes, *addr, *pair, *ep = datagram_args(e, ev, &bytes, &addr);
        if (!ep)
            return PyErr_Occurred() ? NULL : (Py_INCREF(Py_None), Py_None); /* closed meanwhile */
        pair = Py_BuildValue("(NN)", bytes, addr);
        r = pair ? new_completion(e, kind_names[ev->kind], ep, pair, Py_None) : NULL;
        Py_XDECREF(pair);
        Py_DECREF(ep);
        return r;
    }
    if (ev->kind == PYIOCP_EV_POST) {
        PyObject *payload = (PyObject *)(uintptr_t)ev->value;
        r = new_completion(e, kind_names[ev->kind], Py_None, payload, Py_None);
        Py_DECREF(payload);
        return r;
    }
    c = ev->kind == PYIOCP_EV_ACCEPT ? accepted(e, ev) : table_get(e, ev->slot, ev->id);
    if (!c)
        return PyErr_Occurred() ? NULL : (Py_INCREF(Py_None), Py_None);
    if (ev->kind == PYIOCP_EV_CONNECT)
        peer_from(c, ev);
    Py_INCREF(c);
    if (ev->kind == PYIOCP_EV_RECV)
        data = PyBytes_FromStringAndSize(ev->data, (Py_ssize_t)ev->n);
    else if (ev->kind == PYIOCP_EV_SEND)
        data = PyLong_FromLongLong(ev->n);
    else
        Py_INCREF(data);
    if (ev->kind == PYIOCP_EV_CLOSE) {
        conn_closed(e, c, &ev->err);
        error = close_error(&ev->err);
    } else {
        Py_INCREF(error);
    }
    r = data && error ? new_completion(e, kind_names[ev->kind], (PyObject *)c, data, error) : NULL;
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

/* A harvested batch as a list of Completions, or NULL with the error of
 * the first that failed: the rest are settled all the same, so that no
 * reference leaks. */
static PyObject *batch_list(EngineObject *self, pyiocp_event *evs, int n)
{
    PyObject *list = PyList_New(0);
    for (int i = 0; i < n; i++) {
        int taken = list != NULL; /* completion() settled evs[i] */
        PyObject *item = taken ? completion(self, &evs[i]) : NULL;
        if (!item || (item != Py_None && PyList_Append(list, item) < 0)) {
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
    return list;
}

PyObject *Engine_poll(EngineObject *self, PyObject *args)
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
    note_caller();
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
        if (n > 0 || quit)
            list = batch_list(self, evs, n);
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

/* poll_park(max) -> (list of Completion, park_ns): one round that never
 * blocks, for a loop watching wait_fd(). park_ns is 0 to poll again at
 * once; else the worker is parked until wait_fd() is readable or park_ns
 * have passed (-1: no deadline); None once the worker has quit. */
PyObject *Engine_poll_park(EngineObject *self, PyObject *arg)
{
    long max = PyLong_AsLong(arg);
    int n, quit = 0, logs = 0;
    int64_t park = 0;
    PyObject *list;
    pyiocp_event *evs;
    uint64_t poller = poller_id(PyThread_get_thread_ident());
    if (max == -1 && PyErr_Occurred())
        return NULL;
    if (max < 1 || max > 1 << 16)
        return PyErr_Format(PyExc_ValueError, "max=%ld: must be 1 to 65536", max);
    evs = PyMem_Malloc((size_t)max * sizeof(*evs));
    if (!evs)
        return PyErr_NoMemory();
    note_caller();
    /* The round does not block in the port, but it waits for the worker
     * if another thread holds it, which may need the GIL to let go. */
    Py_BEGIN_ALLOW_THREADS
    n = pyiocpPollPark(self->h, 0, poller, evs, (int)max, &quit, &logs, &park);
    Py_END_ALLOW_THREADS
    if (logs)
        flush_logs(self);
    list = batch_list(self, evs, n);
    /* The batch is bytes and Completions now. */
    pyiocpPollDone(self->h, 0);
    PyMem_Free(evs);
    if (!list)
        return NULL;
    return quit ? Py_BuildValue("(NO)", list, Py_None) : Py_BuildValue("(NL)", list, (long long)park);
}

/* wait_fd() -> the descriptor poll_park's caller watches, or None. */
PyObject *Engine_wait_fd(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    int fd = pyiocpWaitFD(self->h, 0);
    if (fd < 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(fd);
}

/* release_poller(ident): the thread ident (threading.get_ident()) has
 * stopped polling; its connections go to the other pollers. */
PyObject *Engine_release_poller(EngineObject *self, PyObject *arg)
{
    unsigned long ident = PyLong_AsUnsignedLong(arg);
    if (ident == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    pyiocpReleasePoller(self->h, 0, poller_id(ident));
    Py_RETURN_NONE;
}
