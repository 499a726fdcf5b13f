/* sockopt.c: socket options: the tuple listen() and connect() pass
 * (pyiocp/_sockopts.py), and the Connection's methods that change a live
 * socket's. */
#include "pyiocp.h"
#include <math.h>
#include <string.h>

/* (nodelay, keepalive, idle_ns, interval_ns, count, rcvbuf, sndbuf) */
int sockopts_from(PyObject *t, pyiocp_sockopts *so)
{
    int nodelay, keepalive, count;
    long long idle, intvl, rcvbuf, sndbuf;
    if (!PyArg_ParseTuple(t, "ppLLiLL;sockopts", &nodelay, &keepalive, &idle, &intvl, &count, &rcvbuf, &sndbuf))
        return -1;
    so->nodelay = nodelay;
    so->keepalive = keepalive;
    so->keep_idle_ns = idle;
    so->keep_intvl_ns = intvl;
    so->keep_count = count;
    so->rcvbuf = rcvbuf;
    so->sndbuf = sndbuf;
    return 0;
}

static PyObject *done(int rc, const pyiocp_error *err)
{
    if (rc != PYIOCP_OK)
        return raise_code(rc, err);
    Py_RETURN_NONE;
}

PyObject *Conn_set_nodelay(ConnObject *self, PyObject *flag)
{
    pyiocp_error err = {0};
    if (!PyBool_Check(flag))
        return PyErr_Format(PyExc_TypeError, "set_nodelay takes a bool, not %.100s", Py_TYPE(flag)->tp_name);
    return done(pyiocpConnSetNoDelay(self->engine->h, self->slot, self->id, flag == Py_True, &err), &err);
}

/* One of a KeepAlive's checked numbers (pyiocp/_sockopts.py). */
static int keep_field(PyObject *ka, const char *name, double *out)
{
    PyObject *v = PyObject_GetAttrString(ka, name);
    if (!v)
        return -1;
    *out = v == Py_None ? 0 : PyFloat_AsDouble(v); /* None: the OS's */
    Py_DECREF(v);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* set_keepalive(pyiocp.KeepAlive or None) */
PyObject *Conn_set_keepalive(ConnObject *self, PyObject *ka)
{
    pyiocp_error err = {0};
    double idle = 0, intvl = 0, count = 0;
    int on = ka != Py_None;
    /* A KeepAlive checked its numbers when it was made; the engine checks
     * them again, whatever object brings them. */
    if (on && (keep_field(ka, "idle", &idle) < 0 || keep_field(ka, "interval", &intvl) < 0 ||
               keep_field(ka, "count", &count) < 0)) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            return PyErr_Format(PyExc_TypeError, "set_keepalive takes a pyiocp.KeepAlive or None, not %.100s",
                                Py_TYPE(ka)->tp_name);
        }
        return NULL;
    }
    return done(pyiocpConnSetKeepAlive(self->engine->h, self->slot, self->id, on, (int64_t)(idle * 1e9),
                                       (int64_t)(intvl * 1e9), (int)count, &err),
                &err);
}

/* setsockopt(level, option, value): value an int (a C int) or bytes-like,
 * as socket.setsockopt takes them. */
PyObject *Conn_setsockopt(ConnObject *self, PyObject *args)
{
    pyiocp_error err = {0};
    int level, option, rc;
    PyObject *value;
    if (!PyArg_ParseTuple(args, "iiO:setsockopt", &level, &option, &value))
        return NULL;
    if (PyLong_Check(value)) {
        long lv = PyLong_AsLong(value);
        int v = (int)lv;
        if (lv == -1 && PyErr_Occurred())
            return NULL;
        if (lv != v)
            return PyErr_Format(PyExc_OverflowError, "setsockopt: %R does not fit a C int", value);
        rc = pyiocpConnSetSockOpt(self->engine->h, self->slot, self->id, level, option, (char *)&v, sizeof(v), &err);
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        if (view.len > 1024) {
            PyBuffer_Release(&view);
            return PyErr_Format(PyExc_ValueError, "setsockopt: a value of %zd bytes (at most 1024)", view.len);
        }
        rc = pyiocpConnSetSockOpt(self->engine->h, self->slot, self->id, level, option, view.buf, (int)view.len,
                                  &err);
        PyBuffer_Release(&view);
    }
    return done(rc, &err);
}

/* getsockopt(level, option[, buflen]): an int without buflen, else bytes. */
PyObject *Conn_getsockopt(ConnObject *self, PyObject *args)
{
    pyiocp_error err = {0};
    int level, option, buflen = 0, got = 0, rc;
    char buf[1024];
    if (!PyArg_ParseTuple(args, "ii|i:getsockopt", &level, &option, &buflen))
        return NULL;
    if (buflen < 0 || buflen > (int)sizeof(buf))
        return PyErr_Format(PyExc_ValueError, "getsockopt: buflen=%d: must be 1 to 1024", buflen);
    memset(buf, 0, sizeof(int));
    rc = pyiocpConnGetSockOpt(self->engine->h, self->slot, self->id, level, option, buf,
                              buflen ? buflen : (int)sizeof(int), &got, &err);
    if (rc != PYIOCP_OK)
        return raise_code(rc, &err);
    if (buflen)
        return PyBytes_FromStringAndSize(buf, got);
    {
        int v;
        memcpy(&v, buf, sizeof(v)); /* an option narrower than an int (a BOOLEAN) fills its low bytes */
        return PyLong_FromLong(v);
    }
}

/* set_idle_timeout(seconds or None): None gives the connection the
 * manager's idle timeout again; 0 none. */
PyObject *Conn_set_idle_timeout(ConnObject *self, PyObject *arg)
{
    long long ns = -1;
    if (arg != Py_None) {
        double s;
        if (PyBool_Check(arg) || !(PyLong_Check(arg) || PyFloat_Check(arg)))
            return PyErr_Format(PyExc_TypeError, "set_idle_timeout takes seconds or None, not %.100s",
                                Py_TYPE(arg)->tp_name);
        s = PyFloat_AsDouble(arg);
        if (s == -1.0 && PyErr_Occurred())
            return NULL;
        if (!isfinite(s) || s < 0 || s > 1e9)
            return PyErr_Format(PyExc_ValueError, "set_idle_timeout(%R): must be 0 (none) to 1e9 seconds, or None",
                                arg);
        ns = s > 0 ? (long long)fmax(s * 1e9, 1) : 0;
    }
    return done(pyiocpConnSetIdleTimeout(self->engine->h, self->slot, self->id, ns), NULL);
}
