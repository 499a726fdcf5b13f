/* pool.c: the Pool type, what pyiocp.ConnectionPool (pyiocp/_pool.py)
 * drives: one engine.Pool, its connections named by id. It holds its
 * Engine, for the handle and the Connection objects. */
#include "pyiocp.h"

typedef struct {
    PyObject_HEAD
    EngineObject *engine;
    int64_t ph;
} PoolObject;

/* Engine.pool_new(size, idle_ns) -> Pool */
PyObject *Engine_pool_new(EngineObject *self, PyObject *args)
{
    long long size, idle_ns;
    pyiocp_error err = {0};
    PoolObject *p;
    if (!PyArg_ParseTuple(args, "LL", &size, &idle_ns))
        return NULL;
    p = PyObject_New(PoolObject, &PoolType);
    if (!p)
        return NULL;
    Py_INCREF(self);
    p->engine = self;
    p->ph = 0;
    if (pyiocpPoolNew(self->h, size, idle_ns, &p->ph, &err) != PYIOCP_OK) {
        Py_DECREF(p);
        return raise_code(err.code, &err);
    }
    return (PyObject *)p;
}

static void Pool_dealloc(PoolObject *self)
{
    Py_XDECREF(self->engine);
    PyObject_Free(self);
}

/* take() -> (conn, dial, version): an idle Connection (now the caller's),
 * or dial True (a slot reserved: dial, then adopt), or neither (wait from
 * version). */
static PyObject *Pool_take(PoolObject *self, PyObject *unused)
{
    int found = 0, dial = 0;
    uint32_t slot = 0;
    uint64_t id = 0, version = 0;
    pyiocp_error err = {0};
    ConnObject *c = NULL;
    note_caller();
    if (pyiocpPoolTake(self->engine->h, self->ph, &found, &dial, &slot, &id, &version, &err) != PYIOCP_OK)
        return raise_code(err.code, &err);
    if (found)
        c = table_ref(self->engine, slot, id); /* NULL: closed meanwhile, and the pool changed */
    return Py_BuildValue("(NOK)", c ? (PyObject *)c : Py_NewRef(Py_None), dial ? Py_True : Py_False,
                         (unsigned long long)version);
}

/* The Connection argument, or NULL with TypeError; None too if may_be_none. */
static ConnObject *conn_of(PyObject *obj, int may_be_none)
{
    if (may_be_none && obj == Py_None)
        return NULL;
    if (!PyObject_TypeCheck(obj, &ConnType)) {
        PyErr_Format(PyExc_TypeError, "a pyiocp.Connection, not %.100s", Py_TYPE(obj)->tp_name);
        return NULL;
    }
    return (ConnObject *)obj;
}

/* adopt(conn or None): the connection dialled on the slot take() reserved;
 * None: the dial failed. */
static PyObject *Pool_adopt(PoolObject *self, PyObject *obj)
{
    ConnObject *c = conn_of(obj, 1);
    if (!c && PyErr_Occurred())
        return NULL;
    pyiocpPoolAdopt(self->engine->h, self->ph, c != NULL, c ? c->slot : 0, c ? c->id : 0);
    Py_RETURN_NONE;
}

/* ready(conn) -> (done, version); raises why its connect failed. */
static PyObject *Pool_ready(PoolObject *self, PyObject *obj)
{
    ConnObject *c = conn_of(obj, 0);
    int done = 0, rc;
    uint64_t version = 0;
    pyiocp_error err = {0};
    const pyiocp_error *why;
    if (!c)
        return NULL;
    rc = pyiocpPoolReady(self->engine->h, self->ph, c->id, &done, &version, &err);
    /* Freed before the pool adopted it (pyiocpPoolAdopt found no
     * connection): why it closed is on the object. */
    if (rc == PYIOCP_E_CLOSED && (why = conn_close_err(c)))
        return raise_code(why->code, why);
    if (rc != PYIOCP_OK)
        return raise_code(rc, &err);
    return Py_BuildValue("(OK)", done ? Py_True : Py_False, (unsigned long long)version);
}

/* wait(version, timeout_ns) -> bool: the pool changed since version
 * (False: timeout_ns passed first; negative: no limit). No GIL meanwhile. */
static PyObject *Pool_wait(PoolObject *self, PyObject *args)
{
    unsigned long long version;
    long long timeout_ns;
    int changed;
    if (!PyArg_ParseTuple(args, "KL", &version, &timeout_ns))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    changed = pyiocpPoolWait(self->engine->h, self->ph, version, timeout_ns);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(changed);
}

/* release(conn) -> bool: it was the pool's, and out. */
static PyObject *Pool_release(PoolObject *self, PyObject *obj)
{
    ConnObject *c = conn_of(obj, 0);
    if (!c)
        return NULL;
    return PyBool_FromLong(pyiocpPoolRelease(self->engine->h, self->ph, c->id));
}

static PyObject *Pool_close(PoolObject *self, PyObject *unused)
{
    pyiocpPoolClose(self->engine->h, self->ph);
    Py_RETURN_NONE;
}

/* stats() -> (open, idle, waits, dials) */
static PyObject *Pool_stats(PoolObject *self, PyObject *unused)
{
    int64_t s[4] = {0};
    pyiocpPoolStats(self->engine->h, self->ph, s);
    return Py_BuildValue("(LLLL)", (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3]);
}

static PyMethodDef Pool_methods[] = {
    {"take", (PyCFunction)Pool_take, METH_NOARGS, "take() -> (conn, dial, version)"},
    {"adopt", (PyCFunction)Pool_adopt, METH_O, "adopt(conn or None)"},
    {"ready", (PyCFunction)Pool_ready, METH_O, "ready(conn) -> (done, version)"},
    {"wait", (PyCFunction)Pool_wait, METH_VARARGS, "wait(version, timeout_ns) -> bool"},
    {"release", (PyCFunction)Pool_release, METH_O, "release(conn) -> bool"},
    {"close", (PyCFunction)Pool_close, METH_NOARGS, "close()"},
    {"stats", (PyCFunction)Pool_stats, METH_NOARGS, "stats() -> (open, idle, waits, dials)"},
    {NULL},
};

PyTypeObject PoolType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyiocp._pyiocp.Pool",
    .tp_doc = "An engine connection pool (see pyiocp.ConnectionPool).",
    .tp_basicsize = sizeof(PoolObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Pool_dealloc,
    .tp_methods = Pool_methods,
};
