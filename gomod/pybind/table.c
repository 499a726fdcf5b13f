/* table.c: each engine's Connection objects by slot (see pyiocp.h for who
 * owns the references). */
#include "pyiocp.h"
#include <string.h>

ConnObject *table_get(EngineObject *e, uint32_t slot, uint64_t id)
{
    if (slot < e->cap && e->conns[slot] && e->conns[slot]->id == id)
        return e->conns[slot];
    return NULL;
}

static int table_put(EngineObject *e, ConnObject *c)
{
    if (c->slot >= e->cap) {
        uint32_t cap = e->cap ? e->cap : 64;
        while (cap <= c->slot)
            cap *= 2;
        ConnObject **n = PyMem_Realloc(e->conns, cap * sizeof(*n));
        if (!n) {
            PyErr_NoMemory();
            return -1;
        }
        memset(n + e->cap, 0, (cap - e->cap) * sizeof(*n));
        e->conns = n;
        e->cap = cap;
    }
    /* Go frees a slot only after its close event was delivered. */
    Py_XDECREF(e->conns[c->slot]);
    Py_INCREF(c);
    e->conns[c->slot] = c;
    return 0;
}

void table_del(EngineObject *e, ConnObject *c)
{
    if (c->slot < e->cap && e->conns[c->slot] == c) {
        e->conns[c->slot] = NULL;
        Py_DECREF(c);
    }
}

static ConnObject *conn_new(EngineObject *e, uint32_t slot, uint64_t id)
{
    ConnObject *c = PyObject_GC_New(ConnObject, &ConnType);
    if (!c)
        return NULL;
    Py_INCREF(e);
    c->engine = e;
    c->id = id;
    c->slot = slot;
    c->port = 0;
    c->family = 0;
    memset(c->ip, 0, sizeof(c->ip));
    c->gone = 0;
    c->unix_peer = NULL;
    c->dict = NULL;
    c->weaklist = NULL;
    PyObject_GC_Track(c);
    return c;
}

/* The Connection for a new engine connection, in the table (a new
 * reference). On failure the connection is reset: without an object the
 * application could never close it. */
ConnObject *conn_adopt(EngineObject *e, uint32_t slot, uint64_t id)
{
    ConnObject *c = conn_new(e, slot, id);
    if (!c || table_put(e, c) < 0) {
        Py_XDECREF(c);
        pyiocpConnOp(e->h, slot, id, 1);
        return NULL;
    }
    return c;
}
