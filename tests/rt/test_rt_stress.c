/*
 * test_rt_stress.c — eviction, faults and dispatch racing each other.
 *
 * 8 client threads x 10k keys x random messages (durable increments, reads,
 * panics, parked replies and their completions, injected actor-loop faults)
 * against a runtime that evicts after 1 ms. Checks, from the outside: every
 * request gets exactly one reply; no accepted increment is lost (the durable
 * count per key matches the acknowledged increments); and, from inside the
 * behaviour, never two live activations of one key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sched.h>
#include <stdio.h>

#include <cmocka.h>

#include "cg_config.h"
#include "tb.h"

#define THREADS 8
#define KEYS 10000
#define WINDOW 64

#if CG_SANITIZE_THREAD || CG_SANITIZE_ADDRESS
#define OPS_PER_THREAD 30000
#else
#define OPS_PER_THREAD 60000
#endif

typedef struct req {
    _Atomic int calls;
    _Atomic int status;
    unsigned key;
    uint8_t op;
    _Atomic unsigned *outstanding;
} req;

static _Atomic uint64_t incr_ok[KEYS];
static _Atomic uint64_t incr_unsure[KEYS]; /* deadline passed: may or may not have applied */
static _Atomic uint64_t replies, extra_replies, accepted_lost;
static _Atomic uint64_t by_status[RT_STATUS_COUNT_];

static void req_cb(void *arg, rt_reply *r)
{
    req *q = arg;
    if (atomic_fetch_add(&q->calls, 1) != 0) {
        atomic_fetch_add(&extra_replies, 1);
    } else {
        atomic_store(&q->status, (int)r->status);
        if (r->status < RT_STATUS_COUNT_) atomic_fetch_add(&by_status[r->status], 1);
        if (q->op == TB_INCR) {
            if (r->status == RT_OK)
                atomic_fetch_add(&incr_ok[q->key], 1);
            else if (r->status == RT_DEADLINE_EXCEEDED)
                atomic_fetch_add(&incr_unsure[q->key], 1);
        }
        atomic_fetch_add(&replies, 1);
        atomic_fetch_sub(q->outstanding, 1);
    }
    rt_reply_free(r);
}

typedef struct client {
    rt_runtime *rt;
    unsigned seed;
    uint64_t sent;
} client;

static unsigned rnd(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void *client_main(void *arg)
{
    client *c = arg;
    req *win = calloc(WINDOW, sizeof *win);
    _Atomic unsigned outstanding = 0;
    for (unsigned done = 0; done < OPS_PER_THREAD; done += WINDOW) {
        atomic_store(&outstanding, WINDOW);
        for (unsigned i = 0; i < WINDOW; i++) {
            req *q = &win[i];
            atomic_store(&q->calls, 0);
            atomic_store(&q->status, -1);
            q->outstanding = &outstanding;
            q->key = rnd(&c->seed) % KEYS;
            unsigned p = rnd(&c->seed) % 100;
            uint8_t msg[9];
            size_t len = 1;
            if (p < 50) {
                q->op = TB_INCR;
            } else if (p < 80) {
                q->op = TB_GET;
            } else if (p < 83) {
                q->op = TB_PANIC;
            } else if (p < 88) {
                q->op = TB_PARK;
                uint64_t dl = rt_now_ms() + 2;
                memcpy(msg + 1, &dl, 8);
                len = 9;
            } else if (p < 94) {
                q->op = TB_COMPLETE;
            } else {
                q->op = TB_NOOP;
            }
            msg[0] = q->op;
            rt_key k = tb_key(q->key);
            if (p >= 98) /* an actor-loop fault racing this very message */
                rt_inject_actor_fault(c->rt, &k);
            rt_send(c->rt, &k, msg, len, rt_now_ms() + 5000, req_cb, q);
            c->sent++;
        }
        /* Every request is answered: by the actor, a fault path, the timer. */
        for (int spin = 0; atomic_load(&outstanding) && spin < 200000; spin++)
            sched_yield();
        while (atomic_load(&outstanding))
            tb_sleep_ms(1);
        for (unsigned i = 0; i < WINDOW; i++)
            if (atomic_load(&win[i].calls) != 1 || atomic_load(&win[i].status) < 0)
                atomic_fetch_add(&accepted_lost, 1);
    }
    tb_sleep_ms(2); /* late duplicate replies would show up here */
    for (unsigned i = 0; i < WINDOW; i++)
        if (atomic_load(&win[i].calls) != 1) atomic_fetch_add(&extra_replies, 1);
    free(win);
    return NULL;
}

static _Atomic int committer_stop;

/* The store's committer: acknowledges saves from its own thread, later than
 * the worker that asked, like a group commit. */
static void *committer_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&committer_stop)) {
        if (!tb_store_release()) sched_yield();
    }
    while (tb_store_release()) {
    }
    return NULL;
}

static void run_stress(int async_store)
{
    tb_reset();
    tb_store_reset();
    memset(incr_ok, 0, sizeof incr_ok);
    memset(incr_unsure, 0, sizeof incr_unsure);
    memset(by_status, 0, sizeof by_status);
    atomic_store(&replies, 0);
    atomic_store(&extra_replies, 0);
    atomic_store(&accepted_lost, 0);
    pthread_t committer;
    atomic_store(&committer_stop, 0);
    if (async_store) {
        TB_STORE_SET(defer, 1);
        TB_STORE_SET(fail_per_mille, 5); /* and some commits fail: rollback */
        pthread_create(&committer, NULL, committer_main, NULL);
    }
    rt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    cfg.idle_threshold_ms = 1;
    cfg.evict_quantum_ms = 1;
    cfg.tick_interval_ms = 3;
    cfg.restart_max = 3;
    cfg.restart_window_ms = 1000;
    cfg.quarantine_base_ms = 5;
    cfg.behaviour = &tb_behaviour;
    cfg.persist = &tb_persist;
    rt_runtime *rt;
    assert_int_equal(rt_start(&cfg, &rt), RT_OK);

    pthread_t th[THREADS];
    client cl[THREADS];
    for (int i = 0; i < THREADS; i++) {
        cl[i] = (client){.rt = rt, .seed = 0x9E3779B9u * (unsigned)(i + 1)};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    uint64_t sent = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        sent += cl[i].sent;
    }
    rt_stats s;
    rt_get_stats(rt, &s);
    if (async_store) {
        /* rt_stop waits for in-flight commits: keep acknowledging them. */
        rt_stop(rt);
        atomic_store(&committer_stop, 1);
        pthread_join(committer, NULL);
    } else {
        rt_stop(rt);
    }

    fprintf(stderr,
            "# sent %llu replies %llu: ok %llu internal %llu unavailable %llu cancelled %llu "
            "aborted %llu deadline %llu\n"
            "# activations %llu evictions %llu restarts %llu quarantines %llu faults %llu "
            "commits %llu commit_failures %llu ticks %llu\n",
            (unsigned long long)sent, (unsigned long long)atomic_load(&replies),
            (unsigned long long)atomic_load(&by_status[RT_OK]),
            (unsigned long long)atomic_load(&by_status[RT_INTERNAL]),
            (unsigned long long)atomic_load(&by_status[RT_UNAVAILABLE]),
            (unsigned long long)atomic_load(&by_status[RT_CANCELLED]),
            (unsigned long long)atomic_load(&by_status[RT_ABORTED]),
            (unsigned long long)atomic_load(&by_status[RT_DEADLINE_EXCEEDED]),
            (unsigned long long)s.activations, (unsigned long long)s.evictions,
            (unsigned long long)s.restarts, (unsigned long long)s.quarantines,
            (unsigned long long)s.handler_faults, (unsigned long long)s.commits,
            (unsigned long long)s.commit_failures, (unsigned long long)atomic_load(&tbw.ticks));

    assert_int_equal(atomic_load(&replies), sent);    /* one reply each ... */
    assert_int_equal(atomic_load(&extra_replies), 0); /* ... and never two */
    assert_int_equal(atomic_load(&accepted_lost), 0);
    assert_int_equal(atomic_load(&tbw.double_live), 0);
    assert_int_equal(atomic_load(&tbw.creates), atomic_load(&tbw.destroys));
    assert_int_equal(TB_STORE_GET(stale), 0); /* versions always last + 1 */
    /* No acknowledged increment was lost across evictions and faults, and
     * none was applied that was refused. */
    for (unsigned k = 0; k < KEYS; k++) {
        uint64_t durable = TB_STORE_GET(rec[k]);
        uint64_t ok = atomic_load(&incr_ok[k]);
        uint64_t unsure = atomic_load(&incr_unsure[k]);
        if (durable < ok || durable > ok + unsure)
            fail_msg("key %u: durable %llu, acknowledged %llu (+%llu unsure)", k,
                     (unsigned long long)durable, (unsigned long long)ok,
                     (unsigned long long)unsure);
    }
    /* The race really happened. */
    assert_true(s.evictions > 0);
    assert_true(s.handler_faults > 0);
#if CG_FAULT_INJECTION
    assert_true(s.restarts > 0);
#endif
    if (async_store) assert_true(s.commit_failures > 0);
}

static void test_stress_evict_fault_dispatch(void **state)
{
    (void)state;
    run_stress(0);
}

/* The same with commits acknowledged from another thread, some failing:
 * actors wait in the commit state while eviction and faults race them. */
static void test_stress_async_commits(void **state)
{
    (void)state;
    run_stress(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_evict_fault_dispatch),
        cmocka_unit_test(test_stress_async_commits),
    };
    return cmocka_run_group_tests_name("rt_stress", tests, NULL, NULL);
}
