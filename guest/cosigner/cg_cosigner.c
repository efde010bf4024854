/*
 * cg_cosigner.c — the wallet actor: dispatch, the ChillDKG rendezvous,
 * GET_WALLET, recovery (GET_RECOVERY, RESTORE), retirement, fault
 * injection, tick, and the snapshot record.
 *
 * Rendezvous: a device's request is parked until every device of the round
 * has posted; the last post runs the service's own protocol steps and
 * completes every parked request at once. A device that posts the same
 * message again parks too (or gets the answer at once when the round is
 * over); a different message from the same device is refused and the round
 * goes on. A message that turns out faulty when the round is evaluated
 * aborts the round for everyone, blaming its sender.
 */
#include "cg_actor.h"

#if !defined(__wasm__)
#include <stdlib.h>
#endif

/* ----- host calls ---------------------------------------------------------- */

void act_reply(cg_actor *a, rt_status st, const void *data, size_t len, uint64_t blame)
{
    if (a->answered) return; /* a second answer would be a host-side error; keep the first */
    a->answered = 1;
#if defined(__wasm__)
    cg_host_reply((int32_t)st, data, (uint32_t)len, blame);
#else
    a->host->reply(a->hctx, (int32_t)st, data, (uint32_t)len, blame);
#endif
}

static size_t cstrlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

void act_reply_err(cg_actor *a, rt_status st, uint64_t blame, const char *msg)
{
    act_reply(a, st, msg, cstrlen(msg), blame);
}

int cg_park(cg_actor *a, cg_waitq *q, uint32_t sender, uint64_t deadline)
{
    if (q->n >= CG_MAX_WAITERS) {
        act_reply_err(a, RT_RESOURCE_EXHAUSTED, 0, "too many waiters in this round");
        return 0;
    }
#if defined(__wasm__)
    uint64_t id = cg_host_park(deadline);
#else
    uint64_t id = a->host->park(a->hctx, deadline);
#endif
    a->answered = 1;
    q->w[q->n].id = id;
    q->w[q->n].sender = sender;
    q->n++;
    return 1;
}

void cg_complete_all(cg_actor *a, cg_waitq *q, rt_status st, const void *data, size_t len,
                     uint64_t blame)
{
    for (uint32_t i = 0; i < q->n; i++) {
#if defined(__wasm__)
        (void)a;
        cg_host_complete(q->w[i].id, (int32_t)st, data, (uint32_t)len, blame);
#else
        a->host->complete(a->hctx, q->w[i].id, (int32_t)st, data, (uint32_t)len, blame);
#endif
    }
    q->n = 0;
}

void cg_complete_all_err(cg_actor *a, cg_waitq *q, rt_status st, uint64_t blame, const char *msg)
{
    cg_complete_all(a, q, st, msg, cstrlen(msg), blame);
}

void cg_mark_dirty(cg_actor *a)
{
#if defined(__wasm__)
    (void)a;
    cg_host_mark_dirty();
#else
    a->host->mark_dirty(a->hctx);
#endif
}

static void snapshot_out(cg_actor *a, const void *data, size_t len)
{
#if defined(__wasm__)
    (void)a;
    cg_host_snapshot_out(data, (uint32_t)len);
#else
    a->host->snapshot_out(a->hctx, data, (uint32_t)len);
#endif
}

/* ----- session storage ------------------------------------------------------ */

#if defined(__wasm__)
/* One actor per instance, so static slots replace an allocator. */
static cg_dkg_sess g_dkg;
static int g_dkg_used;
static cg_sign_sess g_sign[CG_MAX_SIGN_SESSIONS];
static uint8_t g_sign_used[CG_MAX_SIGN_SESSIONS];
static uint8_t g_msg[CG_MAX_SIGN_SESSIONS][CG_MAX_MSG_LEN];
static uint8_t g_msg_used[CG_MAX_SIGN_SESSIONS];

cg_dkg_sess *cg_dkg_sess_alloc(void)
{
    if (g_dkg_used) return 0;
    g_dkg_used = 1;
    cg_memset(&g_dkg, 0, sizeof g_dkg);
    return &g_dkg;
}

void cg_dkg_sess_free(cg_dkg_sess *s)
{
    cx_wipe(s, sizeof *s);
    g_dkg_used = 0;
}

cg_sign_sess *cg_sign_sess_alloc(void)
{
    for (int i = 0; i < CG_MAX_SIGN_SESSIONS; i++)
        if (!g_sign_used[i]) {
            g_sign_used[i] = 1;
            cg_memset(&g_sign[i], 0, sizeof g_sign[i]);
            return &g_sign[i];
        }
    return 0;
}

void cg_sign_sess_free(cg_sign_sess *s)
{
    cx_wipe(s, sizeof *s);
    g_sign_used[s - g_sign] = 0;
}

uint8_t *cg_msg_alloc(size_t len)
{
    (void)len;
    for (int i = 0; i < CG_MAX_SIGN_SESSIONS; i++)
        if (!g_msg_used[i]) {
            g_msg_used[i] = 1;
            return g_msg[i];
        }
    return 0;
}

void cg_msg_free(uint8_t *p, size_t len)
{
    (void)len;
    if (p) g_msg_used[(p - g_msg[0]) / CG_MAX_MSG_LEN] = 0;
}
#else
cg_dkg_sess *cg_dkg_sess_alloc(void)
{
    return calloc(1, sizeof(cg_dkg_sess));
}

void cg_dkg_sess_free(cg_dkg_sess *s)
{
    cx_wipe(s, sizeof *s);
    free(s);
}

cg_sign_sess *cg_sign_sess_alloc(void)
{
    return calloc(1, sizeof(cg_sign_sess));
}

void cg_sign_sess_free(cg_sign_sess *s)
{
    cx_wipe(s, sizeof *s);
    free(s);
}

uint8_t *cg_msg_alloc(size_t len)
{
    return malloc(len ? len : 1);
}

void cg_msg_free(uint8_t *p, size_t len)
{
    (void)len;
    free(p);
}
#endif

/* ----- lifecycle ------------------------------------------------------------ */

#if !defined(__wasm__)
rt_status cg_actor_new(cg_actor **out)
{
    *out = calloc(1, sizeof(cg_actor));
    return *out ? RT_OK : RT_RESOURCE_EXHAUSTED;
}
#endif

static void dkg_drop(cg_actor *a)
{
    if (a->dkg) {
        cg_dkg_sess_free(a->dkg);
        a->dkg = 0;
    }
}

void cg_actor_free(cg_actor *a)
{
    if (!a) return;
    dkg_drop(a);
    cg_sign_expire(a, 0, 1);
    cx_wipe(a, sizeof *a);
#if !defined(__wasm__)
    free(a);
#endif
}

rt_status cg_actor_init(cg_actor *a)
{
    if (a->inited) return RT_FAILED_PRECONDITION;
    a->inited = 1;
    a->rendezvous_ms = CG_RENDEZVOUS_DEFAULT_MS;
    return RT_OK;
}

rt_status cg_actor_configure(cg_actor *a, const uint8_t *buf, size_t len)
{
    cg_config c;
    rt_status st = cg_config_decode(&c, buf, len);
    if (st != RT_OK) return st;
    a->rendezvous_ms = c.rendezvous_ms ? c.rendezvous_ms : CG_RENDEZVOUS_DEFAULT_MS;
    a->flags = c.flags;
    return RT_OK;
}

rt_status cg_actor_set_hostkey(cg_actor *a, const uint8_t hostseckey[32])
{
    cg_dkg_error err;
    if (a->has_hostkey) return RT_FAILED_PRECONDITION;
    if (cg_dkg_hostpubkey_gen(a->hostpubkey, hostseckey, 32, &err) != RT_OK)
        return RT_INVALID_ARGUMENT;
    cg_memcpy(a->hostseckey, hostseckey, 32);
    a->has_hostkey = 1;
    return RT_OK;
}

void cg_actor_session_counts(const cg_actor *a, unsigned *sessions, unsigned *nonces)
{
    *sessions = *nonces = 0;
    for (int i = 0; i < CG_MAX_SIGN_SESSIONS; i++)
        if (a->sign[i]) {
            (*sessions)++;
            *nonces += a->sign[i]->has_secnonce != 0;
        }
}

int cg_actor_has_dkg(const cg_actor *a)
{
    return a->dkg != 0;
}
int cg_actor_has_wallet(const cg_actor *a)
{
    return a->has_wallet;
}

/* ----- helpers --------------------------------------------------------------- */

static int find_key(const cg_dkg_params *p, const uint8_t *pk)
{
    for (uint32_t i = 0; i < p->n; i++)
        if (!cg_memcmp(p->hostpubkeys[i], pk, 33)) return (int)i;
    return -1;
}

static uint64_t dkg_blame(const cg_dkg_error *e)
{
    uint64_t b = 0;
    if (e->participant >= 0 && e->participant < CG_MAX_PARTICIPANTS)
        b |= bit((uint32_t)e->participant);
    if (e->participant2 >= 0 && e->participant2 < CG_MAX_PARTICIPANTS)
        b |= bit((uint32_t)e->participant2);
    return b;
}

static const char *dkg_msg(const cg_dkg_error *e, const char *fallback)
{
    return e->msg ? e->msg : (e->kind ? cg_dkg_error_kind_name(e->kind) : fallback);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Encodes a reply into a->out; 0 on a (never expected) encoding failure. */
static size_t encode_reply(cg_actor *a, const cg_reply *r)
{
    size_t len;
    if (cg_reply_encode(r, a->out, sizeof a->out, &len) != RT_OK) return 0;
    return len;
}

/* Aborts the DKG for everyone parked on it. */
static void dkg_abort(cg_actor *a, rt_status st, uint64_t blame, const char *msg)
{
    cg_dkg_sess *s = a->dkg;
    cg_complete_all_err(a, &s->q1, st, blame, msg);
    cg_complete_all_err(a, &s->q2, st, blame, msg);
    dkg_drop(a);
}

/* The answer to DKG round 2 from the durable wallet: the certificate is the
 * tail of the recovery data, so a device can finalize even after the actor
 * restarted. */
static size_t wallet_round2_reply(cg_actor *a)
{
    cg_wallet *w = &a->wallet;
    uint32_t cert_len = CG_DKG_CMSG2_LEN(w->params.n);
    cg_reply r = {.kind = CG_CMD_DKG_ROUND2};
    r.u.dkg2.thresh_pubkey = w->out.threshold_pubkey;
    r.u.dkg2.cmsg2 = w->recovery + w->recovery_len - cert_len;
    r.u.dkg2.cmsg2_len = cert_len;
    return encode_reply(a, &r);
}

/* ----- DKG round 1 ------------------------------------------------------------ */

static void dkg_round1_complete(cg_actor *a)
{
    cg_dkg_sess *s = a->dkg;
    cg_dkg_error err = {0};
    const uint8_t *pm[CG_DKG_MAX_N];
    size_t pl[CG_DKG_MAX_N];
    size_t len;
    uint8_t aux[32];
    rt_status st;

    for (uint32_t i = 0; i < s->params.n; i++) {
        pm[i] = s->pmsg1[i];
        pl[i] = s->pmsg1_len;
    }
    st = cg_dkg_coordinator_step1(&s->cst, s->cmsg1, sizeof s->cmsg1, &len, pm, pl, s->params.n,
                                  &s->params, &err);
    if (st != RT_OK) {
        dkg_abort(a, st == RT_ABORTED ? RT_ABORTED : RT_INVALID_ARGUMENT, dkg_blame(&err),
                  dkg_msg(&err, "coordinator step 1 failed"));
        return;
    }
    s->cmsg1_len = (uint32_t)len;
    cx_random(aux, sizeof aux);
    st = cg_dkg_participant_step2(&s->pst2, s->pmsg2[s->my_idx], a->hostseckey, 32, &s->pst1,
                                  s->cmsg1, s->cmsg1_len, aux, sizeof aux, &s->inv, &err);
    if (st != RT_OK && err.kind == CG_DKG_ERR_UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR) {
        /* We are the (honest) coordinator, so the investigation names the
         * participant whose encrypted share to us was wrong. */
        size_t cl;
        cg_dkg_error e2 = {0};
        if (cg_dkg_coordinator_investigate(s->cinvs, sizeof s->cinvs, &cl, pm, pl, s->params.n,
                                           &s->params, &e2) == RT_OK) {
            size_t one = CG_DKG_CINV_LEN(s->params.n);
            cg_dkg_participant_investigate(&s->inv, s->cinvs + s->my_idx * one, one, &e2);
            if (e2.participant >= 0) err = e2;
        }
    }
    if (st != RT_OK) {
        dkg_abort(a, st == RT_ABORTED ? RT_ABORTED : RT_INVALID_ARGUMENT, dkg_blame(&err),
                  dkg_msg(&err, "participant step 2 failed"));
        return;
    }
    s->have2 = (uint32_t)bit(s->my_idx);
    s->phase = DKG_R2;
    s->deadline = a->now + a->rendezvous_ms;

    cg_reply r = {.kind = CG_CMD_DKG_ROUND1};
    r.u.dkg1.cmsg1 = s->cmsg1;
    r.u.dkg1.cmsg1_len = s->cmsg1_len;
    len = encode_reply(a, &r);
    cg_complete_all(a, &s->q1, RT_OK, a->out, len, 0);
}

static void dkg_round1(cg_actor *a, const cg_cmd *c)
{
    cg_dkg_params p;
    cg_dkg_error err = {0};

    cg_memset(&p, 0, sizeof p);
    p.n = c->u.dkg1.n;
    p.t = c->u.dkg1.t;
    cg_memcpy(p.hostpubkeys, c->u.dkg1.hostpubkeys, (size_t)p.n * 33);
    if (cg_dkg_params_validate(&p, &err) != RT_OK) {
        act_reply_err(a, RT_INVALID_ARGUMENT, dkg_blame(&err), dkg_msg(&err, "invalid params"));
        return;
    }
    int me = find_key(&p, a->hostpubkey);
    int sender = find_key(&p, c->sender);
    if (me < 0) {
        act_reply_err(a, RT_INVALID_ARGUMENT, 0, "the service's host key is not in params");
        return;
    }
    if (sender < 0 || sender == me) {
        act_reply_err(a, RT_PERMISSION_DENIED, 0, "sender is not a device of these params");
        return;
    }
    if (c->u.dkg1.pmsg1_len != CG_DKG_PMSG1_LEN(p.t, p.n)) {
        act_reply_err(a, RT_INVALID_ARGUMENT, bit((uint32_t)sender), "pmsg1 has the wrong length");
        return;
    }

    cg_dkg_sess *s = a->dkg;
    if (s && cg_memcmp(&s->params, &p, sizeof p)) {
        act_reply_err(a, RT_INVALID_ARGUMENT, 0, "a DKG with other params is in flight");
        return;
    }
    if (!s && a->has_wallet) {
        act_reply_err(a, RT_ALREADY_EXISTS, 0, "the wallet already exists");
        return;
    }
    if (!s) {
        s = cg_dkg_sess_alloc();
        if (!s) {
            act_reply_err(a, RT_RESOURCE_EXHAUSTED, 0, "no room for a DKG session");
            return;
        }
        a->dkg = s;
        s->params = p;
        s->my_idx = (uint32_t)me;
        s->pmsg1_len = CG_DKG_PMSG1_LEN(p.t, p.n);
        s->devices = (uint32_t)((bit(p.n) - 1) & ~bit((uint32_t)me));
        s->deadline = a->now + a->rendezvous_ms;
        s->phase = DKG_R1;
        uint8_t rnd[32];
        size_t l;
        cx_random(rnd, sizeof rnd);
        rt_status st = cg_dkg_participant_step1(&s->pst1, s->pmsg1[me], sizeof s->pmsg1[me], &l,
                                                a->hostseckey, 32, &p, rnd, sizeof rnd, &err);
        cx_wipe(rnd, sizeof rnd);
        if (st != RT_OK || l != s->pmsg1_len) {
            dkg_drop(a);
            act_reply_err(a, RT_INTERNAL, 0, dkg_msg(&err, "participant step 1 failed"));
            return;
        }
        s->have1 = (uint32_t)bit((uint32_t)me);
    }

    uint32_t b = (uint32_t)bit((uint32_t)sender);
    if (s->have1 & b) {
        if (cg_memcmp(s->pmsg1[sender], c->u.dkg1.pmsg1, s->pmsg1_len)) {
            act_reply_err(a, RT_INVALID_ARGUMENT, 0, "conflicting pmsg1 from this participant");
            return;
        }
        if (s->phase == DKG_R1) {
            cg_park(a, &s->q1, (uint32_t)sender, s->deadline);
        } else {
            cg_reply r = {.kind = CG_CMD_DKG_ROUND1};
            r.u.dkg1.cmsg1 = s->cmsg1;
            r.u.dkg1.cmsg1_len = s->cmsg1_len;
            act_reply(a, RT_OK, a->out, encode_reply(a, &r), 0);
        }
        return;
    }
    if (s->phase != DKG_R1) {
        act_reply_err(a, RT_FAILED_PRECONDITION, 0, "DKG round 1 is over");
        return;
    }
    if (!cg_park(a, &s->q1, (uint32_t)sender, s->deadline)) return;
    cg_memcpy(s->pmsg1[sender], c->u.dkg1.pmsg1, s->pmsg1_len);
    s->have1 |= b;
    if ((s->have1 & s->devices) == s->devices) dkg_round1_complete(a);
}

/* ----- DKG round 2 ------------------------------------------------------------ */

static void dkg_round2_complete(cg_actor *a)
{
    cg_dkg_sess *s = a->dkg;
    cg_dkg_error err = {0};
    const uint8_t *pm[CG_DKG_MAX_N];
    size_t pl[CG_DKG_MAX_N];
    size_t cmsg2_len, rec_len, rec2_len;
    rt_status st;

    for (uint32_t i = 0; i < s->params.n; i++) {
        pm[i] = s->pmsg2[i];
        pl[i] = CG_DKG_PMSG2_LEN;
    }
    st = cg_dkg_coordinator_finalize(s->cmsg2, sizeof s->cmsg2, &cmsg2_len, &s->cout, s->recovery,
                                     sizeof s->recovery, &rec_len, &s->cst, pm, pl, s->params.n,
                                     &err);
    if (st != RT_OK) {
        dkg_abort(a, st == RT_ABORTED ? RT_ABORTED : RT_INVALID_ARGUMENT, dkg_blame(&err),
                  dkg_msg(&err, "coordinator finalize failed"));
        return;
    }
    cg_wallet *w = &a->wallet;
    cg_memset(w, 0, sizeof *w);
    st = cg_dkg_participant_finalize(&w->out, w->recovery, sizeof w->recovery, &rec2_len, &s->pst2,
                                     s->cmsg2, cmsg2_len, &err);
    if (st != RT_OK || rec2_len != rec_len || cg_memcmp(w->recovery, s->recovery, rec_len) ||
        cg_memcmp(w->out.threshold_pubkey, s->cout.threshold_pubkey, 33) ||
        cg_memcmp(w->out.pubshares, s->cout.pubshares, sizeof w->out.pubshares)) {
        cx_wipe(w, sizeof *w);
        dkg_abort(a, RT_INTERNAL, 0, dkg_msg(&err, "the service's own finalize disagrees"));
        return;
    }
    w->params = s->params;
    w->my_idx = s->my_idx;
    w->recovery_len = (uint32_t)rec_len;
    a->has_wallet = 1;
    /* Before any reply: the host commits the record before releasing them. */
    cg_mark_dirty(a);

    size_t len = wallet_round2_reply(a);
    cg_complete_all(a, &s->q2, RT_OK, a->out, len, 0);
    dkg_drop(a);
}

static void dkg_round2(cg_actor *a, const cg_cmd *c)
{
    cg_dkg_sess *s = a->dkg;

    if (!s && a->has_wallet) {
        /* A retry after the DKG finished (perhaps before a restart): the
         * answer is durable; the device's own signature must match. */
        cg_wallet *w = &a->wallet;
        int sender = find_key(&w->params, c->sender);
        if (sender < 0 || (uint32_t)sender == w->my_idx) {
            act_reply_err(a, RT_PERMISSION_DENIED, 0, "sender is not a device of this wallet");
            return;
        }
        const uint8_t *cert = w->recovery + w->recovery_len - CG_DKG_CMSG2_LEN(w->params.n);
        if (c->u.dkg2.pmsg2_len != CG_DKG_PMSG2_LEN ||
            cg_memcmp(cert + 64 * sender, c->u.dkg2.pmsg2, CG_DKG_PMSG2_LEN)) {
            act_reply_err(a, RT_ALREADY_EXISTS, 0, "the wallet already exists");
            return;
        }
        act_reply(a, RT_OK, a->out, wallet_round2_reply(a), 0);
        return;
    }
    if (!s) {
        act_reply_err(a, RT_ABORTED, 0,
                      "no DKG in flight (expired, aborted or the actor restarted)");
        return;
    }
    int sender = find_key(&s->params, c->sender);
    if (sender < 0 || (uint32_t)sender == s->my_idx) {
        act_reply_err(a, RT_PERMISSION_DENIED, 0, "sender is not a device of this DKG");
        return;
    }
    if (s->phase != DKG_R2) {
        act_reply_err(a, RT_FAILED_PRECONDITION, 0, "DKG round 1 is not complete");
        return;
    }
    if (c->u.dkg2.pmsg2_len != CG_DKG_PMSG2_LEN) {
        act_reply_err(a, RT_INVALID_ARGUMENT, bit((uint32_t)sender), "pmsg2 has the wrong length");
        return;
    }
    uint32_t b = (uint32_t)bit((uint32_t)sender);
    if (s->have2 & b) {
        if (cg_memcmp(s->pmsg2[sender], c->u.dkg2.pmsg2, CG_DKG_PMSG2_LEN)) {
            act_reply_err(a, RT_INVALID_ARGUMENT, 0, "conflicting pmsg2 from this participant");
            return;
        }
        cg_park(a, &s->q2, (uint32_t)sender, s->deadline);
        return;
    }
    if (!cg_park(a, &s->q2, (uint32_t)sender, s->deadline)) return;
    cg_memcpy(s->pmsg2[sender], c->u.dkg2.pmsg2, CG_DKG_PMSG2_LEN);
    s->have2 |= b;
    if ((s->have2 & s->devices) == s->devices) dkg_round2_complete(a);
}

/* ----- GET_WALLET --------------------------------------------------------------- */

static void get_wallet(cg_actor *a, const cg_cmd *c)
{
    if (!a->has_wallet) {
        act_reply_err(a, RT_NOT_FOUND, 0, "no such wallet");
        return;
    }
    cg_wallet *w = &a->wallet;
    if (find_key(&w->params, c->sender) < 0) {
        act_reply_err(a, RT_PERMISSION_DENIED, 0, "sender is not a participant of this wallet");
        return;
    }
    cg_reply r = {.kind = CG_CMD_GET_WALLET};
    r.u.wallet.thresh_pubkey = w->out.threshold_pubkey;
    r.u.wallet.t = w->params.t;
    r.u.wallet.n = w->params.n;
    r.u.wallet.hostpubkeys = w->params.hostpubkeys[0];
    r.u.wallet.pubshares = w->out.pubshares[0];
    act_reply(a, RT_OK, a->out, encode_reply(a, &r), 0);
}

/* ----- recovery and retirement ---------------------------------------------------- */

_Static_assert(sizeof(((cg_actor *)0)->out) >= 2 + 4 + CG_DKG_RECOVERY_MAX,
               "the reply buffer holds the largest GET_RECOVERY reply");
_Static_assert(CG_DKG_RECOVERY_MAX == CG_MAX_RECOVERY_LEN, "one bound for recovery data");

/* The recovery data exactly as committed after the DKG (eq_input || cert):
 * what any participant needs to run ChillDKG's recover() with its host key. */
static void get_recovery(cg_actor *a, const cg_cmd *c)
{
    if (!a->has_wallet) {
        act_reply_err(a, RT_NOT_FOUND, 0, "no such wallet");
        return;
    }
    cg_wallet *w = &a->wallet;
    if (find_key(&w->params, c->sender) < 0) {
        act_reply_err(a, RT_PERMISSION_DENIED, 0, "sender is not a participant of this wallet");
        return;
    }
    if (w->retired) {
        act_reply_err(a, RT_FAILED_PRECONDITION, 0, "wallet retired");
        return;
    }
    cg_reply r = {.kind = CG_CMD_GET_RECOVERY};
    r.u.recovery.data = w->recovery;
    r.u.recovery.len = w->recovery_len;
    act_reply(a, RT_OK, a->out, encode_reply(a, &r), 0);
}

static void restore_reply(cg_actor *a)
{
    cg_reply r = {.kind = CG_CMD_RESTORE};
    r.u.restore.thresh_pubkey = a->wallet.out.threshold_pubkey;
    act_reply(a, RT_OK, a->out, encode_reply(a, &r), 0);
}

#if defined(__wasm__)
static cg_dkg_scratch g_scratch; /* one actor per instance; ~4 KiB off the shadow stack */
#endif

/*
 * Rebuilds the wallet from ChillDKG recovery data after the service lost its
 * record (its host key survived). cg_dkg_recover verifies the certificate,
 * which holds every participant's CertEq signature over eq_input, the
 * service's own among them: data that verifies is exactly what this service
 * agreed to at the end of the DKG, so no enrollment or operator approval is
 * needed, and data that does not is refused with nothing changed.
 */
static void restore(cg_actor *a, const cg_cmd *c)
{
    const uint8_t *rec = c->u.restore.recovery;
    uint32_t len = c->u.restore.recovery_len;
    cg_wallet *w = &a->wallet;

    if (a->has_wallet) {
        int sender = find_key(&w->params, c->sender);
        if (sender < 0 || (uint32_t)sender == w->my_idx) {
            act_reply_err(a, RT_PERMISSION_DENIED, 0, "sender is not a device of this wallet");
            return;
        }
        if (len != w->recovery_len || cg_memcmp(rec, w->recovery, len)) {
            act_reply_err(a, RT_ALREADY_EXISTS, 0, "the wallet exists with other recovery data");
            return;
        }
        if (w->retired) {
            act_reply_err(a, RT_FAILED_PRECONDITION, 0, "wallet retired");
            return;
        }
        restore_reply(a); /* the same data again: nothing to do */
        return;
    }
    if (a->dkg) {
        act_reply_err(a, RT_FAILED_PRECONDITION, 0, "a DKG for this wallet is in flight");
        return;
    }
#if defined(__wasm__)
    cg_dkg_scratch *scratch = &g_scratch;
#else
    cg_dkg_scratch *scratch = malloc(sizeof *scratch);
    if (!scratch) {
        act_reply_err(a, RT_RESOURCE_EXHAUSTED, 0, "no memory for recovery");
        return;
    }
#endif
    cg_dkg_error err = {0};
    cg_memset(w, 0, sizeof *w);
    rt_status st = cg_dkg_recover(&w->out, &w->params, a->hostseckey, 32, rec, len, scratch, &err);
#if !defined(__wasm__)
    free(scratch);
#endif
    int me = st == RT_OK ? find_key(&w->params, a->hostpubkey) : -1;
    int sender = st == RT_OK ? find_key(&w->params, c->sender) : -1;
    if (st != RT_OK || me < 0 || !w->out.has_secshare) {
        cx_wipe(w, sizeof *w);
        act_reply_err(a, RT_INVALID_ARGUMENT, 0, dkg_msg(&err, "invalid recovery data"));
        return;
    }
    if (sender < 0 || sender == me) {
        cx_wipe(w, sizeof *w);
        act_reply_err(a, RT_PERMISSION_DENIED, 0, "sender is not a device of this wallet");
        return;
    }
    w->my_idx = (uint32_t)me;
    w->recovery_len = len;
    cg_memcpy(w->recovery, rec, len);
    a->has_wallet = 1;
    a->signers_valid = 0;
    /* Before the reply: the host commits the rebuilt record first. */
    cg_mark_dirty(a);
    restore_reply(a);
}

/* An operator retired the wallet (the host authenticated the admin key):
 * from now on it signs nothing. Durable before the reply, so a restart or an
 * eviction cannot bring signing back; sessions in flight end at once and
 * their nonces are wiped. Retiring twice is answered like the first time. */
static void retire(cg_actor *a)
{
    if (!a->has_wallet) {
        act_reply_err(a, RT_NOT_FOUND, 0, "no such wallet");
        return;
    }
    if (!a->wallet.retired) {
        a->wallet.retired = 1;
        cg_sign_abort_all(a, RT_FAILED_PRECONDITION, "wallet retired");
        cg_mark_dirty(a);
    }
    cg_reply r = {.kind = CG_CMD_RETIRE};
    act_reply(a, RT_OK, a->out, encode_reply(a, &r), 0);
}

/* ----- faults ------------------------------------------------------------------- */

static rt_status fault(cg_actor *a, uint32_t kind)
{
    if (!CG_FAULT_INJECTION || !(a->flags & CG_CONFIG_FAULT_INJECTION)) {
        act_reply_err(a, RT_PERMISSION_DENIED, 0, "fault injection is disabled");
        return RT_OK;
    }
    switch (kind) {
    case CG_FAULT_SNAPSHOT:
        a->fault_snapshot = 1;
        cg_mark_dirty(a); /* so the host snapshots now */
        act_reply(a, RT_OK, 0, 0, 0);
        return RT_OK;
#if defined(__wasm__)
    case CG_FAULT_TRAP:
        __builtin_trap();
    case CG_FAULT_SPIN: {
        volatile uint32_t x = 0;
        for (;;)
            x++;
    }
    case CG_FAULT_OOM:
        while (__builtin_wasm_memory_grow(0, 16) != (__SIZE_TYPE__)-1)
            ;
        __builtin_trap();
#else
    case CG_FAULT_SPIN:
        return RT_DEADLINE_EXCEEDED; /* what a runaway guest looks like natively */
#endif
    default:
        return RT_INTERNAL;
    }
}

/* ----- dispatch ----------------------------------------------------------------- */

static void expire(cg_actor *a, uint64_t now)
{
    if (a->dkg && now >= a->dkg->deadline)
        dkg_abort(a, RT_DEADLINE_EXCEEDED, 0, "DKG rendezvous deadline passed");
    cg_sign_expire(a, now, 0);
}

static void enter(cg_actor *a, const cg_host *h, void *hctx, uint64_t now)
{
    a->host = h;
    a->hctx = hctx;
    a->now = now;
    a->answered = 0;
}

rt_status cg_actor_handle(cg_actor *a, const cg_host *h, void *hctx, const uint8_t *buf, size_t len,
                          uint64_t now_ms)
{
    cg_cmd c;
    rt_status st = RT_OK;

    enter(a, h, hctx, now_ms);
    expire(a, now_ms);
    rt_status dst = cg_cmd_decode(&c, buf, len);
    if (dst != RT_OK) {
        act_reply_err(a, RT_INVALID_ARGUMENT, 0, "malformed command");
    } else if (!a->inited || !a->has_hostkey) {
        /* A host that skipped init or set_hostkey: its bug, not the request's. */
        act_reply_err(a, RT_INTERNAL, 0, "actor not initialised");
    } else {
        switch (c.kind) {
        case CG_CMD_DKG_ROUND1:
            dkg_round1(a, &c);
            break;
        case CG_CMD_DKG_ROUND2:
            dkg_round2(a, &c);
            break;
        case CG_CMD_SIGN_ROUND1:
        case CG_CMD_SIGN_ROUND2: {
            if (!a->has_wallet) {
                act_reply_err(a, RT_NOT_FOUND, 0, "no such wallet");
                break;
            }
            int sender = find_key(&a->wallet.params, c.sender);
            if (sender < 0 || (uint32_t)sender == a->wallet.my_idx) {
                act_reply_err(a, RT_PERMISSION_DENIED, 0, "sender is not a device of this wallet");
                break;
            }
            if (a->wallet.retired) {
                act_reply_err(a, RT_FAILED_PRECONDITION, 0, "wallet retired");
                break;
            }
            if (c.kind == CG_CMD_SIGN_ROUND1)
                cg_sign_round1(a, &c, (uint32_t)sender);
            else
                cg_sign_round2(a, &c, (uint32_t)sender);
            break;
        }
        case CG_CMD_GET_WALLET:
            get_wallet(a, &c);
            break;
        case CG_CMD_GET_RECOVERY:
            get_recovery(a, &c);
            break;
        case CG_CMD_RESTORE:
            restore(a, &c);
            break;
        case CG_CMD_RETIRE:
            retire(a);
            break;
        case CG_CMD_FAULT:
            st = fault(a, c.u.fault.kind);
            break;
        default:
            act_reply_err(a, RT_UNIMPLEMENTED, 0, "unknown command");
            break;
        }
    }
    if (st == RT_OK && !a->answered) act_reply_err(a, RT_INTERNAL, 0, "command left unanswered");
    a->host = 0;
    a->hctx = 0;
    return st;
}

rt_status cg_actor_tick(cg_actor *a, const cg_host *h, void *hctx, uint64_t now_ms)
{
    enter(a, h, hctx, now_ms);
    a->answered = 1; /* no reply slot */
    expire(a, now_ms);
    a->host = 0;
    a->hctx = 0;
    return RT_OK;
}

/* ----- snapshot ----------------------------------------------------------------
 *
 * Record (version 1), all integers big-endian:
 *   "CGW" || u8 version || u8 flags (bit 0: wallet present, bit 1: retired,
 *   only with a wallet; records written before retirement existed have
 *   bit 1 clear, so they read as they always did)
 *   wallet: u8 n || u8 t || u8 my_idx || hostpubkeys[n][33] || secshare[32]
 *           || thresh_pubkey[33] || pubshares[n][33] || u32 rec_len || recovery
 * Only the DKG output and recovery data: sessions and nonces never enter it.
 * The store authenticates and encrypts it; restore still checks every field
 * so a damaged record fails cleanly instead of yielding a wrong key.
 */

#define SNAP_VERSION 1
#define SNAP_HDR 5
#define SNAP_MAX                                                                                   \
    (SNAP_HDR + 3 + 33 * CG_DKG_MAX_N + 32 + 33 + 33 * CG_DKG_MAX_N + 4 + CG_DKG_RECOVERY_MAX)

rt_status cg_actor_snapshot(cg_actor *a, const cg_host *h, void *hctx)
{
    enter(a, h, hctx, a->now);
    if (a->fault_snapshot) {
        a->fault_snapshot = 0;
        return RT_INTERNAL;
    }
#if defined(__wasm__)
    static uint8_t buf[SNAP_MAX];
#else
    uint8_t *buf = malloc(SNAP_MAX);
    if (!buf) return RT_RESOURCE_EXHAUSTED;
#endif
    size_t o = 0;
    buf[o++] = 'C';
    buf[o++] = 'G';
    buf[o++] = 'W';
    buf[o++] = SNAP_VERSION;
    buf[o++] = (uint8_t)(a->has_wallet ? 1 | (a->wallet.retired ? 2 : 0) : 0);
    if (a->has_wallet) {
        cg_wallet *w = &a->wallet;
        uint32_t n = w->params.n;
        buf[o++] = (uint8_t)n;
        buf[o++] = (uint8_t)w->params.t;
        buf[o++] = (uint8_t)w->my_idx;
        cg_memcpy(buf + o, w->params.hostpubkeys, 33 * (size_t)n);
        o += 33 * (size_t)n;
        cg_memcpy(buf + o, w->out.secshare, 32);
        o += 32;
        cg_memcpy(buf + o, w->out.threshold_pubkey, 33);
        o += 33;
        cg_memcpy(buf + o, w->out.pubshares, 33 * (size_t)n);
        o += 33 * (size_t)n;
        put_u32(buf + o, w->recovery_len);
        o += 4;
        cg_memcpy(buf + o, w->recovery, w->recovery_len);
        o += w->recovery_len;
    }
    snapshot_out(a, buf, o);
    cx_wipe(buf, o);
#if !defined(__wasm__)
    free(buf);
#endif
    a->host = 0;
    a->hctx = 0;
    return RT_OK;
}

/* Checks a wallet record field by field into *w; 0 if anything is off. */
static int restore_wallet(cg_actor *a, cg_wallet *w, const uint8_t *p, size_t len)
{
    cg_dkg_error err;
    uint8_t pt[CX_POINT_LEN], pt2[CX_POINT_LEN];

    if (len < 3) return 0;
    uint32_t n = p[0], t = p[1], me = p[2];
    if (n < 1 || n > CG_DKG_MAX_N || t < 1 || t > n || me >= n) return 0;
    size_t need = 3 + 33 * (size_t)n + 32 + 33 + 33 * (size_t)n + 4;
    if (len < need) return 0;
    uint32_t rec_len = get_u32(p + need - 4);
    if (rec_len != CG_DKG_RECOVERY_LEN(t, n) || len != need + rec_len) return 0;
    size_t o = 3;
    w->params.n = n;
    w->params.t = t;
    cg_memcpy(w->params.hostpubkeys, p + o, 33 * (size_t)n);
    o += 33 * (size_t)n;
    if (cg_dkg_params_validate(&w->params, &err) != RT_OK) return 0;
    if (cg_memcmp(w->params.hostpubkeys[me], a->hostpubkey, 33))
        return 0; /* another service's record */
    w->my_idx = me;
    w->out.n = n;
    w->out.has_secshare = 1;
    cg_memcpy(w->out.secshare, p + o, 32);
    o += 32;
    cg_memcpy(w->out.threshold_pubkey, p + o, 33);
    o += 33;
    cg_memcpy(w->out.pubshares, p + o, 33 * (size_t)n);
    o += 33 * (size_t)n + 4;
    cg_memcpy(w->recovery, p + o, rec_len);
    w->recovery_len = rec_len;

    if (!cx_scalar_check(w->out.secshare) || cx_scalar_is_zero(w->out.secshare)) return 0;
    if (!cx_point_parse(pt, w->out.threshold_pubkey, 0)) return 0;
    for (uint32_t i = 0; i < n; i++)
        if (!cx_point_parse(pt, w->out.pubshares[i], 0)) return 0;
    /* The share must be the one behind our public share. */
    if (!cx_point_parse(pt, w->out.pubshares[me], 0) || !cx_point_mul_base(pt2, w->out.secshare) ||
        !cx_point_eq(pt, pt2))
        return 0;
    /* Recovery data: t || sum_coms[t] || hostpubkeys[n] || ...: same params,
     * and the threshold key is sum_coms[0] with ChillDKG's unspendable
     * Taproot commitment added (C + TapTweak(x(C))*G). */
    if (get_u32(w->recovery) != t ||
        cg_memcmp(w->recovery + 4 + 33 * (size_t)t, w->params.hostpubkeys, 33 * (size_t)n))
        return 0;
    uint8_t x[32], tw[32], ser[33];
    int even;
    if (!cx_point_parse(pt, w->recovery + 4, 0) || !cx_point_xonly(x, &even, pt)) return 0;
    cx_tagged_hash(tw, "TapTweak", 8, x, 32);
    if (!cx_scalar_check(tw) || !cx_point_mul_base(pt2, tw) || !cx_point_add(pt, pt, pt2) ||
        !cx_point_ser(ser, pt) || cg_memcmp(ser, w->out.threshold_pubkey, 33))
        return 0;
    return 1;
}

rt_status cg_actor_restore(cg_actor *a, const uint8_t *rec, size_t len)
{
    if (!a->inited || !a->has_hostkey || a->has_wallet) return RT_FAILED_PRECONDITION;
    if (len == 0) return RT_OK;
    if (!rec || len < SNAP_HDR || rec[0] != 'C' || rec[1] != 'G' || rec[2] != 'W' ||
        rec[3] != SNAP_VERSION || rec[4] > 3 || rec[4] == 2)
        return RT_DATA_LOSS;
    if (rec[4] == 0) return len == SNAP_HDR ? RT_OK : RT_DATA_LOSS;
    if (!restore_wallet(a, &a->wallet, rec + SNAP_HDR, len - SNAP_HDR)) {
        cx_wipe(&a->wallet, sizeof a->wallet);
        return RT_DATA_LOSS;
    }
    a->wallet.retired = (rec[4] & 2) ? 1 : 0;
    a->has_wallet = 1;
    return RT_OK;
}
