/* sendfile.c: Connection.sendfile. */
#include "pyiocp.h"

/* The descriptor of file (an object with fileno()), as the engine takes
 * it: on Windows the HANDLE behind the C runtime's descriptor, asked of
 * Python's own runtime (msvcrt.get_osfhandle), which is not this
 * module's. -1 with an exception set when there is none. */
static long long file_handle(PyObject *file)
{
    int fd;
    if (PyLong_Check(file) || !PyObject_HasAttrString(file, "fileno")) {
        PyErr_Format(PyExc_TypeError, "sendfile() needs a file object (with fileno()), not %.100s",
                     Py_TYPE(file)->tp_name);
        return -1;
    }
    fd = PyObject_AsFileDescriptor(file); /* a closed file: ValueError */
    if (fd < 0)
        return -1;
#ifdef _WIN32
    {
        PyObject *msvcrt = PyImport_ImportModule("msvcrt"), *h;
        long long v;
        if (!msvcrt)
            return -1;
        h = PyObject_CallMethod(msvcrt, "get_osfhandle", "i", fd);
        Py_DECREF(msvcrt);
        if (!h)
            return -1;
        v = PyLong_AsLongLong(h);
        Py_DECREF(h);
        return v == -1 && !PyErr_Occurred() ? (PyErr_SetFromErrno(PyExc_OSError), -1) : v;
    }
#else
    return fd;
#endif
}

/* Connection.sendfile(file, offset=0, count=None) (engine.Conn.SendFile). */
PyObject *Conn_sendfile(ConnObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"file", "offset", "count", NULL};
    PyObject *file, *count_obj = Py_None;
    long long offset = 0, count = -1, fd;
    pyiocp_error err = {0};
    int rc;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|LO", kwlist, &file, &offset, &count_obj))
        return NULL;
    if (offset < 0) {
        PyErr_Format(PyExc_ValueError, "offset must be >= 0, not %lld", offset);
        return NULL;
    }
    if (count_obj != Py_None) {
        if (!PyLong_Check(count_obj)) {
            PyErr_Format(PyExc_TypeError, "count must be an int or None, not %.100s", Py_TYPE(count_obj)->tp_name);
            return NULL;
        }
        count = PyLong_AsLongLong(count_obj);
        if (count == -1 && PyErr_Occurred())
            return NULL;
        if (count < 0) {
            PyErr_Format(PyExc_ValueError, "count must be >= 0 or None, not %lld", count);
            return NULL;
        }
    }
    fd = file_handle(file);
    if (fd == -1)
        return NULL;
    note_caller();
    /* The descriptor is duplicated before the call returns; on a TLS
     * connection the bytes are read here: without the GIL. */
    Py_BEGIN_ALLOW_THREADS
    rc = pyiocpSendFile(self->engine->h, self->slot, self->id, (uint64_t)fd, offset, count, &err);
    Py_END_ALLOW_THREADS
    if (rc != PYIOCP_OK)
        return raise_code(rc, &err);
    Py_RETURN_NONE;
}
