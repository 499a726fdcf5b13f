/* pyiocp.h: what the C files of the extension module share. The module
 * (module.c) defines two types, Engine (engine.c: one engine.Manager) and
 * Connection (connection.c), the worker loop (dispatch.c) and poll mode
 * (poll.c); the Go half is exports.go, across glue.h.
 *
 * Ownership, in one place:
 *   - Engine.conns[slot] (table.c) holds the one strong reference the
 *     engine keeps to each Connection, from on_accept (or connect()) until
 *     on_close has been delivered. It is read and changed under
 *     table_lock (the GIL, without free-threading).
 *   - A posted payload's reference travels through Go as an integer and is
 *     released right after on_post (or the poll() Completion) took it.
 *   - So does a pending Timer's (timer.c): it comes back once, by the
 *     timer's event, by cancel(), or after the workers quit.
 *   - Engine.endpoints holds each open DatagramEndpoint (udp.c); a batch
 *     takes its own reference to the endpoint of each datagram it
 *     delivers, so a close() from another thread cannot free it meanwhile.
 *   - Go memory is never kept here: event data lives outside the Go heap and
 *     is copied into bytes while this thread holds the worker: from
 *     pyiocpPoll (held set) to pyiocpPollDone, no other thread polls it.
 *
 * Free-threaded CPython (Py_GIL_DISABLED): what the GIL guarded is guarded
 * by PyMutex (the table) and critical sections (a Timer's state, a
 * Connection's peer); a thread's own batch is found through a
 * thread-specific key (dispatching_here). With the GIL these compile to nothing, and
 * the code path is the same.
 */
#ifndef PYIOCP_H
#define PYIOCP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include "glue.h"
#include "_cgo_export.h"

#define BATCH 64
#define NKINDS 11
/* The main thread (serve_forever, poll) wakes this often to run signal
 * handlers: Ctrl-C is seen within it. */
#define MAIN_SLICE_NS 100000000LL

#ifdef Py_GIL_DISABLED
#define FT_LOCK(m) PyMutex_Lock(m)
#define FT_UNLOCK(m) PyMutex_Unlock(m)
#else
#define FT_LOCK(m) ((void)0)
#define FT_UNLOCK(m) ((void)0)
#endif
#ifndef Py_BEGIN_CRITICAL_SECTION /* before 3.13: the GIL is the critical section */
#define Py_BEGIN_CRITICAL_SECTION(op) {
#define Py_END_CRITICAL_SECTION() }
#endif
#if PY_VERSION_HEX < 0x030D0000
/* 3.13's strong-reference lookup: 1 found (*result a new reference), 0
 * missing, -1 error. */
static inline int PyDict_GetItemRef(PyObject *d, PyObject *key, PyObject **result)
{
    *result = PyDict_GetItemWithError(d, key);
    if (*result) {
        Py_INCREF(*result);
        return 1;
    }
    return PyErr_Occurred() ? -1 : 0;
}
#endif

#ifndef _WIN32
#pragma GCC visibility push(hidden) /* the module's own: only PyInit__pyiocp is exported */
#endif

typedef struct EngineObject EngineObject;

typedef struct {
    PyObject_HEAD
    EngineObject *engine;
    uint64_t id;
    uint32_t slot;
    uint16_t port;
    uint8_t family; /* of the peer: 4, 6, 1 for Unix domain; 0: unknown */
    uint8_t ip[16];
    uint8_t gone;   /* on_close was delivered (written by its worker: read it with conn_gone) */
    pyiocp_error *close_err; /* why it closed, when not cleanly (table.c: conn_closed) */
    PyObject *unix_peer; /* a Unix domain connection's peer name (a str); NULL otherwise */
    PyObject *dict;
    PyObject *weaklist;
} ConnObject;

struct EngineObject {
    PyObject_HEAD
    int64_t h;
    int workers;
    int released;
    PyObject *cb[NKINDS]; /* the handler's bound methods by event kind */
    PyObject *on_error;
    PyObject *report;     /* report(message, exc): logs through "pyiocp" */
    PyObject *completion; /* the Completion class, for poll() */
    ConnObject **conns;   /* by slot (table.c), under table_lock */
    uint32_t cap;
#ifdef Py_GIL_DISABLED
    PyMutex table_lock;
#endif
    int64_t slow_ns;      /* slow_callback_warning; 0: off */
    int coarse;           /* time it with the coarse clock (see mono_ns) */
    int callbacks;        /* a handler: callback mode (else poll mode) */
    PyObject *endpoints;  /* handle -> DatagramEndpoint, until its close() (udp.c) */
};

typedef struct {
    PyObject_HEAD
    PyObject *callback;
    PyObject *args;  /* a tuple */
    int64_t h;       /* the engine's handle, for cancel() */
    double when;     /* on time.monotonic()'s clock */
    int state;       /* pending, done (handed out to run), cancelled */
} TimerObject;

typedef struct loop_state loop_state;
struct loop_state {
    int is_main;         /* serve_forever's thread: BaseExceptions stop the loop */
    PyObject *stop;      /* that exception, raised after the batch */
    PyObject *stop_type, *stop_tb;
    EngineObject *engine;
    int worker;          /* the batch being dispatched: its worker, */
    pyiocp_event *evs;   /* its events, */
    int n, cur;          /* how many, and the one whose callback runs */
    loop_state *outer;   /* the batch this thread dispatched before this one began (dispatching_here) */
};

/* turns.c */
void worker_take_gil(PyThreadState *ts); /* PyEval_RestoreThread, the other workers first */

/* module.c */
extern int lost_interrupt; /* a KeyboardInterrupt swallowed on the main thread (lost_interrupt()) */
extern PyObject *kind_names[NKINDS];

/* engine.c, connection.c, timer.c */
extern PyTypeObject EngineType, ConnType, TimerType;

/* clock.c */
void clock_init(void);
int64_t mono_ns(int coarse);
int coarse_enough(int64_t threshold_ns);

/* errors.c */
extern PyObject *ErrBase, *ErrConnectionClosed, *ErrBufferFull, *ErrManagerClosed, *ErrTooManyConnections, *ErrProtocol,
    *ErrTLS;
void errors_defaults(void);
PyObject *mod_init(PyObject *mod, PyObject *errors);

/* tls.c */
PyObject *mod_tls_init(PyObject *mod, PyObject *args);
PyObject *mod_tls_config(PyObject *mod, PyObject *arg);
PyObject *mod_tls_config_free(PyObject *mod, PyObject *arg);
PyObject *Conn_get_tls(ConnObject *self, void *unused);
PyObject *Conn_start_tls(ConnObject *self, PyObject *args, PyObject *kwargs);
PyObject *raise_code(int code, const pyiocp_error *e);
PyObject *close_error(const pyiocp_error *e);

/* unix.c */
PyObject *Engine_listen_unix(EngineObject *self, PyObject *args);
PyObject *Engine_connect_unix(EngineObject *self, PyObject *args);
PyObject *unix_name(ConnObject *c, int peer);

/* udp.c */
PyObject *Engine_bind_udp(EngineObject *self, PyObject *args);
PyObject *Engine_sendto(EngineObject *self, PyObject *args);
PyObject *Engine_close_endpoint(EngineObject *self, PyObject *arg);
PyObject *Engine_endpoint_closed(EngineObject *self, PyObject *arg);
PyObject *datagram_args(EngineObject *e, const pyiocp_event *ev, PyObject **data, PyObject **addr);

/* connection.c */
PyObject *ip_address(int family, const uint8_t *ip, uint16_t port);

/* sendfile.c */
PyObject *Conn_sendfile(ConnObject *self, PyObject *args, PyObject *kwargs);

/* table.c */
ConnObject *table_get(EngineObject *e, uint32_t slot, uint64_t id);
ConnObject *table_ref(EngineObject *e, uint32_t slot, uint64_t id);
int table_put(EngineObject *e, ConnObject *c, ConnObject **old);
void table_del(EngineObject *e, ConnObject *c);
void table_clear(EngineObject *e);
ConnObject *conn_new(EngineObject *e, uint32_t slot, uint64_t id);
PyObject *conn_publish_unlock(EngineObject *e, ConnObject *c, int rc, uint32_t slot, uint64_t id,
                              const pyiocp_error *err);
int conn_gone(ConnObject *c);
void conn_closed(EngineObject *e, ConnObject *c, const pyiocp_error *why);
const pyiocp_error *conn_close_err(ConnObject *c);

/* timer.c */
int timer_init(void);
PyObject *timer_schedule(EngineObject *e, ConnObject *c, PyObject *delay, PyObject *when, PyObject *callback,
                         PyObject *args);
PyObject *Engine_call_later(EngineObject *self, PyObject *args);
PyObject *Conn_call_later(ConnObject *self, PyObject *args);
TimerObject *timer_due(const pyiocp_event *ev);
PyObject *timer_run(TimerObject *t);
void timers_settle(EngineObject *e);

/* sockopt.c */
int sockopts_from(PyObject *t, pyiocp_sockopts *so);
PyObject *Conn_set_nodelay(ConnObject *self, PyObject *flag);
PyObject *Conn_set_keepalive(ConnObject *self, PyObject *ka);
PyObject *Conn_setsockopt(ConnObject *self, PyObject *args);
PyObject *Conn_getsockopt(ConnObject *self, PyObject *args);
PyObject *Conn_set_idle_timeout(ConnObject *self, PyObject *arg);

/* framing.c */
int framing_from(PyObject *obj, pyiocp_framing *f);
PyObject *Conn_set_framing(ConnObject *self, PyObject *obj);
PyObject *Conn_send_frame(ConnObject *self, PyObject *data);
int send_now(EngineObject *e); /* a send made here may be written at once (connection.c) */
/* pool.c */
extern PyTypeObject PoolType;
PyObject *Engine_pool_new(EngineObject *self, PyObject *args);
/* dispatch.c */
extern const char *const cb_names[NKINDS];
void report(EngineObject *e, const char *msg, PyObject *exc);
void flush_logs(EngineObject *e);
ConnObject *accepted(EngineObject *e, const pyiocp_event *ev);
void peer_from(ConnObject *c, const pyiocp_event *ev);
PyObject *run_loop(EngineObject *e, int worker, int is_main);
int dispatch_init(void);
/* callers.c: counts this thread (once) among those that call into Go. */
int callers_init(void);
void note_caller(void);
loop_state *dispatching_here(EngineObject *e);

/* poll.c */
PyObject *Engine_poll(EngineObject *self, PyObject *args);
PyObject *Engine_poll_park(EngineObject *self, PyObject *arg);
PyObject *Engine_wait_fd(EngineObject *self, PyObject *Py_UNUSED(ignored));
PyObject *Engine_release_poller(EngineObject *self, PyObject *arg);

/* bench.c */
PyObject *bench_start(PyObject *mod, PyObject *args);
PyObject *bench_progress(PyObject *mod, PyObject *arg);
PyObject *bench_cancel(PyObject *mod, PyObject *arg);
PyObject *bench_wait(PyObject *mod, PyObject *args);

#ifndef _WIN32
#pragma GCC visibility pop
#endif

#endif
