/*
 * rt.c — registry, mailboxes, scheduler, supervision and eviction.
 *
 * Actor lifecycle, in one place:
 *
 *   life:  EMPTY (no instance) --worker activates--> LIVE --fault/evict--> EMPTY
 *          any --evicted with nothing queued--> DEAD (removed from the registry)
 *   sched: IDLE -> QUEUED (on the run queue) -> RUNNING (one worker) -> IDLE
 *          RUNNING -> COMMIT (a save is in flight; the actor is not run again
 *          until it completes) -> QUEUED / IDLE
 *          IDLE -> EVICTING (sweeper destroys the instance) -> DEAD / QUEUED
 *
 * Why two live activations of one key cannot exist: instances are created
 * only by the worker that owns the actor (sched RUNNING), the registry holds
 * at most one actor struct per key (cds_lfht_add_unique), and a struct leaves
 * the registry (DEAD) only after its instance was destroyed. A sender that
 * finds a DEAD struct retries the lookup and inserts a fresh one.
 *
 * Why no accepted message is lost to eviction: a sender enqueues under the
 * actor lock; the evictor re-checks the mailbox under the same lock after
 * destroying the instance and, if mail arrived, reschedules instead of
 * removing.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include "cg_config.h"
#include "rt.h"
#include "rt_slot.h"

enum { S_IDLE, S_QUEUED, S_RUNNING, S_COMMIT, S_EVICTING };
enum { L_EMPTY, L_LIVE, L_DEAD };
enum { F_ROLLBACK = 1, F_DROP = 2 };

#define QUARANTINE_CAP_MS (5u * 60u * 1000u)
#define BATCH 64

/* One queued message. A client message is the tail of its reply slot's
 * block; a tick is allocated on its own. */
typedef struct rt_mnode {
    struct rt_mnode *next;
    rt_slot *slot; /* NULL for ticks */
    uint32_t kind;
    uint32_t len;
    uint8_t *data;
} rt_mnode;

typedef struct rt_parked {
    rt_park_id id;
    rt_slot *slot;
} rt_parked;

/* State most actors never need, allocated on first use so an idle actor
 * stays small. */
typedef struct rt_ext {
    rt_parked *parked;
    uint32_t nparked, capparked;
    rt_park_id next_park;
    uint64_t rs_window_start;
    uint32_t rs_count;
    uint32_t q_level;
    uint64_t q_until;  /* quarantined until (monotonic ms) */
    uint64_t dl_until; /* last load said DATA_LOSS: refuse until */
} rt_ext;

typedef struct rt_actor {
    struct cds_lfht_node node;
    rt_key key;
    _Atomic int published; /* release/acquire pair that makes the key's
                              initialization visible to lookups under TSan */
    pthread_mutex_t mu;
    union {
        struct {
            rt_mnode *mb_head, *mb_tail;
        };
        struct rcu_head rcu; /* used only once DEAD */
    };
    uint32_t mb_count;
    uint8_t sched, life, flags;
    _Atomic uint8_t fault; /* injected actor-loop fault pending */
    struct rt_actor *rq_next;
    void *inst;
    uint64_t version;
    _Atomic uint64_t last_active;
    rt_ext *ext;
} rt_actor;

struct rt_runtime {
    rt_config cfg;
    rt_behaviour beh;
    const rt_persist *persist;
    struct cds_lfht *ht;
    uint64_t seed;
    _Atomic int stopping;

    pthread_mutex_t rq_mu;
    pthread_cond_t rq_cv;
    rt_actor *rq_head, *rq_tail;
    unsigned rq_sleepers;
    _Atomic unsigned busy; /* workers holding actors taken from the queue */
    int rq_quit;
    _Atomic unsigned rq_len;
    pthread_t *workers;
    unsigned nworkers;

    rt_timer timer;
    rt_blkpool blocks; /* request blocks, recycled between senders and workers */

    pthread_t hk;
    pthread_mutex_t hk_mu;
    pthread_cond_t hk_cv;
    int hk_quit;
    pthread_mutex_t sweep_mu;

    _Atomic uint64_t commits_inflight;

    struct {
        _Atomic uint64_t resident, activations, activation_failures, evictions, restarts,
            quarantines, handler_faults, handler_timeouts, mailbox_full, tick_drops, messages,
            commits, commit_failures, parked, deactivations;
    } st;
};

struct rt_ctx {
    rt_runtime *rt;
    rt_actor *a;
    rt_mnode *m; /* current client message, NULL in tick() */
    int replied, parked, dirty;
    rt_slot *out;           /* replies produced by this invocation, delivered after it */
    const char *fault_kind; /* rt_ctx_note_fault() */
};

#define STAT_ADD(rt, f, n) atomic_fetch_add_explicit(&(rt)->st.f, (n), memory_order_relaxed)
#define STAT_SUB(rt, f, n) atomic_fetch_sub_explicit(&(rt)->st.f, (n), memory_order_relaxed)

enum { P_NEXT, P_COMMIT, P_RESTARTED };

/* The part of the mailbox a worker took: still counted in mb_count until
 * run, so the mailbox bound covers it. */
typedef struct run_state {
    rt_mnode *batch;
    uint32_t done; /* taken and run, still to subtract from mb_count */
} run_state;

/* The per-message clock: CLOCK_MONOTONIC_COARSE is a plain load (the
 * precise clock costs ~20 ns, twice per message), same time base, lagging
 * by at most one scheduler tick. Used where a few ms do not matter. */
static uint64_t coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------ threads -- */

static _Thread_local int tl_rcu_registered;
static _Thread_local int tl_is_worker;
static _Thread_local sigjmp_buf *tl_jmp;
static _Thread_local const char *tl_panic_why; /* rt_panic()'s text, for the event */
static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;

static void rcu_thread_exit(void *p)
{
    (void)p;
    if (tl_rcu_registered) {
        urcu_memb_unregister_thread();
        tl_rcu_registered = 0;
    }
}

static void rcu_key_init(void)
{
    pthread_key_create(&rcu_key, rcu_thread_exit);
}

/* Any thread may call rt_send (HTTP threads, tests): register it as an RCU
 * reader on first use and unregister when it exits. */
static void rcu_ensure(void)
{
    if (tl_rcu_registered) return;
    pthread_once(&rcu_once, rcu_key_init);
    urcu_memb_register_thread();
    tl_rcu_registered = 1;
    pthread_setspecific(rcu_key, (void *)1);
}

/* ---------------------------------------------------------- registry -- */

static uint64_t key_hash(const rt_runtime *rt, const rt_key *k)
{
    uint64_t h = rt->seed;
    for (int i = 0; i < RT_KEY_LEN; i += 8) {
        uint64_t w;
        memcpy(&w, k->b + i, 8);
        h ^= w;
        h *= 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

/* cds_lfht_for_each_entry takes container_of(NULL) when a walk ends, which
 * is undefined behaviour (UBSan's pointer-overflow check stops on it): walk
 * the nodes and convert only the ones that exist. */
static inline rt_actor *actor_of(struct cds_lfht_node *n)
{
    return n ? caa_container_of(n, rt_actor, node) : NULL;
}
#define FOR_EACH_ACTOR(ht, it, a)                                                                  \
    for (cds_lfht_first((ht), (it)); ((a) = actor_of(cds_lfht_iter_get_node(it))) != NULL;         \
         cds_lfht_next((ht), (it)))

static int key_match(struct cds_lfht_node *node, const void *key)
{
    rt_actor *a = caa_container_of(node, rt_actor, node);
    if (!atomic_load_explicit(&a->published, memory_order_acquire)) return 0;
    return memcmp(a->key.b, key, RT_KEY_LEN) == 0;
}

/* An actor reached through the table: acquire what actor_new() released
 * (liburcu's own publication barriers are invisible to ThreadSanitizer). */
static int visible(rt_actor *a)
{
    return atomic_load_explicit(&a->published, memory_order_acquire) != 0;
}

static rt_actor *actor_new(const rt_key *key)
{
    rt_actor *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    cds_lfht_node_init(&a->node);
    a->key = *key;
    rt_mutex_init_hot(&a->mu);
    atomic_init(&a->last_active, rt_now_ms());
    atomic_store_explicit(&a->published, 1, memory_order_release);
    return a;
}

static void actor_free(rt_actor *a)
{
    if (a->ext) {
        free(a->ext->parked);
        free(a->ext);
    }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static void actor_free_rcu(struct rcu_head *h)
{
    rt_actor *a = caa_container_of(h, rt_actor, rcu);
    /* The grace period orders this after every reader, but it is invisible
     * to ThreadSanitizer: these two edges state it (release in retire(),
     * and the lock every reader took before it could touch the actor). */
    (void)atomic_load_explicit(&a->published, memory_order_acquire);
    pthread_mutex_lock(&a->mu);
    pthread_mutex_unlock(&a->mu);
    actor_free(a);
}

/* Frees a DEAD actor once no reader can still hold it. Call after cds_lfht_del. */
static void retire(rt_actor *a)
{
    atomic_store_explicit(&a->published, 0, memory_order_release);
    urcu_memb_call_rcu(&a->rcu, actor_free_rcu);
}

/* Returns the locked, not DEAD actor of key, inserting an empty one if
 * absent. Call inside an RCU read-side section. NULL on ENOMEM. */
static rt_actor *get_locked(rt_runtime *rt, const rt_key *key, int create)
{
    uint64_t h = key_hash(rt, key);
    for (;;) {
        struct cds_lfht_iter it;
        cds_lfht_lookup(rt->ht, h, key_match, key, &it);
        struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
        rt_actor *a;
        if (n) {
            a = caa_container_of(n, rt_actor, node);
        } else {
            if (!create) return NULL;
            rt_actor *fresh = actor_new(key);
            if (!fresh) return NULL;
            n = cds_lfht_add_unique(rt->ht, h, key_match, key, &fresh->node);
            if (n != &fresh->node) actor_free(fresh); /* lost the race: never visible, free now */
            a = caa_container_of(n, rt_actor, node);
        }
        pthread_mutex_lock(&a->mu);
        if (a->life != L_DEAD) return a;
        pthread_mutex_unlock(&a->mu);
    }
}

static rt_ext *ext_of(rt_actor *a)
{
    if (!a->ext) a->ext = calloc(1, sizeof *a->ext);
    return a->ext;
}

/* --------------------------------------------------------- run queue -- */

/* a->sched was just set to S_QUEUED (under a->mu) by the caller. */
static void rq_push(rt_runtime *rt, rt_actor *a)
{
    a->rq_next = NULL;
    pthread_mutex_lock(&rt->rq_mu);
    if (rt->rq_tail)
        rt->rq_tail->rq_next = a;
    else
        rt->rq_head = a;
    rt->rq_tail = a;
    atomic_fetch_add_explicit(&rt->rq_len, 1, memory_order_relaxed);
    if (rt->rq_sleepers) pthread_cond_signal(&rt->rq_cv);
    pthread_mutex_unlock(&rt->rq_mu);
}

static void schedule_locked(rt_runtime *rt, rt_actor *a)
{
    if (a->sched == S_IDLE) {
        a->sched = S_QUEUED;
        rq_push(rt, a);
    }
}

/* ---------------------------------------------------- guarded calls -- */

_Noreturn void rt_panic(const char *why)
{
    if (tl_jmp) {
        tl_panic_why = why;
        siglongjmp(*tl_jmp, 1);
    }
    fprintf(stderr, "rt_panic outside a behaviour callback: %s\n", why ? why : "");
    abort();
}

enum { OP_CREATE, OP_HANDLE, OP_TICK, OP_SNAPSHOT };
typedef struct guard_args {
    int op;
    const rt_behaviour *b;
    void *inst;
    void **out_inst;
    rt_ctx *ctx;
    const rt_msg *msg;
    const rt_key *key;
    const uint8_t *rec;
    size_t rec_len;
    uint8_t **snap;
    size_t *snap_len;
    uint64_t now;
    const char *why; /* set when it panicked: rt_panic()'s text */
} guard_args;

/* Runs one behaviour callback with rt_panic() armed. *panicked tells a
 * longjmp from an ordinary error return. */
static rt_status guarded(guard_args *g, int *panicked)
{
    sigjmp_buf jb;
    sigjmp_buf *prev = tl_jmp;
    *panicked = 0;
    if (sigsetjmp(jb, 0)) {
        tl_jmp = prev;
        *panicked = 1;
        g->why = tl_panic_why ? tl_panic_why : "panic";
        tl_panic_why = NULL;
        return RT_INTERNAL;
    }
    tl_jmp = &jb;
    rt_status st;
    switch (g->op) {
    case OP_CREATE:
        st = g->b->create(g->b->cfg, g->key, g->rec, g->rec_len, g->out_inst);
        break;
    case OP_HANDLE:
        st = g->b->handle(g->inst, g->ctx, g->msg);
        break;
    case OP_TICK:
        st = g->b->tick ? g->b->tick(g->inst, g->ctx, g->now) : RT_OK;
        break;
    default:
        st = g->b->snapshot(g->inst, g->snap, g->snap_len);
        break;
    }
    tl_jmp = prev;
    return st;
}

/* ----------------------------------------------------------- replies -- */

static void fail_msg(rt_runtime *rt, rt_mnode *m, rt_status st, const char *why, uint32_t retry)
{
    if (m->slot) {
        rt_slot_fail(&rt->timer, m->slot, st, why, retry);
        rt_slot_release(m->slot);
    } else {
        free(m);
    }
}

static void fail_list(rt_runtime *rt, rt_mnode *m, rt_status st, const char *why, uint32_t retry)
{
    while (m) {
        rt_mnode *next = m->next;
        fail_msg(rt, m, st, why, retry);
        m = next;
    }
}

/* Delivers (ok) or fails (!ok) a list of produced replies, each holding one
 * owner reference. */
static void deliver_out(rt_runtime *rt, rt_slot *s, int ok, rt_status fst, const char *why)
{
    while (s) {
        rt_slot *next = s->hnext;
        s->hnext = NULL;
        if (ok) {
            rt_slot_finish(&rt->timer, s, s->held.status, s->held.data, s->held.len, s->held.blame,
                           0);
        } else {
            free(s->held.data);
            rt_slot_fail(&rt->timer, s, fst, why, 0);
        }
        s->held.data = NULL;
        rt_slot_release(s);
        s = next;
    }
}

/* Fails every parked reply (the instance that would complete them is gone).
 * Called by the actor's owner. */
static void abort_parked(rt_runtime *rt, rt_actor *a, rt_status st, const char *why)
{
    pthread_mutex_lock(&a->mu);
    rt_ext *e = a->ext;
    rt_parked *p = NULL;
    uint32_t n = 0;
    if (e && e->nparked) {
        p = e->parked;
        n = e->nparked;
        e->parked = NULL;
        e->nparked = e->capparked = 0;
    }
    pthread_mutex_unlock(&a->mu);
    /* Uncounted before anyone hears: a waiter that got its ABORTED must not
     * still see itself parked in the stats (rt_ctx_complete does the same). */
    if (n) STAT_SUB(rt, parked, n);
    for (uint32_t i = 0; i < n; i++) {
        rt_slot_fail(&rt->timer, p[i].slot, st, why, 0);
        rt_slot_release(p[i].slot);
    }
    free(p);
}

/* Drops parked entries whose waiter already got an answer (deadline). Under
 * a->mu. Returns the number still live. */
static uint32_t prune_parked_locked(rt_runtime *rt, rt_actor *a)
{
    rt_ext *e = a->ext;
    if (!e || !e->nparked) return 0;
    uint32_t j = 0;
    for (uint32_t i = 0; i < e->nparked; i++) {
        if (rt_slot_done(e->parked[i].slot)) {
            rt_slot_release(e->parked[i].slot);
            STAT_SUB(rt, parked, 1);
        } else {
            e->parked[j++] = e->parked[i];
        }
    }
    e->nparked = j;
    return j;
}

/* -------------------------------------------------------- behaviour -- */

void rt_ctx_reply(rt_ctx *ctx, rt_status st, const void *data, size_t len, uint64_t blame)
{
    if (!ctx->m || !ctx->m->slot || ctx->replied || ctx->parked) return;
    rt_slot *s = ctx->m->slot;
    uint8_t *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy) {
            st = RT_RESOURCE_EXHAUSTED;
            len = 0;
        } else {
            memcpy(copy, data, len);
        }
    }
    s->held = (rt_reply){.status = st, .data = copy, .len = len, .blame = blame};
    s->hnext = ctx->out;
    ctx->out = s;
    ctx->replied = 1;
}

rt_park_id rt_ctx_park(rt_ctx *ctx, uint64_t deadline_ms)
{
    if (!ctx->m || !ctx->m->slot || ctx->replied || ctx->parked) return 0;
    rt_actor *a = ctx->a;
    rt_slot *s = ctx->m->slot;
    pthread_mutex_lock(&a->mu);
    rt_ext *e = ext_of(a);
    if (!e) {
        pthread_mutex_unlock(&a->mu);
        return 0;
    }
    if (e->nparked == e->capparked) {
        uint32_t cap = e->capparked ? e->capparked * 2 : 4;
        rt_parked *p = realloc(e->parked, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&a->mu);
            return 0;
        }
        e->parked = p;
        e->capparked = cap;
    }
    rt_park_id id = ++e->next_park;
    e->parked[e->nparked++] = (rt_parked){id, s};
    pthread_mutex_unlock(&a->mu);
    STAT_ADD(ctx->rt, parked, 1);
    ctx->parked = 1;
    if (deadline_ms && deadline_ms != s->deadline) rt_slot_rearm(&ctx->rt->timer, s, deadline_ms);
    return id;
}

rt_status rt_ctx_complete(rt_ctx *ctx, rt_park_id id, rt_status st, const void *data, size_t len,
                          uint64_t blame)
{
    rt_actor *a = ctx->a;
    rt_slot *s = NULL;
    pthread_mutex_lock(&a->mu);
    rt_ext *e = a->ext;
    if (e) {
        for (uint32_t i = 0; i < e->nparked; i++) {
            if (e->parked[i].id == id) {
                s = e->parked[i].slot;
                e->parked[i] = e->parked[--e->nparked];
                break;
            }
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (!s) return RT_NOT_FOUND;
    STAT_SUB(ctx->rt, parked, 1);
    if (rt_slot_done(s)) {
        rt_slot_release(s);
        return RT_NOT_FOUND;
    }
    uint8_t *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy) {
            st = RT_RESOURCE_EXHAUSTED;
            len = 0;
        } else {
            memcpy(copy, data, len);
        }
    }
    s->held = (rt_reply){.status = st, .data = copy, .len = len, .blame = blame};
    s->hnext = ctx->out;
    ctx->out = s;
    return RT_OK;
}

void rt_ctx_mark_dirty(rt_ctx *ctx)
{
    ctx->dirty = 1;
}

const rt_key *rt_ctx_key(const rt_ctx *ctx)
{
    return &ctx->a->key;
}

void rt_ctx_note_fault(rt_ctx *ctx, const char *kind)
{
    ctx->fault_kind = kind;
}

/* ------------------------------------------------------------ events -- */

const char *rt_event_name(rt_event_kind kind)
{
    static const char *const names[RT_EV_COUNT_] = {
        [RT_EV_ACTOR_RESTART] = "actor_restart", [RT_EV_ACTOR_QUARANTINED] = "actor_quarantined",
        [RT_EV_HANDLER_FAULT] = "handler_fault", [RT_EV_ACTIVATION_FAILED] = "activation_failed",
        [RT_EV_COMMIT_FAILED] = "commit_failed",
    };
    return (unsigned)kind < RT_EV_COUNT_ ? names[kind] : "unknown";
}

/* Tells the configured hook. Never called with an actor or queue lock held. */
static void emit(rt_runtime *rt, rt_event_kind kind, const rt_key *key, rt_status st,
                 const char *fault, const char *reason, uint64_t retry_after_ms)
{
    if (!rt->cfg.on_event) return;
    rt_event ev = {.kind = kind,
                   .key = key,
                   .status = st,
                   .fault = fault,
                   .reason = reason ? reason : "",
                   .retry_after_ms = retry_after_ms};
    rt->cfg.on_event(rt->cfg.event_ud, &ev);
}

/* -------------------------------------------------------- supervision -- */

/* Counts one restart; quarantines when the intensity is exceeded. Owner
 * only. st and why are what the callers were told, for the event. */
static void count_restart(rt_runtime *rt, rt_actor *a, uint64_t now, rt_status st, const char *why)
{
    STAT_ADD(rt, restarts, 1);
    uint64_t quarantined_for = 0;
    pthread_mutex_lock(&a->mu);
    rt_ext *e = ext_of(a);
    if (e) {
        if (now - e->rs_window_start > rt->cfg.restart_window_ms) {
            if (e->q_until + rt->cfg.restart_window_ms < now)
                e->q_level = 0; /* healthy for a whole window: forget the back-off */
            e->rs_window_start = now;
            e->rs_count = 0;
        }
        if (++e->rs_count > rt->cfg.restart_max) {
            uint64_t backoff = rt->cfg.quarantine_base_ms;
            for (uint32_t i = 0; i < e->q_level && backoff < QUARANTINE_CAP_MS; i++)
                backoff *= 2;
            if (backoff > QUARANTINE_CAP_MS) backoff = QUARANTINE_CAP_MS;
            e->q_until = now + backoff;
            e->q_level++;
            e->rs_count = 0;
            e->rs_window_start = now;
            STAT_ADD(rt, quarantines, 1);
            quarantined_for = backoff;
        }
    }
    pthread_mutex_unlock(&a->mu);
    emit(rt, RT_EV_ACTOR_RESTART, &a->key, st, NULL, why, 0);
    if (quarantined_for)
        emit(rt, RT_EV_ACTOR_QUARANTINED, &a->key, RT_UNAVAILABLE, NULL,
             "restart intensity exceeded", quarantined_for);
}

/* life is read by senders under the lock; only the owner changes it. */
static void set_life(rt_actor *a, uint8_t life)
{
    pthread_mutex_lock(&a->mu);
    a->life = life;
    pthread_mutex_unlock(&a->mu);
}

static void destroy_instance(rt_runtime *rt, rt_actor *a)
{
    if (a->life == L_LIVE) {
        set_life(a, L_EMPTY);
        rt->beh.destroy(a->inst);
        a->inst = NULL;
        STAT_SUB(rt, resident, 1);
    }
}

/* Brings the instance up from the durable record. Owner only. On failure
 * *retry is the retry-after for UNAVAILABLE. */
static rt_status activate(rt_runtime *rt, rt_actor *a, uint32_t *retry)
{
    uint64_t now = rt_now_ms();
    *retry = 0;
    pthread_mutex_lock(&a->mu);
    rt_ext *e = a->ext;
    uint64_t q_until = e ? e->q_until : 0, dl_until = e ? e->dl_until : 0;
    pthread_mutex_unlock(&a->mu);
    if (q_until > now) {
        *retry = (uint32_t)(q_until - now);
        return RT_UNAVAILABLE;
    }
    if (dl_until > now) return RT_DATA_LOSS;

    uint8_t *rec = NULL;
    size_t rec_len = 0;
    uint64_t version = 0;
    if (rt->persist) {
        rt_status ls = rt->persist->load(rt->persist->ud, &a->key, &rec, &rec_len, &version);
        if (ls == RT_NOT_FOUND) {
            free(rec);
            rec = NULL;
            rec_len = 0;
            version = 0;
        } else if (ls != RT_OK) {
            free(rec);
            if (ls == RT_ABORTED) {
                /* Not this process's to activate (a cluster node without the
                 * wallet's lease): no fault, nothing to restart; the caller
                 * retries and is routed to the owner. */
                *retry = 1000;
                return RT_UNAVAILABLE;
            }
            STAT_ADD(rt, activation_failures, 1);
            if (ls == RT_DATA_LOSS) {
                /* Refuse for a while instead of re-reading a bad record on
                 * every request. */
                pthread_mutex_lock(&a->mu);
                if (ext_of(a)) a->ext->dl_until = now + rt->cfg.quarantine_base_ms;
                pthread_mutex_unlock(&a->mu);
                emit(rt, RT_EV_ACTIVATION_FAILED, &a->key, RT_DATA_LOSS, NULL,
                     "record failed authentication", 0);
                return RT_DATA_LOSS;
            }
            emit(rt, RT_EV_ACTIVATION_FAILED, &a->key, ls, NULL, "record could not be loaded", 0);
            count_restart(rt, a, now, RT_UNAVAILABLE, "activation failed");
            return RT_UNAVAILABLE;
        }
    }
    void *inst = NULL;
    int panicked;
    guard_args g = {.op = OP_CREATE,
                    .b = &rt->beh,
                    .key = &a->key,
                    .rec = rec,
                    .rec_len = rec_len,
                    .out_inst = &inst};
    rt_status st = guarded(&g, &panicked);
    free(rec);
    if (st == RT_DATA_LOSS && !panicked) {
        /* The record decoded but failed the behaviour's own checks: the same
         * refusal as a record failing authentication in load(). */
        STAT_ADD(rt, activation_failures, 1);
        pthread_mutex_lock(&a->mu);
        if (ext_of(a)) a->ext->dl_until = now + rt->cfg.quarantine_base_ms;
        pthread_mutex_unlock(&a->mu);
        emit(rt, RT_EV_ACTIVATION_FAILED, &a->key, RT_DATA_LOSS, NULL,
             "record refused by the behaviour", 0);
        return RT_DATA_LOSS;
    }
    if (st != RT_OK) {
        /* A half-built instance after a panic is unrecoverable state; the
         * behaviour must not hand one out, so there is nothing to destroy. */
        STAT_ADD(rt, activation_failures, 1);
        emit(rt, RT_EV_ACTIVATION_FAILED, &a->key, st, NULL,
             panicked ? g.why : "instance could not be built", 0);
        count_restart(rt, a, now, RT_UNAVAILABLE, "activation failed");
        return RT_UNAVAILABLE;
    }
    a->inst = inst;
    a->version = version;
    set_life(a, L_LIVE);
    STAT_ADD(rt, activations, 1);
    STAT_ADD(rt, resident, 1);
    return RT_OK;
}

#if CG_FAULT_INJECTION
/* Actor-level fault: the in-flight caller gets UNAVAILABLE, queued callers
 * CANCELLED, parked ABORTED; a fresh instance is built unless quarantined.
 * Owner only; rs->batch is the worker's not-yet-run part of the mailbox. */
static void actor_restart(rt_runtime *rt, rt_actor *a, rt_mnode *cur, run_state *rs)
{
    /* Counted, and the queue taken, before anyone is told: a caller told
     * UNAVAILABLE already sees the quarantine, and what it sends next goes
     * to the fresh instance instead of being cancelled with this queue. */
    count_restart(rt, a, rt_now_ms(), RT_UNAVAILABLE, "actor loop fault");
    pthread_mutex_lock(&a->mu);
    rt_mnode *q = a->mb_head;
    a->mb_head = a->mb_tail = NULL;
    a->mb_count = 0;
    pthread_mutex_unlock(&a->mu);
    rt_mnode *batch = rs->batch;
    rs->batch = NULL;
    rs->done = 0;
    if (cur) fail_msg(rt, cur, RT_UNAVAILABLE, "actor restarted", 0);
    fail_list(rt, batch, RT_CANCELLED, "actor restarted", 0);
    fail_list(rt, q, RT_CANCELLED, "actor restarted", 0);
    abort_parked(rt, a, RT_ABORTED, "actor restarted");
    destroy_instance(rt, a);
    uint32_t retry;
    activate(rt, a, &retry); /* a failure is counted there; next message retries */
}
#endif

/* Handler fault: only the current caller hears about it. Owner only. kind
 * and why describe it for the event (NULL: derived from st). */
static void handler_fault(rt_runtime *rt, rt_actor *a, rt_ctx *ctx, rt_status st, const char *kind,
                          const char *why)
{
    STAT_ADD(rt, handler_faults, 1);
    if (st == RT_DEADLINE_EXCEEDED) STAT_ADD(rt, handler_timeouts, 1);
    if (!kind) kind = ctx->fault_kind;
    if (!kind) kind = st == RT_DEADLINE_EXCEEDED ? "timeout" : "error";
    if (!why) why = st == RT_DEADLINE_EXCEEDED ? "handler ran out of time" : "handler panicked";
    emit(rt, RT_EV_HANDLER_FAULT, &a->key,
         st == RT_DEADLINE_EXCEEDED ? RT_DEADLINE_EXCEEDED : RT_INTERNAL, kind, why, 0);
    rt_slot *cur = ctx->m ? ctx->m->slot : NULL;
    int cur_in_out = 0;
    /* Replies produced by the faulting invocation came from corrupt state. */
    rt_slot *s = ctx->out;
    while (s) {
        rt_slot *next = s->hnext;
        s->hnext = NULL;
        free(s->held.data);
        s->held.data = NULL;
        if (s == cur) {
            cur_in_out = 1;
        } else {
            rt_slot_fail(&rt->timer, s, RT_ABORTED, "actor recovered from a fault", 0);
            rt_slot_release(s);
        }
        s = next;
    }
    ctx->out = NULL;
    if (cur) {
        if (st == RT_DEADLINE_EXCEEDED)
            rt_slot_fail(&rt->timer, cur, RT_DEADLINE_EXCEEDED, "handler ran out of time", 0);
        else
            rt_slot_fail(&rt->timer, cur, RT_INTERNAL, "handler panicked", 0);
        /* still parked: abort_parked() below owns the reference */
        if (cur_in_out || !ctx->parked) rt_slot_release(cur);
    }
    abort_parked(rt, a, RT_ABORTED, "actor recovered from a fault");
    destroy_instance(rt, a);
}

/* ------------------------------------------------------------ commit -- */

typedef struct rt_commit {
    rt_runtime *rt;
    rt_actor *a;
    uint64_t version;
    rt_slot *held;
} rt_commit;

static void commit_done(void *arg, rt_status st)
{
    rt_commit *c = arg;
    rt_runtime *rt = c->rt;
    rt_actor *a = c->a;
    /* Before the actor is handed back: until then this commit owns it. */
    if (st != RT_OK) emit(rt, RT_EV_COMMIT_FAILED, &a->key, st, NULL, "storage failure", 0);
    pthread_mutex_lock(&a->mu);
    if (st == RT_OK)
        a->version = c->version;
    else
        a->flags |= F_ROLLBACK;
    a->sched = S_IDLE;
    if (a->mb_head || (a->flags & (F_ROLLBACK | F_DROP))) schedule_locked(rt, a);
    pthread_mutex_unlock(&a->mu);
    if (st == RT_OK) {
        STAT_ADD(rt, commits, 1);
        deliver_out(rt, c->held, 1, RT_OK, NULL);
    } else {
        STAT_ADD(rt, commit_failures, 1);
        deliver_out(rt, c->held, 0, RT_UNAVAILABLE, "storage failure");
    }
    free(c);
    atomic_fetch_sub_explicit(&rt->commits_inflight, 1, memory_order_release);
}

/* ------------------------------------------------------------ worker -- */

/* Runs one invocation (handle or tick) on a live instance. Owner only. */
static int invoke(rt_runtime *rt, rt_actor *a, rt_mnode *m, run_state *rs)
{
    rt_ctx ctx = {.rt = rt, .a = a, .m = m->slot ? m : NULL};
    uint64_t now = coarse_ms();
    rt_msg msg = {.kind = (int)m->kind, .data = m->data, .len = m->len, .now_ms = now};
    guard_args g = {.b = &rt->beh, .inst = a->inst, .ctx = &ctx, .msg = &msg, .now = now};
    g.op = m->slot ? OP_HANDLE : OP_TICK;
    int panicked;
    rt_status st = guarded(&g, &panicked);
    if (!m->slot) free(m);
    if (st != RT_OK) {
        if (panicked)
            handler_fault(rt, a, &ctx, RT_INTERNAL, "panic", g.why);
        else
            handler_fault(rt, a, &ctx, st, NULL, NULL);
        return P_NEXT;
    }
    if (ctx.m && !ctx.replied && !ctx.parked)
        rt_ctx_reply(&ctx, RT_INTERNAL, "handler did not reply", 21, 0);
    if (ctx.dirty && rt->persist) {
        uint8_t *rec = NULL;
        size_t len = 0;
        guard_args sg = {
            .op = OP_SNAPSHOT, .b = &rt->beh, .inst = a->inst, .snap = &rec, .snap_len = &len};
        st = guarded(&sg, &panicked);
        if (st != RT_OK) {
            free(rec);
            handler_fault(rt, a, &ctx, RT_INTERNAL, "snapshot",
                          panicked ? sg.why : "snapshot failed");
            return P_NEXT;
        }
        rt_commit *c = malloc(sizeof *c);
        if (!c) {
            free(rec);
            handler_fault(rt, a, &ctx, RT_INTERNAL, "out_of_memory", "no memory for the commit");
            return P_NEXT;
        }
        *c = (rt_commit){.rt = rt, .a = a, .version = a->version + 1, .held = ctx.out};
        /* Hand the actor to the commit: put back what this worker took, and
         * never touch the actor after save() (done may run inline). */
        pthread_mutex_lock(&a->mu);
        if (rs->batch) {
            rt_mnode *t = rs->batch;
            while (t->next)
                t = t->next;
            t->next = a->mb_head;
            if (!a->mb_head) a->mb_tail = t;
            a->mb_head = rs->batch;
            rs->batch = NULL;
        }
        a->mb_count -= rs->done;
        rs->done = 0;
        a->sched = S_COMMIT;
        pthread_mutex_unlock(&a->mu);
        atomic_fetch_add_explicit(&rt->commits_inflight, 1, memory_order_relaxed);
        rt->persist->save(rt->persist->ud, &a->key, rec, len, c->version, commit_done, c);
        free(rec);
        return P_COMMIT;
    }
    deliver_out(rt, ctx.out, 1, RT_OK, NULL);
    return P_NEXT;
}

static int process(rt_runtime *rt, rt_actor *a, rt_mnode *m, run_state *rs)
{
    if (m->slot && rt_slot_done(m->slot)) { /* expired while queued */
        rt_slot_release(m->slot);
        return P_NEXT;
    }
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed)) {
        fail_msg(rt, m, RT_CANCELLED, "runtime stopping", 0);
        return P_NEXT;
    }
    if (!m->slot && a->life != L_LIVE) { /* ticks never activate */
        free(m);
        return P_NEXT;
    }
    if (a->life != L_LIVE) {
        uint32_t retry;
        rt_status st = activate(rt, a, &retry);
        if (st != RT_OK) {
            fail_msg(rt, m, st,
                     st == RT_DATA_LOSS ? "record failed authentication" : "actor unavailable",
                     retry);
            return P_NEXT;
        }
    }
#if CG_FAULT_INJECTION
    if (atomic_exchange_explicit(&a->fault, 0, memory_order_relaxed)) {
        actor_restart(rt, a, m, rs);
        return P_RESTARTED;
    }
#endif
    return invoke(rt, a, m, rs);
}

static void run_actor(rt_runtime *rt, rt_actor *a)
{
    pthread_mutex_lock(&a->mu);
    a->sched = S_RUNNING;
    int rollback = a->flags & F_ROLLBACK, drop = a->flags & F_DROP;
    a->flags &= (uint8_t) ~(F_ROLLBACK | F_DROP);
    pthread_mutex_unlock(&a->mu);
    if (rollback) {
        /* The last save failed: state after the durable record is gone. */
        abort_parked(rt, a, RT_ABORTED, "state rolled back");
        destroy_instance(rt, a);
    }
    if (drop) {
        abort_parked(rt, a, RT_ABORTED, "wallet activation ended (lease lost)");
        if (a->life == L_LIVE) STAT_ADD(rt, deactivations, 1);
        destroy_instance(rt, a);
    }
    unsigned handled = 0;
    run_state rs = {0};
    for (;;) {
        pthread_mutex_lock(&a->mu);
        a->mb_count -= rs.done;
        rs.done = 0;
        rt_mnode *batch = a->mb_head;
        /* Fairness only matters when another actor is waiting: otherwise
         * requeueing would just bounce this one between workers' caches. */
        if (handled >= BATCH && !atomic_load_explicit(&rt->rq_len, memory_order_relaxed))
            handled = 0;
        if (!batch || handled >= BATCH) {
            a->sched = S_IDLE;
            if (batch) /* fairness: let other actors run */
                schedule_locked(rt, a);
            pthread_mutex_unlock(&a->mu);
            break;
        }
        a->mb_head = a->mb_tail = NULL;
        pthread_mutex_unlock(&a->mu);
        rs.batch = batch;
        int r = P_NEXT;
        unsigned clients = 0;
        while (rs.batch) {
            rt_mnode *m = rs.batch;
            rs.batch = m->next;
            m->next = NULL;
            rs.done++;
            if (m->slot) clients++;
            r = process(rt, a, m, &rs);
            if (r != P_NEXT) break;
        }
        handled += clients;
        STAT_ADD(rt, messages, clients);
        if (r == P_COMMIT) return; /* the commit owns the actor now */
        /* P_RESTARTED already failed the batch and the mailbox */
    }
}

static void *worker_main(void *arg)
{
    rt_runtime *rt = arg;
    tl_is_worker = 1;
    rcu_ensure();
    for (;;) {
        /* Spin briefly before sleeping: a futex wake-up costs more than a
         * whole round trip on an idle machine. */
        for (int i = 0; i < 200 && !atomic_load_explicit(&rt->rq_len, memory_order_relaxed); i++)
            __builtin_ia32_pause();
        /* Then yield rather than burn: on a machine with as many workers as
         * cores, the thread we would starve is the one sending our work. */
        for (int i = 0; i < 40 && !atomic_load_explicit(&rt->rq_len, memory_order_relaxed); i++)
            sched_yield();
        pthread_mutex_lock(&rt->rq_mu);
        while (!rt->rq_head && !rt->rq_quit) {
            rt->rq_sleepers++;
            pthread_cond_wait(&rt->rq_cv, &rt->rq_mu);
            rt->rq_sleepers--;
        }
        rt_actor *a = rt->rq_head;
        if (!a) {
            pthread_mutex_unlock(&rt->rq_mu);
            break;
        }
        /* Take a fair share of the queue at once: one lock round trip per
         * batch instead of per actor when many actors have one message. */
        unsigned len = atomic_load_explicit(&rt->rq_len, memory_order_relaxed);
        unsigned take = len / rt->nworkers;
        take = take < 1 ? 1 : take > 16 ? 16 : take;
        rt_actor *last = a;
        unsigned took = 1;
        for (; took < take && last->rq_next; took++)
            last = last->rq_next;
        rt->rq_head = last->rq_next;
        if (!rt->rq_head) rt->rq_tail = NULL;
        last->rq_next = NULL;
        atomic_fetch_sub_explicit(&rt->rq_len, took, memory_order_relaxed);
        atomic_fetch_add_explicit(&rt->busy, 1, memory_order_relaxed);
        pthread_mutex_unlock(&rt->rq_mu);
        while (a) {
            rt_actor *next = a->rq_next; /* run_actor may queue a again */
            run_actor(rt, a);
            a = next;
        }
        atomic_fetch_sub_explicit(&rt->busy, 1, memory_order_release);
    }
    urcu_memb_unregister_thread();
    tl_rcu_registered = 0;
    return NULL;
}

/* -------------------------------------------------------------- send -- */

static void refuse(rt_reply_cb cb, void *arg, rt_status st, const char *why, uint32_t retry)
{
    rt_reply r;
    rt_reply_error(&r, st, why, retry);
    cb(arg, &r);
}

void rt_send(rt_runtime *rt, const rt_key *key, const void *data, size_t len, uint64_t deadline_ms,
             rt_reply_cb cb, void *arg)
{
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed)) {
        refuse(cb, arg, RT_UNAVAILABLE, "runtime stopping", 0);
        return;
    }
    uint64_t now = coarse_ms();
    if (deadline_ms && deadline_ms <= now + 10 && deadline_ms <= (now = rt_now_ms())) {
        refuse(cb, arg, RT_DEADLINE_EXCEEDED, "deadline exceeded", 0);
        return;
    }
    if (len > UINT32_MAX) {
        refuse(cb, arg, RT_INVALID_ARGUMENT, "message too large", 0);
        return;
    }
    size_t hdr = (sizeof(rt_slot) + sizeof(rt_mnode) + 15) & ~(size_t)15;
    rt_slot *s = rt_slot_alloc(&rt->blocks, hdr + len);
    if (!s) {
        refuse(cb, arg, RT_RESOURCE_EXHAUSTED, "out of memory", 0);
        return;
    }
    rt_mnode *m = (rt_mnode *)(s + 1);
    m->next = NULL;
    m->slot = s;
    m->kind = RT_MSG_CLIENT;
    m->len = (uint32_t)len;
    m->data = (uint8_t *)s + hdr;
    if (len) memcpy(m->data, data, len);
    rt_slot_init(s, deadline_ms, cb, arg);

    rcu_ensure();
    urcu_memb_read_lock();
    /* Checked again inside the read-side section: rt_stop waits for a grace
     * period after raising the flag, so anything enqueued here is seen by the
     * workers' drain. */
    if (atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
        urcu_memb_read_unlock();
        rt_slot_fail(NULL, s, RT_UNAVAILABLE, "runtime stopping", 0);
        rt_slot_release(s);
        return;
    }
    /* Armed before the actor lock is taken (keeps the two locks apart); if
     * the timer wins before the message is even queued, the worker skips it. */
    rt_slot_arm(&rt->timer, s);
    rt_actor *a = get_locked(rt, key, 1);
    if (!a) {
        urcu_memb_read_unlock();
        rt_slot_fail(&rt->timer, s, RT_RESOURCE_EXHAUSTED, "out of memory", 0);
        rt_slot_release(s);
        return;
    }
    rt_ext *e = a->ext;
    rt_status refuse_st = RT_OK;
    uint32_t retry = 0;
    const char *why = NULL;
    /* The supervisor's deadlines are on the precise clock: re-read it on
     * this (rare) path so the retry-after never overstates the back-off. */
    if (e && (e->q_until > now || e->dl_until > now)) now = rt_now_ms();
    if (e && e->q_until > now) {
        refuse_st = RT_UNAVAILABLE;
        retry = (uint32_t)(e->q_until - now);
        why = "actor quarantined";
    } else if (e && e->dl_until > now) {
        refuse_st = RT_DATA_LOSS;
        why = "record failed authentication";
    } else if (a->mb_count >= rt->cfg.mailbox_cap) {
        refuse_st = RT_RESOURCE_EXHAUSTED;
        retry = 1;
        why = "mailbox full";
        STAT_ADD(rt, mailbox_full, 1);
    }
    if (refuse_st != RT_OK) {
        pthread_mutex_unlock(&a->mu);
        urcu_memb_read_unlock();
        rt_slot_fail(&rt->timer, s, refuse_st, why, retry);
        rt_slot_release(s);
        return;
    }
    if (a->mb_tail)
        a->mb_tail->next = m;
    else
        a->mb_head = m;
    a->mb_tail = m;
    a->mb_count++;
    atomic_store_explicit(&a->last_active, now, memory_order_relaxed);
    int push = a->sched == S_IDLE;
    if (push) a->sched = S_QUEUED;
    pthread_mutex_unlock(&a->mu);
    /* QUEUED already keeps everyone else from pushing or evicting it, so the
     * run-queue lock need not nest in the actor lock on the hot path. */
    if (push) rq_push(rt, a);
    urcu_memb_read_unlock();
}

typedef struct call_wait {
    _Atomic int state; /* 0 waiting, 2 sleeping, 1 done */
    rt_reply *out;
} call_wait;

static void call_cb(void *arg, rt_reply *r)
{
    call_wait *w = arg;
    *w->out = *r;
    if (atomic_exchange_explicit(&w->state, 1, memory_order_release) == 2)
        syscall(SYS_futex, &w->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void rt_call(rt_runtime *rt, const rt_key *key, const void *data, size_t len, uint64_t deadline_ms,
             rt_reply *reply)
{
    if (tl_is_worker) { /* it would wait on the pool that must answer it */
        rt_reply_error(reply, RT_FAILED_PRECONDITION, "rt_call from a worker", 0);
        return;
    }
    call_wait w = {.out = reply};
    atomic_init(&w.state, 0);
    rt_send(rt, key, data, len, deadline_ms, call_cb, &w);
    /* The reply is usually a few microseconds away. Spin a little, then
     * yield: on a busy machine the worker that must answer may be waiting
     * for this very core, and a futex sleep/wake pair costs ~10 us. */
    for (int i = 0; i < 200; i++) {
        if (atomic_load_explicit(&w.state, memory_order_acquire) == 1) return;
        __builtin_ia32_pause();
    }
    for (int i = 0; i < 50; i++) {
        if (atomic_load_explicit(&w.state, memory_order_acquire) == 1) return;
        sched_yield();
    }
    int exp = 0;
    if (atomic_compare_exchange_strong_explicit(&w.state, &exp, 2, memory_order_acq_rel,
                                                memory_order_acquire)) {
        while (atomic_load_explicit(&w.state, memory_order_acquire) == 2)
            syscall(SYS_futex, &w.state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
    }
}

/* Enqueues a tick on a locked actor. */
static rt_status tick_locked(rt_runtime *rt, rt_actor *a)
{
    if (a->life != L_LIVE || a->sched == S_EVICTING) return RT_NOT_FOUND;
    if (a->mb_count >= rt->cfg.mailbox_cap) {
        STAT_ADD(rt, tick_drops, 1);
        return RT_RESOURCE_EXHAUSTED;
    }
    rt_mnode *m = malloc(sizeof *m);
    if (!m) {
        STAT_ADD(rt, tick_drops, 1);
        return RT_RESOURCE_EXHAUSTED;
    }
    *m = (rt_mnode){.kind = RT_MSG_TICK};
    if (a->mb_tail)
        a->mb_tail->next = m;
    else
        a->mb_head = m;
    a->mb_tail = m;
    a->mb_count++;
    schedule_locked(rt, a);
    return RT_OK;
}

rt_status rt_try_send_tick(rt_runtime *rt, const rt_key *key)
{
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed)) return RT_UNAVAILABLE;
    rcu_ensure();
    urcu_memb_read_lock();
    rt_status st = RT_NOT_FOUND;
    if (!atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
        rt_actor *a = get_locked(rt, key, 0);
        if (a) {
            st = tick_locked(rt, a);
            pthread_mutex_unlock(&a->mu);
        }
    }
    urcu_memb_read_unlock();
    return st;
}

static void tick_all(rt_runtime *rt)
{
    struct cds_lfht_iter it;
    rt_actor *a;
    urcu_memb_read_lock();
    if (!atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
        FOR_EACH_ACTOR(rt->ht, &it, a)
        {
            if (!visible(a)) continue;
            pthread_mutex_lock(&a->mu);
            if (a->life == L_LIVE) tick_locked(rt, a);
            pthread_mutex_unlock(&a->mu);
        }
    }
    urcu_memb_read_unlock();
}

void rt_inject_actor_fault(rt_runtime *rt, const rt_key *key)
{
#if CG_FAULT_INJECTION
    rcu_ensure();
    urcu_memb_read_lock();
    rt_actor *a = get_locked(rt, key, 1);
    if (a) {
        atomic_store_explicit(&a->fault, 1, memory_order_relaxed);
        pthread_mutex_unlock(&a->mu);
    }
    urcu_memb_read_unlock();
#else
    (void)rt;
    (void)key;
#endif
}

rt_status rt_deactivate(rt_runtime *rt, const rt_key *key)
{
    rcu_ensure();
    urcu_memb_read_lock();
    rt_actor *a = get_locked(rt, key, 0);
    if (!a) {
        urcu_memb_read_unlock();
        return RT_NOT_FOUND;
    }
    /* The owner does the work (only it may touch the instance): a running
     * or committing actor sees the flag when it is next run, an idle one is
     * queued for it now, an evicting one loses its instance anyway. */
    a->flags |= F_DROP;
    schedule_locked(rt, a);
    pthread_mutex_unlock(&a->mu);
    urcu_memb_read_unlock();
    return RT_OK;
}

/* ---------------------------------------------------------- eviction -- */

/* Under a->mu: may this actor be evicted now (ignoring idleness)? */
static int evictable_locked(rt_runtime *rt, rt_actor *a, uint64_t now)
{
    if (a->sched != S_IDLE || a->life == L_DEAD || a->mb_count) return 0;
    if (prune_parked_locked(rt, a)) return 0; /* a rendezvous is waiting on this instance */
    if (a->ext && (a->ext->q_until > now || a->ext->dl_until > now))
        return 0; /* forgetting it would reset the back-off */
    if (atomic_load_explicit(&a->fault, memory_order_relaxed)) return 0;
    return 1;
}

typedef struct cand {
    uint64_t last;
    rt_actor *a;
} cand;

static int cand_cmp(const void *x, const void *y)
{
    const cand *p = x, *q = y;
    return p->last < q->last ? -1 : p->last > q->last;
}

unsigned rt_evict_sweep(rt_runtime *rt)
{
    rcu_ensure();
    pthread_mutex_lock(&rt->sweep_mu);
    uint64_t now = rt_now_ms();
    rt_actor *victims = NULL;
    cand *cands = NULL;
    size_t nc = 0, capc = 0;
    int lru = rt->cfg.max_resident != 0;
    struct cds_lfht_iter it;
    rt_actor *a;
    urcu_memb_read_lock();
    FOR_EACH_ACTOR(rt->ht, &it, a)
    {
        if (!visible(a)) continue;
        if (pthread_mutex_trylock(&a->mu)) continue; /* busy right now: not idle */
        if (evictable_locked(rt, a, now)) {
            uint64_t last = atomic_load_explicit(&a->last_active, memory_order_relaxed);
            if (last <= now && now - last >= rt->cfg.idle_threshold_ms) {
                a->sched = S_EVICTING;
                a->rq_next = victims;
                victims = a;
            } else if (lru && a->life == L_LIVE) {
                if (nc == capc) {
                    size_t cap = capc ? capc * 2 : 256;
                    cand *p = realloc(cands, cap * sizeof *p);
                    if (p) {
                        cands = p;
                        capc = cap;
                    }
                }
                if (nc < capc) cands[nc++] = (cand){last, a};
            }
        }
        pthread_mutex_unlock(&a->mu);
    }
    if (lru && nc) {
        uint64_t resident = atomic_load_explicit(&rt->st.resident, memory_order_relaxed);
        unsigned live_victims = 0;
        for (rt_actor *v = victims; v; v = v->rq_next)
            live_victims += v->life == L_LIVE;
        resident = resident > live_victims ? resident - live_victims : 0;
        if (resident > rt->cfg.max_resident) {
            size_t excess = resident - rt->cfg.max_resident;
            qsort(cands, nc, sizeof *cands, cand_cmp);
            for (size_t i = 0; i < nc && excess; i++) {
                a = cands[i].a;
                /* Still in the registry: we never left the read-side section. */
                if (pthread_mutex_trylock(&a->mu)) continue;
                if (evictable_locked(rt, a, now) && a->life == L_LIVE) {
                    a->sched = S_EVICTING;
                    a->rq_next = victims;
                    victims = a;
                    excess--;
                }
                pthread_mutex_unlock(&a->mu);
            }
        }
    }
    free(cands);
    urcu_memb_read_unlock();

    unsigned evicted = 0;
    rt_actor *dead = NULL;
    while (victims) {
        a = victims;
        victims = a->rq_next;
        /* EVICTING keeps senders from scheduling it and the actor from being
         * removed by anyone else, so the instance is ours to destroy. */
        int had = a->life == L_LIVE;
        if (had) STAT_ADD(rt, evictions, 1); /* counted before resident drops */
        destroy_instance(rt, a);
        urcu_memb_read_lock();
        pthread_mutex_lock(&a->mu);
        if (a->mb_head) {
            /* Mail arrived while the instance was going away: the next
             * activation serves it. */
            a->sched = S_IDLE;
            schedule_locked(rt, a);
            pthread_mutex_unlock(&a->mu);
        } else {
            a->life = L_DEAD;
            cds_lfht_del(rt->ht, &a->node);
            pthread_mutex_unlock(&a->mu);
            atomic_store_explicit(&a->published, 0, memory_order_release);
            a->rq_next = dead;
            dead = a;
        }
        urcu_memb_read_unlock();
        evicted += (unsigned)had;
    }
    if (dead) {
        /* One grace period for the whole sweep instead of a call_rcu per
         * actor: a sweep of 100k idle actors is one list walk. */
        urcu_memb_synchronize_rcu();
        while (dead) {
            a = dead;
            dead = a->rq_next;
            actor_free_rcu(&a->rcu);
        }
    }
    pthread_mutex_unlock(&rt->sweep_mu);
    return evicted;
}

/* ------------------------------------------------------ housekeeping -- */

static void *hk_main(void *arg)
{
    rt_runtime *rt = arg;
    rcu_ensure();
    uint64_t next_sweep = rt_now_ms() + rt->cfg.evict_quantum_ms;
    uint64_t next_tick = rt->cfg.tick_interval_ms == UINT64_MAX
                             ? UINT64_MAX
                             : rt_now_ms() + rt->cfg.tick_interval_ms;
    pthread_mutex_lock(&rt->hk_mu);
    while (!rt->hk_quit) {
        uint64_t now = rt_now_ms();
        if (now >= next_sweep || now >= next_tick) {
            pthread_mutex_unlock(&rt->hk_mu);
            if (now >= next_tick) {
                tick_all(rt);
                next_tick = now + rt->cfg.tick_interval_ms;
            }
            if (now >= next_sweep) {
                rt_evict_sweep(rt);
                next_sweep = rt_now_ms() + rt->cfg.evict_quantum_ms;
            }
            pthread_mutex_lock(&rt->hk_mu);
            continue;
        }
        uint64_t until = next_sweep < next_tick ? next_sweep : next_tick;
        uint64_t wait = until - now;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(wait / 1000);
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&rt->hk_cv, &rt->hk_mu, &ts);
    }
    pthread_mutex_unlock(&rt->hk_mu);
    urcu_memb_unregister_thread();
    tl_rcu_registered = 0;
    return NULL;
}

/* ---------------------------------------------------------- lifecycle -- */

rt_status rt_start(const rt_config *cfg, rt_runtime **out)
{
    *out = NULL;
    if (!cfg || !cfg->behaviour || !cfg->behaviour->create || !cfg->behaviour->handle ||
        !cfg->behaviour->destroy || (cfg->persist && !cfg->behaviour->snapshot))
        return RT_INVALID_ARGUMENT;
    rt_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) return RT_RESOURCE_EXHAUSTED;
    rt->cfg = *cfg;
    rt_config *c = &rt->cfg;
    if (!c->workers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = n > 0 ? (unsigned)n : 1;
    }
    if (!c->mailbox_cap) c->mailbox_cap = 256;
    if (!c->idle_threshold_ms) c->idle_threshold_ms = 30u * 60u * 1000u;
    if (!c->evict_quantum_ms) c->evict_quantum_ms = 60u * 1000u;
    if (!c->tick_interval_ms) c->tick_interval_ms = 60u * 1000u;
    if (!c->restart_max) c->restart_max = 5;
    if (!c->restart_window_ms) c->restart_window_ms = 10u * 1000u;
    if (!c->quarantine_base_ms) c->quarantine_base_ms = 1000u;
    rt->beh = *cfg->behaviour;
    rt->persist = cfg->persist;
    if (getrandom(&rt->seed, sizeof rt->seed, GRND_NONBLOCK) != sizeof rt->seed)
        rt->seed = rt_now_ms() ^ (uint64_t)(uintptr_t)rt;

    rcu_ensure();
    /* liburcu's accounting grows the table only once it holds 8 entries a
     * bucket, and every lookup walks its bucket's chain through cold actors:
     * start (and stay) at 128k buckets, 2 MiB, so a population of 100k
     * resident wallets is looked up in about one node. */
    rt->ht = cds_lfht_new_flavor(131072, 131072, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                                 &urcu_memb_flavor, NULL);
    if (!rt->ht) {
        free(rt);
        return RT_RESOURCE_EXHAUSTED;
    }
    rt_mutex_init_hot(&rt->rq_mu);
    pthread_cond_init(&rt->rq_cv, NULL);
    pthread_mutex_init(&rt->hk_mu, NULL);
    rt_cond_init_mono(&rt->hk_cv);
    pthread_mutex_init(&rt->sweep_mu, NULL);
    rt_blkpool_init(&rt->blocks);
    if (rt_timer_start(&rt->timer) != 0) goto fail_timer;
    rt->workers = calloc(c->workers, sizeof *rt->workers);
    if (!rt->workers) goto fail_workers;
    for (; rt->nworkers < c->workers; rt->nworkers++)
        if (pthread_create(&rt->workers[rt->nworkers], NULL, worker_main, rt) != 0)
            goto fail_workers;
    if (pthread_create(&rt->hk, NULL, hk_main, rt) != 0) goto fail_workers;
    *out = rt;
    return RT_OK;

fail_workers:
    pthread_mutex_lock(&rt->rq_mu);
    rt->rq_quit = 1;
    pthread_cond_broadcast(&rt->rq_cv);
    pthread_mutex_unlock(&rt->rq_mu);
    for (unsigned i = 0; i < rt->nworkers; i++)
        pthread_join(rt->workers[i], NULL);
    free(rt->workers);
    rt_timer_stop(&rt->timer);
fail_timer:
    rt_blkpool_destroy(&rt->blocks);
    cds_lfht_destroy(rt->ht, NULL);
    free(rt);
    return RT_RESOURCE_EXHAUSTED;
}

void rt_stop(rt_runtime *rt)
{
    if (!rt) return;
    rcu_ensure();
    atomic_store_explicit(&rt->stopping, 1, memory_order_release);
    pthread_mutex_lock(&rt->hk_mu);
    rt->hk_quit = 1;
    pthread_cond_signal(&rt->hk_cv);
    pthread_mutex_unlock(&rt->hk_mu);
    pthread_join(rt->hk, NULL);
    /* Every sender that saw stopping == 0 has left its read-side section
     * after this, so its message is in a mailbox the drain below sees. */
    urcu_memb_synchronize_rcu();

    /* Drain: workers fail queued mail with CANCELLED; wait for running
     * actors and in-flight commits (whose replies are still owed). */
    for (;;) {
        pthread_mutex_lock(&rt->rq_mu);
        int quiet = !rt->rq_head && atomic_load_explicit(&rt->busy, memory_order_acquire) == 0 &&
                    atomic_load_explicit(&rt->commits_inflight, memory_order_acquire) == 0;
        pthread_mutex_unlock(&rt->rq_mu);
        if (quiet) break;
        struct timespec d = {0, 1000000L};
        nanosleep(&d, NULL);
    }
    pthread_mutex_lock(&rt->rq_mu);
    rt->rq_quit = 1;
    pthread_cond_broadcast(&rt->rq_cv);
    pthread_mutex_unlock(&rt->rq_mu);
    for (unsigned i = 0; i < rt->nworkers; i++)
        pthread_join(rt->workers[i], NULL);
    free(rt->workers);

    /* Only this thread touches actors now. */
    struct cds_lfht_iter it;
    rt_actor *a;
    urcu_memb_read_lock();
    FOR_EACH_ACTOR(rt->ht, &it, a)
    {
        if (!visible(a)) continue;
        pthread_mutex_lock(&a->mu);
        rt_mnode *q = a->mb_head;
        a->mb_head = a->mb_tail = NULL;
        a->mb_count = 0;
        pthread_mutex_unlock(&a->mu);
        fail_list(rt, q, RT_CANCELLED, "runtime stopping", 0);
        abort_parked(rt, a, RT_ABORTED, "runtime stopping");
        destroy_instance(rt, a);
        a->life = L_DEAD;
        cds_lfht_del(rt->ht, &a->node);
        retire(a);
    }
    urcu_memb_read_unlock();
    urcu_memb_barrier();
    rt_timer_stop(&rt->timer);
    rt_blkpool_destroy(&rt->blocks); /* every slot is released by now */
    cds_lfht_destroy(rt->ht, NULL);
    pthread_mutex_destroy(&rt->rq_mu);
    pthread_cond_destroy(&rt->rq_cv);
    pthread_mutex_destroy(&rt->hk_mu);
    pthread_cond_destroy(&rt->hk_cv);
    pthread_mutex_destroy(&rt->sweep_mu);
    free(rt);
}

void rt_get_stats(rt_runtime *rt, rt_stats *o)
{
#define G(f) o->f = atomic_load_explicit(&rt->st.f, memory_order_relaxed)
    G(resident);
    G(activations);
    G(activation_failures);
    G(evictions);
    G(restarts);
    G(quarantines);
    G(handler_faults);
    G(handler_timeouts);
    G(mailbox_full);
    G(tick_drops);
    G(messages);
    G(commits);
    G(commit_failures);
    G(parked);
    G(deactivations);
#undef G
}
