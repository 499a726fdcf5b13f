/* connection.c: the Connection type, one engine.Conn by slot and id. */
#include "pyiocp.h"
#include <string.h>
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h> /* inet_ntop */
#else
#include <arpa/inet.h>
#endif

static PyObject *conn_op(ConnObject *self, int op)
{
    int rc;
    note_caller();
    rc = pyiocpConnOp(self->engine->h, self->slot, self->id, op);
    if (rc != PYIOCP_OK)
        return raise_code(rc, NULL);
    Py_RETURN_NONE;
}

/* Whether a send (or send_frame) from this thread is written at once, on
 * this thread (engine.Conn.SendNow, SendFrameNow): with a handler, from
 * any thread but one running a batch of this engine's callbacks. Those
 * sends are left to their worker, which writes all a batch queued for a
 * connection together at the start of its next round, with the GIL
 * released. Poll mode leaves every send to the next poll(). */
int send_now(EngineObject *e)
{
    return e->callbacks && !dispatching_here(e);
}

static PyObject *Conn_send(ConnObject *self, PyObject *data)
{
    Py_buffer view;
    int rc, now = send_now(self->engine);
    note_caller();
    if (PyBytes_CheckExact(data)) {
        rc = pyiocpSend(self->engine->h, self->slot, self->id, PyBytes_AS_STRING(data),
                        (size_t)PyBytes_GET_SIZE(data), now);
    } else {
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        rc = pyiocpSend(self->engine->h, self->slot, self->id, view.buf, (size_t)view.len, now);
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

/* (host, port), or None for an unknown family. */
PyObject *ip_address(int family, const uint8_t *ip, uint16_t port)
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
    int family;
    uint16_t port;
    uint8_t ip[16];
    Py_BEGIN_CRITICAL_SECTION(self); /* its worker may be setting them (peer_from) */
    family = self->family;
    port = self->port;
    memcpy(ip, self->ip, sizeof(ip));
    Py_END_CRITICAL_SECTION();
    if (family == 1)
        return self->unix_peer ? Py_NewRef(self->unix_peer) : PyUnicode_FromString("");
    return ip_address(family, ip, port);
}

static PyObject *Conn_get_local(ConnObject *self, void *unused)
{
    uint8_t ip[16];
    uint16_t port = 0;
    int family = pyiocpConnLocal(self->engine->h, self->slot, self->id, ip, &port);
    if (family == 1)
        return unix_name(self, 0);
    return ip_address(family, ip, port);
}

static PyObject *Conn_get_proxy(ConnObject *self, void *unused)
{
    uint8_t ip[16];
    uint16_t port = 0;
    int family = pyiocpConnProxy(self->engine->h, self->slot, self->id, ip, &port);
    if (family == 1)
        return unix_name(self, 1);
    return ip_address(family, ip, port);
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
    if (!conn_gone(self))
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
    Py_CLEAR(self->unix_peer);
    Py_CLEAR(self->engine);
    PyMem_RawFree(self->close_err);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Conn_methods[] = {
    {"send", (PyCFunction)Conn_send, METH_O,
     "send(data): queue bytes to write; raises BufferFull (nothing queued) over send_buffer_limit, "
     "ConnectionClosed once closing. Safe from any thread."},
    {"sendfile", (PyCFunction)(void (*)(void))Conn_sendfile, METH_VARARGS | METH_KEYWORDS,
     "sendfile(file, offset=0, count=None): queue count bytes of file (an object with fileno(); None: to its "
     "end) in order with the other sends, without copying them through user space where the OS allows. The "
     "file is duplicated: the caller may close it. Raises as send(); ValueError for a bad range or a file "
     "that is not a regular file."},
    {"close", (PyCFunction)Conn_close, METH_NOARGS, "close(): flush pending bytes, then close. Idempotent."},
    {"abort", (PyCFunction)Conn_abort, METH_NOARGS, "abort(): reset now, dropping pending bytes. Idempotent."},
    {"shutdown_write", (PyCFunction)Conn_shutdown_write, METH_NOARGS, "shutdown_write(): send FIN after pending bytes."},
    {"start_tls", (PyCFunction)(void (*)(void))Conn_start_tls, METH_VARARGS | METH_KEYWORDS,
     "start_tls(config, server_side=False): TLS from here on (STARTTLS); a failed handshake closes with TLSError"},
    {"pause_reading", (PyCFunction)Conn_pause_reading, METH_NOARGS, "pause_reading(): stop on_recv and reading."},
    {"resume_reading", (PyCFunction)Conn_resume_reading, METH_NOARGS, "resume_reading(): undo pause_reading()."},
    {"set_nodelay", (PyCFunction)Conn_set_nodelay, METH_O, "set_nodelay(flag): TCP_NODELAY on or off"},
    {"set_keepalive", (PyCFunction)Conn_set_keepalive, METH_O,
     "set_keepalive(keepalive): a pyiocp.KeepAlive turns keepalive probes on, None off"},
    {"setsockopt", (PyCFunction)Conn_setsockopt, METH_VARARGS,
     "setsockopt(level, option, value): as socket.setsockopt (value an int or bytes)"},
    {"getsockopt", (PyCFunction)Conn_getsockopt, METH_VARARGS,
     "getsockopt(level, option[, buflen]): as socket.getsockopt (an int, or bytes with buflen)"},
    {"set_idle_timeout", (PyCFunction)Conn_set_idle_timeout, METH_O,
     "set_idle_timeout(seconds): this connection's own idle timeout (0: none); None: the manager's again"},
    {"set_framing", (PyCFunction)Conn_set_framing, METH_O,
     "set_framing(framing): split the bytes not yet delivered with a pyiocp.Lines or LengthPrefixed (None: "
     "no framing). From this connection's callbacks it applies right after the current one."},
    {"send_frame", (PyCFunction)Conn_send_frame, METH_O,
     "send_frame(payload): send payload as one frame of the connection's framing (its header or terminator "
     "added), never interleaved with another send. Safe from any thread."},
    {"call_later", (PyCFunction)Conn_call_later, METH_VARARGS,
     "call_later(delay, callback, *args) -> Timer: callback(*args) after delay seconds on this connection's "
     "worker, in order with its events; cancelled when the connection closes. Safe from any thread."},
    {NULL},
};

static PyGetSetDef Conn_getset[] = {
    {"id", (getter)Conn_get_id, NULL, "unique id (never reused)", NULL},
    {"peer", (getter)Conn_get_peer, NULL, "(host, port) of the other end", NULL},
    {"local", (getter)Conn_get_local, NULL, "(host, port) of this end, None once closed", NULL},
    {"pending", (getter)Conn_get_pending, NULL, "bytes queued and not yet written", NULL},
    {"closed", (getter)Conn_get_closed, NULL, "True once closing or closed", NULL},
    {"tls", (getter)Conn_get_tls, NULL, "a pyiocp.TLSInfo, or None for plaintext", NULL},
    {"proxy", (getter)Conn_get_proxy, NULL,
     "(host, port) of the load balancer whose PROXY header named peer, or None", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL},
};

PyTypeObject ConnType = {
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
