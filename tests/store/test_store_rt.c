/*
 * test_store_rt.c — the store under the actor runtime (rt_start with
 * store_persist and a small native behaviour): 10k actors evicted and
 * re-activated with identical state, restart of the whole service, an
 * injected commit failure rolling the actor back (UNAVAILABLE, previous
 * durable state), and a tampered record giving DATA_LOSS for that wallet only.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "cg_config.h"
#include "store_test_util.h"

/* Every open in this file goes to the backend under test (store_test_util.h). */
#define store_open(d, o, s, e, n) store_open((d), test_opts((d), (o), &(store_options){0}), s, e, n)

/* ------------------------------------------------- a native behaviour -- */

/* Durable state: a counter and a payload derived from (key, counter), so a
 * record restored into the wrong actor or at the wrong version shows. */
typedef struct counter_state {
    uint64_t n;
    uint8_t tag[24];
} counter_state;

typedef struct inst {
    rt_key key;
    counter_state st;
} inst;

static void derive_tag(const rt_key *k, uint64_t n, uint8_t tag[24])
{
    for (int i = 0; i < 24; i++)
        tag[i] = (uint8_t)(k->b[i % 32] ^ (n * 29u + (unsigned)i));
}

static rt_status b_create(void *cfg, const rt_key *key, const uint8_t *rec, size_t len, void **out)
{
    (void)cfg;
    inst *in = calloc(1, sizeof *in);
    if (!in) return RT_RESOURCE_EXHAUSTED;
    in->key = *key;
    if (rec) {
        uint8_t want[24];
        if (len != sizeof in->st) {
            free(in);
            return RT_DATA_LOSS;
        }
        memcpy(&in->st, rec, sizeof in->st);
        derive_tag(key, in->st.n, want);
        if (memcmp(want, in->st.tag, 24) != 0) {
            free(in);
            return RT_DATA_LOSS;
        }
    } else {
        derive_tag(key, 0, in->st.tag);
    }
    *out = in;
    return RT_OK;
}

static rt_status b_handle(void *p, rt_ctx *ctx, const rt_msg *msg)
{
    inst *in = p;
    if (msg->kind != RT_MSG_CLIENT) return RT_OK;
    if (msg->len == 3 && memcmp(msg->data, "inc", 3) == 0) {
        in->st.n++;
        derive_tag(&in->key, in->st.n, in->st.tag);
        rt_ctx_mark_dirty(ctx);
    }
    rt_ctx_reply(ctx, RT_OK, &in->st.n, sizeof in->st.n, 0);
    return RT_OK;
}

static rt_status b_snapshot(void *p, uint8_t **out, size_t *len)
{
    inst *in = p;
    *out = malloc(sizeof in->st);
    if (!*out) return RT_RESOURCE_EXHAUSTED;
    memcpy(*out, &in->st, sizeof in->st);
    *len = sizeof in->st;
    return RT_OK;
}

static rt_status b_tick(void *p, rt_ctx *ctx, uint64_t now)
{
    (void)p;
    (void)ctx;
    (void)now;
    return RT_OK;
}

static void b_destroy(void *p)
{
    free(p);
}

static const rt_behaviour behaviour = {b_create, b_handle, b_snapshot, b_tick, b_destroy, NULL};

/* ------------------------------------------------------------ harness -- */

typedef struct svc {
    store *s;
    rt_runtime *rt;
} svc;

static void svc_start(svc *v, const char *dir)
{
    char err[256];
    assert_int_equal(store_open(dir, NULL, &v->s, err, sizeof err), RT_OK);
    rt_config cfg = {
        .workers = 2,
        .mailbox_cap = 64,
        .idle_threshold_ms = 1,
        .evict_quantum_ms = 3600 * 1000, /* sweeps are driven by the test */
        .tick_interval_ms = UINT64_MAX,
        .behaviour = &behaviour,
        .persist = store_persist(v->s),
    };
    assert_int_equal(rt_start(&cfg, &v->rt), RT_OK);
}

static void svc_stop(svc *v)
{
    rt_stop(v->rt);
    store_close(v->s);
}

typedef struct waitall {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned pending, bad;
    uint64_t *got; /* per actor: last counter replied */
} waitall;

typedef struct one {
    waitall *w;
    unsigned i;
} one;

static void reply_cb(void *arg, rt_reply *r)
{
    one *o = arg;
    waitall *w = o->w;
    pthread_mutex_lock(&w->mu);
    if (r->status != RT_OK || r->len != 8)
        w->bad++;
    else
        memcpy(&w->got[o->i], r->data, 8);
    w->pending--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    rt_reply_free(r);
}

/* Sends msg to actors [0, n) with a bounded number in flight; returns the
 * number of non-OK replies and fills got[]. */
static unsigned send_all(rt_runtime *rt, unsigned n, const char *msg, uint64_t *got)
{
    waitall w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, got};
    one *ones = calloc(n, sizeof *ones);
    assert_non_null(ones);
    enum { WINDOW = 512 };
    for (unsigned i = 0; i < n; i++) {
        pthread_mutex_lock(&w.mu);
        while (w.pending >= WINDOW)
            pthread_cond_wait(&w.cv, &w.mu);
        w.pending++;
        pthread_mutex_unlock(&w.mu);
        ones[i] = (one){&w, i};
        rt_key k = wallet_key(i);
        rt_send(rt, &k, msg, strlen(msg), rt_now_ms() + 60000, reply_cb, &ones[i]);
    }
    pthread_mutex_lock(&w.mu);
    while (w.pending)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    free(ones);
    return w.bad;
}

static uint64_t call_n(rt_runtime *rt, unsigned i, const char *msg, rt_status *st)
{
    rt_key k = wallet_key(i);
    rt_reply r;
    rt_call(rt, &k, msg, strlen(msg), rt_now_ms() + 60000, &r);
    *st = r.status;
    uint64_t n = 0;
    if (r.status == RT_OK && r.len == 8) memcpy(&n, r.data, 8);
    rt_reply_free(&r);
    return n;
}

/* -------------------------------------------------------------- tests -- */

static void test_10k_actors_evict_reactivate(void **state)
{
    (void)state;
    unsigned N = CG_SANITIZE_THREAD ? 2000 : 10000;
    char *dir = tmp_store_dir();
    svc v;
    svc_start(&v, dir);
    uint64_t *got = calloc(N, sizeof *got);
    assert_non_null(got);

    /* Two durable increments per actor (the second only after the first). */
    assert_int_equal(send_all(v.rt, N, "inc", got), 0);
    assert_int_equal(send_all(v.rt, N, "inc", got), 0);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(got[i], 2);

    usleep(20 * 1000);
    rt_evict_sweep(v.rt);
    rt_stats st;
    rt_get_stats(v.rt, &st);
    assert_int_equal(st.resident, 0);
    assert_true(st.evictions >= N);
    uint64_t act_before = st.activations;

    /* Re-activation restores each actor from its record. */
    memset(got, 0, N * sizeof *got);
    assert_int_equal(send_all(v.rt, N, "get", got), 0);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(got[i], 2);
    rt_get_stats(v.rt, &st);
    assert_true(st.activations - act_before >= N);
    svc_stop(&v);

    /* And so does a restart of the whole service. */
    svc_start(&v, dir);
    memset(got, 0, N * sizeof *got);
    assert_int_equal(send_all(v.rt, N, "get", got), 0);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(got[i], 2);
    svc_stop(&v);
    free(got);
    rm_rf(dir);
}

static void test_commit_failure_rolls_back(void **state)
{
    (void)state;
#if CG_FAULT_INJECTION
    char *dir = tmp_store_dir();
    svc v;
    svc_start(&v, dir);
    rt_status st;
    assert_int_equal(call_n(v.rt, 7, "inc", &st), 1);
    assert_int_equal(st, RT_OK);
    assert_int_equal(store_inject_commit_failures(v.s, 1, EIO), RT_OK);
    call_n(v.rt, 7, "inc", &st);
    assert_int_equal(st, RT_UNAVAILABLE);
    /* The actor serves the last durable state, in memory and after eviction. */
    assert_int_equal(call_n(v.rt, 7, "get", &st), 1);
    assert_int_equal(st, RT_OK);
    usleep(5000);
    rt_evict_sweep(v.rt);
    assert_int_equal(call_n(v.rt, 7, "get", &st), 1);
    assert_int_equal(st, RT_OK);
    /* And the next write goes through as version 2. */
    assert_int_equal(call_n(v.rt, 7, "inc", &st), 2);
    assert_int_equal(st, RT_OK);
    svc_stop(&v);
    svc_start(&v, dir);
    assert_int_equal(call_n(v.rt, 7, "get", &st), 2);
    svc_stop(&v);
    rm_rf(dir);
#else
    skip();
#endif
}

static void test_tampered_record_is_data_loss(void **state)
{
    (void)state;
    char *dir = tmp_store_dir();
    svc v;
    svc_start(&v, dir);
    rt_status st;
    for (unsigned i = 0; i < 3; i++) {
        call_n(v.rt, i, "inc", &st);
        assert_int_equal(st, RT_OK);
    }
    svc_stop(&v);
    uint8_t rec[512];
    size_t len = 0;
    rt_key k1 = wallet_key(1);
    assert_int_equal(raw_get(dir, "rec", k1.b, 32, rec, &len), 0);
    rec[len - 1] ^= 0x80;
    assert_int_equal(raw_put(dir, "rec", k1.b, 32, rec, len), 0);
    svc_start(&v, dir);
    call_n(v.rt, 1, "get", &st);
    assert_int_equal(st, RT_DATA_LOSS);
    assert_int_equal(call_n(v.rt, 0, "inc", &st), 2);
    assert_int_equal(st, RT_OK);
    assert_int_equal(call_n(v.rt, 2, "get", &st), 1);
    assert_int_equal(st, RT_OK);
    svc_stop(&v);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_10k_actors_evict_reactivate),
        cmocka_unit_test(test_commit_failure_rolls_back),
        cmocka_unit_test(test_tampered_record_is_data_loss),
    };
    return cmocka_run_group_tests_name(test_on_pg() ? "store_pg_rt" : "store_rt", tests, NULL,
                                       NULL);
}
