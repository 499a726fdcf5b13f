/* tls.c: TLS configurations, built and held by the Go side (tls.go) and
 * named here by a handle, and Connection.tls. */
#include <stdlib.h>
#include "pyiocp.h"

/* Handed over by _tls_init: pyiocp._tls.TLSInfo._from_json, and the
 * TLSConfig class (start_tls checks its argument against it). Set at
 * pyiocp's import; ones replaced (an import after a reload) are kept, not
 * dropped, as errors.c's classes are. */
static PyObject *tls_info_factory, *tls_config_class;

/* _tls_init(factory, config_class) */
PyObject *mod_tls_init(PyObject *mod, PyObject *args)
{
    PyObject *factory, *cls;
    if (!PyArg_ParseTuple(args, "OO", &factory, &cls))
        return NULL;
    tls_info_factory = Py_NewRef(factory);
    tls_config_class = Py_NewRef(cls);
    Py_RETURN_NONE;
}

/* Connection.start_tls(config, server_side=False): STARTTLS (see
 * engine.Conn.StartTLS). config's handle is its _handle. */
PyObject *Conn_start_tls(ConnObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"config", "server_side", NULL};
    PyObject *config, *handle;
    int server = 0, rc, ok;
    long long h;
    pyiocp_error err;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p", kwlist, &config, &server))
        return NULL;
    ok = tls_config_class ? PyObject_IsInstance(config, tls_config_class) : 0;
    if (ok < 0)
        return NULL;
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "config must be a pyiocp.TLSConfig, not %.100s", Py_TYPE(config)->tp_name);
        return NULL;
    }
    handle = PyObject_GetAttrString(config, "_handle");
    if (!handle)
        return NULL;
    h = PyLong_AsLongLong(handle);
    Py_DECREF(handle);
    if (h == -1 && PyErr_Occurred())
        return NULL;
    rc = pyiocpConnStartTLS(self->engine->h, self->slot, self->id, h, server, &err);
    if (rc != PYIOCP_OK)
        return raise_code(rc, &err);
    Py_RETURN_NONE;
}

/* tls_config(spec_json) -> handle: the files are read now, without the GIL
 * (spec stays valid: the caller holds the str). */
PyObject *mod_tls_config(PyObject *mod, PyObject *arg)
{
    const char *spec = PyUnicode_AsUTF8(arg);
    int64_t h = 0;
    int rc;
    pyiocp_error err;
    if (!spec)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = pyiocpTLSConfig((char *)spec, &h, &err);
    Py_END_ALLOW_THREADS
    if (rc != PYIOCP_OK)
        return raise_code(rc, &err);
    return PyLong_FromLongLong((long long)h);
}

/* tls_config_free(handle) */
PyObject *mod_tls_config_free(PyObject *mod, PyObject *arg)
{
    long long h = PyLong_AsLongLong(arg);
    if (h == -1 && PyErr_Occurred())
        return NULL;
    pyiocpTLSConfigFree(h);
    Py_RETURN_NONE;
}

/* Connection.tls: a TLSInfo, or None for a plaintext (or gone) one. The
 * JSON is C memory the Go side allocated: freed here. */
PyObject *Conn_get_tls(ConnObject *self, void *unused)
{
    char *json = pyiocpConnTLS(self->engine->h, self->slot, self->id);
    PyObject *text, *info;
    if (!json)
        Py_RETURN_NONE;
    text = PyUnicode_FromString(json);
    free(json);
    if (!text)
        return NULL;
    if (!tls_info_factory) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_RuntimeError, "pyiocp's TLS support is not initialised");
        return NULL;
    }
    info = PyObject_CallOneArg(tls_info_factory, text);
    Py_DECREF(text);
    return info;
}
