/* unix.c: Unix domain sockets: listen_unix, connect_unix, and the names a
 * Unix domain Connection's peer and local give (unix.go). A name is bytes
 * (os.fsencode), with its length: an abstract one starts with NUL. */
#include "pyiocp.h"

/* sun_path's size: no name is longer. */
#define UNIX_NAME_MAX 108

/* listen_unix(path, mode, backlog, accepts, framing, tls_handle, proxy_mode) -> handle */
PyObject *Engine_listen_unix(EngineObject *self, PyObject *args)
{
    const char *path;
    Py_ssize_t len;
    int mode, backlog, accepts, proxy;
    long long tls;
    int64_t lh = 0;
    pyiocp_error err;
    pyiocp_framing fr;
    PyObject *framing;
    if (!PyArg_ParseTuple(args, "y#iiiOLi", &path, &len, &mode, &backlog, &accepts, &framing, &tls, &proxy) ||
        framing_from(framing, &fr) < 0)
        return NULL;
    if (len > UNIX_NAME_MAX)
        return PyErr_Format(PyExc_ValueError, "path is too long (%zd bytes)", len);
    if (pyiocpListenUnix(self->h, (char *)path, (int)len, mode, backlog, accepts, &fr, tls, proxy, &lh, &err) != PYIOCP_OK)
        return raise_code(err.code, &err);
    return PyLong_FromLongLong(lh);
}

/* connect_unix(path, timeout_ns, framing) -> Connection. As connect, the
 * table is held until the object is in it. */
PyObject *Engine_connect_unix(EngineObject *self, PyObject *args)
{
    const char *path;
    Py_ssize_t len;
    long long timeout_ns;
    uint32_t slot = 0;
    uint64_t id = 0;
    pyiocp_error err;
    pyiocp_framing fr;
    PyObject *framing, *peer;
    ConnObject *c;
    int rc;
    if (!PyArg_ParseTuple(args, "y#LO", &path, &len, &timeout_ns, &framing) || framing_from(framing, &fr) < 0)
        return NULL;
    if (len > UNIX_NAME_MAX)
        return PyErr_Format(PyExc_ValueError, "path is too long (%zd bytes)", len);
    peer = PyUnicode_DecodeFSDefaultAndSize(path, len);
    if (!peer)
        return NULL;
    c = conn_new(self, 0, 0);
    if (!c) {
        Py_DECREF(peer);
        return NULL;
    }
    c->family = 1;
    c->unix_peer = peer; /* the reference is the object's */
    FT_LOCK(&self->table_lock); /* until the object is in the table, as connect's */
    rc = pyiocpConnectUnix(self->h, (char *)path, (int)len, timeout_ns, &fr, &slot, &id, &err);
    return conn_publish_unlock(self, c, rc, slot, id, &err);
}

/* The connection's own name (peer 0) or its peer's: a str ("" when
 * unnamed), or None once the connection is gone. */
PyObject *unix_name(ConnObject *c, int peer)
{
    char buf[UNIX_NAME_MAX];
    int n = pyiocpConnUnixName(c->engine->h, c->slot, c->id, peer, buf, sizeof(buf));
    if (n < 0)
        Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefaultAndSize(buf, n);
}
