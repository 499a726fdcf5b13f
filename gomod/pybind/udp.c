/* udp.c: UDP endpoints (udp.go). The Python DatagramEndpoint is made by
 * _udp.py with a handle of its manager's choosing, and is in
 * Engine.endpoints before the engine binds it, so that its first datagram
 * finds it. A datagram's bytes are copied into a bytes object while this
 * thread holds the worker, as a connection's are. */
#include "pyiocp.h"

/* bind_udp(handle, endpoint, ip, port, reuse_port, broadcast, remote_ip,
 * remote_port, datagram_size) -> bound port. remote_ip "": unconnected;
 * datagram_size 0: the engine's. */
PyObject *Engine_bind_udp(EngineObject *self, PyObject *args)
{
    long long handle;
    PyObject *obj, *key;
    const char *ip, *rip;
    int port, reuse, bcast, rport, size, bound = 0, rc;
    pyiocp_error err;
    if (!PyArg_ParseTuple(args, "LOsippsii", &handle, &obj, &ip, &port, &reuse, &bcast, &rip, &rport, &size))
        return NULL;
    if (handle <= 0)
        return PyErr_Format(PyExc_ValueError, "endpoint handle %lld: must be positive", handle);
    key = PyLong_FromLongLong(handle);
    if (!key)
        return NULL;
    if (PyDict_SetItem(self->endpoints, key, obj) < 0) {
        Py_DECREF(key);
        return NULL;
    }
    /* Opening and binding the socket: no GIL. ip and rip stay valid: args
     * holds their str objects. */
    Py_BEGIN_ALLOW_THREADS
    rc = pyiocpBindUDP(self->h, handle, (char *)ip, port, reuse, bcast, (char *)rip, rport, size, &bound, &err);
    Py_END_ALLOW_THREADS
    if (rc != PYIOCP_OK) {
        if (PyDict_DelItem(self->endpoints, key) < 0)
            PyErr_Clear(); /* cannot be missing: only this call and close_endpoint(handle) remove it */
        Py_DECREF(key);
        return raise_code(err.code, &err);
    }
    Py_DECREF(key);
    return PyLong_FromLong(bound);
}

/* sendto(handle, data, ip, port): queue one datagram; ip "": a connected
 * endpoint's remote. Go copies the bytes and does not block. */
PyObject *Engine_sendto(EngineObject *self, PyObject *args)
{
    long long handle;
    Py_buffer data;
    const char *ip;
    int port, rc;
    pyiocp_error err;
    if (!PyArg_ParseTuple(args, "Ly*si", &handle, &data, &ip, &port))
        return NULL;
    note_caller();
    rc = pyiocpSendTo(self->h, handle, (char *)data.buf, (size_t)data.len, (char *)ip, port, &err);
    PyBuffer_Release(&data);
    if (rc != PYIOCP_OK)
        return raise_code(rc, &err);
    Py_RETURN_NONE;
}

/* close_endpoint(handle): no datagram of it is delivered from now on
 * (one being delivered on another thread keeps its own reference); what
 * sendto queued is still sent. Idempotent. */
PyObject *Engine_close_endpoint(EngineObject *self, PyObject *arg)
{
    long long handle = PyLong_AsLongLong(arg);
    if (handle == -1 && PyErr_Occurred())
        return NULL;
    pyiocpEndpointClose(self->h, handle);
    if (self->endpoints && PyDict_DelItem(self->endpoints, arg) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            return NULL;
        PyErr_Clear(); /* closed before */
    }
    Py_RETURN_NONE;
}

/* endpoint_closed(handle) -> bool: closed by close() or the shutdown. */
PyObject *Engine_endpoint_closed(EngineObject *self, PyObject *arg)
{
    long long handle = PyLong_AsLongLong(arg);
    if (handle == -1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(self->released || pyiocpEndpointClosed(self->h, handle));
}

/* A datagram event's endpoint (a new reference), with its bytes and the
 * sender's (host, port) in *data and *addr (new references). NULL with no
 * exception set: the endpoint was closed meanwhile, nothing to deliver. */
PyObject *datagram_args(EngineObject *e, const pyiocp_event *ev, PyObject **data, PyObject **addr)
{
    PyObject *key, *ep;
    *data = *addr = NULL;
    key = PyLong_FromUnsignedLongLong(ev->id);
    if (!key)
        return NULL;
    /* A strong reference: close() on another thread may drop the dict's. */
    if (PyDict_GetItemRef(e->endpoints, key, &ep) <= 0) {
        Py_DECREF(key);
        return NULL;
    }
    Py_DECREF(key);
    *data = PyBytes_FromStringAndSize(ev->data, (Py_ssize_t)ev->n);
    if (!*data) {
        Py_DECREF(ep);
        return NULL;
    }
    *addr = ip_address(ev->family, ev->ip, ev->port);
    if (!*addr) {
        Py_CLEAR(*data);
        Py_DECREF(ep);
        return NULL;
    }
    return ep;
}
