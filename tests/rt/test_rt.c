/*
 * test_rt.c — acceptance tests of the actor runtime with a native behaviour.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "cg_config.h"
#include "tb.h"

static rt_config base_cfg(void)
{
    rt_config c;
    memset(&c, 0, sizeof c);
    c.workers = 2;
    c.tick_interval_ms = UINT64_MAX;
    c.behaviour = &tb_behaviour;
    c.persist = &tb_persist;
    return c;
}

static rt_runtime *start(const rt_config *c)
{
    tb_reset();
    tb_store_reset();
    rt_runtime *rt = NULL;
    assert_int_equal(rt_start(c, &rt), RT_OK);
    assert_non_null(rt);
    return rt;
}

static rt_stats stats(rt_runtime *rt)
{
    rt_stats s;
    rt_get_stats(rt, &s);
    return s;
}

static void send_op(rt_runtime *rt, unsigned idx, const void *msg, size_t len, uint64_t deadline,
                    tb_rec *rec)
{
    rt_key k = tb_key(idx);
    rt_send(rt, &k, msg, len, deadline ? deadline : rt_now_ms() + 10000, tb_rec_cb, rec);
}

static void park_msg(uint8_t out[9], uint64_t deadline)
{
    out[0] = TB_PARK;
    memcpy(out + 1, &deadline, 8);
}

/* ---------------------------------------------------------------------- */

static void test_call_and_send(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    uint64_t v = 0;
    for (uint64_t i = 1; i <= 3; i++) {
        assert_int_equal(tb_call(rt, 7, TB_INCR, &v), RT_OK);
        assert_int_equal(v, i);
    }
    assert_int_equal(tb_call(rt, 7, TB_GET, &v), RT_OK);
    assert_int_equal(v, 3);
    assert_int_equal(TB_STORE_GET(version[7]), 3); /* one durable version per dirty message */

    tb_rec r = {0};
    uint8_t op = TB_INCR;
    send_op(rt, 7, &op, 1, 0, &r);
    TB_WAIT(atomic_load(&r.calls) == 1);
    assert_int_equal(atomic_load(&r.calls), 1);
    assert_int_equal(atomic_load(&r.status), RT_OK);
    assert_int_equal(r.value, 4);

    /* A handler that neither replies nor parks gets INTERNAL. */
    rt_key k = tb_key(8);
    rt_reply rep;
    op = TB_NOREPLY;
    rt_call(rt, &k, &op, 1, rt_now_ms() + 10000, &rep);
    assert_int_equal(rep.status, RT_INTERNAL);
    rt_reply_free(&rep);

    TB_WAIT(stats(rt).messages >= 6); /* counted per batch, after its replies */
    rt_stats s = stats(rt);
    assert_int_equal(s.activations, 2);
    assert_int_equal(s.resident, 2);
    assert_true(s.messages >= 6);
    assert_int_equal(s.commits, 4);
    rt_stop(rt);
    assert_int_equal(atomic_load(&tbw.creates), atomic_load(&tbw.destroys));
    assert_string_equal(rt_status_name(RT_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
    assert_string_equal(rt_status_name(99), "UNKNOWN");
}

typedef struct nested {
    rt_runtime *rt;
    _Atomic int status;
    _Atomic int done;
} nested;

/* A reply callback runs on a runtime thread: a blocking call from there is
 * refused instead of deadlocking the pool. */
static void nested_cb(void *arg, rt_reply *r)
{
    nested *n = arg;
    rt_reply_free(r);
    rt_key k = tb_key(9);
    uint8_t op = TB_GET;
    rt_reply inner;
    rt_call(n->rt, &k, &op, 1, rt_now_ms() + 10000, &inner);
    atomic_store(&n->status, (int)inner.status);
    rt_reply_free(&inner);
    atomic_store(&n->done, 1);
}

static void test_call_from_worker_refused(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    nested n = {.rt = rt};
    rt_key k = tb_key(9);
    uint8_t op = TB_GET;
    rt_send(rt, &k, &op, 1, rt_now_ms() + 10000, nested_cb, &n);
    TB_WAIT(atomic_load(&n.done));
    assert_int_equal(atomic_load(&n.status), RT_FAILED_PRECONDITION);
    rt_stop(rt);
}

static void test_no_persist(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    c.persist = NULL;
    rt_runtime *rt = start(&c);
    uint64_t v = 0;
    assert_int_equal(tb_call(rt, 1, TB_INCR, &v), RT_OK);
    assert_int_equal(tb_call(rt, 1, TB_INCR, &v), RT_OK);
    assert_int_equal(v, 2);
    assert_int_equal(stats(rt).commits, 0);
    rt_stop(rt);
}

typedef struct hammer {
    rt_runtime *rt;
    _Atomic int stop;
    _Atomic int bad;
    _Atomic uint64_t ok;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    while (!atomic_load(&h->stop)) {
        for (unsigned k = 100; k < 108; k++) {
            uint64_t v;
            if (tb_call(h->rt, k, TB_GET, &v) != RT_OK)
                atomic_store(&h->bad, 1);
            else
                atomic_fetch_add(&h->ok, 1);
        }
    }
    return NULL;
}

/* Sends op to key and expects the caller's answer to a handler fault:
 * INTERNAL "handler panicked", whatever the handler produced before. */
static void expect_panicked(rt_runtime *rt, unsigned key, uint8_t op)
{
    rt_key k = tb_key(key);
    rt_reply rep;
    rt_call(rt, &k, &op, 1, rt_now_ms() + 10000, &rep);
    assert_int_equal(rep.status, RT_INTERNAL);
    assert_int_equal(rep.len, strlen("handler panicked"));
    assert_memory_equal(rep.data, "handler panicked", rep.len);
    rt_reply_free(&rep);
}

static void test_panic_isolated(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    hammer h = {.rt = rt};
    pthread_t th;
    pthread_create(&th, NULL, hammer_main, &h);

    uint64_t v = 0;
    assert_int_equal(tb_call(rt, 1, TB_INCR, &v), RT_OK);
    uint64_t creates = atomic_load(&tbw.creates);

    expect_panicked(rt, 1, TB_PANIC);

    /* Next message: fresh instance built from the durable record. */
    assert_int_equal(tb_call(rt, 1, TB_GET, &v), RT_OK);
    assert_int_equal(v, 1);
    assert_true(atomic_load(&tbw.creates) > creates);

    /* A reply produced before the panic never escapes. */
    expect_panicked(rt, 1, TB_REPLY_PANIC);

    /* In-memory changes of a faulting handler are discarded. */
    assert_int_equal(tb_call(rt, 1, TB_PANIC_AFTER_INCR, NULL), RT_INTERNAL);
    assert_int_equal(tb_call(rt, 1, TB_GET, &v), RT_OK);
    assert_int_equal(v, 1);

    /* An error return is a handler fault too; DEADLINE_EXCEEDED is kept. */
    assert_int_equal(tb_call(rt, 1, TB_FAIL, NULL), RT_INTERNAL);
    assert_int_equal(tb_call(rt, 1, TB_SLOW, NULL), RT_DEADLINE_EXCEEDED);
    assert_int_equal(tb_call(rt, 1, TB_INCR, &v), RT_OK);
    assert_int_equal(v, 2);

    tb_sleep_ms(20);
    atomic_store(&h.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&h.bad), 0); /* other actors never noticed */
    assert_true(atomic_load(&h.ok) > 0);

    rt_stats s = stats(rt);
    assert_int_equal(s.handler_faults, 5);
    assert_int_equal(s.handler_timeouts, 1);
    assert_int_equal(s.restarts, 0);
    assert_int_equal(atomic_load(&tbw.double_live), 0);
    rt_stop(rt);
    assert_int_equal(atomic_load(&tbw.creates), atomic_load(&tbw.destroys));
}

static void test_actor_fault_restart(void **state)
{
    (void)state;
    if (!CG_FAULT_INJECTION) skip();
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    uint64_t v = 0;
    assert_int_equal(tb_call(rt, 3, TB_INCR, &v), RT_OK);
    uint64_t creates = atomic_load(&tbw.creates);

    /* Occupy the actor, queue callers behind it, then fault its loop. */
    tb_rec slow = {0}, q[5];
    memset(q, 0, sizeof q);
    uint8_t sl[2] = {TB_SLEEP, 60};
    uint64_t handled = atomic_load(&tbw.handled);
    send_op(rt, 3, sl, 2, 0, &slow);
    TB_WAIT(atomic_load(&tbw.handled) > handled); /* the sleeper is running */
    uint8_t op = TB_GET;
    for (int i = 0; i < 5; i++)
        send_op(rt, 3, &op, 1, rt_now_ms() + 5000, &q[i]);
    rt_key k = tb_key(3);
    rt_inject_actor_fault(rt, &k);
    for (int i = 0; i < 5; i++)
        TB_WAIT(atomic_load(&q[i].calls) == 1);
    TB_WAIT(atomic_load(&slow.calls) == 1);
    assert_int_equal(atomic_load(&slow.status), RT_OK);
    /* The in-flight caller hears UNAVAILABLE, the queued ones CANCELLED. */
    assert_int_equal(atomic_load(&q[0].status), RT_UNAVAILABLE);
    for (int i = 1; i < 5; i++) {
        assert_int_equal(atomic_load(&q[i].calls), 1);
        assert_int_equal(atomic_load(&q[i].status), RT_CANCELLED);
    }
    /* callers are answered first, then the fresh instance is built */
    TB_WAIT(atomic_load(&tbw.creates) > creates);
    assert_true(atomic_load(&tbw.creates) > creates);
    assert_int_equal(stats(rt).restarts, 1);
    assert_int_equal(tb_call(rt, 3, TB_GET, &v), RT_OK);
    assert_int_equal(v, 1);
    assert_int_equal(atomic_load(&tbw.double_live), 0);
    rt_stop(rt);
    assert_int_equal(atomic_load(&tbw.creates), atomic_load(&tbw.destroys));
}

static void test_quarantine_and_recovery(void **state)
{
    (void)state;
    if (!CG_FAULT_INJECTION) skip();
    rt_config c = base_cfg();
    c.restart_max = 2;
    c.restart_window_ms = 10000;
    c.quarantine_base_ms = 150;
    rt_runtime *rt = start(&c);
    rt_key k = tb_key(4);
    assert_int_equal(tb_call(rt, 4, TB_INCR, NULL), RT_OK);
    for (int i = 0; i < 3; i++) {
        rt_inject_actor_fault(rt, &k);
        assert_int_equal(tb_call(rt, 4, TB_GET, NULL), RT_UNAVAILABLE);
    }
    rt_stats s = stats(rt);
    assert_int_equal(s.restarts, 3);
    assert_int_equal(s.quarantines, 1);

    /* Quarantined: refused up front with a retry-after. */
    rt_reply rep;
    uint8_t op = TB_GET;
    rt_call(rt, &k, &op, 1, rt_now_ms() + 10000, &rep);
    assert_int_equal(rep.status, RT_UNAVAILABLE);
    assert_true(rep.retry_after_ms > 0 && rep.retry_after_ms <= 150);
    rt_reply_free(&rep);
    /* Other actors are untouched. */
    assert_int_equal(tb_call(rt, 5, TB_GET, NULL), RT_OK);

    /* Recovers after the back-off, with its durable state. */
    uint64_t v = 0;
    rt_status st = RT_UNAVAILABLE;
    for (int i = 0; i < 5000 && st != RT_OK; i++) {
        st = tb_call(rt, 4, TB_GET, &v);
        if (st != RT_OK) tb_sleep_ms(2);
    }
    assert_int_equal(st, RT_OK);
    assert_int_equal(v, 1);

    /* Faulting again right away doubles the back-off. */
    for (int i = 0; i < 3; i++) {
        rt_inject_actor_fault(rt, &k);
        tb_call(rt, 4, TB_GET, NULL);
    }
    if (stats(rt).quarantines != 2) {
        rt_stats s2 = stats(rt);
        fprintf(stderr, "restarts %llu quarantines %llu\n", (unsigned long long)s2.restarts,
                (unsigned long long)s2.quarantines);
    }
    assert_int_equal(stats(rt).quarantines, 2);
    rt_call(rt, &k, &op, 1, rt_now_ms() + 10000, &rep);
    assert_int_equal(rep.status, RT_UNAVAILABLE);
    assert_true(rep.retry_after_ms > 150 && rep.retry_after_ms <= 300);
    rt_reply_free(&rep);
    rt_stop(rt);
    assert_int_equal(atomic_load(&tbw.creates), atomic_load(&tbw.destroys));
}

static void test_create_failure(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    c.restart_max = 100;
    rt_runtime *rt = start(&c);
    atomic_store(&tbw.fail_create_idx, 9);
    assert_int_equal(tb_call(rt, 9, TB_GET, NULL), RT_UNAVAILABLE);
    atomic_store(&tbw.fail_create_idx, -1);
    atomic_store(&tbw.panic_create_idx, 9);
    assert_int_equal(tb_call(rt, 9, TB_GET, NULL), RT_UNAVAILABLE);
    atomic_store(&tbw.panic_create_idx, -1);
    rt_stats s = stats(rt);
    assert_int_equal(s.activation_failures, 2);
    assert_int_equal(s.restarts, 2);
    assert_int_equal(tb_call(rt, 9, TB_GET, NULL), RT_OK);
    assert_int_equal(stats(rt).activations, 1);
    rt_stop(rt);
}

static void test_data_loss(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    c.quarantine_base_ms = 60000;
    rt_runtime *rt = start(&c);
    assert_int_equal(tb_call(rt, 11, TB_INCR, NULL), RT_OK);
    TB_STORE_SET(corrupt[12], 1);
    for (int i = 0; i < 50; i++)
        assert_int_equal(tb_call(rt, 12, TB_GET, NULL), RT_DATA_LOSS);
    assert_true(TB_STORE_GET(loads) <= 3); /* refused, not re-read in a loop */
    uint64_t v;
    assert_int_equal(tb_call(rt, 11, TB_GET, &v), RT_OK);
    assert_int_equal(v, 1);
    /* A record the behaviour itself rejects (create() says DATA_LOSS). */
    assert_int_equal(tb_call(rt, 13, TB_INCR, NULL), RT_OK);
    rt_key k13 = tb_key(13);
    rt_inject_actor_fault(rt, &k13); /* forces a rebuild from the record */
    TB_STORE_SET(short_rec[13], 1);
    if (CG_FAULT_INJECTION) {
        assert_int_equal(tb_call(rt, 13, TB_GET, NULL), RT_UNAVAILABLE);
        assert_int_equal(tb_call(rt, 13, TB_GET, NULL), RT_DATA_LOSS);
        assert_int_equal(tb_call(rt, 13, TB_GET, NULL), RT_DATA_LOSS);
        assert_int_equal(stats(rt).restarts, 1); /* the injected one only */
    }
    assert_int_equal(stats(rt).activation_failures, CG_FAULT_INJECTION ? 2 : 1);
    rt_stop(rt);
}

/* A cluster node that loses a wallet's lease ends its activation: parked
 * rendezvous fail, the instance (and its secrets) goes, and while the load
 * says the wallet is not this node's, callers get UNAVAILABLE without the
 * supervisor counting restarts or quarantining anything. */
static void test_deactivate(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    c.restart_max = 2;
    rt_runtime *rt = start(&c);
    rt_key k = tb_key(70);
    assert_int_equal(rt_deactivate(rt, &k), RT_NOT_FOUND);
    assert_int_equal(tb_call(rt, 70, TB_INCR, NULL), RT_OK);
    tb_rec p = {0};
    uint8_t pm[9];
    park_msg(pm, 0);
    send_op(rt, 70, pm, 9, 0, &p);
    TB_WAIT(stats(rt).parked == 1);
    uint64_t destroys = atomic_load(&tbw.destroys);
    assert_int_equal(rt_deactivate(rt, &k), RT_OK);
    TB_WAIT(atomic_load(&p.calls) == 1);
    assert_int_equal(atomic_load(&p.status), RT_ABORTED);
    TB_WAIT(stats(rt).deactivations == 1);
    assert_int_equal(atomic_load(&tbw.destroys), destroys + 1);
    assert_int_equal(atomic_load(&tbw.live[70]), 0);
    assert_int_equal(stats(rt).resident, 0);

    TB_STORE_SET(not_here[70], 1);
    for (int i = 0; i < 10; i++)
        assert_int_equal(tb_call(rt, 70, TB_GET, NULL), RT_UNAVAILABLE);
    assert_int_equal(stats(rt).restarts, 0);
    assert_int_equal(stats(rt).quarantines, 0);
    assert_int_equal(stats(rt).activation_failures, 0);
    /* An idle, not resident actor: nothing to end, nothing counted. */
    assert_int_equal(tb_call(rt, 71, TB_INCR, NULL), RT_OK);
    assert_int_equal(rt_deactivate(rt, &k), RT_OK);
    TB_STORE_SET(not_here[70], 0);
    uint64_t v = 0;
    assert_int_equal(tb_call(rt, 70, TB_GET, &v), RT_OK);
    assert_int_equal(v, 1); /* rebuilt from the durable record */
    assert_int_equal(tb_call(rt, 71, TB_GET, &v), RT_OK);
    assert_int_equal(v, 1); /* a neighbour never noticed */
    assert_int_equal(stats(rt).deactivations, 1);
    assert_false(atomic_load(&tbw.double_live));
    rt_stop(rt);
}

static void test_idle_eviction(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    c.idle_threshold_ms = 20;
    c.evict_quantum_ms = 5;
    rt_runtime *rt = start(&c);
    uint64_t v = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(tb_call(rt, 20, TB_INCR, &v), RT_OK);
    assert_int_equal(tb_call(rt, 21, TB_INCR, &v), RT_OK);
    TB_WAIT(stats(rt).resident == 0);
    rt_stats s = stats(rt);
    assert_int_equal(s.resident, 0);
    assert_int_equal(s.evictions, 2);
    assert_int_equal(atomic_load(&tbw.destroys), 2); /* instances destroyed */
    rt_key k = tb_key(20);
    assert_int_equal(rt_try_send_tick(rt, &k), RT_NOT_FOUND);

    assert_int_equal(tb_call(rt, 20, TB_GET, &v), RT_OK);
    assert_int_equal(v, 3); /* state from the durable record */
    assert_int_equal(atomic_load(&tbw.creates), 3);
    assert_int_equal(TB_STORE_GET(loads), 3);
    rt_stop(rt);
    assert_int_equal(atomic_load(&tbw.creates), atomic_load(&tbw.destroys));
}

/* last_active comes from the coarse clock, which may trail rt_now_ms() by a
 * kernel tick: a margin for it, so "idle for less than the threshold" is
 * only asserted when it is certain. */
#define COARSE_MARGIN_MS 20

/* Sweeps now; returns whether the actor idx is still resident. */
static int sweep_keeps(rt_runtime *rt, unsigned idx)
{
    unsigned evicted = rt_evict_sweep(rt);
    rt_key k = tb_key(idx);
    int resident = rt_try_send_tick(rt, &k) == RT_OK; /* NOT_FOUND once evicted */
    assert_int_equal(evicted, resident ? 0 : 1);
    return resident;
}

/* The lower bound: an actor with a client request younger than the idle
 * threshold survives a sweep, also when it was activated longer ago than
 * that (every request counts, not only the first). Sweeps are run by hand
 * (the sweeper's quantum is a minute), and "not evicted" is asserted only
 * when the measured time since the last request is below the threshold, so
 * a loaded machine makes the test skip an assertion, never fail it. */
static void test_idle_eviction_lower_bound(void **state)
{
    (void)state;
    const uint64_t threshold = 300;
    rt_config c = base_cfg();
    c.idle_threshold_ms = threshold;
    c.evict_quantum_ms = 60000;
    rt_runtime *rt = start(&c);
    unsigned checked = 0;

    uint64_t t_first = rt_now_ms();
    assert_int_equal(tb_call(rt, 22, TB_INCR, NULL), RT_OK);
    int kept = sweep_keeps(rt, 22);
    if (rt_now_ms() - t_first + COARSE_MARGIN_MS < threshold) {
        assert_true(kept);
        checked++;
    }
    if (kept) {
        /* Touched again ~200 ms after activation, swept ~200 ms later: past
         * the threshold since activation, within it since the last request. */
        tb_sleep_ms(200);
        uint64_t t_last = rt_now_ms();
        assert_int_equal(tb_call(rt, 22, TB_GET, NULL), RT_OK);
        tb_sleep_ms(200);
        kept = sweep_keeps(rt, 22);
        uint64_t idle = rt_now_ms() - t_last;
        print_message("swept %llu ms after activation, %llu ms after the last request: %s\n",
                      (unsigned long long)(rt_now_ms() - t_first), (unsigned long long)idle,
                      kept ? "kept" : "evicted");
        if (idle + COARSE_MARGIN_MS < threshold) {
            assert_true(kept);
            checked++;
        }
    }
    if (checked < 2) print_message("loaded machine: %u of 2 lower-bound checks ran\n", checked);

    /* The upper bound with the same manual sweep: idle past the threshold,
     * it goes (re-activated first if a slow machine let it go above). */
    uint64_t t_last = rt_now_ms();
    assert_int_equal(tb_call(rt, 22, TB_GET, NULL), RT_OK);
    while (rt_now_ms() - t_last < threshold + COARSE_MARGIN_MS)
        tb_sleep_ms(10);
    assert_false(sweep_keeps(rt, 22));
    uint64_t v = 0;
    assert_int_equal(tb_call(rt, 22, TB_GET, &v), RT_OK);
    assert_int_equal(v, 1); /* back from the durable record */
    rt_stop(rt);
    assert_int_equal(atomic_load(&tbw.creates), atomic_load(&tbw.destroys));
}

static void test_ticks_are_not_activity(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    /* Ticks every 3 ms against a 250 ms threshold: if a tick counted as
     * activity the actor would never idle out. Ticks reach only resident
     * actors, so count them after the eviction: they kept coming while it
     * idled (a loaded machine may stretch the gaps, never to the threshold). */
    c.idle_threshold_ms = 250;
    c.evict_quantum_ms = 5;
    c.tick_interval_ms = 3;
    rt_runtime *rt = start(&c);
    assert_int_equal(tb_call(rt, 30, TB_INCR, NULL), RT_OK);
    TB_WAIT(stats(rt).resident == 0); /* evicted although ticks kept coming */
    assert_int_equal(stats(rt).resident, 0);
    assert_true(atomic_load(&tbw.ticks) >= 3);
    assert_int_equal(stats(rt).evictions, 1);
    rt_stop(rt);
}

static void test_mailbox_full_and_tick_drop(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    c.mailbox_cap = 2;
    rt_runtime *rt = start(&c);
    assert_int_equal(tb_call(rt, 40, TB_GET, NULL), RT_OK);
    tb_rec r[4];
    memset(r, 0, sizeof r);
    uint8_t sl[2] = {TB_SLEEP, 80};
    send_op(rt, 40, sl, 2, 0, &r[0]);
    tb_sleep_ms(20); /* the worker took it */
    uint8_t op = TB_GET;
    /* The message being handled still counts: one more fits. */
    send_op(rt, 40, &op, 1, 0, &r[1]);
    send_op(rt, 40, &op, 1, 0, &r[2]);
    assert_int_equal(atomic_load(&r[2].calls), 1); /* refused on the spot */
    assert_int_equal(atomic_load(&r[2].status), RT_RESOURCE_EXHAUSTED);
    assert_true(r[2].retry_after_ms > 0);
    rt_key k = tb_key(40);
    assert_int_equal(rt_try_send_tick(rt, &k), RT_RESOURCE_EXHAUSTED);
    for (int i = 0; i < 2; i++) {
        TB_WAIT(atomic_load(&r[i].calls) == 1);
        assert_int_equal(atomic_load(&r[i].status), RT_OK);
    }
    rt_stats s = stats(rt);
    assert_int_equal(s.mailbox_full, 1);
    assert_int_equal(s.tick_drops, 1);
    assert_int_equal(rt_try_send_tick(rt, &k), RT_OK);
    TB_WAIT(atomic_load(&tbw.ticks) == 1);
    rt_stop(rt);
}

static void test_max_resident_lru(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    c.max_resident = 10;
    c.evict_quantum_ms = 5;
    rt_runtime *rt = start(&c);
    for (unsigned i = 0; i < 30; i++) {
        assert_int_equal(tb_call(rt, 200 + i, TB_GET, NULL), RT_OK);
        tb_sleep_ms(6); /* distinct last_active per key (the clock ticks every <= 4 ms) */
    }
    TB_WAIT(stats(rt).resident <= 10);
    /* resident drops when an instance is destroyed, a moment before the
     * sweeper unlinks the actor from the registry; a sweep of our own waits
     * for the sweeper's (both hold the sweep lock throughout), so after it
     * every evicted key is gone and the ticks below see the final state. */
    rt_evict_sweep(rt);
    assert_int_equal(stats(rt).resident, 10);
    /* The ten kept are the most recently active, up to the granularity of
     * the runtime's coarse clock: under a loaded sanitizer run its ticker
     * may lag a few of our 6 ms steps, so neighbours can share a
     * last_active. The oldest two thirds must be gone all the same. */
    unsigned found = 0;
    for (unsigned i = 0; i < 30; i++) {
        rt_key k = tb_key(200 + i);
        rt_status st = rt_try_send_tick(rt, &k);
        assert_true(st == RT_OK || st == RT_NOT_FOUND);
        if (st == RT_OK) {
            found++;
            assert_true(i >= 15);
        }
    }
    assert_int_equal(found, 10);
    rt_stop(rt);
}

static void test_deadline_while_queued(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    tb_rec slow = {0}, r = {0};
    uint8_t sl[2] = {TB_SLEEP, 250};
    send_op(rt, 50, sl, 2, 0, &slow);
    uint8_t op = TB_GET;
    send_op(rt, 50, &op, 1, rt_now_ms() + 20, &r);
    TB_WAIT(atomic_load(&r.calls) == 1);
    assert_int_equal(atomic_load(&r.status), RT_DEADLINE_EXCEEDED);
    assert_int_equal(atomic_load(&slow.calls), 0); /* the timer answered, not the actor */
    TB_WAIT(atomic_load(&slow.calls) == 1);
    tb_sleep_ms(10);
    assert_int_equal(atomic_load(&r.calls), 1); /* exactly once */
    /* An already-expired deadline is refused up front. */
    tb_rec late = {0};
    rt_key k = tb_key(50);
    rt_send(rt, &k, &op, 1, rt_now_ms() - 1, tb_rec_cb, &late);
    assert_int_equal(atomic_load(&late.calls), 1);
    assert_int_equal(atomic_load(&late.status), RT_DEADLINE_EXCEEDED);
    rt_stop(rt);
}

static void test_parked_complete_and_deadline(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    tb_rec p1 = {0}, p2 = {0};
    uint8_t pm[9];
    park_msg(pm, 0);
    send_op(rt, 60, pm, 9, 0, &p1);
    TB_WAIT(stats(rt).parked == 1);
    assert_int_equal(atomic_load(&p1.calls), 0);
    uint64_t n = 0;
    assert_int_equal(tb_call(rt, 60, TB_COMPLETE, &n), RT_OK);
    assert_int_equal(n, 1);
    TB_WAIT(atomic_load(&p1.calls) == 1);
    assert_int_equal(atomic_load(&p1.status), RT_OK);
    assert_int_equal(p1.value, 1); /* the park id */

    /* A parked reply's own deadline, shorter than the request's. */
    park_msg(pm, rt_now_ms() + 30);
    send_op(rt, 60, pm, 9, rt_now_ms() + 10000, &p2);
    TB_WAIT(atomic_load(&p2.calls) == 1);
    assert_int_equal(atomic_load(&p2.status), RT_DEADLINE_EXCEEDED);
    /* Completing it later finds nobody waiting. */
    assert_int_equal(tb_call(rt, 60, TB_COMPLETE, &n), RT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(atomic_load(&p2.calls), 1);
    assert_int_equal(stats(rt).parked, 0);
    rt_stop(rt);
}

static void test_parked_aborted_on_fault(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    tb_rec p = {0};
    uint8_t pm[9];
    park_msg(pm, 0);
    send_op(rt, 61, pm, 9, 0, &p);
    TB_WAIT(stats(rt).parked == 1);
    assert_int_equal(tb_call(rt, 61, TB_PANIC, NULL), RT_INTERNAL);
    TB_WAIT(atomic_load(&p.calls) == 1);
    assert_int_equal(atomic_load(&p.status), RT_ABORTED);
    assert_int_equal(stats(rt).parked, 0);

    /* A reply still parked when the runtime stops is failed with ABORTED,
     * not dropped (test_completed_then_panic covers completions made by a
     * handler that then faults). */
    tb_rec q = {0};
    send_op(rt, 61, pm, 9, 0, &q);
    TB_WAIT(stats(rt).parked == 1);
    rt_stop(rt);
    assert_int_equal(atomic_load(&q.calls), 1);
    assert_int_equal(atomic_load(&q.status), RT_ABORTED);
}

/* A handler that completes parked replies and then panics in the same
 * invocation: completions are delivered only after handle() returns OK, so
 * the parked callers hear ABORTED, never the OK the faulting code produced. */
static void test_completed_then_panic(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    tb_rec p[3];
    memset(p, 0, sizeof p);
    uint8_t pm[9];
    park_msg(pm, 0);
    for (int i = 0; i < 3; i++)
        send_op(rt, 65, pm, 9, 0, &p[i]);
    TB_WAIT(stats(rt).parked == 3);
    assert_int_equal(stats(rt).parked, 3);

    expect_panicked(rt, 65, TB_COMPLETE_PANIC);
    for (int i = 0; i < 3; i++) {
        TB_WAIT(atomic_load(&p[i].calls) == 1);
        assert_int_equal(atomic_load(&p[i].calls), 1);
        assert_int_equal(atomic_load(&p[i].status), RT_ABORTED);
    }
    assert_int_equal(stats(rt).parked, 0);
    assert_int_equal(stats(rt).handler_faults, 1);

    /* The actor serves on; its next completions are delivered as OK. */
    tb_rec q = {0};
    send_op(rt, 65, pm, 9, 0, &q);
    TB_WAIT(stats(rt).parked == 1);
    uint64_t n = 0;
    assert_int_equal(tb_call(rt, 65, TB_COMPLETE, &n), RT_OK);
    assert_int_equal(n, 1);
    TB_WAIT(atomic_load(&q.calls) == 1);
    assert_int_equal(atomic_load(&q.status), RT_OK);
    tb_sleep_ms(10);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&p[i].calls), 1); /* exactly once */
    rt_stop(rt);
    assert_int_equal(atomic_load(&tbw.creates), atomic_load(&tbw.destroys));
}

static void test_parked_aborted_on_restart(void **state)
{
    (void)state;
    if (!CG_FAULT_INJECTION) skip();
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    tb_rec p = {0};
    uint8_t pm[9];
    park_msg(pm, 0);
    send_op(rt, 62, pm, 9, 0, &p);
    TB_WAIT(stats(rt).parked == 1);
    rt_key k = tb_key(62);
    rt_inject_actor_fault(rt, &k);
    assert_int_equal(tb_call(rt, 62, TB_GET, NULL), RT_UNAVAILABLE);
    TB_WAIT(atomic_load(&p.calls) == 1);
    assert_int_equal(atomic_load(&p.status), RT_ABORTED);
    rt_stop(rt);
}

static void test_parked_blocks_eviction(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    c.idle_threshold_ms = 5;
    c.evict_quantum_ms = 2;
    rt_runtime *rt = start(&c);
    tb_rec p = {0};
    uint8_t pm[9];
    park_msg(pm, 0);
    send_op(rt, 63, pm, 9, 0, &p);
    TB_WAIT(stats(rt).parked == 1);
    assert_int_equal(tb_call(rt, 64, TB_GET, NULL), RT_OK);
    TB_WAIT(stats(rt).evictions >= 1); /* the other actor goes */
    tb_sleep_ms(50);
    rt_stats s = stats(rt);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.resident, 1);
    assert_int_equal(atomic_load(&p.calls), 0);
    uint64_t n = 0;
    assert_int_equal(tb_call(rt, 63, TB_COMPLETE, &n), RT_OK);
    assert_int_equal(n, 1);
    TB_WAIT(stats(rt).resident == 0); /* now it may go */
    assert_int_equal(atomic_load(&p.status), RT_OK);
    rt_stop(rt);
}

static void test_write_before_ack(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    assert_int_equal(tb_call(rt, 70, TB_INCR, NULL), RT_OK);
    tb_rec p = {0}, w = {0}, g = {0};
    uint8_t pm[9];
    park_msg(pm, 0);
    send_op(rt, 70, pm, 9, 0, &p);
    TB_WAIT(stats(rt).parked == 1);

    TB_STORE_SET(defer, 1);
    uint8_t op = TB_COMPLETE_DIRTY;
    send_op(rt, 70, &op, 1, 0, &w);
    TB_WAIT(tb_store_npending() == 1);
    op = TB_GET;
    send_op(rt, 70, &op, 1, 0, &g);
    uint64_t handled = atomic_load(&tbw.handled);
    tb_sleep_ms(30);
    /* Neither the direct reply nor the completed parked one is out before
     * the record is durable, and the actor is not run again meanwhile. */
    assert_int_equal(atomic_load(&w.calls), 0);
    assert_int_equal(atomic_load(&p.calls), 0);
    assert_int_equal(atomic_load(&g.calls), 0);
    assert_int_equal(atomic_load(&tbw.handled), handled);
    assert_int_equal(TB_STORE_GET(version[70]), 1);

    TB_STORE_SET(defer, 0);
    assert_int_equal(tb_store_release(), 1);
    TB_WAIT(atomic_load(&g.calls) == 1);
    assert_int_equal(atomic_load(&w.status), RT_OK);
    assert_int_equal(atomic_load(&p.status), RT_OK);
    assert_int_equal(atomic_load(&g.status), RT_OK);
    assert_int_equal(g.value, 2);
    assert_int_equal(TB_STORE_GET(version[70]), 2); /* saved as version + 1 */
    assert_int_equal(TB_STORE_GET(stale), 0);
    assert_int_equal(stats(rt).commits, 2);
    rt_stop(rt);
}

static void test_save_failure_rolls_back(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    uint64_t v = 0;
    assert_int_equal(tb_call(rt, 71, TB_INCR, &v), RT_OK);
    tb_rec p = {0};
    uint8_t pm[9];
    park_msg(pm, 0);
    send_op(rt, 71, pm, 9, 0, &p);
    TB_WAIT(stats(rt).parked == 1);
    TB_STORE_SET(fail, 1);
    rt_key k = tb_key(71);
    uint8_t op = TB_INCR;
    rt_reply rep;
    rt_call(rt, &k, &op, 1, rt_now_ms() + 10000, &rep);
    assert_int_equal(rep.status, RT_UNAVAILABLE);
    rt_reply_free(&rep);
    TB_STORE_SET(fail, 0);
    assert_int_equal(tb_call(rt, 71, TB_GET, &v), RT_OK);
    assert_int_equal(v, 1); /* rolled back to the durable record */
    TB_WAIT(atomic_load(&p.calls) == 1);
    assert_int_equal(atomic_load(&p.status), RT_ABORTED);
    assert_int_equal(tb_call(rt, 71, TB_INCR, &v), RT_OK);
    assert_int_equal(v, 2);
    assert_int_equal(TB_STORE_GET(version[71]), 2);
    rt_stats s = stats(rt);
    assert_int_equal(s.commit_failures, 1);
    assert_int_equal(s.commits, 2);
    rt_stop(rt);
    assert_int_equal(atomic_load(&tbw.creates), atomic_load(&tbw.destroys));
}

static void test_stop_cancels_queued(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    tb_rec slow = {0}, q[8];
    memset(q, 0, sizeof q);
    uint8_t sl[2] = {TB_SLEEP, 50};
    send_op(rt, 80, sl, 2, 0, &slow);
    tb_sleep_ms(5);
    uint8_t op = TB_INCR;
    for (int i = 0; i < 8; i++)
        send_op(rt, 80, &op, 1, 0, &q[i]);
    rt_stop(rt);
    assert_int_equal(atomic_load(&slow.calls), 1);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(atomic_load(&q[i].calls), 1);
        int st = atomic_load(&q[i].status);
        assert_true(st == RT_CANCELLED || st == RT_OK);
    }
    assert_int_equal(atomic_load(&tbw.creates), atomic_load(&tbw.destroys));
}

typedef struct first {
    rt_runtime *rt;
    _Atomic int go;
    _Atomic int bad;
} first;

static void *first_main(void *arg)
{
    first *f = arg;
    while (!atomic_load(&f->go)) {
    }
    for (unsigned k = 0; k < 200; k++)
        if (tb_call(f->rt, 1000 + k, TB_GET, NULL) != RT_OK) atomic_store(&f->bad, 1);
    return NULL;
}

static void test_concurrent_first_activation(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    rt_runtime *rt = start(&c);
    first f = {.rt = rt};
    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        pthread_create(&th[i], NULL, first_main, &f);
    atomic_store(&f.go, 1);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&f.bad), 0);
    assert_int_equal(atomic_load(&tbw.creates), 200);
    assert_int_equal(stats(rt).activations, 200);
    assert_int_equal(atomic_load(&tbw.double_live), 0);
    rt_stop(rt);
}

/* ---------------------------------------------------------- events -- */

typedef struct ev_copy {
    rt_event_kind kind;
    unsigned idx;
    rt_status status;
    char fault[32], reason[64];
    uint64_t retry_after_ms;
} ev_copy;

static struct {
    pthread_mutex_t mu;
    ev_copy ev[64];
    unsigned n;
    int bad_ud;
} EV = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* On a runtime thread: record only (cmocka's asserts belong to the test's). */
static void on_event(void *ud, const rt_event *ev)
{
    pthread_mutex_lock(&EV.mu);
    if (ud != &EV) EV.bad_ud = 1;
    if (EV.n < 64) {
        ev_copy *c = &EV.ev[EV.n++];
        c->kind = ev->kind;
        c->idx = tb_idx(ev->key);
        c->status = ev->status;
        snprintf(c->fault, sizeof c->fault, "%s", ev->fault ? ev->fault : "-");
        snprintf(c->reason, sizeof c->reason, "%s", ev->reason);
        c->retry_after_ms = ev->retry_after_ms;
    }
    pthread_mutex_unlock(&EV.mu);
}

static unsigned ev_count(void)
{
    pthread_mutex_lock(&EV.mu);
    unsigned n = EV.n;
    pthread_mutex_unlock(&EV.mu);
    return n;
}

/* Waits for event number i (0-based) and checks it. */
static void ev_expect(unsigned i, rt_event_kind kind, unsigned idx, rt_status st, const char *fault,
                      const char *reason)
{
    TB_WAIT(ev_count() > i);
    pthread_mutex_lock(&EV.mu);
    ev_copy c = EV.ev[i];
    unsigned n = EV.n;
    pthread_mutex_unlock(&EV.mu);
    if (n <= i) fail_msg("event %u (%s) never came", i, rt_event_name(kind));
    if (c.kind != kind || c.idx != idx || c.status != st || strcmp(c.fault, fault) ||
        (reason && strcmp(c.reason, reason)))
        fail_msg("event %u: %s key %u %s fault %s reason \"%s\"; want %s key %u %s fault %s "
                 "reason \"%s\"",
                 i, rt_event_name(c.kind), c.idx, rt_status_name(c.status), c.fault, c.reason,
                 rt_event_name(kind), idx, rt_status_name(st), fault, reason ? reason : "*");
}

static void test_events(void **state)
{
    (void)state;
    rt_config c = base_cfg();
    c.restart_max = 1;
    c.quarantine_base_ms = 200;
    c.on_event = on_event;
    c.event_ud = &EV;
    EV.n = 0;
    rt_runtime *rt = start(&c);
    unsigned e = 0;
    /* handler faults: a panic (with its text), a runaway, a noted kind, a plain error */
    assert_int_equal(tb_call(rt, 81, TB_INCR, NULL), RT_OK);
    assert_int_equal(ev_count(), 0);
    assert_int_equal(tb_call(rt, 81, TB_PANIC, NULL), RT_INTERNAL);
    ev_expect(e++, RT_EV_HANDLER_FAULT, 81, RT_INTERNAL, "panic", "test panic");
    assert_int_equal(tb_call(rt, 81, TB_SLOW, NULL), RT_DEADLINE_EXCEEDED);
    ev_expect(e++, RT_EV_HANDLER_FAULT, 81, RT_DEADLINE_EXCEEDED, "timeout", NULL);
    assert_int_equal(tb_call(rt, 81, TB_FAIL_NOTED, NULL), RT_INTERNAL);
    ev_expect(e++, RT_EV_HANDLER_FAULT, 81, RT_INTERNAL, "tb_fault", "handler panicked");
    assert_int_equal(tb_call(rt, 81, TB_FAIL, NULL), RT_INTERNAL);
    ev_expect(e++, RT_EV_HANDLER_FAULT, 81, RT_INTERNAL, "error", "handler panicked");
    /* a record failing authentication */
    TB_STORE_SET(corrupt[82], 1);
    assert_int_equal(tb_call(rt, 82, TB_GET, NULL), RT_DATA_LOSS);
    ev_expect(e++, RT_EV_ACTIVATION_FAILED, 82, RT_DATA_LOSS, "-", "record failed authentication");
    assert_int_equal(tb_call(rt, 82, TB_GET, NULL), RT_DATA_LOSS); /* refused: no new event */
    /* create() failing: an activation failure and a restart */
    atomic_store(&tbw.fail_create_idx, 83);
    assert_int_equal(tb_call(rt, 83, TB_GET, NULL), RT_UNAVAILABLE);
    atomic_store(&tbw.fail_create_idx, -1);
    ev_expect(e++, RT_EV_ACTIVATION_FAILED, 83, RT_INTERNAL, "-", "instance could not be built");
    ev_expect(e++, RT_EV_ACTOR_RESTART, 83, RT_UNAVAILABLE, "-", "activation failed");
    /* a failed commit */
    TB_STORE_SET(fail, 1);
    assert_int_equal(tb_call(rt, 84, TB_INCR, NULL), RT_UNAVAILABLE);
    TB_STORE_SET(fail, 0);
    ev_expect(e++, RT_EV_COMMIT_FAILED, 84, RT_UNAVAILABLE, "-", "storage failure");
    if (CG_FAULT_INJECTION) {
        /* actor-level faults beyond restart_max = 1: restart, restart + quarantine */
        rt_key k = tb_key(85);
        assert_int_equal(tb_call(rt, 85, TB_GET, NULL), RT_OK);
        rt_inject_actor_fault(rt, &k);
        assert_int_equal(tb_call(rt, 85, TB_GET, NULL), RT_UNAVAILABLE);
        ev_expect(e++, RT_EV_ACTOR_RESTART, 85, RT_UNAVAILABLE, "-", "actor loop fault");
        rt_inject_actor_fault(rt, &k);
        assert_int_equal(tb_call(rt, 85, TB_GET, NULL), RT_UNAVAILABLE);
        ev_expect(e++, RT_EV_ACTOR_RESTART, 85, RT_UNAVAILABLE, "-", "actor loop fault");
        ev_expect(e++, RT_EV_ACTOR_QUARANTINED, 85, RT_UNAVAILABLE, "-",
                  "restart intensity exceeded");
        pthread_mutex_lock(&EV.mu);
        assert_int_equal(EV.ev[e - 1].retry_after_ms, 200);
        pthread_mutex_unlock(&EV.mu);
    }
    /* healthy traffic raises none */
    assert_int_equal(tb_call(rt, 86, TB_INCR, NULL), RT_OK);
    assert_int_equal(tb_call(rt, 81, TB_GET, NULL), RT_OK);
    rt_stop(rt);
    assert_int_equal(ev_count(), e);
    assert_int_equal(EV.bad_ud, 0);
    assert_string_equal(rt_event_name(RT_EV_COMMIT_FAILED), "commit_failed");
    assert_string_equal(rt_event_name(RT_EV_COUNT_), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_and_send),
        cmocka_unit_test(test_no_persist),
        cmocka_unit_test(test_call_from_worker_refused),
        cmocka_unit_test(test_panic_isolated),
        cmocka_unit_test(test_actor_fault_restart),
        cmocka_unit_test(test_quarantine_and_recovery),
        cmocka_unit_test(test_create_failure),
        cmocka_unit_test(test_data_loss),
        cmocka_unit_test(test_deactivate),
        cmocka_unit_test(test_idle_eviction),
        cmocka_unit_test(test_idle_eviction_lower_bound),
        cmocka_unit_test(test_ticks_are_not_activity),
        cmocka_unit_test(test_mailbox_full_and_tick_drop),
        cmocka_unit_test(test_max_resident_lru),
        cmocka_unit_test(test_deadline_while_queued),
        cmocka_unit_test(test_parked_complete_and_deadline),
        cmocka_unit_test(test_parked_aborted_on_fault),
        cmocka_unit_test(test_completed_then_panic),
        cmocka_unit_test(test_parked_aborted_on_restart),
        cmocka_unit_test(test_parked_blocks_eviction),
        cmocka_unit_test(test_write_before_ack),
        cmocka_unit_test(test_save_failure_rolls_back),
        cmocka_unit_test(test_stop_cancels_queued),
        cmocka_unit_test(test_concurrent_first_activation),
        cmocka_unit_test(test_events),
    };
    if (getenv("RT_TEST_FILTER")) cmocka_set_test_filter(getenv("RT_TEST_FILTER"));
    return cmocka_run_group_tests_name("rt", tests, NULL, NULL);
}
