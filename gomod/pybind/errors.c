/* errors.c: the exception each export's error code raises. */
#include "pyiocp.h"
#include <errno.h>
#include <string.h>

PyObject *ErrBase, *ErrConnectionClosed, *ErrBufferFull, *ErrManagerClosed, *ErrTooManyConnections, *ErrProtocol, *ErrTLS;

/* Until pyiocp.errors hands over its classes (mod_init), builtin ones. */
void errors_defaults(void)
{
    ErrBase = PyExc_RuntimeError;
    ErrConnectionClosed = PyExc_ConnectionError;
    ErrBufferFull = PyExc_BlockingIOError;
    ErrManagerClosed = PyExc_RuntimeError;
    ErrTooManyConnections = PyExc_OSError;
    ErrProtocol = PyExc_RuntimeError;
    ErrTLS = PyExc_OSError;
    Py_INCREF(ErrProtocol);
    Py_INCREF(ErrTLS);
    Py_INCREF(ErrBase);
    Py_INCREF(ErrConnectionClosed);
    Py_INCREF(ErrBufferFull);
    Py_INCREF(ErrManagerClosed);
    Py_INCREF(ErrTooManyConnections);
}

/* _init(errors_module): the exception classes to raise. A class replaced
 * (pyiocp imported again after a reload) is kept, not dropped: a raise on
 * another thread may be using it, with no reference of its own. */
PyObject *mod_init(PyObject *mod, PyObject *errors)
{
    PyObject **slots[] = {&ErrBase, &ErrConnectionClosed, &ErrBufferFull, &ErrManagerClosed, &ErrTooManyConnections,
                          &ErrProtocol, &ErrTLS};
    const char *names[] = {"Error", "ConnectionClosed", "BufferFull", "ManagerClosed", "TooManyConnections",
                           "ProtocolError", "TLSError"};
    for (int i = 0; i < 7; i++) {
        PyObject *cls = PyObject_GetAttrString(errors, names[i]);
        if (!cls)
            return NULL;
        *slots[i] = cls;
    }
    Py_RETURN_NONE;
}

/* Sets the exception for an export's error code; returns NULL. */
PyObject *raise_code(int code, const pyiocp_error *e)
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
    case PYIOCP_E_PROTOCOL:
        PyErr_SetString(ErrProtocol, msg);
        break;
    case PYIOCP_E_TLS:
        PyErr_SetString(ErrTLS, msg);
        break;
    case PYIOCP_E_RESOLVE: {
        /* socket.gaierror, as getaddrinfo's failures are in Python. */
        PyObject *socket = PyImport_ImportModule("socket"), *gai = NULL, *code = NULL, *args = NULL;
        if (socket && (gai = PyObject_GetAttrString(socket, "gaierror")) &&
            (code = PyObject_GetAttrString(socket, "EAI_NONAME")) && (args = Py_BuildValue("(Os)", code, msg)))
            PyErr_SetObject(gai, args);
        Py_XDECREF(args);
        Py_XDECREF(code);
        Py_XDECREF(gai);
        Py_XDECREF(socket);
        break;
    }
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
PyObject *close_error(const pyiocp_error *e)
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
