/* engine.c: the Engine type, one engine.Manager: its options, listeners,
 * connects, the worker loop's entry and the manager-wide calls. */
#include "pyiocp.h"
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h> /* inet_pton */
#else
#include <arpa/inet.h>
#endif
#include <string.h>

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
    self->callbacks = handler != Py_None;
    if (handler != Py_None) {
        for (int k = 1; k < NKINDS; k++) {
            if (k == PYIOCP_EV_TIMER)
                continue; /* runs the Timer's own callback */
            self->cb[k] = PyObject_GetAttrString(handler, cb_names[k]);
            if (!self->cb[k])
                return -1;
        }
        self->on_error = PyObject_GetAttrString(handler, "on_error");
        if (!self->on_error)
            return -1;
    }
    if (!PyType_Check(completion) || !PyType_IsSubtype((PyTypeObject *)completion, &PyTuple_Type))
        return PyErr_SetString(PyExc_TypeError, "completion must be a tuple subtype (a named tuple)"), -1;
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
    /* Made now, not at the first bind_udp: two threads binding at once
     * would make two. */
    if (!(self->endpoints = PyDict_New()))
        return -1;
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
    Py_VISIT(self->endpoints);
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
    Py_CLEAR(self->endpoints);
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
            for (int i = 0; i < n; i++) {
                if (evs[i].kind == PYIOCP_EV_POST)
                    Py_DECREF((PyObject *)(uintptr_t)evs[i].value);
                else if (evs[i].kind == PYIOCP_EV_TIMER)
                    Py_XDECREF(timer_due(&evs[i]));
            }
            if (held)
                pyiocpPollDone(self->h, w);
        }
    }
    timers_settle(self);
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
    int port, backlog, accepts, reuse, first, bound = 0;
    int64_t lh = 0;
    pyiocp_error err;
    pyiocp_sockopts so;
    pyiocp_framing fr;
    long long tls;
    int proxy;
    const char *allow; /* NULL: the default sources */
    PyObject *opts, *framing;
    if (!PyArg_ParseTuple(args, "siiippOOLiz", &ip, &port, &backlog, &accepts, &reuse, &first, &opts, &framing, &tls,
                          &proxy, &allow) ||
        sockopts_from(opts, &so) < 0 || framing_from(framing, &fr) < 0)
        return NULL;
    if (pyiocpListen(self->h, (char *)ip, port, backlog, accepts, reuse, first, &so, &fr, tls, proxy, (char *)allow, &lh,
                     &bound, &err) != PYIOCP_OK)
        return raise_code(err.code, &err);
    return Py_BuildValue("Li", (long long)lh, bound);
}

/* listen_socket(fd, accepts, first_data, sockopts, framing, tls_handle, proxy_mode, proxy_allow) -> handle:
 * serve the listening socket fd, which is ours from the call on: closed
 * here when an argument is bad, by the engine when it fails. */
static PyObject *Engine_listen_socket(EngineObject *self, PyObject *args)
{
    long long fd = -1, tls;
    int accepts, first, proxy;
    int64_t lh = 0;
    const char *allow;
    pyiocp_error err;
    pyiocp_sockopts so;
    pyiocp_framing fr;
    PyObject *opts, *framing;
    if (!PyArg_ParseTuple(args, "LipOOLiz", &fd, &accepts, &first, &opts, &framing, &tls, &proxy, &allow) ||
        sockopts_from(opts, &so) < 0 || framing_from(framing, &fr) < 0) {
        if (fd >= 0)
            pyiocpCloseSocket(fd);
        return NULL;
    }
    if (pyiocpListenSocket(self->h, fd, accepts, first, &so, &fr, tls, proxy, (char *)allow, &lh, &err) != PYIOCP_OK)
        return raise_code(err.code, &err);
    return PyLong_FromLongLong(lh);
}

static PyObject *Engine_close_listener(EngineObject *self, PyObject *arg)
{
    long long lh = PyLong_AsLongLong(arg);
    if (lh == -1 && PyErr_Occurred())
        return NULL;
    pyiocpListenerClose(self->h, lh);
    Py_RETURN_NONE;
}

/* reload_tls(listener_handle, tls_handle): new handshakes use it. */
static PyObject *Engine_reload_tls(EngineObject *self, PyObject *args)
{
    long long lh, tls;
    pyiocp_error err;
    int rc;
    if (!PyArg_ParseTuple(args, "LL", &lh, &tls))
        return NULL;
    if ((rc = pyiocpListenerReloadTLS(self->h, lh, tls, &err)) != PYIOCP_OK)
        return raise_code(rc, &err);
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

/* connect(host, port, timeout_ns, sockopts, framing) -> Connection, at once: host
 * is an IP address or a name resolved off this thread (its peer is known
 * once connected). The GIL is held from the Go call until the object is
 * in the table, so no worker can deliver the connect's outcome before the
 * object exists. */
static PyObject *Engine_connect(EngineObject *self, PyObject *args)
{
    const char *host;
    int port;
    long long timeout_ns, tls;
    uint32_t slot = 0;
    uint64_t id = 0;
    pyiocp_error err;
    ConnObject *c;
    unsigned char buf[16];
    pyiocp_sockopts so;
    pyiocp_framing fr;
    PyObject *opts, *framing;
    int rc;
    if (!PyArg_ParseTuple(args, "siLOOL", &host, &port, &timeout_ns, &opts, &framing, &tls) ||
        sockopts_from(opts, &so) < 0 || framing_from(framing, &fr) < 0)
        return NULL;
    c = conn_new(self, 0, 0);
    if (!c)
        return NULL;
    if (inet_pton(AF_INET, host, buf) == 1) {
        c->family = 4;
        memset(c->ip, 0, 10);
        c->ip[10] = c->ip[11] = 0xff;
        memcpy(c->ip + 12, buf, 4);
    } else if (inet_pton(AF_INET6, host, buf) == 1) {
        c->family = 6;
        memcpy(c->ip, buf, 16);
    }
    c->port = (uint16_t)port;
    /* The table is held from the Go call until the object is in it (the
     * GIL was, without free-threading): a worker that harvests the
     * connect's outcome first waits for the object that takes it. */
    note_caller();
    FT_LOCK(&self->table_lock);
    rc = pyiocpConnect(self->h, (char *)host, port, timeout_ns, &so, &fr, tls, &slot, &id, &err);
    return conn_publish_unlock(self, c, rc, slot, id, &err);
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
    if (!self->released)
        timers_settle(self);
    if (!self->released && pyiocpRelease(self->h)) {
        self->released = 1;
        table_clear(self);
        /* Emptied, not dropped: close_endpoint() may be running on another
         * thread. */
        if (self->endpoints)
            PyDict_Clear(self->endpoints);
    }
    return PyBool_FromLong(self->released);
}

static PyObject *Engine_post(EngineObject *self, PyObject *payload)
{
    int rc;
    note_caller();
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
    return Py_BuildValue("{sLsLsLsLsLsLsLsLsLsLsLsLsLsLsLsLsLsLsLsLsLsLsLsLss}",
                         "connections", (long long)s.connections, "accepted", (long long)s.accepted,
                         "connected", (long long)s.connected, "closed", (long long)s.closed,
                         "rejected", (long long)s.rejected, "timed_out", (long long)s.timed_out,
                         "bytes_in", (long long)s.bytes_in, "bytes_out", (long long)s.bytes_out,
                         "pending_send_bytes", (long long)s.pending_send_bytes,
                         "paused_reading", (long long)s.paused_reading,
                         "completions", (long long)s.completions, "accept_errors", (long long)s.accept_errors,
                         "accept_error_episodes", (long long)s.accept_error_episodes,
                         "stray_completions", (long long)s.stray, "listeners", (long long)s.listeners,
                         "workers", (long long)s.workers,
                         "tls_connections", (long long)s.tls_connections,
                         "tls_handshake_errors", (long long)s.tls_handshake_errors,
                         "proxy_errors", (long long)s.proxy_errors, "endpoints", (long long)s.endpoints,
                         "datagrams_in", (long long)s.datagrams_in, "datagrams_out", (long long)s.datagrams_out,
                         "datagrams_truncated", (long long)s.datagrams_truncated,
                         "datagram_errors", (long long)s.datagram_errors, "backend", s.backend);
}

static PyObject *Engine_get(EngineObject *self, PyObject *arg)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    uint32_t slot = 0;
    ConnObject *c;
    if (id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (pyiocpGet(self->h, id, &slot) && (c = table_ref(self, slot, id)))
        return (PyObject *)c;
    Py_RETURN_NONE;
}

static PyMethodDef Engine_methods[] = {
    {"listen_socket", (PyCFunction)Engine_listen_socket, METH_VARARGS,
     "listen_socket(fd, accepts, first_data, sockopts, framing, tls_handle, proxy_mode, proxy_allow) -> handle"},
    {"listen", (PyCFunction)Engine_listen, METH_VARARGS, "listen(ip, port, backlog, accepts, reuse_port, first_data, sockopts, framing, tls_handle, proxy_mode, "
     "proxy_allow) -> (handle, port)"},
    {"close_listener", (PyCFunction)Engine_close_listener, METH_O, "close_listener(handle)"},
    {"reload_tls", (PyCFunction)Engine_reload_tls, METH_VARARGS, "reload_tls(listener_handle, tls_handle)"},
    {"listener_waiting", (PyCFunction)Engine_listener_waiting, METH_O, "listener_waiting(handle) -> bool: connections wait, no worker has the listener"},
    {"pool_new", (PyCFunction)Engine_pool_new, METH_VARARGS, "pool_new(size, idle_ns) -> Pool (pool.c)"},
    {"listen_unix", (PyCFunction)Engine_listen_unix, METH_VARARGS,
     "listen_unix(path_bytes, mode, backlog, accepts, framing, tls_handle) -> handle (unix.c)"},
    {"connect_unix", (PyCFunction)Engine_connect_unix, METH_VARARGS,
     "connect_unix(path_bytes, timeout_ns, framing) -> Connection (unix.c)"},
    {"bind_udp", (PyCFunction)Engine_bind_udp, METH_VARARGS,
     "bind_udp(handle, endpoint, ip, port, reuse_port, broadcast, remote_ip, remote_port, datagram_size) -> port (udp.c)"},
    {"sendto", (PyCFunction)Engine_sendto, METH_VARARGS, "sendto(handle, data, ip, port) (udp.c)"},
    {"close_endpoint", (PyCFunction)Engine_close_endpoint, METH_O, "close_endpoint(handle) (udp.c)"},
    {"endpoint_closed", (PyCFunction)Engine_endpoint_closed, METH_O, "endpoint_closed(handle) -> bool (udp.c)"},
    {"connect", (PyCFunction)Engine_connect, METH_VARARGS,
     "connect(host, port, timeout_ns, sockopts, framing, tls_handle) -> Connection: a name is resolved off this thread"},
    {"run_worker", (PyCFunction)Engine_run_worker, METH_VARARGS, "run_worker(index, is_main): dispatch until the worker quits"},
    {"poll", (PyCFunction)Engine_poll, METH_VARARGS, "poll(timeout_ns, max, is_main) -> list of Completion"},
    {"poll_park", (PyCFunction)Engine_poll_park, METH_O, "poll_park(max) -> (list of Completion, park_ns or None)"},
    {"wait_fd", (PyCFunction)Engine_wait_fd, METH_NOARGS, "wait_fd() -> descriptor or None"},
    {"release_poller", (PyCFunction)Engine_release_poller, METH_O, "release_poller(thread_ident)"},
    {"shutdown", (PyCFunction)Engine_shutdown, METH_O, "shutdown(timeout_ns): start a graceful close"},
    {"release", (PyCFunction)Engine_release, METH_NOARGS, "release() -> True once every worker has quit"},
    {"post", (PyCFunction)Engine_post, METH_O, "post(payload)"},
    {"call_later", (PyCFunction)Engine_call_later, METH_VARARGS, "call_later(delay, callback, args, when=None) -> Timer"},
    {"stats", (PyCFunction)Engine_stats, METH_NOARGS, "stats() -> dict"},
    {"get", (PyCFunction)Engine_get, METH_O, "get(conn_id) -> Connection or None"},
    {NULL},
};

PyTypeObject EngineType = {
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
