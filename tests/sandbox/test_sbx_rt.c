/*
 * The sandbox behind the real runtime: guest traps through rt_call, with
 * durable records in an in-memory rt_persist, as the daemon wires it.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cg_config.h"
#include "rt.h"
#include "sbx.h"

extern const sbx_module sbx_module_testguest;

/* ------------------------------------------------- in-memory persist --- */

#define MAX_KEYS 64

typedef struct mem_rec {
    rt_key key;
    uint8_t *rec;
    size_t len;
    uint64_t version;
} mem_rec;

static struct {
    pthread_mutex_t mu;
    mem_rec r[MAX_KEYS];
    unsigned n;
} store = {.mu = PTHREAD_MUTEX_INITIALIZER};

static mem_rec *find(const rt_key *k, int create)
{
    for (unsigned i = 0; i < store.n; i++)
        if (!memcmp(&store.r[i].key, k, sizeof *k)) return &store.r[i];
    if (!create || store.n == MAX_KEYS) return NULL;
    mem_rec *r = &store.r[store.n++];
    memset(r, 0, sizeof *r);
    r->key = *k;
    return r;
}

static rt_status p_load(void *ud, const rt_key *key, uint8_t **rec, size_t *len, uint64_t *version)
{
    (void)ud;
    pthread_mutex_lock(&store.mu);
    mem_rec *r = find(key, 0);
    rt_status st = RT_NOT_FOUND;
    *rec = NULL;
    *len = 0;
    *version = 0;
    if (r && r->rec) {
        *rec = malloc(r->len);
        memcpy(*rec, r->rec, r->len);
        *len = r->len;
        *version = r->version;
        st = RT_OK;
    }
    pthread_mutex_unlock(&store.mu);
    return st;
}

static void p_save(void *ud, const rt_key *key, const uint8_t *rec, size_t len, uint64_t version,
                   void (*done)(void *arg, rt_status st), void *arg)
{
    (void)ud;
    pthread_mutex_lock(&store.mu);
    mem_rec *r = find(key, 1);
    rt_status st = RT_RESOURCE_EXHAUSTED;
    if (r) {
        free(r->rec);
        r->rec = malloc(len ? len : 1);
        memcpy(r->rec, rec, len);
        r->len = len;
        r->version = version;
        st = RT_OK;
    }
    pthread_mutex_unlock(&store.mu);
    done(arg, st);
}

static void put_record(const rt_key *key, const void *rec, size_t len)
{
    pthread_mutex_lock(&store.mu);
    mem_rec *r = find(key, 1);
    free(r->rec);
    r->rec = malloc(len);
    memcpy(r->rec, rec, len);
    r->len = len;
    r->version = 1;
    pthread_mutex_unlock(&store.mu);
}

static void store_clear(void)
{
    for (unsigned i = 0; i < store.n; i++)
        free(store.r[i].rec);
    store.n = 0;
}

static const rt_persist persist = {p_load, p_save, NULL};

/* ------------------------------------------------------------ fixture --- */

static const sbx_config scfg = {
    .module = &sbx_module_testguest,
    .mem_cap = 1u << 20,
    .budget_ms = 20,
};

static rt_behaviour beh;

static rt_runtime *start(void)
{
    sbx_behaviour_init(&beh, &scfg);
    rt_config c = {
        .workers = 2,
        .tick_interval_ms = UINT64_MAX,
        .restart_max = 1000,
        .behaviour = &beh,
        .persist = &persist,
    };
    rt_runtime *rt = NULL;
    assert_int_equal(rt_start(&c, &rt), RT_OK);
    return rt;
}

static rt_key key_of(unsigned i)
{
    rt_key k;
    memset(&k, 0, sizeof k);
    k.b[0] = (uint8_t)i;
    k.b[1] = 0xab;
    return k;
}

static rt_status call(rt_runtime *rt, unsigned key, const void *cmd, size_t len, rt_reply *r)
{
    rt_key k = key_of(key);
    rt_call(rt, &k, cmd, len, rt_now_ms() + 10000, r);
    return r->status;
}

static uint64_t bump(rt_runtime *rt, unsigned key)
{
    rt_reply r;
    assert_int_equal(call(rt, key, "c", 1, &r), RT_OK);
    assert_int_equal(r.len, 8);
    uint64_t v;
    memcpy(&v, r.data, 8);
    rt_reply_free(&r);
    return v;
}

typedef struct trap_case {
    const char *cmd;
    rt_status status;
    sbx_fault fault;
} trap_case;

static const trap_case traps[] = {
    {"o", RT_INTERNAL, SBX_FAULT_OOB},
    {"O", RT_INTERNAL, SBX_FAULT_OOB},
    {"u", RT_INTERNAL, SBX_FAULT_UNREACHABLE},
    {"d", RT_INTERNAL, SBX_FAULT_DIV_BY_ZERO},
    {"v", RT_INTERNAL, SBX_FAULT_INT_OVERFLOW},
    {"f", RT_INTERNAL, SBX_FAULT_INVALID_CONVERSION},
    {"i", RT_INTERNAL, SBX_FAULT_CALL_INDIRECT},
    {"s", RT_INTERNAL, SBX_FAULT_OOB},
    {"r", RT_INTERNAL, SBX_FAULT_EXHAUSTION},
    {"M", RT_INTERNAL, SBX_FAULT_UNREACHABLE},
    {"l", RT_DEADLINE_EXCEEDED, SBX_FAULT_BUDGET},
    {"p", RT_INTERNAL, SBX_FAULT_BAD_POINTER},
    {"P", RT_INTERNAL, SBX_FAULT_BAD_POINTER},
    {"D", RT_INTERNAL, SBX_FAULT_ABI},
    {"z", RT_INTERNAL, SBX_FAULT_ABI},
    {"X", RT_INTERNAL, SBX_FAULT_BAD_POINTER},
    {"Y", RT_INTERNAL, SBX_FAULT_ABI},
};
#define NTRAPS (sizeof traps / sizeof traps[0])

static void test_traps_through_runtime(void **state)
{
    (void)state;
    rt_runtime *rt = start();
    /* Bystander with volatile (non-durable) state: if its instance were
     * rebuilt, the secret it holds would be gone. */
    static const char secret_cmd[] = "wbystander-secret";
    rt_reply r;
    assert_int_equal(call(rt, 9, secret_cmd, sizeof secret_cmd - 1, &r), RT_OK);
    rt_reply_free(&r);
    assert_int_equal(bump(rt, 9), 1);

    uint64_t counter = 0;
    for (size_t i = 0; i < NTRAPS; i++) {
        const trap_case *t = &traps[i];
        sbx_stats before, after;
        assert_int_equal(bump(rt, 1), ++counter);
        sbx_get_stats(&before);
        rt_status st = call(rt, 1, t->cmd, strlen(t->cmd), &r);
        print_message("rt trap '%s': %s %.*s\n", t->cmd, rt_status_name(st), (int)r.len,
                      (const char *)r.data);
        assert_int_equal(st, t->status);
        rt_reply_free(&r);
        sbx_get_stats(&after);
        assert_int_equal(after.faults[t->fault], before.faults[t->fault] + 1);
        /* Same actor, next message: a fresh instance from the durable record. */
        assert_int_equal(bump(rt, 1), ++counter);
    }

    /* The bystander kept its instance (and its in-memory secret). */
    assert_int_equal(call(rt, 9, "g", 1, &r), RT_OK);
    assert_int_equal(r.len, sizeof secret_cmd - 2);
    assert_memory_equal(r.data, secret_cmd + 1, r.len);
    rt_reply_free(&r);
    assert_int_equal(bump(rt, 9), 2);

    rt_stats rs;
    rt_get_stats(rt, &rs);
    assert_int_equal(rs.handler_faults, NTRAPS);
    assert_int_equal(rs.handler_timeouts, 1);
    rt_stop(rt);
    store_clear();
}

static void test_restore_trap_is_actor_level(void **state)
{
    (void)state;
    rt_runtime *rt = start();
    rt_key k = key_of(3);
    put_record(&k, "TRAP", 4);
    rt_stats s0, s1;
    rt_get_stats(rt, &s0);
    rt_reply r;
    assert_int_not_equal(call(rt, 3, "c", 1, &r), RT_OK);
    rt_reply_free(&r);
    rt_get_stats(rt, &s1);
    assert_true(s1.activation_failures > s0.activation_failures);
    /* Others are served. */
    assert_int_equal(bump(rt, 4), 1);
    /* Once the record is sane again, the actor comes back. */
    uint64_t seven = 7;
    put_record(&k, &seven, 8);
    for (int i = 0; i < 200; i++) {
        if (call(rt, 3, "c", 1, &r) == RT_OK) {
            rt_reply_free(&r);
            break;
        }
        rt_reply_free(&r);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(bump(rt, 3), 9);
    rt_stop(rt);
    store_clear();
}

/* park and ticks reach the runtime: a parked reply expires with the
 * request's deadline, a tick reaches cg_tick. */
static void test_park_and_tick(void **state)
{
    (void)state;
    rt_runtime *rt = start();
    rt_key k = key_of(5);
    rt_reply r;
    rt_call(rt, &k, "k", 1, rt_now_ms() + 200, &r);
    assert_int_equal(r.status, RT_DEADLINE_EXCEEDED);
    rt_reply_free(&r);
    assert_int_equal(rt_try_send_tick(rt, &k), RT_OK);
    uint64_t ticks = 0;
    for (int i = 0; i < 100 && ticks == 0; i++) {
        assert_int_equal(call(rt, 5, "t", 1, &r), RT_OK);
        memcpy(&ticks, r.data, 8);
        rt_reply_free(&r);
    }
    assert_int_equal(ticks, 1);
    rt_stop(rt);
    store_clear();
}

#if CG_SANITIZE_THREAD || CG_SANITIZE_ADDRESS
#define CLIENT_CALLS 3000
#else
#define CLIENT_CALLS 20000
#endif

typedef struct client {
    rt_runtime *rt;
    unsigned key, seed;
    int failed;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    uint64_t counter = 0;
    for (unsigned i = 0; i < CLIENT_CALLS && !c->failed; i++) {
        unsigned x = rand_r(&c->seed);
        rt_reply r;
        if (x % 3 == 0) {
            const trap_case *t = &traps[(x / 3) % NTRAPS];
            if (t->fault == SBX_FAULT_BUDGET) t = &traps[0];
            if (call(c->rt, c->key, t->cmd, strlen(t->cmd), &r) != t->status) c->failed = 1;
        } else if (x % 3 == 1) {
            if (call(c->rt, c->key, "c", 1, &r) != RT_OK || r.len != 8)
                c->failed = 2;
            else {
                uint64_t v;
                memcpy(&v, r.data, 8);
                if (v != ++counter) c->failed = 3;
            }
        } else {
            char cmd[16];
            int n = snprintf(cmd, sizeof cmd, "e%u", x);
            if (call(c->rt, c->key, cmd, (size_t)n, &r) != RT_OK || r.len != (size_t)n - 1 ||
                memcmp(r.data, cmd + 1, r.len))
                c->failed = 4;
        }
        rt_reply_free(&r);
    }
    return NULL;
}

static void test_concurrent_actors(void **state)
{
    (void)state;
    rt_runtime *rt = start();
    client c[4];
    pthread_t t[4];
    for (unsigned i = 0; i < 4; i++) {
        c[i] = (client){.rt = rt, .key = 20 + i, .seed = i + 1};
        assert_int_equal(pthread_create(&t[i], NULL, client_main, &c[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(c[i].failed, 0);
    }
    rt_stop(rt);
    store_clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traps_through_runtime),
        cmocka_unit_test(test_restore_trap_is_actor_level),
        cmocka_unit_test(test_park_and_tick),
        cmocka_unit_test(test_concurrent_actors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
