/*
 * test_cosigner_rt.c — the native cosigner as a real rt_behaviour on the
 * real runtime (src/rt), with an in-memory rt_persist, and with the real
 * store (src/store) where a storage failure is the point.
 *
 * What the in-process host of test_cosigner.c only imitates is real here:
 * requests arrive through mailboxes from several threads at once, the
 * rendezvous parks them in the runtime, the DKG record is committed before
 * round-2 replies are released, and a handler fault makes the runtime
 * abort parked waiters and rebuild the instance from the durable record.
 *
 * Built twice: with the cosigner linked natively, and (WITH_SBX) with the
 * wasm32 build of the same code running in the sandbox, so the module the
 * daemon ships passes the same end-to-end scenario.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>

#include <cmocka.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "cg_cmd.h"
#include "cg_config.h"
#include "cg_cosigner.h"
#include "cg_dkg.h"
#include "cg_frost.h"
#include "cg_wallet_id.h"
#include "cx.h"
#include "rt.h"
#include "store.h"
#if defined(WITH_SBX)
#include "sbx.h"
extern const sbx_module sbx_module_cosigner;
#endif

#define SESSIONS 20
#define MAXN 32 /* participants in the largest wallet tested */
#if defined(WITH_SBX)
#define SBX 1
#else
#define SBX 0
#endif

static secp256k1_context *secp;

/* ------------------------------------------------- behaviour and persist -- */

typedef struct bcfg {
    uint8_t hostseckey[32];
    uint8_t conf[CG_CONFIG_LEN];
} bcfg;

#if !defined(WITH_SBX)
static void b_reply(void *ctx, int32_t st, const void *d, uint32_t len, uint64_t blame)
{
    rt_ctx_reply(ctx, (rt_status)st, d, len, blame);
}
static uint64_t b_park(void *ctx, uint64_t deadline)
{
    return rt_ctx_park(ctx, deadline);
}
static int32_t b_complete(void *ctx, uint64_t id, int32_t st, const void *d, uint32_t len,
                          uint64_t blame)
{
    return (int32_t)rt_ctx_complete(ctx, id, (rt_status)st, d, len, blame);
}
static void b_dirty(void *ctx)
{
    rt_ctx_mark_dirty(ctx);
}

typedef struct snap {
    uint8_t *data;
    size_t len;
} snap;

static void b_snap(void *ctx, const void *d, uint32_t len)
{
    snap *s = ctx;
    s->data = malloc(len);
    memcpy(s->data, d, len);
    s->len = len;
}

static const cg_host host_ops = {b_reply, b_park, b_complete, b_dirty, NULL};
static const cg_host snap_ops = {NULL, NULL, NULL, NULL, b_snap};

static rt_status b_create(void *cfg, const rt_key *key, const uint8_t *rec, size_t len, void **inst)
{
    (void)key;
    bcfg *c = cfg;
    cg_actor *a;
    rt_status st = cg_actor_new(&a);
    if (st != RT_OK) return st;
    if ((st = cg_actor_init(a)) != RT_OK ||
        (st = cg_actor_configure(a, c->conf, sizeof c->conf)) != RT_OK ||
        (st = cg_actor_set_hostkey(a, c->hostseckey)) != RT_OK ||
        (st = cg_actor_restore(a, rec, rec ? len : 0)) != RT_OK) {
        cg_actor_free(a);
        return st;
    }
    *inst = a;
    return RT_OK;
}

static rt_status b_handle(void *inst, rt_ctx *ctx, const rt_msg *m)
{
    return cg_actor_handle(inst, &host_ops, ctx, m->data, m->len, m->now_ms);
}

static rt_status b_snapshot(void *inst, uint8_t **out, size_t *len)
{
    snap s = {0};
    rt_status st = cg_actor_snapshot(inst, &snap_ops, &s);
    if (st != RT_OK) {
        free(s.data);
        return st;
    }
    *out = s.data;
    *len = s.len;
    return RT_OK;
}

static rt_status b_tick(void *inst, rt_ctx *ctx, uint64_t now)
{
    return cg_actor_tick(inst, &host_ops, ctx, now);
}

static void b_destroy(void *inst)
{
    cg_actor_free(inst);
}
#endif

/* The in-memory rt_persist: one record (each test uses one wallet). */
static struct {
    pthread_mutex_t mu;
    uint8_t *rec;
    size_t len;
    uint64_t version;
    unsigned loads;
} mem_store = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0};

static rt_status p_load(void *ud, const rt_key *key, uint8_t **rec, size_t *len, uint64_t *version)
{
    (void)ud;
    (void)key;
    pthread_mutex_lock(&mem_store.mu);
    mem_store.loads++;
    rt_status st = RT_NOT_FOUND;
    *version = mem_store.version;
    if (mem_store.rec) {
        *rec = malloc(mem_store.len);
        memcpy(*rec, mem_store.rec, mem_store.len);
        *len = mem_store.len;
        st = RT_OK;
    }
    pthread_mutex_unlock(&mem_store.mu);
    return st;
}

static void p_save(void *ud, const rt_key *key, const uint8_t *rec, size_t len, uint64_t version,
                   void (*done)(void *, rt_status), void *arg)
{
    (void)ud;
    (void)key;
    pthread_mutex_lock(&mem_store.mu);
    rt_status st = RT_FAILED_PRECONDITION;
    if (version == mem_store.version + 1) {
        free(mem_store.rec);
        mem_store.rec = malloc(len);
        memcpy(mem_store.rec, rec, len);
        mem_store.len = len;
        mem_store.version = version;
        st = RT_OK;
    }
    pthread_mutex_unlock(&mem_store.mu);
    done(arg, st);
}

/* ------------------------------------------------- concurrent requests -- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    rt_reply r;
} waiter;

static void on_reply(void *arg, rt_reply *r)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->r = *r;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

typedef struct world {
    rt_runtime *rt;
    rt_key key;
    bcfg cfg;
    rt_behaviour beh;
    rt_persist persist;
    store *st; /* the real store under the runtime, else the in-memory one */
#if defined(WITH_SBX)
    sbx_config sbx;
#endif
} world;

/* Sends all commands at once (as devices do) and waits for every reply. */
static void post_all(world *W, const cg_cmd *cmds, size_t count, rt_reply *out)
{
    waiter *w = calloc(count, sizeof *w);
    for (size_t i = 0; i < count; i++) {
        uint8_t buf[4096];
        size_t len;
        assert_int_equal(cg_cmd_encode(&cmds[i], buf, sizeof buf, &len), RT_OK);
        pthread_mutex_init(&w[i].mu, NULL);
        pthread_cond_init(&w[i].cv, NULL);
        rt_send(W->rt, &W->key, buf, len, rt_now_ms() + 30000, on_reply, &w[i]);
    }
    for (size_t i = 0; i < count; i++) {
        pthread_mutex_lock(&w[i].mu);
        while (!w[i].done)
            pthread_cond_wait(&w[i].cv, &w[i].mu);
        pthread_mutex_unlock(&w[i].mu);
        out[i] = w[i].r;
        pthread_mutex_destroy(&w[i].mu);
        pthread_cond_destroy(&w[i].cv);
    }
    free(w);
}

/* --------------------------------------------------------------- devices -- */

typedef struct device {
    uint8_t seckey[32];
    uint8_t pubkey[33];
    uint32_t idx;
    cg_dkg_pstate1 st1;
    cg_dkg_pstate2 st2;
    cg_dkg_output out;
    uint8_t pmsg1[CG_DKG_PMSG1_MAX];
    size_t pmsg1_len;
    uint8_t pmsg2[64];
} device;

static struct {
    uint32_t n, t, me;
    uint8_t hostseckey[32], hostpubkey[33];
    device dev[MAXN];
    uint32_t ndev;
    cg_dkg_params params;
    uint8_t thresh_pk[33];
} G;

static void setup_params(uint32_t n, uint32_t t, uint32_t me)
{
    cg_dkg_error e;
    memset(&G, 0, sizeof G);
    G.n = n;
    G.t = t;
    G.me = me;
    G.params.n = n;
    G.params.t = t;
    do
        cx_random(G.hostseckey, 32);
    while (cg_dkg_hostpubkey_gen(G.hostpubkey, G.hostseckey, 32, &e) != RT_OK);
    for (uint32_t i = 0; i < n; i++) {
        if (i == me) {
            memcpy(G.params.hostpubkeys[i], G.hostpubkey, 33);
            continue;
        }
        device *d = &G.dev[G.ndev++];
        d->idx = i;
        do
            cx_random(d->seckey, 32);
        while (cg_dkg_hostpubkey_gen(d->pubkey, d->seckey, 32, &e) != RT_OK);
        memcpy(G.params.hostpubkeys[i], d->pubkey, 33);
    }
}

static device *dev_of(uint32_t idx)
{
    for (uint32_t i = 0; i < G.ndev; i++)
        if (G.dev[i].idx == idx) return &G.dev[i];
    return NULL;
}

/* Starts the runtime over st (the real store), or the in-memory record
 * when st is NULL. */
static void start_on(world *W, uint32_t flags, store *st)
{
    memset(W, 0, sizeof *W);
    W->st = st;
    memcpy(W->cfg.hostseckey, G.hostseckey, 32);
    cg_config cc = {.rendezvous_ms = 20000, .flags = flags};
    cg_config_encode(&cc, W->cfg.conf);
#if defined(WITH_SBX)
    W->sbx = (sbx_config){.module = &sbx_module_cosigner,
                          .hostkey = W->cfg.hostseckey,
                          .guest_config = W->cfg.conf,
                          .guest_config_len = sizeof W->cfg.conf};
    sbx_behaviour_init(&W->beh, &W->sbx);
#else
    W->beh = (rt_behaviour){b_create, b_handle, b_snapshot, b_tick, b_destroy, &W->cfg};
#endif
    W->persist = st ? *store_persist(st) : (rt_persist){p_load, p_save, NULL};
    rt_config c = {
        .workers = 2, .tick_interval_ms = UINT64_MAX, .behaviour = &W->beh, .persist = &W->persist};
    assert_int_equal(rt_start(&c, &W->rt), RT_OK);
    uint64_t blame;
    assert_int_equal(cg_wallet_id(G.params.hostpubkeys[0], G.n, G.t, W->key.b, &blame), RT_OK);
}

static void start(world *W, uint32_t flags)
{
    start_on(W, flags, NULL);
}

/* The version of the wallet's durable record (0 = none). */
static uint64_t rec_version(world *W)
{
    if (!W->st) return mem_store.version;
    uint8_t *rec = NULL;
    size_t len = 0;
    uint64_t v = 0;
    rt_status st = store_get(W->st, &W->key, &rec, &len, &v);
    if (rec) cx_wipe(rec, len);
    free(rec);
    if (st == RT_NOT_FOUND) return 0;
    assert_int_equal(st, RT_OK);
    return v;
}

/* DKG round 1 with fresh device messages, then each device's step 2: c[i]
 * is device i's round-2 command afterwards. */
static void dkg_round1(world *W, cg_cmd *c)
{
    cg_dkg_error e;
    uint8_t r32[32];
    rt_reply r[MAXN];

    for (uint32_t i = 0; i < G.ndev; i++) {
        device *d = &G.dev[i];
        cx_random(r32, 32);
        assert_int_equal(cg_dkg_participant_step1(&d->st1, d->pmsg1, sizeof d->pmsg1, &d->pmsg1_len,
                                                  d->seckey, 32, &G.params, r32, 32, &e),
                         RT_OK);
        c[i] = (cg_cmd){.kind = CG_CMD_DKG_ROUND1, .sender = d->pubkey};
        c[i].u.dkg1.n = G.n;
        c[i].u.dkg1.t = G.t;
        c[i].u.dkg1.hostpubkeys = G.params.hostpubkeys[0];
        c[i].u.dkg1.pmsg1 = d->pmsg1;
        c[i].u.dkg1.pmsg1_len = (uint32_t)d->pmsg1_len;
    }
    post_all(W, c, G.ndev, r);
    for (uint32_t i = 0; i < G.ndev; i++) {
        device *d = &G.dev[i];
        assert_int_equal(r[i].status, RT_OK);
        cg_reply rep;
        assert_int_equal(cg_reply_decode(&rep, r[i].data, r[i].len), RT_OK);
        cx_random(r32, 32);
        assert_int_equal(cg_dkg_participant_step2(&d->st2, d->pmsg2, d->seckey, 32, &d->st1,
                                                  rep.u.dkg1.cmsg1, rep.u.dkg1.cmsg1_len, r32, 32,
                                                  NULL, &e),
                         RT_OK);
        rt_reply_free(&r[i]);
        c[i] = (cg_cmd){.kind = CG_CMD_DKG_ROUND2, .sender = d->pubkey};
        c[i].u.dkg2.pmsg2 = d->pmsg2;
        c[i].u.dkg2.pmsg2_len = 64;
    }
}

static void run_dkg(world *W)
{
    cg_dkg_error e;
    cg_cmd c[MAXN] = {0};
    rt_reply r[MAXN];

    dkg_round1(W, c);
    assert_int_equal(rec_version(W), 0);
    post_all(W, c, G.ndev, r);
    /* The replies were released only after the record was durable. */
    assert_int_equal(rec_version(W), 1);
    for (uint32_t i = 0; i < G.ndev; i++) {
        device *d = &G.dev[i];
        assert_int_equal(r[i].status, RT_OK);
        cg_reply rep;
        assert_int_equal(cg_reply_decode(&rep, r[i].data, r[i].len), RT_OK);
        uint8_t rec[CG_DKG_RECOVERY_MAX];
        size_t rec_len;
        assert_int_equal(cg_dkg_participant_finalize(&d->out, rec, sizeof rec, &rec_len, &d->st2,
                                                     rep.u.dkg2.cmsg2, rep.u.dkg2.cmsg2_len, &e),
                         RT_OK);
        if (i == 0) memcpy(G.thresh_pk, d->out.threshold_pubkey, 33);
        assert_memory_equal(G.thresh_pk, rep.u.dkg2.thresh_pubkey, 33);
        rt_reply_free(&r[i]);
    }
}

typedef struct sess {
    uint8_t sid[32];
    uint32_t count;
    uint8_t ids[MAXN];
    uint8_t msg[64];
    uint32_t msg_len;
    uint8_t tweak[32];
    cg_frost_secnonce secnonce[MAXN];
    uint8_t pubnonce[MAXN][66];
    uint8_t aggnonce[66];
    uint8_t psig[MAXN][32];
    secp256k1_xonly_pubkey Q;
} sess;

/* All participants sign; a BIP 341 key-path tweak with a random script root. */
static void sess_new(sess *s)
{
    memset(s, 0, sizeof *s);
    cx_random(s->sid, 32);
    s->count = G.n;
    for (uint32_t i = 0; i < G.n; i++)
        s->ids[i] = (uint8_t)(G.n - 1 - i);
    s->msg_len = 32 + (uint32_t)rand() % 32;
    cx_random(s->msg, s->msg_len);
    secp256k1_pubkey P;
    secp256k1_xonly_pubkey X;
    uint8_t buf[64];
    assert_true(secp256k1_ec_pubkey_parse(secp, &P, G.thresh_pk, 33));
    assert_true(secp256k1_xonly_pubkey_from_pubkey(secp, &X, NULL, &P));
    assert_true(secp256k1_xonly_pubkey_serialize(secp, buf, &X));
    cx_random(buf + 32, 32);
    assert_true(secp256k1_tagged_sha256(secp, s->tweak, (const uint8_t *)"TapTweak", 8, buf, 64));
    assert_true(secp256k1_xonly_pubkey_tweak_add(secp, &P, &X, s->tweak));
    assert_true(secp256k1_xonly_pubkey_from_pubkey(secp, &s->Q, NULL, &P));
}

static void sign_round1(world *W, sess *s)
{
    cg_frost_error e;
    cg_cmd c[MAXN] = {0};
    rt_reply r[MAXN];
    uint32_t k = 0;
    for (uint32_t p = 0; p < s->count; p++) {
        device *d = dev_of(s->ids[p]);
        if (!d) continue;
        assert_int_equal(cg_frost_nonce_gen(&s->secnonce[p], s->pubnonce[p], d->out.secshare, NULL,
                                            NULL, s->msg, s->msg_len, NULL, 0, &e),
                         RT_OK);
        c[k] = (cg_cmd){.kind = CG_CMD_SIGN_ROUND1, .sender = d->pubkey};
        c[k].u.sign1.session_id = s->sid;
        c[k].u.sign1.n_signers = s->count;
        memcpy(c[k].u.sign1.signer_ids, s->ids, s->count);
        c[k].u.sign1.msg = s->msg;
        c[k].u.sign1.msg_len = s->msg_len;
        c[k].u.sign1.n_tweaks = 1;
        c[k].u.sign1.tweaks[0] = (cg_tweak){s->tweak, 1};
        c[k].u.sign1.pubnonce = s->pubnonce[p];
        k++;
    }
    post_all(W, c, k, r);
    for (uint32_t i = 0; i < k; i++) {
        assert_int_equal(r[i].status, RT_OK);
        cg_reply rep;
        assert_int_equal(cg_reply_decode(&rep, r[i].data, r[i].len), RT_OK);
        if (i == 0) memcpy(s->aggnonce, rep.u.sign1.aggnonce, 66);
        assert_memory_equal(s->aggnonce, rep.u.sign1.aggnonce, 66);
        rt_reply_free(&r[i]);
    }
}

/* Returns the common status; *sig on success; bad = position to corrupt. */
static int after_restart; /* the actor was just restarted under this session */

static rt_status sign_round2(world *W, sess *s, int bad, uint8_t sig[64], uint64_t *blame)
{
    cg_frost_error e;
    cg_frost_signers signers;
    cg_frost_tweak_ctx tc;
    cg_frost_session fs;
    uint32_t ids[MAXN];
    uint8_t ps[MAXN][33];
    cg_cmd c[MAXN] = {0};
    rt_reply r[MAXN];
    uint32_t k = 0;

    for (uint32_t p = 0; p < s->count; p++) {
        ids[p] = s->ids[p];
        memcpy(ps[p], G.dev[0].out.pubshares[ids[p]], 33);
    }
    assert_int_equal(cg_frost_signers_init(&signers, G.n, G.t, ids, (const uint8_t(*)[33])ps,
                                           s->count, G.thresh_pk, &e),
                     RT_OK);
    assert_int_equal(cg_frost_tweak_init(&tc, G.thresh_pk, &e), RT_OK);
    assert_int_equal(cg_frost_tweak_apply(&tc, s->tweak, 32, 1, &e), RT_OK);
    assert_int_equal(cg_frost_session_init(&fs, &signers, &tc, s->aggnonce, s->msg, s->msg_len, &e),
                     RT_OK);
    for (uint32_t p = 0; p < s->count; p++) {
        device *d = dev_of(s->ids[p]);
        if (!d) continue;
        assert_int_equal(
            cg_frost_sign(s->psig[p], &s->secnonce[p], d->out.secshare, d->idx, &fs, &e), RT_OK);
        if ((int)p == bad) s->psig[p][0] ^= 0x01;
        c[k] = (cg_cmd){.kind = CG_CMD_SIGN_ROUND2, .sender = d->pubkey};
        c[k].u.sign2.session_id = s->sid;
        c[k].u.sign2.psig = s->psig[p];
        k++;
    }
    post_all(W, c, k, r);
    rt_status st = r[0].status;
    *blame = r[0].blame;
    for (uint32_t i = 0; i < k; i++) {
        if (after_restart) {
            /* Queued behind the restart (CANCELLED) or handled by the new
             * instance, which has no such session (ABORTED): never silence. */
            assert_true(r[i].status == RT_ABORTED || r[i].status == RT_CANCELLED);
            st = RT_ABORTED;
            rt_reply_free(&r[i]);
            continue;
        }
        assert_int_equal(r[i].status, st);
        assert_int_equal(r[i].blame, *blame);
        if (st == RT_OK) {
            cg_reply rep;
            assert_int_equal(cg_reply_decode(&rep, r[i].data, r[i].len), RT_OK);
            memcpy(sig, rep.u.sign2.sig, 64);
        }
        rt_reply_free(&r[i]);
    }
    return st;
}

static void sign_ok(world *W)
{
    sess s;
    uint8_t sig[64];
    uint64_t blame;
    sess_new(&s);
    sign_round1(W, &s);
    assert_int_equal(sign_round2(W, &s, -1, sig, &blame), RT_OK);
    assert_true(secp256k1_schnorrsig_verify(secp, sig, s.msg, s.msg_len, &s.Q));
}

/* ----------------------------------------------------------------- tests -- */

static void test_rt_2of3(void **state)
{
    (void)state;
    world W;
    setup_params(3, 2, 1);
    start(&W, CG_FAULT_INJECTION ? CG_CONFIG_FAULT_INJECTION : 0);
    run_dkg(&W);
    for (int i = 0; i < SESSIONS; i++)
        sign_ok(&W);

    /* A bad partial signature: ABORTED for every device, blaming its signer. */
    sess s;
    uint8_t sig[64];
    uint64_t blame;
    sess_new(&s);
    sign_round1(&W, &s);
    int bad = 0; /* position 0 = participant 2 */
    assert_int_equal(sign_round2(&W, &s, bad, sig, &blame), RT_ABORTED);
    assert_int_equal(blame, 1u << s.ids[bad]);

    if (CG_FAULT_INJECTION) {
        /* An actor-level fault between the rounds (the supervisor rebuilds the
         * actor from the record): the session is gone, the next one signs. */
        sess_new(&s);
        sign_round1(&W, &s);
        unsigned loads0 = mem_store.loads;
        rt_inject_actor_fault(W.rt, &W.key);
        cg_cmd g = {.kind = CG_CMD_GET_WALLET, .sender = G.dev[0].pubkey};
        rt_reply gr;
        post_all(&W, &g, 1, &gr); /* meets the fault: refused, never silent */
        assert_true(gr.status == RT_UNAVAILABLE || gr.status == RT_CANCELLED);
        rt_reply_free(&gr);
        after_restart = 1;
        assert_int_equal(sign_round2(&W, &s, -1, sig, &blame), RT_ABORTED);
        after_restart = 0;
        sign_ok(&W);
        assert_true(mem_store.loads > loads0); /* rebuilt from the durable record */

        /* A handler fault between the rounds: the runtime rebuilds the
         * instance from the record; round 2 is refused; the next session
         * signs with the restored share. */
        sess_new(&s);
        sign_round1(&W, &s);
        unsigned loads = mem_store.loads;
        cg_cmd f = {.kind = CG_CMD_FAULT, .sender = G.dev[0].pubkey};
        f.u.fault.kind = CG_FAULT_TRAP;
        rt_reply r;
        post_all(&W, &f, 1, &r);
        assert_int_equal(r.status, RT_INTERNAL);
        rt_reply_free(&r);
        assert_int_equal(sign_round2(&W, &s, -1, sig, &blame), RT_ABORTED);
        assert_true(mem_store.loads > loads); /* rebuilt from the durable record */
        sign_ok(&W);

        /* The faults only a sandboxed guest can have: a runaway loop (the
         * CPU budget ends it), memory exhaustion. Each costs the instance,
         * never the wallet. */
        if (SBX) {
            static const uint32_t kinds[] = {CG_FAULT_SPIN, CG_FAULT_OOM, CG_FAULT_RETURN};
            static const rt_status expect[] = {RT_DEADLINE_EXCEEDED, RT_INTERNAL, RT_INTERNAL};
            for (int i = 0; i < 3; i++) {
                f.u.fault.kind = kinds[i];
                post_all(&W, &f, 1, &r);
                assert_int_equal(r.status, expect[i]);
                rt_reply_free(&r);
                sign_ok(&W);
            }
        }

        /* A snapshot that faults: nothing is written, the wallet signs on. */
        uint64_t version = mem_store.version;
        f.u.fault.kind = CG_FAULT_SNAPSHOT;
        post_all(&W, &f, 1, &r);
        assert_int_not_equal(r.status, RT_OK);
        rt_reply_free(&r);
        assert_int_equal(mem_store.version, version);
        sign_ok(&W);
    }
    rt_stats st;
    rt_get_stats(W.rt, &st);
    assert_int_equal(st.parked, 0);
    rt_stop(W.rt);
}

static void test_rt_2of2(void **state)
{
    (void)state;
    world W;
    free(mem_store.rec);
    mem_store.rec = NULL;
    mem_store.len = 0;
    mem_store.version = 0;
    setup_params(2, 2, 0);
    start(&W, 0);
    run_dkg(&W);
    for (int i = 0; i < SESSIONS; i++)
        sign_ok(&W);
    /* Stop and start again: the wallet comes back from the record. */
    rt_stop(W.rt);
    start(&W, 0);
    sign_ok(&W);
    rt_stop(W.rt);
}

/* The largest wallet the cosigner accepts: 32 participants, threshold 17
 * (a signing subset of 17, 16 of them devices). Checks the bounds hold up
 * end to end: message sizes, the sandbox's stack and CPU budget per call. */
static void test_rt_32(void **state)
{
    (void)state;
    world W;
    free(mem_store.rec);
    mem_store.rec = NULL;
    mem_store.len = 0;
    mem_store.version = 0;
    setup_params(32, 17, 5);
    start(&W, 0);
    run_dkg(&W);
    for (int i = 0; i < 3; i++) {
        sess s;
        uint8_t sig[64];
        uint64_t blame;
        sess_new(&s);
        s.count = 17;
        for (uint32_t k = 0; k < 17; k++)
            s.ids[k] = (uint8_t)((5 + 3 * k) % 32); /* distinct (3 is odd); the service (5) first */
        sign_round1(&W, &s);
        assert_int_equal(sign_round2(&W, &s, -1, sig, &blame), RT_OK);
        assert_true(secp256k1_schnorrsig_verify(secp, sig, s.msg, s.msg_len, &s.Q));
    }
    rt_stop(W.rt);
}

/* GET_WALLET from device 0: its status. */
static rt_status get_wallet(world *W)
{
    cg_cmd g = {.kind = CG_CMD_GET_WALLET, .sender = G.dev[0].pubkey};
    rt_reply r;
    post_all(W, &g, 1, &r);
    rt_status st = r.status;
    rt_reply_free(&r);
    return st;
}

/* The real store fails the commit of the DKG output (round 2): every
 * device's round-2 call gets UNAVAILABLE, nothing durable is left behind
 * (no record, and the wallet is absent from the rolled-back instance and
 * after a re-activation from the store), the old round-2 messages find no
 * DKG, and a fresh DKG with new messages succeeds and signs. */
static void test_rt_store_dkg_commit_failure(void **state)
{
    (void)state;
    if (!CG_FAULT_INJECTION) skip();
    char dir[] = "/tmp/cg-cosigner-store-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[256];
    store *st = NULL;
    assert_int_equal(store_open(dir, NULL, &st, err, sizeof err), RT_OK);

    world W;
    setup_params(3, 2, 1);
    start_on(&W, 0, st);
    cg_cmd c[MAXN] = {0};
    rt_reply r[MAXN];
    dkg_round1(&W, c);
    store_stats ss0, ss1;
    store_get_stats(st, &ss0);
    assert_int_equal(store_inject_commit_failures(st, 1, EIO), RT_OK);
    post_all(&W, c, G.ndev, r);
    for (uint32_t i = 0; i < G.ndev; i++) {
        assert_int_equal(r[i].status, RT_UNAVAILABLE);
        rt_reply_free(&r[i]);
    }
    store_get_stats(st, &ss1);
    assert_int_equal(ss1.commit_failures, ss0.commit_failures + 1); /* the injected one hit */
    assert_int_equal(rec_version(&W), 0);
    assert_int_equal(get_wallet(&W), RT_NOT_FOUND);
    /* The DKG went with the rolled-back instance: a retry of round 2 is
     * refused, never answered from a wallet that was not committed. */
    post_all(&W, c, G.ndev, r);
    for (uint32_t i = 0; i < G.ndev; i++) {
        assert_int_equal(r[i].status, RT_ABORTED);
        rt_reply_free(&r[i]);
    }
    assert_int_equal(rec_version(&W), 0);

    /* Re-activation from the store: still no wallet. */
    rt_stop(W.rt);
    start_on(&W, 0, st);
    assert_int_equal(get_wallet(&W), RT_NOT_FOUND);
    assert_int_equal(rec_version(&W), 0);

    /* A fresh DKG (new messages, same participants) commits and signs. */
    run_dkg(&W);
    assert_int_equal(get_wallet(&W), RT_OK);
    sign_ok(&W);
    rt_stop(W.rt);
    start_on(&W, 0, st);
    sign_ok(&W); /* from the store */
    rt_stop(W.rt);
    store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    cx_init();
    secp = secp256k1_context_create(SECP256K1_CONTEXT_VERIFY);
    srand(11);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rt_2of3),
        cmocka_unit_test(test_rt_2of2),
        cmocka_unit_test(test_rt_32),
        cmocka_unit_test(test_rt_store_dkg_commit_failure),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    secp256k1_context_destroy(secp);
    free(mem_store.rec);
    return rc;
}
