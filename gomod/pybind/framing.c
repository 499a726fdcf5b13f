/* framing.c: a connection's framing: the spec listen(), connect() and
 * set_framing() pass (pyiocp/_framing.py), set_framing and send_frame. */
#include "pyiocp.h"
#include <string.h>

/* None, or a Lines or LengthPrefixed, whose _spec is (kind, max,
 * terminator, keep_terminator, header_size, little_endian). */
int framing_from(PyObject *obj, pyiocp_framing *f)
{
    PyObject *spec;
    int kind, keep, header, little;
    long long max;
    const char *term;
    Py_ssize_t term_len;
    memset(f, 0, sizeof(*f));
    if (obj == Py_None)
        return 0;
    spec = PyObject_GetAttrString(obj, "_spec");
    if (!spec) {
        PyErr_Format(PyExc_TypeError, "framing must be pyiocp.Lines, pyiocp.LengthPrefixed or None, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (!PyArg_ParseTuple(spec, "iLy#pip;framing spec", &kind, &max, &term, &term_len, &keep, &header, &little)) {
        Py_DECREF(spec);
        return -1;
    }
    if (term_len > (Py_ssize_t)sizeof(f->term)) {
        Py_DECREF(spec);
        PyErr_SetString(PyExc_ValueError, "terminator: at most 16 bytes");
        return -1;
    }
    *f = (pyiocp_framing){.kind = kind, .max = max, .keep_terminator = keep, .header_size = header,
                          .little_endian = little, .term_len = (int32_t)term_len};
    memcpy(f->term, term, (size_t)term_len);
    Py_DECREF(spec); /* term was copied out of it first */
    return 0;
}

/* set_framing(framing): from one of the connection's own callbacks, the
 * bytes after the event being handled are split again; the rest of this
 * batch's recv and eof events of the connection are skipped, as the
 * engine hands their bytes out again. */
PyObject *Conn_set_framing(ConnObject *self, PyObject *obj)
{
    pyiocp_framing f;
    pyiocp_error err = {0};
    loop_state *ls;
    int worker = -1, k = 0, uncut = 0, rc;
    if (framing_from(obj, &f) < 0)
        return NULL;
    ls = dispatching_here(self->engine);
    if (ls) {
        worker = ls->worker;
        k = ls->cur;
    }
    rc = pyiocpSetFraming(self->engine->h, self->slot, self->id, &f, worker, k, &uncut, &err);
    if (rc != PYIOCP_OK)
        return raise_code(rc, &err);
    if (uncut) {
        for (int j = k + 1; j < ls->n; j++) {
            pyiocp_event *ev = &ls->evs[j];
            if (ev->slot == self->slot && ev->id == self->id &&
                (ev->kind == PYIOCP_EV_RECV || ev->kind == PYIOCP_EV_EOF))
                ev->kind = 0;
        }
    }
    Py_RETURN_NONE;
}

PyObject *Conn_send_frame(ConnObject *self, PyObject *data)
{
    Py_buffer view;
    pyiocp_error err = {0};
    int rc, now = send_now(self->engine);
    note_caller();
    if (PyBytes_CheckExact(data)) { /* the usual case, without the buffer protocol */
        rc = pyiocpSendFrame(self->engine->h, self->slot, self->id, PyBytes_AS_STRING(data),
                             (size_t)PyBytes_GET_SIZE(data), now, &err);
        return rc == PYIOCP_OK ? (Py_INCREF(Py_None), Py_None) : raise_code(rc, &err);
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    rc = pyiocpSendFrame(self->engine->h, self->slot, self->id, view.buf, (size_t)view.len, now, &err);
    PyBuffer_Release(&view);
    if (rc != PYIOCP_OK)
        return raise_code(rc, &err);
    Py_RETURN_NONE;
}
