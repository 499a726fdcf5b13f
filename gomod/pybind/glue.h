/* glue.h: what the C half (module.c) and the Go half (exports.go) of the
 * extension share. Plain C types only: no Go pointer ever crosses to C, and
 * Go keeps no Python pointer except a post's payload and a pending
 * timer's Timer, which it carries as an integer and hands back exactly
 * once. */
#ifndef PYIOCP_GLUE_H
#define PYIOCP_GLUE_H

#include <stdint.h>
#include <stddef.h>

/* turns.c: how many workers of live managers this process has. */
void set_live_workers(int n);

/* callers.c: how many live Python threads have called into the engine. */
int live_callers(void);

/* Event kinds: the engine's EventKind values. */
enum {
    PYIOCP_EV_ACCEPT = 1,
    PYIOCP_EV_CONNECT = 2,
    PYIOCP_EV_RECV = 3,
    PYIOCP_EV_SEND = 4,
    PYIOCP_EV_DRAIN = 5,
    PYIOCP_EV_EOF = 6,
    PYIOCP_EV_CLOSE = 7,
    PYIOCP_EV_POST = 8,
    PYIOCP_EV_TIMER = 9,
    PYIOCP_EV_DATAGRAM = 10,
};

/* Error codes returned by the exports and carried by close events; each
 * maps to one Python exception class. */
enum {
    PYIOCP_OK = 0,
    PYIOCP_E_CLOSED = 1,          /* ConnectionClosed */
    PYIOCP_E_BUFFER_FULL = 2,     /* BufferFull */
    PYIOCP_E_MANAGER_CLOSED = 3,  /* ManagerClosed */
    PYIOCP_E_VALUE = 4,           /* ValueError (msg) */
    PYIOCP_E_OS = 5,              /* OSError (err_errno) */
    PYIOCP_E_TIMEOUT = 6,         /* TimeoutError (msg) */
    PYIOCP_E_OTHER = 7,           /* pyiocp.Error (msg) */
    PYIOCP_E_TOO_MANY_CONNS = 8,  /* TooManyConnections: OSError(EMFILE, msg) */
    PYIOCP_E_RESOLVE = 9,         /* socket.gaierror(EAI_NONAME, msg): a name not resolved */
    PYIOCP_E_PROTOCOL = 10,       /* ProtocolError (msg): a peer broke the framing */
    PYIOCP_E_TLS = 11,            /* TLSError (msg): a TLS handshake failed */
};

/* EV_TIMER's flags, in n. */
enum {
    PYIOCP_TIMER_CONN = 1,      /* a connection's timer: slot and id name it */
    PYIOCP_TIMER_CANCELLED = 2, /* cancelled by its connection's close: nothing to run */
};

/* Optional events a handler asks for (engine.EventMask). */
enum {
    PYIOCP_MASK_SEND = 1,
    PYIOCP_MASK_DRAIN = 2,
    PYIOCP_MASK_EOF = 4,
};

typedef struct pyiocp_error {
    int32_t code;
    int32_t err_errno;
    char msg[240];
} pyiocp_error;

/* One event. data points into memory outside the Go heap that stays valid
 * until the worker's next poll; the C side copies it into a bytes object
 * before then. */
typedef struct pyiocp_event {
    uint64_t id;         /* EV_DATAGRAM: the endpoint's handle (udp.c) */
    uint64_t value;      /* EV_POST: the payload; EV_TIMER: the pyiocp.Timer (a PyObject * owning one reference) */
    const char *data;    /* EV_RECV, EV_DATAGRAM */
    int64_t n;           /* EV_RECV, EV_DATAGRAM: length; EV_SEND: bytes written; EV_TIMER: PYIOCP_TIMER_* flags */
    uint32_t slot;
    pyiocp_error err;    /* EV_CLOSE: why (code 0: clean) */
    uint16_t port;       /* EV_ACCEPT: the peer's port; EV_DATAGRAM: the sender's */
    uint8_t kind;
    uint8_t family;      /* EV_ACCEPT, EV_CONNECT, EV_DATAGRAM: 4 or 6; 1 for Unix domain (unix.go) */
    uint8_t ip[16];      /* EV_ACCEPT: the peer's address; EV_DATAGRAM: the sender's */
} pyiocp_event;

/* A socket's options (listen, connect): 0 keeps the OS's value. */
typedef struct pyiocp_sockopts {
    int32_t nodelay;
    int32_t keepalive;
    int64_t keep_idle_ns, keep_intvl_ns;
    int32_t keep_count;
    int64_t rcvbuf, sndbuf;
} pyiocp_sockopts;

/* A connection's framing (engine.Lines, engine.LengthPrefixed). */
enum {
    PYIOCP_FRAMING_NONE = 0,
    PYIOCP_FRAMING_LINES = 1,
    PYIOCP_FRAMING_LENGTH = 2,
};

typedef struct pyiocp_framing {
    int32_t kind;
    int32_t header_size;     /* LENGTH: 1, 2, 4 or 8 */
    int32_t little_endian;   /* LENGTH */
    int32_t keep_terminator; /* LINES */
    int64_t max;             /* LINES: max_line; LENGTH: max_size */
    int32_t term_len;        /* LINES: 1-16 */
    uint8_t term[16];
} pyiocp_framing;

typedef struct pyiocp_options {
    long long workers;
    long long recv_buffer_limit;
    long long send_buffer_limit;
    long long send_low_watermark;   /* -1: a quarter of the limit */
    long long idle_timeout_ns;      /* 0: none */
    long long accept_timeout_ns;    /* 0: none */
    long long close_timeout_ns;     /* 0: none */
    long long max_connections;      /* 0: no cap */
    long long events;               /* PYIOCP_MASK_* */
    long long fixed_threads;        /* 1: each worker is polled by one thread */
} pyiocp_options;

typedef struct pyiocp_stats {
    int64_t connections, accepted, connected, closed, rejected, timed_out;
    int64_t bytes_in, bytes_out, pending_send_bytes, paused_reading;
    int64_t completions, accept_errors, stray, listeners, workers;
    int64_t accept_error_episodes;
    int64_t tls_connections, tls_handshake_errors;
    int64_t proxy_errors;
    int64_t endpoints, datagrams_in, datagrams_out, datagrams_truncated, datagram_errors;
    char backend[32];
} pyiocp_stats;

typedef struct pyiocp_bench_result {
    int64_t conns, size, depth, connected;
    int64_t messages, bytes, errors, mismatches;
    double elapsed, msgs_per_sec, mb_per_sec;
    double p50, p90, p99, max, mean;   /* seconds */
    char first_error[240];
    char table[2048];
} pyiocp_bench_result;

#endif
