/* timer.c: the Timer type (call_later, call_at), its scheduling on the
 * engine and its settling. A pending Timer's one engine reference travels
 * through Go as an integer (timers.go) and comes back exactly once: in the
 * timer's event, from pyiocpCancelTimer, or from pyiocpTakeTimers. */
#include "pyiocp.h"
#include <math.h>
#include <structmember.h>

enum { TIMER_PENDING, TIMER_DONE, TIMER_CANCELLED };

static PyObject *monotonic; /* time.monotonic: Timer.when is on its clock */

int timer_init(void)
{
    PyObject *time = PyImport_ImportModule("time");
    if (!time)
        return -1;
    monotonic = PyObject_GetAttrString(time, "monotonic");
    Py_DECREF(time);
    return monotonic ? 0 : -1;
}

/* The delay in seconds of a call_later: a finite real number; a negative
 * one is due at once, as asyncio has it. -1 with an exception set. */
static int delay_of(PyObject *delay, double *out)
{
    double d;
    if (!PyLong_Check(delay) && !PyFloat_Check(delay)) {
        PyErr_Format(PyExc_TypeError, "delay must be a number of seconds, not %.100s", Py_TYPE(delay)->tp_name);
        return -1;
    }
    d = PyFloat_AsDouble(delay);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    /* int64 nanoseconds reach 292 years; a century is far enough. */
    if (!isfinite(d) || d > 100 * 365.25 * 86400) {
        PyErr_Format(PyExc_ValueError, "delay=%R: must be a finite number of seconds (at most a century)", delay);
        return -1;
    }
    *out = d;
    return 0;
}

/* Schedules callback(*args) after delay on the engine, or on connection c
 * (NULL: the manager's), with when (NULL: now plus delay) as its Timer.when. */
PyObject *timer_schedule(EngineObject *e, ConnObject *c, PyObject *delay, PyObject *when, PyObject *callback,
                         PyObject *args)
{
    double d, now;
    TimerObject *t;
    int rc;
    if (delay_of(delay, &d) < 0)
        return NULL;
    if (!PyCallable_Check(callback))
        return PyErr_Format(PyExc_TypeError, "callback must be callable, not %.100s", Py_TYPE(callback)->tp_name);
    if (!when) {
        PyObject *n = PyObject_CallNoArgs(monotonic);
        if (!n)
            return NULL;
        now = PyFloat_AsDouble(n);
        Py_DECREF(n);
    }
    t = PyObject_GC_New(TimerObject, &TimerType);
    if (!t)
        return NULL;
    Py_INCREF(callback);
    t->callback = callback;
    Py_INCREF(args);
    t->args = args;
    t->h = e->h;
    t->when = when ? PyFloat_AsDouble(when) : now + (d > 0 ? d : 0);
    t->state = TIMER_PENDING;
    PyObject_GC_Track(t);
    Py_INCREF(t); /* the engine's */
    note_caller();
    rc = pyiocpCallLater(e->h, c != NULL, c ? c->slot : 0, c ? c->id : 0, (int64_t)(d > 0 ? d * 1e9 : 0),
                         (uint64_t)(uintptr_t)t);
    if (rc != PYIOCP_OK) {
        t->state = TIMER_CANCELLED;
        Py_DECREF(t);
        Py_DECREF(t);
        return raise_code(rc, NULL);
    }
    return (PyObject *)t;
}

/* Engine.call_later(delay, callback, args, when=None) -> Timer */
PyObject *Engine_call_later(EngineObject *self, PyObject *args)
{
    PyObject *delay, *callback, *cargs, *when = Py_None;
    if (!PyArg_ParseTuple(args, "OOO!|O", &delay, &callback, &PyTuple_Type, &cargs, &when))
        return NULL;
    return timer_schedule(self, NULL, delay, when == Py_None ? NULL : when, callback, cargs);
}

/* Connection.call_later(delay, callback, *args) -> Timer */
PyObject *Conn_call_later(ConnObject *self, PyObject *args)
{
    PyObject *cargs, *r;
    if (PyTuple_GET_SIZE(args) < 2)
        return PyErr_Format(PyExc_TypeError, "call_later(delay, callback, *args): %zd argument(s) given",
                            PyTuple_GET_SIZE(args));
    if (conn_gone(self))
        return raise_code(PYIOCP_E_CLOSED, NULL);
    cargs = PyTuple_GetSlice(args, 2, PyTuple_GET_SIZE(args));
    if (!cargs)
        return NULL;
    r = timer_schedule(self->engine, self, PyTuple_GET_ITEM(args, 0), NULL, PyTuple_GET_ITEM(args, 1), cargs);
    Py_DECREF(cargs);
    return r;
}

/* A timer's event: the engine's reference comes back. Returns the Timer,
 * with that reference, to run (or hand to poll()), or NULL, the reference
 * dropped, if it was cancelled meanwhile. */
TimerObject *timer_due(const pyiocp_event *ev)
{
    TimerObject *t = (TimerObject *)(uintptr_t)ev->value;
    int due;
    /* Against cancel() on another thread: one of them wins, and a timer
     * cancel() returned from does not run. */
    Py_BEGIN_CRITICAL_SECTION(t);
    if (ev->n & PYIOCP_TIMER_CANCELLED && t->state == TIMER_PENDING)
        t->state = TIMER_CANCELLED;
    due = t->state == TIMER_PENDING;
    if (due)
        t->state = TIMER_DONE;
    Py_END_CRITICAL_SECTION();
    if (!due) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

/* Calls a due timer's callback; NULL if it raised. */
PyObject *timer_run(TimerObject *t)
{
    return PyObject_Call(t->callback, t->args, NULL);
}

/* Once the workers have quit: the timers still pending are cancelled and
 * their engine references dropped. */
void timers_settle(EngineObject *e)
{
    uint64_t vals[64];
    int n;
    while ((n = pyiocpTakeTimers(e->h, vals, 64)) > 0) {
        for (int i = 0; i < n; i++) {
            TimerObject *t = (TimerObject *)(uintptr_t)vals[i];
            Py_BEGIN_CRITICAL_SECTION(t);
            t->state = TIMER_CANCELLED;
            Py_END_CRITICAL_SECTION();
            Py_DECREF(t);
        }
    }
}

static PyObject *Timer_cancel(TimerObject *self, PyObject *unused)
{
    int drop = 0;
    Py_BEGIN_CRITICAL_SECTION(self);
    if (self->state == TIMER_PENDING) {
        self->state = TIMER_CANCELLED;
        /* Pending in the engine: its reference is ours to drop. Otherwise
         * the event is on its way and drops it, not running the callback. */
        drop = pyiocpCancelTimer(self->h, (uint64_t)(uintptr_t)self);
    }
    Py_END_CRITICAL_SECTION();
    if (drop)
        Py_DECREF(self);
    Py_RETURN_NONE;
}

static int timer_state(TimerObject *t)
{
    int state;
    Py_BEGIN_CRITICAL_SECTION(t);
    state = t->state;
    Py_END_CRITICAL_SECTION();
    return state;
}

static PyObject *Timer_cancelled(TimerObject *self, PyObject *unused)
{
    return PyBool_FromLong(timer_state(self) == TIMER_CANCELLED);
}

static PyObject *Timer_get_when(TimerObject *self, void *unused) { return PyFloat_FromDouble(self->when); }

static PyObject *Timer_repr(TimerObject *self)
{
    static const char *const states[] = {"pending", "done", "cancelled"};
    PyObject *when = PyFloat_FromDouble(self->when), *r;
    if (!when)
        return NULL;
    r = PyUnicode_FromFormat("<pyiocp.Timer when=%R %s callback=%R>", when, states[timer_state(self)], self->callback);
    Py_DECREF(when);
    return r;
}

static int Timer_traverse(TimerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->callback);
    Py_VISIT(self->args);
    return 0;
}

static int Timer_clear(TimerObject *self)
{
    Py_CLEAR(self->callback);
    Py_CLEAR(self->args);
    return 0;
}

static void Timer_dealloc(TimerObject *self)
{
    PyObject_GC_UnTrack(self);
    Timer_clear(self);
    PyObject_GC_Del(self);
}

static PyMethodDef Timer_methods[] = {
    {"cancel", (PyCFunction)Timer_cancel, METH_NOARGS,
     "cancel(): the callback will not run, unless it already has. Safe from any thread."},
    {"cancelled", (PyCFunction)Timer_cancelled, METH_NOARGS, "cancelled() -> True once cancel() stopped it"},
    {NULL},
};

static PyMemberDef Timer_members[] = {
    {"callback", T_OBJECT, offsetof(TimerObject, callback), READONLY, "what runs when the timer is due"},
    {"args", T_OBJECT, offsetof(TimerObject, args), READONLY, "its arguments (a tuple)"},
    {NULL},
};

static PyGetSetDef Timer_getset[] = {
    {"when", (getter)Timer_get_when, NULL, "when it is due, on time.monotonic()'s clock", NULL},
    {NULL},
};

PyTypeObject TimerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyiocp.Timer",
    .tp_doc = "A callback scheduled by call_later or call_at.",
    .tp_basicsize = sizeof(TimerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)Timer_dealloc,
    .tp_traverse = (traverseproc)Timer_traverse,
    .tp_clear = (inquiry)Timer_clear,
    .tp_repr = (reprfunc)Timer_repr,
    .tp_methods = Timer_methods,
    .tp_members = Timer_members,
    .tp_getset = Timer_getset,
};
