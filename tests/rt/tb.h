/*
 * tb.h — the runtime's test behaviour and an in-memory rt_persist.
 *
 * A real rt_behaviour (not a mock of the runtime): a durable counter per
 * key plus commands that panic, fail, park and complete, so each runtime
 * guarantee can be provoked. It checks "at most one live activation per key"
 * itself with an atomic counter per key.
 */
#ifndef TB_H
#define TB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt.h"

#define TB_MAX_KEYS 16384

enum {
    TB_INCR = 'I',             /* count++, durable; replies the new count */
    TB_GET = 'G',              /* replies count */
    TB_NOOP = 'N',             /* replies nothing */
    TB_PANIC = 'P',            /* rt_panic() */
    TB_REPLY_PANIC = 'Q',      /* replies, then panics: the reply must not escape */
    TB_FAIL = 'E',             /* handle returns INTERNAL */
    TB_FAIL_NOTED = 'F',       /* names the fault ("tb_fault"), returns INTERNAL */
    TB_SLOW = 'T',             /* handle returns DEADLINE_EXCEEDED (runaway guest) */
    TB_SLEEP = 'S',            /* sleeps data[1] ms, replies */
    TB_PARK = 'W',             /* parks; 8-byte absolute deadline follows (0 = request's) */
    TB_COMPLETE = 'C',         /* completes every parked reply with its park id */
    TB_INCR_PARK = 'J',        /* count++ durable, parks */
    TB_PANIC_AFTER_INCR = 'K', /* count++ in memory, then panics */
    TB_NOREPLY = 'X',          /* returns OK without replying */
    TB_COMPLETE_DIRTY = 'D',   /* count++ durable and completes every parked reply */
    TB_COMPLETE_PANIC = 'R',   /* completes every parked reply with OK, then panics */
};

typedef struct tb_inst {
    unsigned idx;
    uint64_t count;
    rt_park_id parked[64];
    unsigned nparked;
} tb_inst;

typedef struct tb_world {
    _Atomic uint64_t creates, destroys, ticks, handled;
    _Atomic int live[TB_MAX_KEYS];
    _Atomic int double_live;     /* set if two activations of one key ever coexisted */
    _Atomic int fail_create_idx; /* -1 none */
    _Atomic int panic_create_idx;
} tb_world;

static tb_world tbw;

static inline void tb_reset(void)
{
    memset(&tbw, 0, sizeof tbw);
    atomic_store(&tbw.fail_create_idx, -1);
    atomic_store(&tbw.panic_create_idx, -1);
}

static inline rt_key tb_key(unsigned idx)
{
    rt_key k;
    memset(&k, 0, sizeof k);
    k.b[0] = 0xA5;
    memcpy(k.b + 1, &idx, sizeof idx);
    return k;
}

static inline unsigned tb_idx(const rt_key *k)
{
    unsigned idx;
    memcpy(&idx, k->b + 1, sizeof idx);
    return idx;
}

static inline void tb_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline rt_status tb_create(void *cfg, const rt_key *key, const uint8_t *rec, size_t rec_len,
                                  void **inst)
{
    (void)cfg;
    unsigned idx = tb_idx(key);
    if ((int)idx == atomic_load(&tbw.fail_create_idx)) return RT_INTERNAL;
    if ((int)idx == atomic_load(&tbw.panic_create_idx)) rt_panic("create panics");
    if (rec && rec_len != 8) return RT_DATA_LOSS;
    tb_inst *t = calloc(1, sizeof *t);
    if (!t) return RT_RESOURCE_EXHAUSTED;
    t->idx = idx;
    if (rec) memcpy(&t->count, rec, 8);
    if (idx < TB_MAX_KEYS && atomic_fetch_add(&tbw.live[idx], 1) != 0)
        atomic_store(&tbw.double_live, 1);
    atomic_fetch_add(&tbw.creates, 1);
    *inst = t;
    return RT_OK;
}

static inline void tb_destroy(void *inst)
{
    tb_inst *t = inst;
    if (t->idx < TB_MAX_KEYS) atomic_fetch_sub(&tbw.live[t->idx], 1);
    atomic_fetch_add(&tbw.destroys, 1);
    free(t);
}

static inline rt_status tb_handle(void *inst, rt_ctx *ctx, const rt_msg *msg)
{
    tb_inst *t = inst;
    if (t->idx < TB_MAX_KEYS && atomic_load(&tbw.live[t->idx]) != 1)
        atomic_store(&tbw.double_live, 1);
    atomic_fetch_add(&tbw.handled, 1);
    uint8_t op = msg->len ? msg->data[0] : TB_NOOP;
    switch (op) {
    case TB_INCR:
        t->count++;
        rt_ctx_mark_dirty(ctx);
        rt_ctx_reply(ctx, RT_OK, &t->count, 8, 0);
        return RT_OK;
    case TB_GET:
        rt_ctx_reply(ctx, RT_OK, &t->count, 8, 0);
        return RT_OK;
    case TB_PANIC:
        rt_panic("test panic");
    case TB_REPLY_PANIC:
        rt_ctx_reply(ctx, RT_OK, "leaked", 6, 0);
        rt_panic("test panic after reply");
    case TB_PANIC_AFTER_INCR:
        t->count++;
        rt_ctx_mark_dirty(ctx);
        rt_panic("test panic after incr");
    case TB_FAIL:
        return RT_INTERNAL;
    case TB_FAIL_NOTED:
        rt_ctx_note_fault(ctx, "tb_fault");
        return RT_INTERNAL;
    case TB_SLOW:
        return RT_DEADLINE_EXCEEDED;
    case TB_SLEEP:
        tb_sleep_ms(msg->len > 1 ? msg->data[1] : 10);
        rt_ctx_reply(ctx, RT_OK, NULL, 0, 0);
        return RT_OK;
    case TB_INCR_PARK:
        t->count++;
        rt_ctx_mark_dirty(ctx);
        /* fall through */
    case TB_PARK: {
        uint64_t dl = 0;
        if (op == TB_PARK && msg->len >= 9) memcpy(&dl, msg->data + 1, 8);
        rt_park_id id = rt_ctx_park(ctx, dl);
        if (!id || t->nparked == 64) return RT_INTERNAL;
        t->parked[t->nparked++] = id;
        return RT_OK;
    }
    case TB_COMPLETE_DIRTY:
        t->count++;
        rt_ctx_mark_dirty(ctx);
        /* fall through */
    case TB_COMPLETE: {
        uint64_t done = 0;
        for (unsigned i = 0; i < t->nparked; i++)
            if (rt_ctx_complete(ctx, t->parked[i], RT_OK, &t->parked[i], 8, 0) == RT_OK) done++;
        t->nparked = 0;
        rt_ctx_reply(ctx, RT_OK, &done, 8, 0);
        return RT_OK;
    }
    case TB_COMPLETE_PANIC:
        for (unsigned i = 0; i < t->nparked; i++)
            rt_ctx_complete(ctx, t->parked[i], RT_OK, &t->parked[i], 8, 0);
        t->nparked = 0;
        rt_panic("test panic after completing parked replies");
    case TB_NOREPLY:
        return RT_OK;
    default:
        rt_ctx_reply(ctx, RT_OK, NULL, 0, 0);
        return RT_OK;
    }
}

static inline rt_status tb_snapshot(void *inst, uint8_t **out, size_t *out_len)
{
    tb_inst *t = inst;
    *out = malloc(8);
    if (!*out) return RT_RESOURCE_EXHAUSTED;
    memcpy(*out, &t->count, 8);
    *out_len = 8;
    return RT_OK;
}

static inline rt_status tb_tick(void *inst, rt_ctx *ctx, uint64_t now_ms)
{
    (void)inst;
    (void)ctx;
    (void)now_ms;
    atomic_fetch_add(&tbw.ticks, 1);
    return RT_OK;
}

static const rt_behaviour tb_behaviour = {
    .create = tb_create,
    .handle = tb_handle,
    .snapshot = tb_snapshot,
    .tick = tb_tick,
    .destroy = tb_destroy,
};

/* ---------------------------------------------- in-memory persistence -- */

typedef struct tb_save {
    struct tb_save *next;
    unsigned idx;
    uint64_t rec, version;
    void (*done)(void *, rt_status);
    void *arg;
} tb_save;

typedef struct tb_store {
    pthread_mutex_t mu;
    uint64_t rec[TB_MAX_KEYS];
    uint64_t version[TB_MAX_KEYS];
    uint8_t corrupt[TB_MAX_KEYS];
    uint8_t short_rec[TB_MAX_KEYS]; /* load hands out a record create() rejects */
    uint8_t not_here[TB_MAX_KEYS];  /* load says ABORTED: another node's wallet */
    int defer;                      /* saves wait for tb_store_release() */
    int fail;                       /* saves fail with UNAVAILABLE */
    unsigned fail_per_mille;        /* ... or this share of them, at random */
    unsigned rng;
    tb_save *pending;
    uint64_t loads, saves, stale;
} tb_store;

static tb_store tbs;

static inline void tb_store_reset(void)
{
    pthread_mutex_destroy(&tbs.mu);
    memset(&tbs, 0, sizeof tbs);
    pthread_mutex_init(&tbs.mu, NULL);
}

static inline rt_status tb_load(void *ud, const rt_key *key, uint8_t **rec, size_t *len,
                                uint64_t *version)
{
    tb_store *s = ud;
    unsigned idx = tb_idx(key);
    if (idx >= TB_MAX_KEYS) return RT_NOT_FOUND;
    pthread_mutex_lock(&s->mu);
    s->loads++;
    rt_status st = RT_OK;
    if (s->not_here[idx]) {
        st = RT_ABORTED;
    } else if (s->corrupt[idx]) {
        st = RT_DATA_LOSS;
    } else if (!s->version[idx]) {
        st = RT_NOT_FOUND;
        *version = 0;
    } else {
        *rec = malloc(8);
        memcpy(*rec, &s->rec[idx], 8);
        *len = s->short_rec[idx] ? 7 : 8;
        *version = s->version[idx];
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static inline rt_status tb_apply(tb_store *s, unsigned idx, uint64_t rec, uint64_t version)
{
    if (s->fail) return RT_UNAVAILABLE;
    if (s->fail_per_mille) {
        s->rng = s->rng * 1103515245u + 12345u;
        if ((s->rng >> 8) % 1000 < s->fail_per_mille) return RT_UNAVAILABLE;
    }
    if (version != s->version[idx] + 1) {
        s->stale++;
        return RT_FAILED_PRECONDITION;
    }
    s->rec[idx] = rec;
    s->version[idx] = version;
    s->saves++;
    return RT_OK;
}

static inline void tb_save_fn(void *ud, const rt_key *key, const uint8_t *rec, size_t len,
                              uint64_t version, void (*done)(void *, rt_status), void *arg)
{
    tb_store *s = ud;
    unsigned idx = tb_idx(key);
    uint64_t v = 0;
    if (len == 8) memcpy(&v, rec, 8);
    pthread_mutex_lock(&s->mu);
    if (s->defer) {
        tb_save *p = malloc(sizeof *p);
        *p = (tb_save){
            .next = s->pending, .idx = idx, .rec = v, .version = version, .done = done, .arg = arg};
        s->pending = p;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    rt_status st = tb_apply(s, idx, v, version);
    pthread_mutex_unlock(&s->mu);
    done(arg, st);
}

/* Completes deferred saves; returns how many. */
static inline unsigned tb_store_release(void)
{
    pthread_mutex_lock(&tbs.mu);
    tb_save *p = tbs.pending;
    tbs.pending = NULL;
    rt_status st[64];
    tb_save *list[64];
    unsigned n = 0;
    while (p && n < 64) {
        list[n] = p;
        st[n] = tb_apply(&tbs, p->idx, p->rec, p->version);
        p = p->next;
        n++;
    }
    tbs.pending = p;
    pthread_mutex_unlock(&tbs.mu);
    for (unsigned i = 0; i < n; i++) {
        list[i]->done(list[i]->arg, st[i]);
        free(list[i]);
    }
    return n;
}

static inline unsigned tb_store_npending(void)
{
    pthread_mutex_lock(&tbs.mu);
    unsigned n = 0;
    for (tb_save *p = tbs.pending; p; p = p->next)
        n++;
    pthread_mutex_unlock(&tbs.mu);
    return n;
}

#define TB_STORE_GET(field)                                                                        \
    ({                                                                                             \
        pthread_mutex_lock(&tbs.mu);                                                               \
        __typeof__(tbs.field) v_ = tbs.field;                                                      \
        pthread_mutex_unlock(&tbs.mu);                                                             \
        v_;                                                                                        \
    })
#define TB_STORE_SET(field, val)                                                                   \
    do {                                                                                           \
        pthread_mutex_lock(&tbs.mu);                                                               \
        tbs.field = (val);                                                                         \
        pthread_mutex_unlock(&tbs.mu);                                                             \
    } while (0)

static const rt_persist tb_persist = {.load = tb_load, .save = tb_save_fn, .ud = &tbs};

/* ------------------------------------------------------------ helpers -- */

/* Polls cond for up to 10 s: tests wait for events, they never time them. */
#define TB_WAIT(cond)                                                                              \
    do {                                                                                           \
        for (int tb_i_ = 0; tb_i_ < 10000 && !(cond); tb_i_++)                                     \
            tb_sleep_ms(1);                                                                        \
    } while (0)

/* An async reply recorder. */
typedef struct tb_rec {
    _Atomic int calls;
    _Atomic int status;
    uint64_t value;
    uint32_t retry_after_ms;
} tb_rec;

static inline void tb_rec_cb(void *arg, rt_reply *r)
{
    tb_rec *c = arg;
    if (r->status == RT_OK && r->len == 8) memcpy(&c->value, r->data, 8);
    c->retry_after_ms = r->retry_after_ms;
    atomic_store(&c->status, (int)r->status);
    atomic_fetch_add(&c->calls, 1);
    rt_reply_free(r);
}

static inline rt_status tb_call(rt_runtime *rt, unsigned idx, uint8_t op, uint64_t *value)
{
    rt_key k = tb_key(idx);
    rt_reply r;
    rt_call(rt, &k, &op, 1, rt_now_ms() + 10000, &r);
    if (value && r.status == RT_OK && r.len == 8) memcpy(value, r.data, 8);
    rt_status st = r.status;
    rt_reply_free(&r);
    return st;
}

#endif
