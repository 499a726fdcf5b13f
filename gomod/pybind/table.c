/* table.c: each engine's Connection objects by slot (see pyiocp.h for who
 * owns the references).
 *
 * Every worker reads the table and changes it (accept, close), and so do
 * connect() and get() on any thread: without the GIL, table_lock guards
 * it. No Python code runs while it is held (no allocation but the array's,
 * no reference dropped: the callers drop them once it is let go). */
#include "pyiocp.h"
#include <string.h>

/* A borrowed reference: for the thread that delivers the connection's
 * events (its worker, or the poller holding it), the only one that takes
 * it out of the table (its close event). */
ConnObject *table_get(EngineObject *e, uint32_t slot, uint64_t id)
{
    ConnObject *c = NULL;
    FT_LOCK(&e->table_lock);
    if (slot < e->cap && e->conns[slot] && e->conns[slot]->id == id)
        c = e->conns[slot];
    FT_UNLOCK(&e->table_lock);
    return c;
}

/* A new reference, for any thread: the connection's worker may deliver its
 * close meanwhile. */
ConnObject *table_ref(EngineObject *e, uint32_t slot, uint64_t id)
{
    ConnObject *c = NULL;
    FT_LOCK(&e->table_lock);
    if (slot < e->cap && e->conns[slot] && e->conns[slot]->id == id) {
        c = e->conns[slot];
        Py_INCREF(c);
    }
    FT_UNLOCK(&e->table_lock);
    return c;
}

/* With table_lock held: c in its slot, with a reference of the table's.
 * -1: no memory (no exception set: the caller sets it, the lock let go).
 * *old is what the slot held, for the caller to drop then (NULL: Go frees
 * a slot only after its close event was delivered, which empties it). */
int table_put(EngineObject *e, ConnObject *c, ConnObject **old)
{
    *old = NULL;
    if (c->slot >= e->cap) {
        uint32_t cap = e->cap ? e->cap : 64;
        while (cap <= c->slot)
            cap *= 2;
        ConnObject **n = PyMem_Realloc(e->conns, cap * sizeof(*n));
        if (!n)
            return -1;
        memset(n + e->cap, 0, (cap - e->cap) * sizeof(*n));
        e->conns = n;
        e->cap = cap;
    }
    *old = e->conns[c->slot];
    Py_INCREF(c);
    e->conns[c->slot] = c;
    return 0;
}

void table_del(EngineObject *e, ConnObject *c)
{
    int drop = 0;
    FT_LOCK(&e->table_lock);
    if (c->slot < e->cap && e->conns[c->slot] == c) {
        e->conns[c->slot] = NULL;
        drop = 1;
    }
    FT_UNLOCK(&e->table_lock);
    if (drop)
        Py_DECREF(c);
}

/* Drops every reference of the table (the engine released). */
void table_clear(EngineObject *e)
{
    for (uint32_t i = 0;; i++) {
        ConnObject *c = NULL;
        int more;
        FT_LOCK(&e->table_lock);
        more = i < e->cap;
        if (more) {
            c = e->conns[i];
            e->conns[i] = NULL;
        }
        FT_UNLOCK(&e->table_lock);
        if (!more)
            return;
        Py_XDECREF(c);
    }
}

/* A Connection object, not yet in the table: its fields are filled in
 * before conn_publish_unlock publishes it, so no other thread sees them
 * change. */
ConnObject *conn_new(EngineObject *e, uint32_t slot, uint64_t id)
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
    c->close_err = NULL;
    c->unix_peer = NULL;
    c->dict = NULL;
    c->weaklist = NULL;
    PyObject_GC_Track(c);
    return c;
}

/* Set by the connection's worker as it delivers on_close, read by any
 * thread: relaxed, as the engine's own state is what send and close go by. */
int conn_gone(ConnObject *c)
{
    return __atomic_load_n(&c->gone, __ATOMIC_RELAXED);
}

/* Puts the object of a new engine connection in the table, then lets go
 * of table_lock, which the caller took: an accept (rc PYIOCP_OK), or a
 * connect (connect, connect_unix) whose Go call ran with the lock held so
 * that no worker delivers the connection's outcome before its object is in
 * the table; rc and err are then the call's. c takes the connection's slot
 * and id. Returns c, or NULL with the exception set (the connect's error;
 * or no memory: then the connection is reset, since without an object the
 * application could never close it) and c dropped. */
PyObject *conn_publish_unlock(EngineObject *e, ConnObject *c, int rc, uint32_t slot, uint64_t id,
                              const pyiocp_error *err)
{
    ConnObject *old = NULL;
    int put = 0;
    if (rc == PYIOCP_OK) {
        c->slot = slot;
        c->id = id;
        put = table_put(e, c, &old);
    }
    FT_UNLOCK(&e->table_lock);
    Py_XDECREF(old);
    if (rc == PYIOCP_OK && put == 0)
        return (PyObject *)c;
    if (rc == PYIOCP_OK) {
        PyErr_NoMemory();
        pyiocpConnOp(e->h, slot, id, 1);
    }
    Py_DECREF(c);
    return rc != PYIOCP_OK ? raise_code(err->code, err) : NULL;
}

/* As its close is delivered (once, by its worker or the poller holding
 * it): c is gone, out of the table, and keeps why it closed. A pool's dial
 * raises that when the engine freed the connection before the pool could
 * adopt it (pool.c: Pool_ready). The slot is freed only after this, so a
 * thread that finds the slot empty in Go sees close_err set. */
void conn_closed(EngineObject *e, ConnObject *c, const pyiocp_error *why)
{
    if (why->code != PYIOCP_OK) {
        /* Without memory, a dial that lost the race raises ConnectionClosed. */
        pyiocp_error *copy = PyMem_RawMalloc(sizeof(*copy));
        if (copy) {
            *copy = *why;
            __atomic_store_n(&c->close_err, copy, __ATOMIC_RELEASE);
        }
    }
    __atomic_store_n(&c->gone, 1, __ATOMIC_RELAXED);
    table_del(e, c);
}

/* Why c closed, when not cleanly; NULL while it is open, or closed cleanly. */
const pyiocp_error *conn_close_err(ConnObject *c)
{
    return __atomic_load_n(&c->close_err, __ATOMIC_ACQUIRE);
}
