/*
 * cg_sign.c — BIP 445 signing sessions: the service is the coordinator and
 * one signer.
 *
 * Round 1 collects every device signer's pubnonce (all with the same session
 * parameters); the service's own nonce comes from fresh randomness when the
 * session is created. When the last device posts, the service aggregates
 * the nonces, derives the session values and signs at once, which consumes
 * and wipes its secret nonce: it never outlives round 1, so a fault or
 * eviction between the rounds cannot leave it behind and nothing can make
 * the service sign twice with it. Round 2 collects the devices' partial
 * signatures, verifies each one (identifiable abort: every bad signer is
 * blamed), aggregates, and checks the final BIP340 signature before anyone
 * sees it.
 *
 * Finished and failed sessions stay until their deadline so a retry gets
 * the same answer; they give way when a new session needs the room.
 */
#include "cg_actor.h"

static cg_sign_sess *find(cg_actor *a, const uint8_t *sid)
{
    for (int i = 0; i < CG_MAX_SIGN_SESSIONS; i++)
        if (a->sign[i] && !cg_memcmp(a->sign[i]->sid, sid, CG_SESSION_ID_LEN)) return a->sign[i];
    return 0;
}

static int pos_of(const cg_sign_sess *s, uint32_t id)
{
    for (uint32_t i = 0; i < s->count; i++)
        if (s->ids[i] == id) return (int)i;
    return -1;
}

static void drop(cg_actor *a, int slot)
{
    cg_sign_sess *s = a->sign[slot];
    if (s->has_secnonce) cg_frost_secnonce_wipe(&s->secnonce);
    if (s->msg) {
        cx_wipe(s->msg, s->msg_len);
        cg_msg_free(s->msg, s->msg_len);
    }
    cg_sign_sess_free(s);
    a->sign[slot] = 0;
}

void cg_sign_expire(cg_actor *a, uint64_t now, int all)
{
    for (int i = 0; i < CG_MAX_SIGN_SESSIONS; i++) {
        cg_sign_sess *s = a->sign[i];
        if (!s || (!all && now < s->deadline)) continue;
        if (!all) {
            cg_complete_all_err(a, &s->q1, RT_DEADLINE_EXCEEDED, 0,
                                "signing rendezvous deadline passed");
            cg_complete_all_err(a, &s->q2, RT_DEADLINE_EXCEEDED, 0,
                                "signing rendezvous deadline passed");
        }
        drop(a, i);
    }
}

void cg_sign_abort_all(cg_actor *a, rt_status st, const char *msg)
{
    for (int i = 0; i < CG_MAX_SIGN_SESSIONS; i++) {
        cg_sign_sess *s = a->sign[i];
        if (!s) continue;
        cg_complete_all_err(a, &s->q1, st, 0, msg);
        cg_complete_all_err(a, &s->q2, st, 0, msg);
        drop(a, i);
    }
}

/* A free slot, evicting the finished (or failed) session closest to its
 * deadline if need be; -1 when every slot holds a live session. */
static int free_slot(cg_actor *a)
{
    int best = -1;
    for (int i = 0; i < CG_MAX_SIGN_SESSIONS; i++) {
        if (!a->sign[i]) return i;
        int ph = a->sign[i]->phase;
        if ((ph == SIGN_DONE || ph == SIGN_FAILED) &&
            (best < 0 || a->sign[i]->deadline < a->sign[best]->deadline))
            best = i;
    }
    if (best >= 0) drop(a, best);
    return best;
}

/* What every device must agree on: session id, signer list, message and
 * tweaks. Hashed (message first) so a session keeps 32 bytes, not 64 KiB,
 * for the comparison. */
static void digest(uint8_t out[32], const cg_cmd *c)
{
    uint8_t buf[32 + 1 + CG_MAX_PARTICIPANTS + 4 + 32 + 1 + CG_MAX_TWEAKS * 33];
    size_t o = 0;
    const typeof(c->u.sign1) *s = &c->u.sign1;
    static const char tag[] = "cosignerd/sign-session/v1";

    cg_memcpy(buf + o, s->session_id, 32);
    o += 32;
    buf[o++] = (uint8_t)s->n_signers;
    cg_memcpy(buf + o, s->signer_ids, s->n_signers);
    o += s->n_signers;
    buf[o++] = (uint8_t)(s->msg_len >> 24);
    buf[o++] = (uint8_t)(s->msg_len >> 16);
    buf[o++] = (uint8_t)(s->msg_len >> 8);
    buf[o++] = (uint8_t)s->msg_len;
    cx_sha256(buf + o, s->msg, s->msg_len);
    o += 32;
    buf[o++] = (uint8_t)s->n_tweaks;
    for (uint32_t i = 0; i < s->n_tweaks; i++) {
        cg_memcpy(buf + o, s->tweaks[i].tweak, 32);
        o += 32;
        buf[o++] = (uint8_t)s->tweaks[i].xonly;
    }
    cx_tagged_hash(out, tag, sizeof tag - 1, buf, o);
}

/* Makes a->signers the validated signer set ids[count] of the wallet. */
static rt_status ensure_signers(cg_actor *a, const uint32_t *ids, uint32_t count, const char **why)
{
    const cg_wallet *w = &a->wallet;
    uint8_t ps[CG_MAX_PARTICIPANTS][33];
    cg_frost_error err = {0};

    if (a->signers_valid && a->signers.count == count &&
        !cg_memcmp(a->signers.ids, ids, count * sizeof ids[0]))
        return RT_OK;
    for (uint32_t i = 0; i < count; i++) {
        if (ids[i] >= w->params.n) {
            *why = "signer id is not a participant";
            return RT_INVALID_ARGUMENT;
        }
        cg_memcpy(ps[i], w->out.pubshares[ids[i]], 33);
    }
    a->signers_valid = 0;
    rt_status st =
        cg_frost_signers_init(&a->signers, w->params.n, w->params.t, ids, (const uint8_t(*)[33])ps,
                              count, w->out.threshold_pubkey, &err);
    if (st != RT_OK) {
        *why = err.msg ? err.msg : "invalid signer set";
        return RT_INVALID_ARGUMENT;
    }
    a->signers_valid = 1;
    return RT_OK;
}

static cg_sign_sess *create(cg_actor *a, const cg_cmd *c, const uint8_t dig[32])
{
    const cg_wallet *w = &a->wallet;
    const typeof(c->u.sign1) *p = &c->u.sign1;
    cg_frost_error err = {0};
    const char *why = 0;
    int me = -1;

    for (uint32_t i = 0; i < p->n_signers; i++)
        if (p->signer_ids[i] == w->my_idx) me = (int)i;
    if (me < 0) {
        act_reply_err(a, RT_INVALID_ARGUMENT, 0, "the service must be among the signers");
        return 0;
    }
    uint32_t ids[CG_MAX_PARTICIPANTS];
    for (uint32_t i = 0; i < p->n_signers; i++)
        ids[i] = p->signer_ids[i];
    if (ensure_signers(a, ids, p->n_signers, &why) != RT_OK) {
        act_reply_err(a, RT_INVALID_ARGUMENT, 0, why);
        return 0;
    }
    int slot = free_slot(a);
    if (slot < 0) {
        act_reply_err(a, RT_RESOURCE_EXHAUSTED, 0, "too many signing sessions in flight");
        return 0;
    }
    cg_sign_sess *s = cg_sign_sess_alloc();
    if (!s) {
        act_reply_err(a, RT_RESOURCE_EXHAUSTED, 0, "no room for a signing session");
        return 0;
    }
    if (cg_frost_tweak_init(&s->tweak, w->out.threshold_pubkey, &err) != RT_OK) goto bad;
    for (uint32_t i = 0; i < p->n_tweaks; i++)
        if (cg_frost_tweak_apply(&s->tweak, p->tweaks[i].tweak, 32, p->tweaks[i].xonly, &err) !=
            RT_OK)
            goto bad;
    s->msg = cg_msg_alloc(p->msg_len);
    if (!s->msg) {
        cg_sign_sess_free(s);
        act_reply_err(a, RT_RESOURCE_EXHAUSTED, 0, "no room for the message");
        return 0;
    }
    s->msg_len = p->msg_len;
    if (p->msg_len) cg_memcpy(s->msg, p->msg, p->msg_len);
    /* Fresh randomness is the nonce; the rest is defence in depth. */
    if (cg_frost_nonce_gen(&s->secnonce, s->pubnonce[me], w->out.secshare,
                           w->out.pubshares[w->my_idx], w->out.threshold_pubkey + 1, s->msg,
                           s->msg_len, p->session_id, CG_SESSION_ID_LEN, &err) != RT_OK) {
        cg_msg_free(s->msg, s->msg_len);
        cg_sign_sess_free(s);
        act_reply_err(a, RT_INTERNAL, 0, "nonce generation failed");
        return 0;
    }
    s->has_secnonce = 1;
    s->phase = SIGN_R1;
    s->deadline = a->now + a->rendezvous_ms;
    cg_memcpy(s->sid, p->session_id, CG_SESSION_ID_LEN);
    cg_memcpy(s->digest, dig, 32);
    s->count = p->n_signers;
    for (uint32_t i = 0; i < p->n_signers; i++) {
        s->ids[i] = p->signer_ids[i];
        if (s->ids[i] != w->my_idx) s->devices |= (uint32_t)bit(s->ids[i]);
    }
    s->my_pos = (uint32_t)me;
    s->have1 = (uint32_t)bit(w->my_idx);
    a->sign[slot] = s;
    return s;
bad:
    cg_sign_sess_free(s);
    act_reply_err(a, RT_INVALID_ARGUMENT, 0, err.msg ? err.msg : "invalid tweak");
    return 0;
}

static void fail(cg_actor *a, cg_sign_sess *s, rt_status st, uint64_t blame, const char *msg)
{
    if (s->has_secnonce) {
        cg_frost_secnonce_wipe(&s->secnonce);
        s->has_secnonce = 0;
    }
    s->phase = SIGN_FAILED;
    s->fail_st = (int32_t)st;
    s->fail_blame = blame;
    cg_complete_all_err(a, &s->q1, st, blame, msg);
    cg_complete_all_err(a, &s->q2, st, blame, msg);
}

static void reply_failed(cg_actor *a, const cg_sign_sess *s)
{
    act_reply_err(a, (rt_status)s->fail_st, s->fail_blame,
                  s->fail_blame ? "signing session aborted: invalid contribution"
                                : "signing session aborted");
}

static size_t aggnonce_reply(cg_actor *a, const cg_sign_sess *s)
{
    size_t len = 0;
    cg_reply r = {.kind = CG_CMD_SIGN_ROUND1};
    r.u.sign1.aggnonce = s->aggnonce;
    cg_reply_encode(&r, a->out, sizeof a->out, &len);
    return len;
}

static size_t sig_reply(cg_actor *a, const cg_sign_sess *s)
{
    size_t len = 0;
    cg_reply r = {.kind = CG_CMD_SIGN_ROUND2};
    r.u.sign2.sig = s->sig;
    cg_reply_encode(&r, a->out, sizeof a->out, &len);
    return len;
}

static void round1_complete(cg_actor *a, cg_sign_sess *s)
{
    cg_frost_error err = {0};
    rt_status st;

    st = cg_frost_nonce_agg(s->aggnonce, (const uint8_t(*)[66])s->pubnonce, s->count, &err);
    if (st != RT_OK) {
        uint64_t b =
            err.signer >= 0 && (uint32_t)err.signer < s->count ? bit(s->ids[err.signer]) : 0;
        fail(a, s, RT_ABORTED, b, "invalid public nonce");
        return;
    }
    const char *why = 0;
    if (ensure_signers(a, s->ids, s->count, &why) != RT_OK) {
        fail(a, s, RT_INTERNAL, 0, why);
        return;
    }
    st = cg_frost_session_init(&s->fs, &a->signers, &s->tweak, s->aggnonce, s->msg, s->msg_len,
                               &err);
    if (st == RT_OK)
        st = cg_frost_sign(s->psig[s->my_pos], &s->secnonce, a->wallet.out.secshare,
                           a->wallet.my_idx, &s->fs, &err);
    /* cg_frost_sign zeroed the nonce whatever happened. */
    cg_frost_secnonce_wipe(&s->secnonce);
    s->has_secnonce = 0;
    if (st != RT_OK) {
        fail(a, s, RT_INTERNAL, 0, "the service could not sign");
        return;
    }
    s->have2 = (uint32_t)bit(a->wallet.my_idx);
    s->phase = SIGN_R2;
    s->deadline = a->now + a->rendezvous_ms;
    cg_complete_all(a, &s->q1, RT_OK, a->out, aggnonce_reply(a, s), 0);
}

void cg_sign_round1(cg_actor *a, const cg_cmd *c, uint32_t sender)
{
    const typeof(c->u.sign1) *p = &c->u.sign1;
    uint8_t dig[32];

    digest(dig, c);
    cg_sign_sess *s = find(a, p->session_id);
    if (s && cg_memcmp(s->digest, dig, 32)) {
        act_reply_err(a, RT_INVALID_ARGUMENT, 0, "conflicting parameters for this session_id");
        return;
    }
    int in_set = 0;
    for (uint32_t i = 0; i < p->n_signers; i++)
        in_set |= p->signer_ids[i] == sender;
    if (!in_set) {
        act_reply_err(a, RT_PERMISSION_DENIED, 0, "sender is not among the signers");
        return;
    }
    if (cg_frost_pubnonce_check(p->pubnonce) != RT_OK) {
        act_reply_err(a, RT_INVALID_ARGUMENT, bit(sender), "invalid public nonce");
        return;
    }
    if (!s && !(s = create(a, c, dig))) return;
    if (s->phase == SIGN_FAILED) {
        reply_failed(a, s);
        return;
    }
    int pos = pos_of(s, sender);
    uint32_t b = (uint32_t)bit(sender);
    if (s->have1 & b) {
        if (cg_memcmp(s->pubnonce[pos], p->pubnonce, CG_PUBNONCE_LEN)) {
            act_reply_err(a, RT_INVALID_ARGUMENT, 0, "conflicting pubnonce from this signer");
            return;
        }
        if (s->phase == SIGN_R1)
            cg_park(a, &s->q1, sender, s->deadline);
        else
            act_reply(a, RT_OK, a->out, aggnonce_reply(a, s), 0);
        return;
    }
    if (!cg_park(a, &s->q1, sender, s->deadline)) return;
    cg_memcpy(s->pubnonce[pos], p->pubnonce, CG_PUBNONCE_LEN);
    s->have1 |= b;
    if ((s->have1 & s->devices) == s->devices) round1_complete(a, s);
}

static void round2_complete(cg_actor *a, cg_sign_sess *s)
{
    cg_frost_error err = {0};
    uint64_t blame = 0;

    for (uint32_t i = 0; i < s->count; i++) {
        if (i == s->my_pos) continue;
        if (cg_frost_partial_sig_verify(&s->fs, s->psig[i], s->pubnonce[i], i, &err) != RT_OK)
            blame |= bit(s->ids[i]);
    }
    if (blame) {
        fail(a, s, RT_ABORTED, blame, "invalid partial signature");
        return;
    }
    if (cg_frost_partial_sig_agg(s->sig, &s->fs, (const uint8_t(*)[32])s->psig, s->count, &err) !=
            RT_OK ||
        cg_frost_verify(&s->fs, s->sig, s->msg, s->msg_len) != RT_OK) {
        /* Every partial signature verified, so this is our own fault. */
        fail(a, s, RT_INTERNAL, 0, "aggregate signature does not verify");
        return;
    }
    s->phase = SIGN_DONE;
    cx_wipe(s->msg, s->msg_len);
    cg_msg_free(s->msg, s->msg_len);
    s->msg = 0;
    cg_complete_all(a, &s->q2, RT_OK, a->out, sig_reply(a, s), 0);
}

void cg_sign_round2(cg_actor *a, const cg_cmd *c, uint32_t sender)
{
    cg_sign_sess *s = find(a, c->u.sign2.session_id);
    if (!s) {
        act_reply_err(a, RT_ABORTED, 0,
                      "no such signing session (expired, aborted or the actor restarted)");
        return;
    }
    int pos = pos_of(s, sender);
    if (pos < 0) {
        act_reply_err(a, RT_PERMISSION_DENIED, 0, "sender is not among the signers");
        return;
    }
    if (s->phase == SIGN_FAILED) {
        reply_failed(a, s);
        return;
    }
    if (s->phase == SIGN_R1) {
        act_reply_err(a, RT_FAILED_PRECONDITION, 0, "signing round 1 is not complete");
        return;
    }
    uint32_t b = (uint32_t)bit(sender);
    if (s->have2 & b) {
        if (cg_memcmp(s->psig[pos], c->u.sign2.psig, CG_PSIG_LEN)) {
            act_reply_err(a, RT_INVALID_ARGUMENT, 0,
                          "conflicting partial signature from this signer");
            return;
        }
        if (s->phase == SIGN_R2)
            cg_park(a, &s->q2, sender, s->deadline);
        else
            act_reply(a, RT_OK, a->out, sig_reply(a, s), 0);
        return;
    }
    if (!cg_park(a, &s->q2, sender, s->deadline)) return;
    cg_memcpy(s->psig[pos], c->u.sign2.psig, CG_PSIG_LEN);
    s->have2 |= b;
    if ((s->have2 & s->devices) == s->devices) round2_complete(a, s);
}
