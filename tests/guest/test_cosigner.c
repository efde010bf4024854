/*
 * test_cosigner.c — the wallet actor end to end, natively and in process.
 *
 * Devices are implemented with the same ChillDKG and BIP 445 library code
 * the service uses; the service is a real cg_actor driven through a small
 * host that behaves like the runtime: it keeps parked replies, snapshots
 * after every call that marked the state dirty (the durable record), and
 * on a handler fault aborts every parked reply and rebuilds the actor from
 * that record. Every signature is checked independently with libsecp256k1
 * under a tweaked key derived with libsecp256k1's own tweak functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include <malloc.h>

#include "cg_actor.h" /* the session structs: where the secret nonce lives */
#include "cg_cmd.h"
#include "cg_config.h"
#include "cg_cosigner.h"
#include "cg_dkg.h"
#include "cg_frost.h"
#include "cx.h"

/* The acceptance number; cheap enough under sanitizers too (~1 ms each). */
#define SESSIONS 100

static secp256k1_context *secp;

/* ------------------------------------------------ secret nonce tracking -- */

/*
 * Natively the actor's memory is the cg_actor struct and the blocks it
 * points to (sessions, their messages, the DKG). A block it frees is gone
 * from that memory but not from the process, so this binary links with
 * --wrap=free: while a nonce is watched, every block handed back to the
 * allocator is scanned for either half of it (k1, k2) first.
 */
void __real_free(void *p);
void __wrap_free(void *p);

static struct {
    int armed;
    uint8_t k[CG_FROST_SECNONCE_LEN];
    const void *target; /* the session block that held it */
    int target_freed;
    unsigned leaks; /* freed blocks that still held a half of k */
} fw;

static int mem_holds(const void *p, size_t n, const uint8_t k[64])
{
    if (!p || n < 32) return 0;
    return memmem(p, n, k, 32) || memmem(p, n, k + 32, 32);
}

void __wrap_free(void *p)
{
    if (p && fw.armed) {
        if (p == fw.target) fw.target_freed = 1;
        if (mem_holds(p, malloc_usable_size(p), fw.k)) fw.leaks++;
    }
    __real_free(p);
}

static int actor_holds(const cg_actor *a, const uint8_t k[64])
{
    if (mem_holds(a, sizeof *a, k)) return 1;
    if (a->dkg && mem_holds(a->dkg, sizeof *a->dkg, k)) return 1;
    for (int i = 0; i < CG_MAX_SIGN_SESSIONS; i++) {
        const cg_sign_sess *s = a->sign[i];
        if (!s) continue;
        if (mem_holds(s, sizeof *s, k)) return 1;
        if (s->msg && mem_holds(s->msg, s->msg_len, k)) return 1;
    }
    return 0;
}

static cg_sign_sess *sess_of(cg_actor *a, const uint8_t sid[32])
{
    for (int i = 0; i < CG_MAX_SIGN_SESSIONS; i++)
        if (a->sign[i] && !memcmp(a->sign[i]->sid, sid, 32)) return a->sign[i];
    return NULL;
}

/* Learns the service's secret nonce of session sid (round 1 open) and
 * starts watching the allocator for it. */
static void watch_nonce(cg_actor *a, const uint8_t sid[32])
{
    static const uint8_t zero[32];
    cg_sign_sess *ss = sess_of(a, sid);
    assert_non_null(ss);
    assert_true(ss->has_secnonce);
    memcpy(fw.k, ss->secnonce.k, sizeof fw.k);
    assert_memory_not_equal(fw.k, zero, 32);
    assert_memory_not_equal(fw.k + 32, zero, 32);
    assert_true(actor_holds(a, fw.k)); /* the scan sees it while it is live */
    fw.target = ss;
    fw.target_freed = 0;
    fw.leaks = 0;
    fw.armed = 1;
}

static void unwatch(void)
{
    fw.armed = 0;
    cx_wipe(fw.k, sizeof fw.k);
    fw.target = NULL;
}

/* ------------------------------------------------------------ test host -- */

#define MAX_PARKED 8192

typedef struct result {
    int parked;
    uint64_t id;
    int done;
    int32_t st;
    uint8_t *data;
    uint32_t len;
    uint64_t blame;
} result;

typedef struct host {
    cg_actor *a;
    uint8_t hostseckey[32];
    uint8_t hostpubkey[33];
    uint32_t rendezvous_ms;
    uint32_t flags;
    uint64_t now;
    result parks[MAX_PARKED]; /* id = index + 1 */
    uint64_t next_id;
    result cur;
    int dirty;
    uint8_t *rec;
    size_t rec_len;
    unsigned rebuilds;
} host;

static void h_reply(void *ctx, int32_t st, const void *d, uint32_t len, uint64_t blame)
{
    host *h = ctx;
    assert_false(h->cur.done || h->cur.parked); /* exactly one answer */
    h->cur.done = 1;
    h->cur.st = st;
    h->cur.data = malloc(len + 1);
    memcpy(h->cur.data, d, len);
    h->cur.len = len;
    h->cur.blame = blame;
}

static uint64_t h_park(void *ctx, uint64_t deadline)
{
    host *h = ctx;
    assert_false(h->cur.done || h->cur.parked);
    assert_true(deadline > h->now);
    assert_true(h->next_id < MAX_PARKED);
    uint64_t id = ++h->next_id;
    h->cur.parked = 1;
    h->cur.id = id;
    memset(&h->parks[id - 1], 0, sizeof(result));
    h->parks[id - 1].parked = 1;
    h->parks[id - 1].id = id;
    return id;
}

static int32_t h_complete(void *ctx, uint64_t id, int32_t st, const void *d, uint32_t len,
                          uint64_t blame)
{
    host *h = ctx;
    assert_true(id >= 1 && id <= h->next_id);
    result *r = &h->parks[id - 1];
    if (r->done) return RT_NOT_FOUND;
    r->done = 1;
    r->st = st;
    r->data = malloc(len + 1);
    memcpy(r->data, d, len);
    r->len = len;
    r->blame = blame;
    return RT_OK;
}

static void h_mark_dirty(void *ctx)
{
    ((host *)ctx)->dirty = 1;
}

static void h_snapshot_out(void *ctx, const void *d, uint32_t len)
{
    host *h = ctx;
    free(h->rec);
    h->rec = malloc(len);
    memcpy(h->rec, d, len);
    h->rec_len = len;
}

static const cg_host ops = {h_reply, h_park, h_complete, h_mark_dirty, h_snapshot_out};

static void build(host *h)
{
    uint8_t cfg[CG_CONFIG_LEN];
    cg_config c = {.rendezvous_ms = h->rendezvous_ms, .flags = h->flags};
    cg_config_encode(&c, cfg);
    assert_int_equal(cg_actor_new(&h->a), RT_OK);
    assert_int_equal(cg_actor_init(h->a), RT_OK);
    assert_int_equal(cg_actor_configure(h->a, cfg, sizeof cfg), RT_OK);
    assert_int_equal(cg_actor_set_hostkey(h->a, h->hostseckey), RT_OK);
    assert_int_equal(cg_actor_restore(h->a, h->rec, h->rec_len), RT_OK);
}

/* A handler fault: like the runtime, abort parked waiters, rebuild from the
 * last durable record. */
static void rebuild(host *h)
{
    for (uint64_t i = 0; i < h->next_id; i++)
        if (!h->parks[i].done) h_complete(h, i + 1, RT_ABORTED, "actor recovered", 15, 0);
    cg_actor_free(h->a);
    build(h);
    h->rebuilds++;
}

static void host_init(host *h, uint32_t rendezvous_ms, uint32_t flags)
{
    memset(h, 0, sizeof *h);
    cg_dkg_error e;
    do
        cx_random(h->hostseckey, 32);
    while (cg_dkg_hostpubkey_gen(h->hostpubkey, h->hostseckey, 32, &e) != RT_OK);
    h->rendezvous_ms = rendezvous_ms;
    h->flags = flags;
    h->now = 1000000;
    build(h);
}

static void host_fini(host *h)
{
    cg_actor_free(h->a);
    for (uint64_t i = 0; i < h->next_id; i++)
        free(h->parks[i].data);
    free(h->rec);
}

/* Runs one command. Returns the immediate result, or a parked one (its
 * completion appears in h->parks[id - 1]). */
static result call(host *h, const cg_cmd *c)
{
    uint8_t *buf;
    size_t need, len;
    assert_int_equal(cg_cmd_encode(c, NULL, 0, &need), RT_OUT_OF_RANGE);
    buf = malloc(need);
    assert_int_equal(cg_cmd_encode(c, buf, need, &len), RT_OK);
    memset(&h->cur, 0, sizeof h->cur);
    h->dirty = 0;
    rt_status st = cg_actor_handle(h->a, &ops, h, buf, len, h->now);
    free(buf);
    result r = h->cur;
    if (st != RT_OK) {
        assert_false(r.parked);
        free(r.data);
        r = (result){.done = 1, .st = RT_INTERNAL};
        rebuild(h);
        return r;
    }
    assert_true(r.done || r.parked);
    if (h->dirty) {
        /* Write before ack: the record is taken before replies are read. */
        assert_int_equal(cg_actor_snapshot(h->a, &ops, h), RT_OK);
    }
    return r;
}

static void tick(host *h)
{
    memset(&h->cur, 0, sizeof h->cur);
    assert_int_equal(cg_actor_tick(h->a, &ops, h, h->now), RT_OK);
    assert_false(h->cur.done || h->cur.parked);
}

/* The final answer of a result (its completion if it was parked). */
static result * final(host *h, result *r)
{
    if (r->parked) return &h->parks[r->id - 1];
    return r;
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

typedef struct wallet {
    host h;
    uint32_t n, t, me;
    device dev[CG_DKG_MAX_N];
    uint32_t ndev;
    cg_dkg_params params;
    uint8_t thresh_pk[33];
    uint8_t pubshares[CG_DKG_MAX_N][33];
} wallet;

static device *dev_of(wallet *w, uint32_t idx)
{
    for (uint32_t i = 0; i < w->ndev; i++)
        if (w->dev[i].idx == idx) return &w->dev[i];
    return NULL;
}

static void rnd(uint8_t *p, size_t n)
{
    cx_random(p, n);
}

/* Sets up host keys and params: n participants, the service at index me. */
static void wallet_setup(wallet *w, uint32_t n, uint32_t t, uint32_t me, uint32_t flags)
{
    memset(w, 0, sizeof *w);
    host_init(&w->h, 60000, flags);
    w->n = n;
    w->t = t;
    w->me = me;
    w->params.n = n;
    w->params.t = t;
    cg_dkg_error e;
    for (uint32_t i = 0; i < n; i++) {
        if (i == me) {
            memcpy(w->params.hostpubkeys[i], w->h.hostpubkey, 33);
            continue;
        }
        device *d = &w->dev[w->ndev++];
        d->idx = i;
        do
            rnd(d->seckey, 32);
        while (cg_dkg_hostpubkey_gen(d->pubkey, d->seckey, 32, &e) != RT_OK);
        memcpy(w->params.hostpubkeys[i], d->pubkey, 33);
    }
}

static cg_cmd dkg1_cmd(wallet *w, device *d)
{
    cg_cmd c = {.kind = CG_CMD_DKG_ROUND1, .sender = d->pubkey};
    c.u.dkg1.n = w->n;
    c.u.dkg1.t = w->t;
    c.u.dkg1.hostpubkeys = w->params.hostpubkeys[0];
    c.u.dkg1.pmsg1 = d->pmsg1;
    c.u.dkg1.pmsg1_len = (uint32_t)d->pmsg1_len;
    return c;
}

static void run_dkg(wallet *w)
{
    cg_dkg_error e;
    uint8_t r32[32];
    result r1[CG_DKG_MAX_N], r2[CG_DKG_MAX_N];

    for (uint32_t i = 0; i < w->ndev; i++) {
        device *d = &w->dev[i];
        rnd(r32, 32);
        assert_int_equal(cg_dkg_participant_step1(&d->st1, d->pmsg1, sizeof d->pmsg1, &d->pmsg1_len,
                                                  d->seckey, 32, &w->params, r32, 32, &e),
                         RT_OK);
    }
    for (uint32_t i = 0; i < w->ndev; i++) {
        cg_cmd c = dkg1_cmd(w, &w->dev[i]);
        r1[i] = call(&w->h, &c);
        assert_true(r1[i].parked); /* the rendezvous holds every device */
        if (i + 1 < w->ndev) assert_false(final(&w->h, &r1[i])->done);
    }
    assert_true(cg_actor_has_dkg(w->h.a));
    for (uint32_t i = 0; i < w->ndev; i++) {
        device *d = &w->dev[i];
        result *f = final(&w->h, &r1[i]);
        assert_true(f->done);
        assert_int_equal(f->st, RT_OK);
        cg_reply rep;
        assert_int_equal(cg_reply_decode(&rep, f->data, f->len), RT_OK);
        assert_int_equal(rep.kind, CG_CMD_DKG_ROUND1);
        rnd(r32, 32);
        assert_int_equal(cg_dkg_participant_step2(&d->st2, d->pmsg2, d->seckey, 32, &d->st1,
                                                  rep.u.dkg1.cmsg1, rep.u.dkg1.cmsg1_len, r32, 32,
                                                  NULL, &e),
                         RT_OK);
    }
    assert_null(w->h.rec); /* nothing durable until the DKG finalizes */
    for (uint32_t i = 0; i < w->ndev; i++) {
        device *d = &w->dev[i];
        cg_cmd c = {.kind = CG_CMD_DKG_ROUND2, .sender = d->pubkey};
        c.u.dkg2.pmsg2 = d->pmsg2;
        c.u.dkg2.pmsg2_len = 64;
        r2[i] = call(&w->h, &c);
        assert_true(r2[i].parked);
    }
    assert_non_null(w->h.rec); /* committed by the call that released the replies */
    assert_true(cg_actor_has_wallet(w->h.a));
    assert_false(cg_actor_has_dkg(w->h.a));
    for (uint32_t i = 0; i < w->ndev; i++) {
        device *d = &w->dev[i];
        result *f = final(&w->h, &r2[i]);
        assert_true(f->done);
        assert_int_equal(f->st, RT_OK);
        cg_reply rep;
        assert_int_equal(cg_reply_decode(&rep, f->data, f->len), RT_OK);
        uint8_t rec[CG_DKG_RECOVERY_MAX];
        size_t rec_len;
        assert_int_equal(cg_dkg_participant_finalize(&d->out, rec, sizeof rec, &rec_len, &d->st2,
                                                     rep.u.dkg2.cmsg2, rep.u.dkg2.cmsg2_len, &e),
                         RT_OK);
        assert_memory_equal(d->out.threshold_pubkey, rep.u.dkg2.thresh_pubkey, 33);
        if (i == 0) {
            memcpy(w->thresh_pk, d->out.threshold_pubkey, 33);
            memcpy(w->pubshares, d->out.pubshares, sizeof w->pubshares);
        }
        assert_memory_equal(w->thresh_pk, d->out.threshold_pubkey, 33);
    }

    /* GET_WALLET agrees with what the devices derived. */
    cg_cmd g = {.kind = CG_CMD_GET_WALLET, .sender = w->dev[0].pubkey};
    result r = call(&w->h, &g);
    assert_int_equal(r.st, RT_OK);
    cg_reply rep;
    assert_int_equal(cg_reply_decode(&rep, r.data, r.len), RT_OK);
    assert_memory_equal(rep.u.wallet.thresh_pubkey, w->thresh_pk, 33);
    assert_int_equal(rep.u.wallet.t, w->t);
    assert_int_equal(rep.u.wallet.n, w->n);
    assert_memory_equal(rep.u.wallet.hostpubkeys, w->params.hostpubkeys, 33 * w->n);
    assert_memory_equal(rep.u.wallet.pubshares, w->pubshares, 33 * w->n);
    free(r.data);
}

/* ------------------------------------------------------------- signing -- */

typedef struct sess {
    uint8_t sid[32];
    uint32_t count;
    uint8_t ids[CG_MAX_PARTICIPANTS];
    uint8_t msg[256];
    uint32_t msg_len;
    uint32_t n_tweaks;
    uint8_t tweaks[2][32];
    uint8_t xonly[2];
    cg_frost_secnonce secnonce[CG_MAX_PARTICIPANTS];
    uint8_t pubnonce[CG_MAX_PARTICIPANTS][66];
    uint8_t aggnonce[66];
    uint8_t psig[CG_MAX_PARTICIPANTS][32];
    uint8_t sig[64];
    secp256k1_xonly_pubkey Q; /* expected key, derived with libsecp256k1 */
} sess;

/* Random signer set (always the service, at least t), message and tweaks:
 * sometimes a plain (BIP 32 style) tweak, mostly a BIP 341 Taproot tweak
 * with or without a script tree. The expected output key is derived with
 * libsecp256k1's tweak functions, independently of the code under test. */
static void sess_random(wallet *w, sess *s)
{
    memset(s, 0, sizeof *s);
    rnd(s->sid, 32);
    uint32_t members = 1u << w->me;
    for (uint32_t i = 0; i < w->n; i++)
        if (rand() & 1) members |= 1u << i;
    while (__builtin_popcount(members) < (int)w->t)
        members |= 1u << ((uint32_t)rand() % w->n);
    /* signer_ids in a random rotation: order must not matter */
    uint32_t start = (uint32_t)rand() % w->n;
    for (uint32_t k = 0; k < w->n; k++) {
        uint32_t i = (start + k) % w->n;
        if (members & (1u << i)) s->ids[s->count++] = (uint8_t)i;
    }
    s->msg_len = (uint32_t)rand() % sizeof s->msg;
    rnd(s->msg, s->msg_len);

    secp256k1_pubkey P;
    assert_true(secp256k1_ec_pubkey_parse(secp, &P, w->thresh_pk, 33));
    if (rand() % 3 == 0) {
        rnd(s->tweaks[s->n_tweaks], 32);
        s->xonly[s->n_tweaks] = 0;
        assert_true(secp256k1_ec_pubkey_tweak_add(secp, &P, s->tweaks[s->n_tweaks]));
        s->n_tweaks++;
    }
    secp256k1_xonly_pubkey X;
    assert_true(secp256k1_xonly_pubkey_from_pubkey(secp, &X, NULL, &P));
    if (rand() % 4 != 0) {
        uint8_t buf[64];
        size_t l = 32;
        assert_true(secp256k1_xonly_pubkey_serialize(secp, buf, &X));
        if (rand() & 1) {
            rnd(buf + 32, 32); /* merkle root of a script tree */
            l = 64;
        }
        assert_true(secp256k1_tagged_sha256(secp, s->tweaks[s->n_tweaks],
                                            (const uint8_t *)"TapTweak", 8, buf, l));
        s->xonly[s->n_tweaks] = 1;
        assert_true(secp256k1_xonly_pubkey_tweak_add(secp, &P, &X, s->tweaks[s->n_tweaks]));
        s->n_tweaks++;
        assert_true(secp256k1_xonly_pubkey_from_pubkey(secp, &X, NULL, &P));
    }
    s->Q = X;
}

static cg_cmd sign1_cmd(sess *s, device *d, uint32_t pos)
{
    cg_cmd c = {.kind = CG_CMD_SIGN_ROUND1, .sender = d->pubkey};
    c.u.sign1.session_id = s->sid;
    c.u.sign1.n_signers = s->count;
    memcpy(c.u.sign1.signer_ids, s->ids, s->count);
    c.u.sign1.msg = s->msg;
    c.u.sign1.msg_len = s->msg_len;
    c.u.sign1.n_tweaks = s->n_tweaks;
    for (uint32_t i = 0; i < s->n_tweaks; i++)
        c.u.sign1.tweaks[i] = (cg_tweak){s->tweaks[i], s->xonly[i]};
    c.u.sign1.pubnonce = s->pubnonce[pos];
    return c;
}

/* The device signer at position p makes its nonce and posts round 1. */
static result post_sign1(wallet *w, sess *s, uint32_t p)
{
    cg_frost_error e;
    device *d = dev_of(w, s->ids[p]);
    assert_non_null(d);
    assert_int_equal(cg_frost_nonce_gen(&s->secnonce[p], s->pubnonce[p], d->out.secshare,
                                        d->out.pubshares[d->idx], w->thresh_pk + 1, s->msg,
                                        s->msg_len, NULL, 0, &e),
                     RT_OK);
    cg_cmd c = sign1_cmd(s, d, p);
    result r = call(&w->h, &c);
    assert_true(r.parked);
    assert_false(w->h.dirty); /* signing never touches the durable state */
    return r;
}

/* Every device's round-1 answer: the same aggnonce, kept in s. */
static void collect_aggnonce(wallet *w, sess *s, result *r, uint32_t ndev)
{
    for (uint32_t i = 0; i < ndev; i++) {
        result *f = final(&w->h, &r[i]);
        assert_true(f->done);
        assert_int_equal(f->st, RT_OK);
        cg_reply rep;
        assert_int_equal(cg_reply_decode(&rep, f->data, f->len), RT_OK);
        assert_int_equal(rep.kind, CG_CMD_SIGN_ROUND1);
        if (i == 0) memcpy(s->aggnonce, rep.u.sign1.aggnonce, 66);
        assert_memory_equal(s->aggnonce, rep.u.sign1.aggnonce, 66);
    }
}

/* Round 1 for every device signer; returns the aggnonce all of them got. */
static void sign_round1(wallet *w, sess *s)
{
    result r[CG_MAX_PARTICIPANTS];
    uint32_t ndev = 0;
    for (uint32_t p = 0; p < s->count; p++)
        if (dev_of(w, s->ids[p])) r[ndev++] = post_sign1(w, s, p);
    collect_aggnonce(w, s, r, ndev);
}

/* Round 2: every device signs (the one at position bad, if any, sends a
 * corrupted partial signature); returns the status all devices got. */
static int32_t sign_round2(wallet *w, sess *s, int bad, uint64_t *blame)
{
    result r[CG_MAX_PARTICIPANTS];
    cg_frost_error e;
    uint32_t ids[CG_MAX_PARTICIPANTS], ndev = 0;
    uint8_t ps[CG_MAX_PARTICIPANTS][33];
    cg_frost_signers signers;
    cg_frost_tweak_ctx tc;
    cg_frost_session fs;

    for (uint32_t p = 0; p < s->count; p++) {
        ids[p] = s->ids[p];
        memcpy(ps[p], w->pubshares[ids[p]], 33);
    }
    assert_int_equal(cg_frost_signers_init(&signers, w->n, w->t, ids, (const uint8_t(*)[33])ps,
                                           s->count, w->thresh_pk, &e),
                     RT_OK);
    assert_int_equal(cg_frost_tweak_init(&tc, w->thresh_pk, &e), RT_OK);
    for (uint32_t i = 0; i < s->n_tweaks; i++)
        assert_int_equal(cg_frost_tweak_apply(&tc, s->tweaks[i], 32, s->xonly[i], &e), RT_OK);
    assert_int_equal(cg_frost_session_init(&fs, &signers, &tc, s->aggnonce, s->msg, s->msg_len, &e),
                     RT_OK);
    for (uint32_t p = 0; p < s->count; p++) {
        device *d = dev_of(w, s->ids[p]);
        if (!d) continue;
        assert_int_equal(
            cg_frost_sign(s->psig[p], &s->secnonce[p], d->out.secshare, d->idx, &fs, &e), RT_OK);
        if ((int)p == bad) s->psig[p][31] ^= 1;
        cg_cmd c = {.kind = CG_CMD_SIGN_ROUND2, .sender = d->pubkey};
        c.u.sign2.session_id = s->sid;
        c.u.sign2.psig = s->psig[p];
        r[ndev] = call(&w->h, &c);
        assert_true(r[ndev].parked);
        assert_false(w->h.dirty);
        ndev++;
    }
    int32_t st = -1;
    for (uint32_t i = 0; i < ndev; i++) {
        result *f = final(&w->h, &r[i]);
        assert_true(f->done);
        if (i == 0) {
            st = f->st;
            *blame = f->blame;
        }
        assert_int_equal(f->st, st);
        assert_int_equal(f->blame, *blame);
        if (f->st == RT_OK) {
            cg_reply rep;
            assert_int_equal(cg_reply_decode(&rep, f->data, f->len), RT_OK);
            assert_int_equal(rep.kind, CG_CMD_SIGN_ROUND2);
            memcpy(s->sig, rep.u.sign2.sig, 64);
        }
    }
    return st;
}

static void sign_ok(wallet *w, sess *s)
{
    uint64_t blame = 0;
    sign_round1(w, s);
    assert_int_equal(sign_round2(w, s, -1, &blame), RT_OK);
    assert_int_equal(blame, 0);
    assert_true(secp256k1_schnorrsig_verify(secp, s->sig, s->msg, s->msg_len, &s->Q));
}

static void many_sessions(wallet *w)
{
    unsigned sessions, nonces;
    for (int i = 0; i < SESSIONS; i++) {
        sess s;
        sess_random(w, &s);
        sign_ok(w, &s);
        cg_actor_session_counts(w->h.a, &sessions, &nonces);
        assert_int_equal(nonces, 0);
    }
}

/* ----------------------------------------------------------------- tests -- */

static void test_2of2_dkg_and_100_sessions(void **state)
{
    (void)state;
    static wallet w;
    wallet_setup(&w, 2, 2, 1, 0);
    run_dkg(&w);
    many_sessions(&w);
    assert_int_equal(w.h.rebuilds, 0);
    host_fini(&w.h);
}

static void test_2of3_dkg_and_100_sessions(void **state)
{
    (void)state;
    static wallet w;
    wallet_setup(&w, 3, 2, 1, 0);
    run_dkg(&w);
    many_sessions(&w);
    host_fini(&w.h);
}

/* A bad partial signature aborts the session for everyone and names its
 * signer; the next session works. */
static void test_bad_psig_blamed(void **state)
{
    (void)state;
    static wallet w;
    wallet_setup(&w, 3, 2, 0, 0);
    run_dkg(&w);
    for (uint32_t victim = 1; victim <= 2; victim++) {
        sess s;
        sess_random(&w, &s);
        s.count = 3;
        s.ids[0] = 2;
        s.ids[1] = 0;
        s.ids[2] = 1;
        int bad = victim == 2 ? 0 : 2; /* position of the victim */
        uint64_t blame = 0;
        sign_round1(&w, &s);
        assert_int_equal(sign_round2(&w, &s, bad, &blame), RT_ABORTED);
        assert_int_equal(blame, 1u << victim);
        /* A retry of the bad post gets the same verdict, not a signature. */
        cg_cmd c = {.kind = CG_CMD_SIGN_ROUND2, .sender = dev_of(&w, victim)->pubkey};
        c.u.sign2.session_id = s.sid;
        c.u.sign2.psig = s.psig[bad];
        result r = call(&w.h, &c);
        assert_int_equal(r.st, RT_ABORTED);
        assert_int_equal(r.blame, 1u << victim);
        free(r.data);
    }
    sess s;
    sess_random(&w, &s);
    sign_ok(&w, &s);
    host_fini(&w.h);
}

/* A handler fault between the rounds: the session is gone with its nonce,
 * waiters get ABORTED, and the next session signs with the share restored
 * from the durable record. */
static void test_fault_between_rounds(void **state)
{
    (void)state;
    static wallet w;
    unsigned sessions, nonces;
    wallet_setup(&w, 3, 2, 2, CG_CONFIG_FAULT_INJECTION);
    run_dkg(&w);
    sess s;
    sess_random(&w, &s);
    s.count = 2;
    s.ids[0] = 0;
    s.ids[1] = 2;
    sign_round1(&w, &s);
    cg_actor_session_counts(w.h.a, &sessions, &nonces);
    assert_int_equal(sessions, 1);
    assert_int_equal(nonces, 0); /* used when round 1 completed */

    /* A device parks on round 2, then the handler faults. */
    cg_cmd c2 = {.kind = CG_CMD_SIGN_ROUND2, .sender = w.dev[0].pubkey};
    uint8_t junk[32] = {1};
    c2.u.sign2.session_id = s.sid;
    c2.u.sign2.psig = junk;
    sess s3;
    sess_random(&w, &s3);
    s3.count = 3;
    s3.ids[0] = 0;
    s3.ids[1] = 1;
    s3.ids[2] = 2;
    cg_frost_error e;
    assert_int_equal(
        cg_frost_nonce_gen(&s3.secnonce[0], s3.pubnonce[0], NULL, NULL, NULL, NULL, 0, NULL, 0, &e),
        RT_OK);
    cg_cmd c1 = sign1_cmd(&s3, &w.dev[0], 0);
    result parked1 = call(&w.h, &c1); /* a second session, holding a nonce */
    assert_true(parked1.parked);
    cg_actor_session_counts(w.h.a, &sessions, &nonces);
    assert_int_equal(nonces, 1);

    result r;
    if (CG_FAULT_INJECTION) {
        cg_cmd f = {.kind = CG_CMD_FAULT, .sender = w.dev[0].pubkey};
        f.u.fault.kind = CG_FAULT_TRAP;
        r = call(&w.h, &f);
        assert_int_equal(r.st, RT_INTERNAL);
    } else {
        rebuild(&w.h); /* what the runtime does on a handler fault */
    }
    assert_int_equal(w.h.rebuilds, 1);
    assert_int_equal(final(&w.h, &parked1)->st, RT_ABORTED);
    cg_actor_session_counts(w.h.a, &sessions, &nonces);
    assert_int_equal(sessions, 0);
    assert_int_equal(nonces, 0);
    assert_true(cg_actor_has_wallet(w.h.a));

    /* Round 2 of the interrupted session is refused, not hung. */
    r = call(&w.h, &c2);
    assert_int_equal(r.st, RT_ABORTED);
    free(r.data);

    for (int i = 0; i < 3; i++) {
        sess_random(&w, &s);
        sign_ok(&w, &s);
    }
    host_fini(&w.h);
}

/* Without fault injection enabled by the host, FAULT is refused. */
static void test_fault_refused(void **state)
{
    (void)state;
    host h;
    host_init(&h, 0, 0);
    uint8_t pk[33] = {2};
    cg_cmd f = {.kind = CG_CMD_FAULT, .sender = pk};
    f.u.fault.kind = CG_FAULT_TRAP;
    result r = call(&h, &f);
    assert_int_equal(r.st, RT_PERMISSION_DENIED);
    assert_int_equal(h.rebuilds, 0);
    free(r.data);
    host_fini(&h);
    /* A build without fault injection refuses even when the host asks. */
    if (!CG_FAULT_INJECTION) {
        host_init(&h, 0, CG_CONFIG_FAULT_INJECTION);
        r = call(&h, &f);
        assert_int_equal(r.st, RT_PERMISSION_DENIED);
        free(r.data);
        host_fini(&h);
    }
}

/* Rendezvous rules: identical re-posts park too and get the same answer,
 * conflicting posts are refused, strangers are refused, the deadline
 * expires everything and wipes the nonce. */
static void test_rendezvous_rules(void **state)
{
    (void)state;
    static wallet w;
    wallet_setup(&w, 3, 2, 0, 0);
    w.h.rendezvous_ms = 5000;
    cg_actor_free(w.h.a);
    build(&w.h);
    run_dkg(&w);

    sess s;
    sess_random(&w, &s);
    s.count = 3;
    s.ids[0] = 0;
    s.ids[1] = 1;
    s.ids[2] = 2;
    cg_frost_error e;
    for (int p = 1; p <= 2; p++)
        assert_int_equal(cg_frost_nonce_gen(&s.secnonce[p], s.pubnonce[p], NULL, NULL, NULL, NULL,
                                            0, NULL, 0, &e),
                         RT_OK);
    device *d1 = dev_of(&w, 1), *d2 = dev_of(&w, 2);
    cg_cmd c = sign1_cmd(&s, d1, 1);
    result a1 = call(&w.h, &c);
    result a2 = call(&w.h, &c); /* identical retry parks as well */
    assert_true(a1.parked && a2.parked);
    /* conflicting pubnonce from the same device */
    uint8_t other[66];
    memcpy(other, s.pubnonce[2], 66);
    c.u.sign1.pubnonce = other;
    result bad = call(&w.h, &c);
    assert_int_equal(bad.st, RT_INVALID_ARGUMENT);
    free(bad.data);
    /* conflicting parameters under the same session id */
    c = sign1_cmd(&s, d2, 2);
    c.u.sign1.msg_len = s.msg_len ? s.msg_len - 1 : 1;
    bad = call(&w.h, &c);
    assert_int_equal(bad.st, RT_INVALID_ARGUMENT);
    free(bad.data);
    /* a key that is not a participant */
    uint8_t stranger[33];
    memcpy(stranger, w.h.hostpubkey, 33);
    stranger[32] ^= 1;
    c = sign1_cmd(&s, d2, 2);
    c.sender = stranger;
    bad = call(&w.h, &c);
    assert_int_equal(bad.st, RT_PERMISSION_DENIED);
    free(bad.data);
    /* the service's own key cannot post as a device */
    c.sender = w.h.hostpubkey;
    bad = call(&w.h, &c);
    assert_int_equal(bad.st, RT_PERMISSION_DENIED);
    free(bad.data);

    c = sign1_cmd(&s, d2, 2);
    result a3 = call(&w.h, &c);
    assert_true(a3.parked);
    result *f1 = final(&w.h, &a1), *f2 = final(&w.h, &a2), *f3 = final(&w.h, &a3);
    assert_int_equal(f1->st, RT_OK);
    assert_int_equal(f2->st, RT_OK);
    assert_int_equal(f3->st, RT_OK);
    assert_int_equal(f1->len, f3->len);
    assert_memory_equal(f1->data, f2->data, f1->len);
    assert_memory_equal(f1->data, f3->data, f1->len);
    /* a late identical retry is answered at once */
    c = sign1_cmd(&s, d1, 1);
    result a4 = call(&w.h, &c);
    assert_false(a4.parked);
    assert_int_equal(a4.st, RT_OK);
    assert_memory_equal(a4.data, f1->data, f1->len);
    free(a4.data);

    /* An abandoned session: one device posts, nobody else; the deadline
     * passes; tick answers DEADLINE_EXCEEDED and wipes the nonce. */
    sess t;
    sess_random(&w, &t);
    t.count = 3;
    t.ids[0] = 0;
    t.ids[1] = 1;
    t.ids[2] = 2;
    assert_int_equal(
        cg_frost_nonce_gen(&t.secnonce[1], t.pubnonce[1], NULL, NULL, NULL, NULL, 0, NULL, 0, &e),
        RT_OK);
    c = sign1_cmd(&t, d1, 1);
    result ab = call(&w.h, &c);
    assert_true(ab.parked);
    unsigned sessions, nonces;
    cg_actor_session_counts(w.h.a, &sessions, &nonces);
    assert_int_equal(nonces, 1);
    w.h.now += 5001;
    tick(&w.h);
    assert_int_equal(final(&w.h, &ab)->st, RT_DEADLINE_EXCEEDED);
    cg_actor_session_counts(w.h.a, &sessions, &nonces);
    assert_int_equal(sessions, 0);
    assert_int_equal(nonces, 0);

    /* Bounded: CG_MAX_SIGN_SESSIONS live sessions, then RESOURCE_EXHAUSTED. */
    for (int i = 0; i <= CG_MAX_SIGN_SESSIONS; i++) {
        sess_random(&w, &t);
        t.count = 3;
        t.ids[0] = 0;
        t.ids[1] = 1;
        t.ids[2] = 2;
        memset(t.pubnonce[1], 0, 66);
        assert_int_equal(cg_frost_nonce_gen(&t.secnonce[1], t.pubnonce[1], NULL, NULL, NULL, NULL,
                                            0, NULL, 0, &e),
                         RT_OK);
        c = sign1_cmd(&t, d1, 1);
        result x = call(&w.h, &c);
        if (i < CG_MAX_SIGN_SESSIONS) {
            assert_true(x.parked);
        } else {
            assert_int_equal(x.st, RT_RESOURCE_EXHAUSTED);
            free(x.data);
        }
    }
    cg_actor_session_counts(w.h.a, &sessions, &nonces);
    assert_int_equal(sessions, CG_MAX_SIGN_SESSIONS);
    w.h.now += 5001;
    tick(&w.h);
    cg_actor_session_counts(w.h.a, &sessions, &nonces);
    assert_int_equal(sessions, 0);
    sess_random(&w, &s);
    sign_ok(&w, &s);
    host_fini(&w.h);
}

/* DKG rendezvous: duplicate posts, the deadline, and retries of round 2
 * answered from the durable record after a restart. */
static void test_dkg_rules(void **state)
{
    (void)state;
    static wallet w;
    cg_dkg_error e;
    uint8_t r32[32];
    wallet_setup(&w, 3, 2, 1, CG_CONFIG_FAULT_INJECTION);

    /* One device posts, the other never does: the deadline aborts it. */
    device *d = &w.dev[0];
    rnd(r32, 32);
    assert_int_equal(cg_dkg_participant_step1(&d->st1, d->pmsg1, sizeof d->pmsg1, &d->pmsg1_len,
                                              d->seckey, 32, &w.params, r32, 32, &e),
                     RT_OK);
    cg_cmd c = dkg1_cmd(&w, d);
    result r = call(&w.h, &c);
    assert_true(r.parked);
    result r2 = call(&w.h, &c); /* duplicate parks too */
    assert_true(r2.parked);
    d->pmsg1[40] ^= 1;
    result bad = call(&w.h, &c); /* conflicting */
    assert_int_equal(bad.st, RT_INVALID_ARGUMENT);
    free(bad.data);
    d->pmsg1[40] ^= 1;
    /* round 2 before round 1 completed */
    cg_cmd c2 = {.kind = CG_CMD_DKG_ROUND2, .sender = d->pubkey};
    c2.u.dkg2.pmsg2 = d->pmsg2;
    c2.u.dkg2.pmsg2_len = 64;
    bad = call(&w.h, &c2);
    assert_int_equal(bad.st, RT_FAILED_PRECONDITION);
    free(bad.data);
    w.h.now += 60001;
    tick(&w.h);
    assert_int_equal(final(&w.h, &r)->st, RT_DEADLINE_EXCEEDED);
    assert_int_equal(final(&w.h, &r2)->st, RT_DEADLINE_EXCEEDED);
    assert_false(cg_actor_has_dkg(w.h.a));

    /* A full DKG; then a restart; a device retrying round 2 still gets
     * the certificate; round 1 again is refused. */
    run_dkg(&w);
    if (CG_FAULT_INJECTION) {
        cg_cmd f = {.kind = CG_CMD_FAULT, .sender = d->pubkey};
        f.u.fault.kind = CG_FAULT_RETURN;
        r = call(&w.h, &f);
        assert_int_equal(r.st, RT_INTERNAL);
    } else {
        rebuild(&w.h);
    }
    assert_true(cg_actor_has_wallet(w.h.a));
    r = call(&w.h, &c2);
    assert_int_equal(r.st, RT_OK);
    cg_reply rep;
    assert_int_equal(cg_reply_decode(&rep, r.data, r.len), RT_OK);
    assert_memory_equal(rep.u.dkg2.thresh_pubkey, w.thresh_pk, 33);
    free(r.data);
    c = dkg1_cmd(&w, d);
    r = call(&w.h, &c);
    assert_int_equal(r.st, RT_ALREADY_EXISTS);
    free(r.data);
    sess s;
    sess_random(&w, &s);
    sign_ok(&w, &s);
    host_fini(&w.h);
}

/* A faulty device message aborts the DKG round for all, with blame. */
static void test_dkg_blame(void **state)
{
    (void)state;
    static wallet w;
    cg_dkg_error e;
    uint8_t r32[32];
    wallet_setup(&w, 3, 2, 0, 0);
    result r[2];
    for (uint32_t i = 0; i < 2; i++) {
        device *d = &w.dev[i];
        rnd(r32, 32);
        assert_int_equal(cg_dkg_participant_step1(&d->st1, d->pmsg1, sizeof d->pmsg1, &d->pmsg1_len,
                                                  d->seckey, 32, &w.params, r32, 32, &e),
                         RT_OK);
    }
    /* Device 2 (index 2) corrupts its encrypted share for the service
     * (participant 0): the last 32n bytes of pmsg1 are the enc shares. */
    device *liar = &w.dev[1];
    liar->pmsg1[liar->pmsg1_len - 3 * 32 + 5] ^= 0x40;
    for (uint32_t i = 0; i < 2; i++) {
        cg_cmd c = dkg1_cmd(&w, &w.dev[i]);
        r[i] = call(&w.h, &c);
        assert_true(r[i].parked);
    }
    for (uint32_t i = 0; i < 2; i++) {
        result *f = final(&w.h, &r[i]);
        assert_int_equal(f->st, RT_ABORTED);
        assert_int_equal(f->blame, 1u << liar->idx);
    }
    assert_false(cg_actor_has_dkg(w.h.a));
    assert_false(cg_actor_has_wallet(w.h.a));
    host_fini(&w.h);
}

/* The durable record: round trip, and refusal of anything damaged. */
static void test_snapshot_restore(void **state)
{
    (void)state;
    static wallet w;
    wallet_setup(&w, 3, 2, 1, 0);
    run_dkg(&w);
    size_t len = w.h.rec_len;
    uint8_t *rec = malloc(len);
    memcpy(rec, w.h.rec, len);

    cg_actor *a;
    /* every truncation fails cleanly */
    for (size_t l = 1; l < len; l++) {
        assert_int_equal(cg_actor_new(&a), RT_OK);
        cg_actor_init(a);
        cg_actor_set_hostkey(a, w.h.hostseckey);
        assert_int_equal(cg_actor_restore(a, rec, l), RT_DATA_LOSS);
        assert_false(cg_actor_has_wallet(a));
        cg_actor_free(a);
    }
    /* flips in the header, the counts, the key material */
    size_t n = w.n;
    size_t at[] = {0,
                   3,
                   4,
                   5,
                   6,
                   7,
                   8 + 33 * n,
                   8 + 33 * n + 31,
                   8 + 33 * n + 32 + 5,
                   8 + 33 * n + 65 + 33 + 7,
                   len - 1 - (64 * n + 98 * n + 33 * 2)};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        rec[at[i]] ^= 0x04;
        assert_int_equal(cg_actor_new(&a), RT_OK);
        cg_actor_init(a);
        cg_actor_set_hostkey(a, w.h.hostseckey);
        assert_int_equal(cg_actor_restore(a, rec, len), RT_DATA_LOSS);
        cg_actor_free(a);
        rec[at[i]] ^= 0x04;
    }
    /* random damage never crashes */
    for (int i = 0; i < 2000; i++) {
        size_t k = (size_t)rand() % len;
        uint8_t old = rec[k];
        rec[k] = (uint8_t)rand();
        assert_int_equal(cg_actor_new(&a), RT_OK);
        cg_actor_init(a);
        cg_actor_set_hostkey(a, w.h.hostseckey);
        (void)cg_actor_restore(a, rec, len);
        cg_actor_free(a);
        rec[k] = old;
    }
    /* another service's key */
    uint8_t other[32];
    memcpy(other, w.h.hostseckey, 32);
    other[31] ^= 1;
    assert_int_equal(cg_actor_new(&a), RT_OK);
    cg_actor_init(a);
    assert_int_equal(cg_actor_set_hostkey(a, other), RT_OK);
    assert_int_equal(cg_actor_restore(a, rec, len), RT_DATA_LOSS);
    cg_actor_free(a);
    /* intact: restores, and snapshots to the same bytes */
    host h2;
    memset(&h2, 0, sizeof h2);
    assert_int_equal(cg_actor_new(&a), RT_OK);
    cg_actor_init(a);
    cg_actor_set_hostkey(a, w.h.hostseckey);
    assert_int_equal(cg_actor_restore(a, rec, len), RT_OK);
    assert_true(cg_actor_has_wallet(a));
    assert_int_equal(cg_actor_snapshot(a, &ops, &h2), RT_OK);
    assert_int_equal(h2.rec_len, len);
    assert_memory_equal(h2.rec, rec, len);
    free(h2.rec);
    cg_actor_free(a);
    /* an empty actor's record */
    assert_int_equal(cg_actor_new(&a), RT_OK);
    cg_actor_init(a);
    cg_actor_set_hostkey(a, w.h.hostseckey);
    memset(&h2, 0, sizeof h2);
    assert_int_equal(cg_actor_snapshot(a, &ops, &h2), RT_OK);
    assert_int_equal(h2.rec_len, 5);
    cg_actor_free(a);
    assert_int_equal(cg_actor_new(&a), RT_OK);
    cg_actor_init(a);
    cg_actor_set_hostkey(a, w.h.hostseckey);
    assert_int_equal(cg_actor_restore(a, h2.rec, h2.rec_len), RT_OK);
    assert_false(cg_actor_has_wallet(a));
    cg_actor_free(a);
    free(h2.rec);
    free(rec);
    host_fini(&w.h);
}

/* Mutated commands against a live wallet: every one is answered or parked
 * (the host asserts it), nothing crashes, the wallet still signs. */
static void test_mutated_commands(void **state)
{
    (void)state;
    static wallet w;
    wallet_setup(&w, 3, 2, 0, 0);
    run_dkg(&w);
    sess s;
    sess_random(&w, &s);
    s.count = 3;
    for (uint32_t i = 0; i < 3; i++)
        s.ids[i] = (uint8_t)i;
    cg_frost_error e;
    assert_int_equal(
        cg_frost_nonce_gen(&s.secnonce[1], s.pubnonce[1], NULL, NULL, NULL, NULL, 0, NULL, 0, &e),
        RT_OK);
    device *d = dev_of(&w, 1);
    cg_cmd base[4];
    base[0] = sign1_cmd(&s, d, 1);
    base[1] = (cg_cmd){.kind = CG_CMD_SIGN_ROUND2, .sender = d->pubkey};
    base[1].u.sign2.session_id = s.sid;
    base[1].u.sign2.psig = s.sid;
    base[2] = dkg1_cmd(&w, d);
    base[2].u.dkg1.pmsg1_len = 100;
    base[3] = (cg_cmd){.kind = CG_CMD_GET_WALLET, .sender = d->pubkey};
    for (int i = 0; i < 3000; i++) {
        uint8_t buf[4096];
        size_t len;
        assert_int_equal(cg_cmd_encode(&base[i % 4], buf, sizeof buf, &len), RT_OK);
        int flips = 1 + rand() % 4;
        for (int k = 0; k < flips; k++)
            buf[(size_t)rand() % len] ^= (uint8_t)(1u << (rand() % 8));
        memset(&w.h.cur, 0, sizeof w.h.cur);
        w.h.dirty = 0;
        assert_int_equal(cg_actor_handle(w.h.a, &ops, &w.h, buf, len, w.h.now), RT_OK);
        assert_true(w.h.cur.done || w.h.cur.parked);
        assert_false(w.h.dirty); /* nothing here may touch the durable state */
        free(w.h.cur.data);
        if (i % 500 == 499) {
            w.h.now += 61000; /* let the parked ones expire */
            tick(&w.h);
        }
    }
    w.h.now += 61000;
    tick(&w.h);
    sess_random(&w, &s);
    sign_ok(&w, &s);
    host_fini(&w.h);
}

/* A session of all three participants of a 3-participant wallet. */
static void sess_all3(wallet *w, sess *s)
{
    sess_random(w, s);
    s->count = 3;
    for (uint32_t i = 0; i < 3; i++)
        s->ids[i] = (uint8_t)i;
}

/* The service's secret nonce at the actor level: learnt from its session
 * while round 1 is open, it must then be gone from the actor's memory (the
 * actor struct and every block it points to) and from every block the
 * actor hands back to the allocator: (a) once round 1 completes (the
 * service signs then) and after round 2, (b) when an abandoned session
 * expires on a tick, (c) when a session aborts on a bad partial signature
 * and when a handler fault throws the instance away. */
/* Ticks past every session deadline, then: the watched nonce's block was
 * freed and no freed block carried the nonce. */
static void expire_and_check_freed(wallet *w)
{
    w->h.now += 60001;
    tick(&w->h);
    assert_true(fw.target_freed);
    assert_int_equal(fw.leaks, 0);
}

static void test_secnonce_wiped_in_actor(void **state)
{
    (void)state;
    static wallet w;
    unsigned sessions, nonces;
    uint64_t blame = 0;
    wallet_setup(&w, 3, 2, 0, CG_CONFIG_FAULT_INJECTION);
    run_dkg(&w);
    result r[2];

    /* (a) round 1 completes, round 2 completes, the session expires. */
    sess s;
    sess_all3(&w, &s);
    r[0] = post_sign1(&w, &s, 1);
    watch_nonce(w.h.a, s.sid);
    r[1] = post_sign1(&w, &s, 2);
    collect_aggnonce(&w, &s, r, 2);
    assert_false(actor_holds(w.h.a, fw.k));
    assert_int_equal(sign_round2(&w, &s, -1, &blame), RT_OK);
    assert_true(secp256k1_schnorrsig_verify(secp, s.sig, s.msg, s.msg_len, &s.Q));
    assert_false(actor_holds(w.h.a, fw.k));
    expire_and_check_freed(&w);
    unwatch();

    /* (b) only one device posts; the deadline passes; a tick expires it. */
    sess_all3(&w, &s);
    r[0] = post_sign1(&w, &s, 1);
    watch_nonce(w.h.a, s.sid);
    expire_and_check_freed(&w);
    assert_int_equal(final(&w.h, &r[0])->st, RT_DEADLINE_EXCEEDED);
    cg_actor_session_counts(w.h.a, &sessions, &nonces);
    assert_int_equal(sessions, 0);
    assert_false(actor_holds(w.h.a, fw.k));
    unwatch();

    /* (c) a bad partial signature aborts the session, which stays (failed)
     * until its deadline, then goes. */
    sess_all3(&w, &s);
    r[0] = post_sign1(&w, &s, 1);
    watch_nonce(w.h.a, s.sid);
    r[1] = post_sign1(&w, &s, 2);
    collect_aggnonce(&w, &s, r, 2);
    assert_int_equal(sign_round2(&w, &s, 2, &blame), RT_ABORTED);
    assert_int_equal(blame, 1u << 2);
    assert_false(actor_holds(w.h.a, fw.k));
    expire_and_check_freed(&w);
    unwatch();

    /* (c) a handler fault while the nonce is live: the host throws the
     * instance away (cg_actor_free) and rebuilds it from the record. */
    sess_all3(&w, &s);
    r[0] = post_sign1(&w, &s, 1);
    watch_nonce(w.h.a, s.sid);
    if (CG_FAULT_INJECTION) {
        cg_cmd f = {.kind = CG_CMD_FAULT, .sender = w.dev[0].pubkey};
        f.u.fault.kind = CG_FAULT_TRAP;
        result fr = call(&w.h, &f);
        assert_int_equal(fr.st, RT_INTERNAL);
    } else {
        rebuild(&w.h); /* what the runtime does on a handler fault */
    }
    assert_int_equal(final(&w.h, &r[0])->st, RT_ABORTED);
    assert_true(fw.target_freed);
    assert_int_equal(fw.leaks, 0);
    assert_false(actor_holds(w.h.a, fw.k));
    unwatch();

    sess_random(&w, &s);
    sign_ok(&w, &s);
    host_fini(&w.h);
}

typedef struct snapcap {
    uint8_t *data;
    size_t len;
} snapcap;

static void cap_snapshot_out(void *ctx, const void *d, uint32_t len)
{
    snapcap *c = ctx;
    assert_null(c->data); /* exactly once */
    c->data = malloc(len ? len : 1);
    memcpy(c->data, d, len);
    c->len = len;
}

static const cg_host cap_ops = {NULL, NULL, NULL, NULL, cap_snapshot_out};

static snapcap snap_take(cg_actor *a)
{
    snapcap c = {0};
    assert_int_equal(cg_actor_snapshot(a, &cap_ops, &c), RT_OK);
    assert_non_null(c.data);
    return c;
}

static void snap_same(cg_actor *a, const snapcap *idle, const uint8_t *nonce)
{
    snapcap c = snap_take(a);
    assert_int_equal(c.len, idle->len);
    assert_memory_equal(c.data, idle->data, c.len);
    if (nonce) assert_false(mem_holds(c.data, c.len, nonce));
    free(c.data);
}

/* The durable record never holds a nonce and signing never writes it: the
 * snapshot taken while a signing session holds the service's secret nonce,
 * after round 1 and after round 2 is byte-identical to the one taken idle,
 * and no signing call marks the state dirty (post_sign1 and sign_round2
 * check that on every call, in every test). */
/* ------------------------------------------------ recovery and retirement -- */

static void stranger_key(uint8_t pk[33])
{
    uint8_t sk[32];
    cg_dkg_error e;
    do
        rnd(sk, 32);
    while (cg_dkg_hostpubkey_gen(pk, sk, 32, &e) != RT_OK);
}

static result simple_cmd(host *h, int kind, const uint8_t *sender)
{
    cg_cmd c = {.kind = kind, .sender = sender};
    return call(h, &c);
}

static result restore_cmd(host *h, const uint8_t *sender, const uint8_t *rec, uint32_t len)
{
    cg_cmd c = {.kind = CG_CMD_RESTORE, .sender = sender};
    c.u.restore.recovery = rec;
    c.u.restore.recovery_len = len;
    return call(h, &c);
}

/* The recovery data handed out is the one committed; a service with the same
 * host key and no record rebuilds exactly the same record from it (and signs
 * under the same key); tampered data is refused and commits nothing. */
static void test_recovery_and_restore(void **state)
{
    (void)state;
    static wallet w;
    static host h2;
    cg_dkg_error e;
    cg_reply rep;
    uint8_t spk[33];
    stranger_key(spk);
    wallet_setup(&w, 3, 2, 1, 0);
    run_dkg(&w);
    sess s;
    sess_random(&w, &s);
    sign_ok(&w, &s);

    result r = simple_cmd(&w.h, CG_CMD_GET_RECOVERY, w.dev[1].pubkey);
    assert_int_equal(r.st, RT_OK);
    assert_false(w.h.dirty);
    assert_int_equal(cg_reply_decode(&rep, r.data, r.len), RT_OK);
    assert_int_equal(rep.kind, CG_CMD_GET_RECOVERY);
    uint32_t rl = rep.u.recovery.len;
    assert_int_equal(rl, CG_DKG_RECOVERY_LEN(2, 3));
    /* The committed record ends with u32 len || recovery data. */
    assert_true(w.h.rec_len > rl);
    assert_memory_equal(w.h.rec + w.h.rec_len - rl, rep.u.recovery.data, rl);
    uint8_t *rec = malloc(rl);
    memcpy(rec, rep.u.recovery.data, rl);
    free(r.data);
    /* A device gets its share back from it with ChillDKG's recover. */
    cg_dkg_scratch *scr = malloc(sizeof *scr);
    cg_dkg_output out;
    cg_dkg_params par;
    assert_int_equal(cg_dkg_recover(&out, &par, w.dev[0].seckey, 32, rec, rl, scr, &e), RT_OK);
    assert_memory_equal(out.threshold_pubkey, w.thresh_pk, 33);
    assert_memory_equal(out.secshare, w.dev[0].out.secshare, 32);
    cg_dkg_wipe(&out, sizeof out);
    free(scr);
    r = simple_cmd(&w.h, CG_CMD_GET_RECOVERY, spk);
    assert_int_equal(r.st, RT_PERMISSION_DENIED);
    free(r.data);

    /* The same service (host key) after losing its record. */
    memset(&h2, 0, sizeof h2);
    memcpy(h2.hostseckey, w.h.hostseckey, 32);
    memcpy(h2.hostpubkey, w.h.hostpubkey, 33);
    h2.rendezvous_ms = 60000;
    h2.now = w.h.now;
    build(&h2);
    assert_false(cg_actor_has_wallet(h2.a));
    r = simple_cmd(&h2, CG_CMD_GET_RECOVERY, w.dev[0].pubkey);
    assert_int_equal(r.st, RT_NOT_FOUND);
    free(r.data);
    /* A flipped certificate byte, a flipped eq_input byte, a truncation:
     * refused, nothing committed. */
    static const uint32_t flips[] = {0, 10, 200};
    for (size_t i = 0; i < 3; i++) {
        uint32_t at = i == 0 ? rl - 1 : flips[i];
        rec[at] ^= 1;
        r = restore_cmd(&h2, w.dev[0].pubkey, rec, rl);
        rec[at] ^= 1;
        assert_int_equal(r.st, RT_INVALID_ARGUMENT);
        assert_false(h2.dirty);
        assert_null(h2.rec);
        assert_false(cg_actor_has_wallet(h2.a));
        free(r.data);
    }
    r = restore_cmd(&h2, w.dev[0].pubkey, rec, rl - 64);
    assert_int_equal(r.st, RT_INVALID_ARGUMENT);
    assert_null(h2.rec);
    free(r.data);
    /* Only a device of the wallet may restore it. */
    r = restore_cmd(&h2, spk, rec, rl);
    assert_int_equal(r.st, RT_PERMISSION_DENIED);
    assert_false(h2.dirty);
    assert_false(cg_actor_has_wallet(h2.a));
    free(r.data);
    /* The genuine data: the record is rebuilt byte for byte, committed
     * before the reply. */
    r = restore_cmd(&h2, w.dev[1].pubkey, rec, rl);
    assert_int_equal(r.st, RT_OK);
    assert_true(h2.dirty);
    assert_int_equal(cg_reply_decode(&rep, r.data, r.len), RT_OK);
    assert_int_equal(rep.kind, CG_CMD_RESTORE);
    assert_memory_equal(rep.u.restore.thresh_pubkey, w.thresh_pk, 33);
    free(r.data);
    assert_int_equal(h2.rec_len, w.h.rec_len);
    assert_memory_equal(h2.rec, w.h.rec, w.h.rec_len);
    r = simple_cmd(&h2, CG_CMD_GET_WALLET, w.dev[0].pubkey);
    assert_int_equal(r.st, RT_OK);
    assert_int_equal(cg_reply_decode(&rep, r.data, r.len), RT_OK);
    assert_memory_equal(rep.u.wallet.pubshares, w.pubshares, 33 * 3);
    free(r.data);
    /* Again with the same data: idempotent; other data: a conflict. */
    r = restore_cmd(&h2, w.dev[0].pubkey, rec, rl);
    assert_int_equal(r.st, RT_OK);
    assert_false(h2.dirty);
    free(r.data);
    rec[rl - 1] ^= 1;
    r = restore_cmd(&h2, w.dev[0].pubkey, rec, rl);
    rec[rl - 1] ^= 1;
    assert_int_equal(r.st, RT_ALREADY_EXISTS);
    assert_false(h2.dirty);
    free(r.data);
    /* The wallet signs from the restored record, under the same key. */
    free(w.h.rec);
    w.h.rec = malloc(h2.rec_len);
    memcpy(w.h.rec, h2.rec, h2.rec_len);
    w.h.rec_len = h2.rec_len;
    rebuild(&w.h);
    sess_random(&w, &s);
    sign_ok(&w, &s);
    free(rec);
    host_fini(&h2);
    host_fini(&w.h);
}

/* A retired wallet refuses to sign or hand out its recovery data, at once
 * (a session in flight ends, its nonce wiped) and after a rebuild from its
 * record; it cannot be restored over. */
static void test_retire(void **state)
{
    (void)state;
    static wallet w;
    cg_reply rep;
    unsigned sessions, nonces;
    wallet_setup(&w, 2, 2, 1, 0);
    run_dkg(&w);
    result r = simple_cmd(&w.h, CG_CMD_GET_RECOVERY, w.dev[0].pubkey);
    assert_int_equal(r.st, RT_OK);
    assert_int_equal(cg_reply_decode(&rep, r.data, r.len), RT_OK);
    uint32_t rl = rep.u.recovery.len;
    uint8_t *rec = malloc(rl);
    memcpy(rec, rep.u.recovery.data, rl);
    free(r.data);
    assert_int_equal(w.h.rec[4], 1);

    sess s;
    sess_random(&w, &s);
    sign_round1(&w, &s); /* a session waiting for round 2 */
    cg_actor_session_counts(w.h.a, &sessions, &nonces);
    assert_int_equal(sessions, 1);
    r = simple_cmd(&w.h, CG_CMD_RETIRE, w.dev[0].pubkey);
    assert_int_equal(r.st, RT_OK);
    assert_true(w.h.dirty);
    assert_int_equal(cg_reply_decode(&rep, r.data, r.len), RT_OK);
    assert_int_equal(rep.kind, CG_CMD_RETIRE);
    free(r.data);
    assert_int_equal(w.h.rec[4], 3); /* wallet present, retired */
    cg_actor_session_counts(w.h.a, &sessions, &nonces);
    assert_int_equal(sessions, 0);
    assert_int_equal(nonces, 0);

    for (int round = 0; round < 2; round++) {
        sess s2;
        sess_random(&w, &s2);
        device *d = dev_of(&w, 0);
        uint32_t p = s2.ids[0] == 0 ? 0 : 1;
        memset(s2.pubnonce[p], 2, 66);
        cg_cmd c = sign1_cmd(&s2, d, p);
        r = call(&w.h, &c);
        assert_int_equal(r.st, RT_FAILED_PRECONDITION);
        free(r.data);
        cg_cmd c2 = {.kind = CG_CMD_SIGN_ROUND2, .sender = d->pubkey};
        c2.u.sign2.session_id = s.sid;
        c2.u.sign2.psig = s.psig[0];
        r = call(&w.h, &c2);
        assert_int_equal(r.st, RT_FAILED_PRECONDITION);
        free(r.data);
        r = simple_cmd(&w.h, CG_CMD_GET_RECOVERY, d->pubkey);
        assert_int_equal(r.st, RT_FAILED_PRECONDITION);
        free(r.data);
        r = restore_cmd(&w.h, d->pubkey, rec, rl);
        assert_int_equal(r.st, RT_FAILED_PRECONDITION);
        free(r.data);
        /* Retiring again changes nothing. */
        r = simple_cmd(&w.h, CG_CMD_RETIRE, d->pubkey);
        assert_int_equal(r.st, RT_OK);
        assert_false(w.h.dirty);
        free(r.data);
        rebuild(&w.h); /* from the durable record */
    }
    free(rec);
    host_fini(&w.h);
}

static void test_snapshot_excludes_sessions(void **state)
{
    (void)state;
    static wallet w;
    unsigned sessions, nonces;
    uint64_t blame = 0;
    wallet_setup(&w, 3, 2, 1, 0);
    run_dkg(&w);
    snapcap idle = snap_take(w.h.a);
    assert_int_equal(idle.len, w.h.rec_len); /* the committed record */
    assert_memory_equal(idle.data, w.h.rec, idle.len);

    sess s;
    sess_all3(&w, &s);
    result r[2];
    r[0] = post_sign1(&w, &s, 0);
    cg_actor_session_counts(w.h.a, &sessions, &nonces);
    assert_int_equal(sessions, 1);
    assert_int_equal(nonces, 1);
    uint8_t k[CG_FROST_SECNONCE_LEN];
    memcpy(k, sess_of(w.h.a, s.sid)->secnonce.k, sizeof k);
    snap_same(w.h.a, &idle, k);

    r[1] = post_sign1(&w, &s, 2);
    collect_aggnonce(&w, &s, r, 2);
    snap_same(w.h.a, &idle, k);
    assert_int_equal(sign_round2(&w, &s, -1, &blame), RT_OK);
    snap_same(w.h.a, &idle, k);
    /* Nothing was committed while signing either. */
    assert_int_equal(w.h.rec_len, idle.len);
    assert_memory_equal(w.h.rec, idle.data, idle.len);
    cx_wipe(k, sizeof k);
    free(idle.data);
    host_fini(&w.h);
}

int main(void)
{
    cx_init();
    secp = secp256k1_context_create(SECP256K1_CONTEXT_VERIFY);
    srand(7);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_2of2_dkg_and_100_sessions),
        cmocka_unit_test(test_2of3_dkg_and_100_sessions),
        cmocka_unit_test(test_bad_psig_blamed),
        cmocka_unit_test(test_fault_between_rounds),
        cmocka_unit_test(test_fault_refused),
        cmocka_unit_test(test_rendezvous_rules),
        cmocka_unit_test(test_dkg_rules),
        cmocka_unit_test(test_dkg_blame),
        cmocka_unit_test(test_snapshot_restore),
        cmocka_unit_test(test_mutated_commands),
        cmocka_unit_test(test_secnonce_wiped_in_actor),
        cmocka_unit_test(test_snapshot_excludes_sessions),
        cmocka_unit_test(test_recovery_and_restore),
        cmocka_unit_test(test_retire),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    secp256k1_context_destroy(secp);
    return rc;
}
