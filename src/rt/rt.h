/*
 * rt.h — the actor runtime: the only door into src/rt.
 *
 * Owns: the registry (key -> actor), bounded mailboxes, the worker pool and
 * run queue, one-shot replies with deadlines, parked (rendezvous) replies,
 * panic isolation, supervision with restart intensity and quarantine, idle
 * eviction, tick fan-out and the runtime's counters.
 *
 * Knows nothing about WebAssembly, crypto, HTTP or the storage format: the
 * code an actor runs is plugged in through rt_behaviour, and durable records
 * go through rt_persist. Both are plain vtables so the sandbox, the store and
 * the tests can implement them.
 *
 * Threading model (why it looks like this): a fixed pool of workers serves
 * every actor; an actor with mail sits on the run queue once, and exactly one
 * worker runs it at a time, so behaviour code never needs locks. An idle actor
 * is a small struct in the registry and costs no thread.
 */
#ifndef RT_H
#define RT_H

#include <stddef.h>
#include <stdint.h>

#include "rt_status.h"

/* ---------------------------------------------------------------- keys -- */

/* Actors are addressed by a 32-byte key (a wallet id is a ChillDKG params hash). */
#define RT_KEY_LEN 32
typedef struct rt_key {
    uint8_t b[RT_KEY_LEN];
} rt_key;

/* --------------------------------------------------------------- reply -- */

/*
 * The outcome of one request. On RT_OK, data/len is the behaviour's reply
 * payload. On an error, data/len is a human-readable UTF-8 message (not NUL
 * terminated) and blame is a bitmask of participant indices (bit i =
 * participant i) when the fault is attributable, else 0.
 * Ownership: whoever holds an rt_reply owns data and frees it with
 * rt_reply_free(); callbacks receive ownership.
 */
typedef struct rt_reply {
    rt_status status;
    uint8_t *data;
    size_t len;
    uint64_t blame;
    uint32_t retry_after_ms; /* set with UNAVAILABLE (quarantine) and RESOURCE_EXHAUSTED */
} rt_reply;

void rt_reply_free(rt_reply *r);

/* Completion callback: called exactly once per request, on an arbitrary
 * runtime thread (worker, timer or the caller's own thread when the request
 * is refused up front). It takes ownership of *reply (free with rt_reply_free).
 * It must not block for long: it runs on a thread the runtime needs. */
typedef void (*rt_reply_cb)(void *arg, rt_reply *reply);

/* ----------------------------------------------------------- behaviour -- */

typedef struct rt_ctx rt_ctx; /* per-invocation context, valid during a callback */
typedef uint64_t rt_park_id;  /* names a parked reply inside one actor */

enum rt_msg_kind {
    RT_MSG_CLIENT = 0, /* a request from outside: has a reply slot, counts as activity */
    RT_MSG_TICK = 1,   /* housekeeping: no reply slot, never counts as activity */
};

typedef struct rt_msg {
    int kind;
    const uint8_t *data; /* borrowed for the duration of handle() */
    size_t len;
    uint64_t now_ms; /* monotonic ms at dispatch (coarse clock: may trail rt_now_ms() by a tick) */
} rt_msg;

/*
 * How an actor's code is plugged in. One instance per live activation; all
 * calls for one instance are serialized by the runtime.
 *
 * create   Builds a fresh instance from the durable record (rec == NULL when
 *          the key has no record yet). Runs on a worker, never twice at once
 *          for one key. RT_DATA_LOSS means the record is unusable: callers get
 *          DATA_LOSS and the key is refused for quarantine_base_ms (no
 *          re-read loop). Any other failure, or rt_panic(), is an actor-level
 *          fault: callers get UNAVAILABLE, the supervisor counts a restart and
 *          the next message retries, under the restart intensity.
 * handle   Handles one message. For RT_MSG_CLIENT it must either answer with
 *          rt_ctx_reply() or park the reply with rt_ctx_park(); the runtime
 *          answers INTERNAL if it did neither. It may complete earlier parked
 *          replies with rt_ctx_complete(). It calls rt_ctx_mark_dirty() when
 *          durable state changed: the runtime then calls snapshot() and every
 *          reply produced by this invocation is held until the record is
 *          durable (write-before-ack). A non-OK return, or rt_panic(), is a
 *          handler fault: the caller gets INTERNAL "handler panicked" (or the
 *          returned code when it is DEADLINE_EXCEEDED, for runaway guests),
 *          the instance is destroyed and rebuilt from the last durable record
 *          before the next message, parked replies get ABORTED. Replies (and
 *          completions) are delivered only after handle() returns OK.
 * snapshot Serializes durable state. Ownership: *out is malloc'd and passed
 *          to the runtime.
 * tick     Housekeeping (expire sessions, wipe nonces). May complete parked
 *          replies. A non-OK return is a handler fault (no caller to tell).
 * destroy  Frees the instance; must wipe secrets.
 */
typedef struct rt_behaviour {
    rt_status (*create)(void *cfg, const rt_key *key, const uint8_t *rec, size_t rec_len,
                        void **inst);
    rt_status (*handle)(void *inst, rt_ctx *ctx, const rt_msg *msg);
    rt_status (*snapshot)(void *inst, uint8_t **out, size_t *out_len);
    rt_status (*tick)(void *inst, rt_ctx *ctx, uint64_t now_ms);
    void (*destroy)(void *inst);
    void *cfg; /* passed to create() */
} rt_behaviour;

/* Answers the current client message. Copies data. At most once per message. */
void rt_ctx_reply(rt_ctx *ctx, rt_status st, const void *data, size_t len, uint64_t blame);
/* Parks the current client message's reply; it expires at deadline_ms
 * (monotonic ms, 0 = the request's own deadline) with DEADLINE_EXCEEDED.
 * Returns its id, or 0 when there is nothing to park (tick, already
 * answered) or no memory. An actor with a live parked reply is never
 * evicted; a fault, restart, rollback or stop fails it with ABORTED. */
rt_park_id rt_ctx_park(rt_ctx *ctx, uint64_t deadline_ms);
/* Completes a parked reply. Returns RT_NOT_FOUND if it already expired or was
 * completed (not an error for the behaviour: the waiter is gone). */
rt_status rt_ctx_complete(rt_ctx *ctx, rt_park_id id, rt_status st, const void *data, size_t len,
                          uint64_t blame);
/* Durable state changed during this invocation. */
void rt_ctx_mark_dirty(rt_ctx *ctx);
/* Names the fault that the coming non-OK return from handle() or tick()
 * reports (e.g. the sandbox's trap kind "oob"), for the handler_fault event.
 * kind must be a static string. Optional: without it the runtime says
 * "panic", "timeout" or "error". */
void rt_ctx_note_fault(rt_ctx *ctx, const char *kind);
/* The key of the actor being run. */
const rt_key *rt_ctx_key(const rt_ctx *ctx);

/* Native panic in host glue: unwinds to the worker boundary (longjmp) and is
 * handled as a handler fault. Only valid on a worker thread inside a
 * behaviour callback; elsewhere it aborts the process. */
_Noreturn void rt_panic(const char *why);

/* ------------------------------------------------------------- persist -- */

/*
 * Durable records, one per key, opaque to the runtime. NULL vtable = no
 * persistence (records live only in memory of the actor).
 *
 * load  Fetches the record. RT_NOT_FOUND when the key has none (create() then
 *       gets rec == NULL), RT_DATA_LOSS when it fails authentication (the
 *       actor refuses to activate, its callers get DATA_LOSS), RT_UNAVAILABLE
 *       on I/O error. Ownership: *rec is malloc'd and passed to the caller.
 *       *version is the record's version (0 when none). RT_ABORTED: the
 *       key is not this process's to activate (see rt_deactivate).
 * save  Durably writes rec as version `version` (= last version + 1) and
 *       calls done exactly once, possibly from another thread, after the
 *       commit is fsync'd (or failed). Implementations batch concurrent saves
 *       into one commit (group commit). Borrowed: rec is copied before return.
 *       A stale version must fail with RT_FAILED_PRECONDITION.
 */
typedef struct rt_persist {
    rt_status (*load)(void *ud, const rt_key *key, uint8_t **rec, size_t *len, uint64_t *version);
    void (*save)(void *ud, const rt_key *key, const uint8_t *rec, size_t len, uint64_t version,
                 void (*done)(void *arg, rt_status st), void *arg);
    void *ud;
} rt_persist;

/* -------------------------------------------------------------- events -- */

/*
 * What the supervisor did, one event per occurrence, for the daemon's log:
 * rt_stats counts them, an event says which actor and why.
 *
 * ACTOR_RESTART      an actor-level fault (injected actor-loop fault, a failed
 *                    activation other than DATA_LOSS): in-flight callers got
 *                    status, the instance is rebuilt on the next message.
 * ACTOR_QUARANTINED  restarts beyond the intensity: the actor is refused for
 *                    retry_after_ms (follows the ACTOR_RESTART that tipped it).
 * HANDLER_FAULT      handle(), tick() or snapshot() faulted: the caller got
 *                    status, the instance is discarded; fault names the kind
 *                    ("panic", "timeout", "error", "snapshot" or the one the
 *                    behaviour noted with rt_ctx_note_fault()).
 * ACTIVATION_FAILED  load() or create() failed with status (DATA_LOSS: the
 *                    record is refused; anything else also counts a restart).
 * COMMIT_FAILED      a save failed with status: the actor's state is rolled
 *                    back to its last durable record.
 */
typedef enum rt_event_kind {
    RT_EV_ACTOR_RESTART = 0,
    RT_EV_ACTOR_QUARANTINED,
    RT_EV_HANDLER_FAULT,
    RT_EV_ACTIVATION_FAILED,
    RT_EV_COMMIT_FAILED,
    RT_EV_COUNT_
} rt_event_kind;

/* Borrowed for the duration of the callback: copy what you keep. The
 * strings are the runtime's or the behaviour's own fixed texts (never data
 * from a message or a record), so they are safe to log. */
typedef struct rt_event {
    rt_event_kind kind;
    const rt_key *key;
    rt_status status;
    const char *fault;       /* HANDLER_FAULT only, else NULL */
    const char *reason;      /* never NULL */
    uint64_t retry_after_ms; /* ACTOR_QUARANTINED only */
} rt_event;

/* Stable snake_case name: "actor_restart", "actor_quarantined",
 * "handler_fault", "activation_failed", "commit_failed". */
const char *rt_event_name(rt_event_kind kind);

/* ------------------------------------------------------------- runtime -- */

typedef struct rt_config {
    unsigned workers;            /* 0 = number of cores */
    unsigned mailbox_cap;        /* 0 = 256; counts accepted messages (and ticks) not yet
                                    handled, including the ones a worker is running */
    uint64_t idle_threshold_ms;  /* 0 = 30 min */
    uint64_t evict_quantum_ms;   /* 0 = 60 s */
    uint64_t tick_interval_ms;   /* 0 = 60 s; UINT64_MAX = no ticks */
    unsigned max_resident;       /* 0 = unlimited; enforced by each sweep, LRU first */
    unsigned restart_max;        /* 0 = 5 restarts ... */
    uint64_t restart_window_ms;  /* ... within 0 = 10 s, else quarantine */
    uint64_t quarantine_base_ms; /* 0 = 1 s, doubled each time, capped at 5 min; also the
                                    time a DATA_LOSS key is refused before re-reading */
    const rt_behaviour *behaviour;
    const rt_persist *persist; /* may be NULL */
    /* Optional event hook (NULL = none). Called synchronously on the thread
     * where the event happened (a worker, or the thread completing a save),
     * never while the runtime holds an actor's lock or the run queue's, so it
     * may take its own locks. It must not block (the actor waits for it) and
     * must not call rt_call()/rt_stop(); event_ud is passed through. */
    void (*on_event)(void *event_ud, const rt_event *ev);
    void *event_ud;
} rt_config;

typedef struct rt_runtime rt_runtime;

/* Starts workers and housekeeping threads. Ownership: *out is the caller's,
 * released with rt_stop(). The config's vtables are borrowed and must
 * outlive the runtime. */
rt_status rt_start(const rt_config *cfg, rt_runtime **out);

/* Graceful stop: refuse new requests (UNAVAILABLE), fail queued and parked
 * requests with CANCELLED / ABORTED, wait for in-flight commits, destroy every
 * instance and free everything. Safe to call once. */
void rt_stop(rt_runtime *rt);

/*
 * Sends a client request to key's actor, activating it if needed. cb is
 * called exactly once with the reply, or with DEADLINE_EXCEEDED at
 * deadline_ms (monotonic ms), RESOURCE_EXHAUSTED when the mailbox is full,
 * UNAVAILABLE when the actor is quarantined or the runtime stopping, or the
 * activation's error (e.g. DATA_LOSS). Never blocks. data is copied.
 * deadline_ms == 0 means no deadline (internal callers only: a request from
 * the network must carry one, or a stuck actor could hold it forever).
 * Callable from any thread, including from a reply callback.
 */
void rt_send(rt_runtime *rt, const rt_key *key, const void *data, size_t len, uint64_t deadline_ms,
             rt_reply_cb cb, void *arg);

/* Synchronous form: blocks the calling thread until the reply. On a worker
 * thread (inside a behaviour or a reply callback) it would wait on the pool
 * that must answer it, so it answers FAILED_PRECONDITION instead.
 * Ownership: *reply's data is the caller's (rt_reply_free). */
void rt_call(rt_runtime *rt, const rt_key *key, const void *data, size_t len, uint64_t deadline_ms,
             rt_reply *reply);

/* Non-blocking send with no reply slot, e.g. ticks; full mailbox ->
 * RESOURCE_EXHAUSTED and counted as a drop. Does not activate an evicted
 * actor (returns RT_NOT_FOUND). */
rt_status rt_try_send_tick(rt_runtime *rt, const rt_key *key);

/* Monotonic clock in ms, shared by every layer for deadlines. */
uint64_t rt_now_ms(void);

/* Fault injection (tests and chaos builds): the next time key's actor runs,
 * its actor loop faults before handling the message (an actor-level fault).
 * A no-op when built with -Dfault_injection=false. */
void rt_inject_actor_fault(rt_runtime *rt, const rt_key *key);

/*
 * Ends key's activation as soon as no worker runs it: parked replies fail
 * with ABORTED, the instance is destroyed (its secrets, secret nonces among
 * them, wiped). Messages already queued stay queued and are served by a
 * fresh activation, which first loads the record again (a cluster's load
 * refuses with ABORTED when this node no longer holds the wallet's lease:
 * the callers then get UNAVAILABLE with a retry-after, no restart is
 * counted). Never blocks; callable from any thread. RT_NOT_FOUND when key
 * has no actor.
 */
rt_status rt_deactivate(rt_runtime *rt, const rt_key *key);

/* Runs one eviction sweep now (tests; the sweeper thread does it every
 * quantum). Returns the number of instances evicted. */
unsigned rt_evict_sweep(rt_runtime *rt);

typedef struct rt_stats {
    uint64_t resident;    /* live activations now */
    uint64_t activations; /* instances created successfully */
    uint64_t activation_failures;
    uint64_t evictions;
    uint64_t restarts; /* supervisor restarts after actor-level faults */
    uint64_t quarantines;
    uint64_t handler_faults;   /* all kinds */
    uint64_t handler_timeouts; /* runaway handlers (DEADLINE_EXCEEDED from handle) */
    uint64_t mailbox_full;     /* client sends refused with RESOURCE_EXHAUSTED */
    uint64_t tick_drops;       /* ticks dropped on a full mailbox */
    uint64_t messages;         /* client messages handled */
    uint64_t commits;          /* durable saves completed */
    uint64_t commit_failures;
    uint64_t parked;        /* parked replies now */
    uint64_t deactivations; /* live instances ended by rt_deactivate() */
} rt_stats;

void rt_get_stats(rt_runtime *rt, rt_stats *out);

#endif
