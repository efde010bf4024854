/*
 * dev.c — simulated devices: ChillDKG participants and BIP 445 signers
 * talking to the service over the wire contract of API.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "cx.h"
#include "dev.h"
#include "net.h"

const char *const dev_phase_names[DEV_PHASES] = {"dkg_round1", "dkg_round2", "sign_round1",
                                                 "sign_round2"};

double dev_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int dev_verify_bip340(const uint8_t sig[64], const uint8_t *msg, size_t len,
                      const uint8_t xonly[32])
{
    static secp256k1_context *ctx;
    if (!ctx) ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    secp256k1_xonly_pubkey pk;
    if (!secp256k1_xonly_pubkey_parse(ctx, &pk, xonly)) return 0;
    return secp256k1_schnorrsig_verify(ctx, sig, msg, len, &pk);
}

int dev_keygen(uint8_t sk[32], uint8_t pk[33])
{
    for (int i = 0; i < 16; i++) {
        cx_random(sk, 32);
        if (cx_pubkey_from_seckey(pk, sk)) return 1;
    }
    return 0;
}

void dev_wallet_init(dev_wallet *w, uint32_t n, uint32_t t, uint32_t svc, const uint8_t svc_pk[33])
{
    w->n = n;
    w->t = t;
    w->svc = svc;
    memcpy(w->hostpk[svc], svc_pk, 33);
    w->is_dev[svc] = 0;
    w->ready = 0;
}

static json_t *jhex(const uint8_t *b, size_t len)
{
    char *s = malloc(2 * len + 1);
    if (!s) return NULL;
    net_hex_encode(s, b, len);
    json_t *j = json_stringn(s, 2 * len);
    free(s);
    return j;
}

/* Decodes a hex field; len 0 = variable (*out_len set, up to cap). */
static int get_hex(json_t *o, const char *k, uint8_t *out, size_t len, size_t cap, size_t *out_len)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v)) return 0;
    size_t sl = json_string_length(v);
    if (len) return net_hex_decode(out, len, json_string_value(v), sl);
    if (sl % 2 || sl / 2 > cap) return 0;
    *out_len = sl / 2;
    return net_hex_decode(out, sl / 2, json_string_value(v), sl);
}

static void fail_as(dev_user *u, long code, const char *name, const char *fmt, const char *detail)
{
    if (u->failed) return;
    u->failed = 1;
    u->fail_code = code;
    snprintf(u->fail_code_name, sizeof u->fail_code_name, "%s", name);
    snprintf(u->fail_msg, sizeof u->fail_msg, fmt, detail ? detail : "");
}

static void fail(dev_user *u, long code, const char *fmt, const char *detail)
{
    fail_as(u, code, "LOCAL", fmt, detail);
}

static void fail_http(dev_user *u, long code, json_t *resp, const char *err)
{
    if (u->failed) return;
    char m[200];
    const char *name;
    if (err || !code) {
        name = "TRANSPORT";
        snprintf(m, sizeof m, "transport: %s", err ? err : "no response");
    } else {
        json_t *e = json_object_get(resp, "error");
        name = json_string_value(json_object_get(e, "code")) ?: "NO_CODE";
        snprintf(m, sizeof m, "HTTP %ld %s: %s", code, name,
                 json_string_value(json_object_get(e, "message")) ?: "(no message)");
    }
    fail_as(u, code, name, "%s", m);
}

static void phase_done(dev_user *u)
{
    if (u->on_phase && !u->failed) u->on_phase(u, u->phase, dev_now_ms() - u->phase_t0);
    u->phase_t0 = dev_now_ms();
}

/* ---- DKG ------------------------------------------------------------------- */

typedef struct dkg_dev {
    cg_dkg_pstate1 st1;
    cg_dkg_pstate2 st2;
} dkg_dev;

typedef struct dkg_state {
    cg_dkg_params params;
    dkg_dev d[DEV_MAX_N];
    uint8_t cmsg1[CG_DKG_CMSG1_MAX];
    size_t cmsg1_len;
    uint8_t cmsg2[CG_DKG_CMSG2_MAX];
    size_t cmsg2_len;
    uint8_t thresh[33];
} dkg_state;

typedef struct dev_req {
    dev_user *u;
    uint32_t i;
} dev_req;

static void dkg_finish(dev_user *u)
{
    dkg_state *s = u->st;
    int ok = !u->failed;
    if (ok) {
        for (uint32_t i = 0; i < u->w.n && ok; i++) {
            if (!u->w.is_dev[i]) continue;
            cg_dkg_output out;
            static uint8_t rec[CG_DKG_RECOVERY_MAX];
            size_t rl;
            cg_dkg_error e;
            if (cg_dkg_participant_finalize(&out, rec, sizeof rec, &rl, &s->d[i].st2, s->cmsg2,
                                            s->cmsg2_len, &e) != RT_OK) {
                fail(u, 0, "DKG finalize failed: %s", e.msg);
                ok = 0;
                break;
            }
            if (memcmp(out.threshold_pubkey, s->thresh, 33)) {
                fail(u, 0, "%sservice reported a different threshold key", "");
                ok = 0;
            }
            if (u->recovery && rl <= u->recovery_cap) {
                memcpy(u->recovery, rec, rl);
                u->recovery_len = rl;
            }
            memcpy(u->w.secshare[i], out.secshare, 32);
            memcpy(u->w.thresh_pk, out.threshold_pubkey, 33);
            memcpy(u->w.pubshares, out.pubshares, sizeof out.pubshares[0] * u->w.n);
            cg_dkg_wipe(&out, sizeof out);
        }
    }
    cg_dkg_wipe(s, sizeof *s);
    free(s);
    u->st = NULL;
    u->w.ready = ok;
    u->done(u, ok, u->fail_code, u->fail_msg);
}

static void on_dkg2(void *arg, long code, json_t *resp, const char *err)
{
    dev_req *r = arg;
    dev_user *u = r->u;
    dkg_state *s = u->st;
    free(r);
    if (code != 200) {
        fail_http(u, code, resp, err);
    } else if (!get_hex(resp, "cmsg2", s->cmsg2, 0, sizeof s->cmsg2, &s->cmsg2_len) ||
               !get_hex(resp, "thresh_pubkey", s->thresh, 33, 0, NULL)) {
        fail_as(u, code, "BAD_REPLY", "%smalformed DKG round 2 reply", "");
    }
    if (--u->pending) return;
    phase_done(u);
    dkg_finish(u);
}

static void on_dkg1(void *arg, long code, json_t *resp, const char *err)
{
    dev_req *r = arg;
    dev_user *u = r->u;
    dkg_state *s = u->st;
    free(r);
    uint8_t wid[32];
    if (code != 200) {
        fail_http(u, code, resp, err);
    } else if (!get_hex(resp, "cmsg1", s->cmsg1, 0, sizeof s->cmsg1, &s->cmsg1_len) ||
               !get_hex(resp, "wallet_id", wid, 32, 0, NULL)) {
        fail_as(u, code, "BAD_REPLY", "%smalformed DKG round 1 reply", "");
    } else {
        memcpy(u->w.wallet_id, wid, 32);
    }
    if (--u->pending) return;
    if (u->failed) {
        dkg_finish(u);
        return;
    }
    phase_done(u);
    u->phase = DEV_DKG2;
    /* Every device first computes its round 2 message, then all post: the
     * service releases round 2 only when every device has posted. */
    json_t *bodies[DEV_MAX_N] = {0};
    for (uint32_t i = 0; i < u->w.n; i++) {
        if (!u->w.is_dev[i]) continue;
        uint8_t pmsg2[64], aux[32];
        cg_dkg_error e;
        cx_random(aux, 32);
        if (cg_dkg_participant_step2(&s->d[i].st2, pmsg2, u->w.seckey[i], 32, &s->d[i].st1,
                                     s->cmsg1, s->cmsg1_len, aux, 32, NULL, &e) != RT_OK) {
            fail(u, 0, "DKG step 2 failed: %s", e.msg);
            break;
        }
        char wid[65];
        net_hex_encode(wid, u->w.wallet_id, 32);
        bodies[i] = json_pack("{s:s,s:o}", "wallet_id", wid, "pmsg2", jhex(pmsg2, 64));
    }
    if (u->failed) {
        for (uint32_t i = 0; i < u->w.n; i++)
            json_decref(bodies[i]);
        dkg_finish(u);
        return;
    }
    for (uint32_t i = 0; i < u->w.n; i++) {
        if (!bodies[i]) continue;
        dev_req *q = malloc(sizeof *q);
        q->u = u;
        q->i = i;
        u->pending++;
        http_request(u->hc, "POST", "/v1/dkg/round2", bodies[i], u->w.seckey[i], on_dkg2, q);
    }
}

void dev_dkg(dev_user *u)
{
    u->failed = 0;
    u->fail_code = 0;
    u->fail_msg[0] = 0;
    u->fail_code_name[0] = 0;
    u->phase = DEV_DKG1;
    u->phase_t0 = dev_now_ms();
    dkg_state *s = calloc(1, sizeof *s);
    if (!s) {
        fail(u, 0, "%sout of memory", "");
        u->done(u, 0, 0, u->fail_msg);
        return;
    }
    u->st = s;
    u->recovery_len = 0;
    s->params.n = u->w.n;
    s->params.t = u->w.t;
    json_t *hpk = json_array();
    for (uint32_t i = 0; i < u->w.n; i++) {
        memcpy(s->params.hostpubkeys[i], u->w.hostpk[i], 33);
        json_array_append_new(hpk, jhex(u->w.hostpk[i], 33));
    }
    json_t *bodies[DEV_MAX_N] = {0};
    for (uint32_t i = 0; i < u->w.n; i++) {
        if (!u->w.is_dev[i]) continue;
        static uint8_t pmsg1[CG_DKG_PMSG1_MAX];
        size_t len;
        uint8_t rnd[32];
        cg_dkg_error e;
        cx_random(rnd, 32);
        if (cg_dkg_participant_step1(&s->d[i].st1, pmsg1, sizeof pmsg1, &len, u->w.seckey[i], 32,
                                     &s->params, rnd, 32, &e) != RT_OK) {
            fail(u, 0, "DKG step 1 failed: %s", e.msg);
            break;
        }
        bodies[i] = json_pack("{s:{s:O,s:i},s:o}", "params", "hostpubkeys", hpk, "t", (int)u->w.t,
                              "pmsg1", jhex(pmsg1, len));
        /* Only when there is one: a wallet created without enrollment
         * control sends exactly the body it always did. */
        if (bodies[i] && u->w.token[0])
            json_object_set_new(bodies[i], "token", json_string(u->w.token));
    }
    json_decref(hpk);
    if (u->failed) {
        for (uint32_t i = 0; i < u->w.n; i++)
            json_decref(bodies[i]);
        dkg_finish(u);
        return;
    }
    for (uint32_t i = 0; i < u->w.n; i++) {
        if (!bodies[i]) continue;
        dev_req *q = malloc(sizeof *q);
        q->u = u;
        q->i = i;
        u->pending++;
        http_request(u->hc, "POST", "/v1/dkg/round1", bodies[i], u->w.seckey[i], on_dkg1, q);
    }
}

/* ---- signing --------------------------------------------------------------- */

typedef struct sign_state {
    uint8_t sid[32];
    uint32_t ids[DEV_MAX_N];
    size_t count;
    cg_frost_tweak_ctx tc;
    cg_frost_secnonce secnonce[DEV_MAX_N];
    uint8_t aggnonce[66];
    int have_agg;
    char path1[160], path2[160];
} sign_state;

static void sign_finish(dev_user *u)
{
    sign_state *s = u->st;
    for (size_t k = 0; k < DEV_MAX_N; k++)
        cg_frost_secnonce_wipe(&s->secnonce[k]);
    free(s);
    u->st = NULL;
    if (!u->failed && !dev_verify_bip340(u->sig, u->msg, u->msg_len, u->verify_xonly))
        fail_as(u, 0, "BAD_SIGNATURE", "%sthe service's signature does not verify locally", "");
    u->done(u, !u->failed, u->fail_code, u->fail_msg);
}

static void on_sign2(void *arg, long code, json_t *resp, const char *err)
{
    dev_req *r = arg;
    dev_user *u = r->u;
    free(r);
    uint8_t sig[64];
    if (code != 200)
        fail_http(u, code, resp, err);
    else if (!get_hex(resp, "signature", sig, 64, 0, NULL))
        fail_as(u, code, "BAD_REPLY", "%smalformed signing round 2 reply", "");
    else
        memcpy(u->sig, sig, 64);
    if (--u->pending) return;
    phase_done(u);
    sign_finish(u);
}

static void on_sign1(void *arg, long code, json_t *resp, const char *err)
{
    dev_req *r = arg;
    dev_user *u = r->u;
    sign_state *s = u->st;
    free(r);
    uint8_t agg[66];
    if (code != 200)
        fail_http(u, code, resp, err);
    else if (!get_hex(resp, "aggnonce", agg, 66, 0, NULL))
        fail_as(u, code, "BAD_REPLY", "%smalformed signing round 1 reply", "");
    else if (s->have_agg && memcmp(agg, s->aggnonce, 66))
        fail_as(u, code, "BAD_REPLY", "%sservice sent different aggnonces to the devices", "");
    else {
        memcpy(s->aggnonce, agg, 66);
        s->have_agg = 1;
    }
    if (--u->pending) return;
    if (u->failed) {
        sign_finish(u);
        return;
    }
    phase_done(u);
    u->phase = DEV_SIGN2;
    cg_frost_signers signers;
    cg_frost_session sess;
    cg_frost_error e;
    uint8_t pubshares[DEV_MAX_N][33];
    for (size_t k = 0; k < s->count; k++)
        memcpy(pubshares[k], u->w.pubshares[s->ids[k]], 33);
    if (cg_frost_signers_init(&signers, u->w.n, u->w.t, s->ids, (const uint8_t(*)[33])pubshares,
                              s->count, u->w.thresh_pk, &e) != RT_OK ||
        cg_frost_session_init(&sess, &signers, &s->tc, s->aggnonce, u->msg, u->msg_len, &e) !=
            RT_OK) {
        fail(u, 0, "signing session setup failed: %s", e.msg);
        sign_finish(u);
        return;
    }
    json_t *bodies[DEV_MAX_N] = {0};
    char sid[65];
    net_hex_encode(sid, s->sid, 32);
    for (size_t k = 0; k < s->count; k++) {
        uint32_t i = s->ids[k];
        if (!u->w.is_dev[i]) continue;
        uint8_t psig[32];
        if (cg_frost_sign(psig, &s->secnonce[i], u->w.secshare[i], i, &sess, &e) != RT_OK) {
            fail(u, 0, "partial signing failed: %s", e.msg);
            break;
        }
        bodies[i] = json_pack("{s:s,s:o}", "session_id", sid, "psig", jhex(psig, 32));
    }
    if (u->failed) {
        for (uint32_t i = 0; i < DEV_MAX_N; i++)
            json_decref(bodies[i]);
        sign_finish(u);
        return;
    }
    for (uint32_t i = 0; i < DEV_MAX_N; i++) {
        if (!bodies[i]) continue;
        dev_req *q = malloc(sizeof *q);
        q->u = u;
        q->i = i;
        u->pending++;
        http_request(u->hc, "POST", s->path2, bodies[i], u->w.seckey[i], on_sign2, q);
    }
}

void dev_user_release(dev_user *u)
{
    free(u->signers);
    u->signers = NULL;
    u->signers_count = 0;
}

void dev_sign(dev_user *u, const uint32_t *signers, size_t count, const uint8_t *msg,
              size_t msg_len, int taproot, const uint8_t *merkle_root)
{
    u->failed = 0;
    u->fail_code = 0;
    u->fail_msg[0] = 0;
    u->fail_code_name[0] = 0;
    u->phase = DEV_SIGN1;
    u->phase_t0 = dev_now_ms();
    sign_state *s = calloc(1, sizeof *s);
    if (!s || msg_len > sizeof u->msg || count > DEV_MAX_N) {
        free(s);
        fail(u, 0, "%sbad signing request (message longer than 256 bytes?)", "");
        u->done(u, 0, 0, u->fail_msg);
        return;
    }
    u->st = s;
    memcpy(u->msg, msg, msg_len);
    u->msg_len = msg_len;
    s->count = count;
    memcpy(s->ids, signers, count * sizeof *signers);
    if (u->fixed_session_id)
        memcpy(s->sid, u->session_id, 32);
    else
        cx_random(s->sid, 32);
    char wid[65], sid[65];
    net_hex_encode(wid, u->w.wallet_id, 32);
    net_hex_encode(sid, s->sid, 32);
    snprintf(s->path1, sizeof s->path1, "/v1/wallets/%s/sign/round1", wid);
    snprintf(s->path2, sizeof s->path2, "/v1/wallets/%s/sign/round2", wid);
    cg_frost_error e;
    json_t *tweaks = json_array();
    if (cg_frost_tweak_init(&s->tc, u->w.thresh_pk, &e) != RT_OK) {
        json_decref(tweaks);
        fail(u, 0, "bad threshold key: %s", e.msg);
        sign_finish(u);
        return;
    }
    if (taproot) {
        uint8_t tw[32];
        if (cg_frost_taproot_tweak(tw, &s->tc, merkle_root) != RT_OK ||
            cg_frost_tweak_apply(&s->tc, tw, 32, 1, &e) != RT_OK) {
            json_decref(tweaks);
            fail(u, 0, "%sTaproot tweak failed", "");
            sign_finish(u);
            return;
        }
        json_array_append_new(tweaks, json_pack("{s:o,s:b}", "tweak", jhex(tw, 32), "xonly", 1));
    }
    cg_frost_tweak_xonly(u->verify_xonly, &s->tc);
    json_t *ids = json_array();
    for (size_t k = 0; k < count; k++)
        json_array_append_new(ids, json_integer(signers[k]));
    json_t *bodies[DEV_MAX_N] = {0};
    for (size_t k = 0; k < count; k++) {
        uint32_t i = signers[k];
        if (i >= u->w.n || !u->w.is_dev[i]) continue;
        uint8_t pubnonce[66];
        if (cg_frost_nonce_gen(&s->secnonce[i], pubnonce, u->w.secshare[i], u->w.pubshares[i], NULL,
                               msg, msg_len, NULL, 0, &e) != RT_OK) {
            fail(u, 0, "nonce generation failed: %s", e.msg);
            break;
        }
        bodies[i] = json_pack("{s:s,s:O,s:o,s:O,s:o}", "session_id", sid, "signer_ids", ids, "msg",
                              jhex(msg, msg_len), "tweaks", tweaks, "pubnonce", jhex(pubnonce, 66));
    }
    json_decref(ids);
    json_decref(tweaks);
    if (u->failed) {
        for (uint32_t i = 0; i < DEV_MAX_N; i++)
            json_decref(bodies[i]);
        sign_finish(u);
        return;
    }
    for (uint32_t i = 0; i < DEV_MAX_N; i++) {
        if (!bodies[i]) continue;
        dev_req *q = malloc(sizeof *q);
        q->u = u;
        q->i = i;
        u->pending++;
        http_request(u->hc, "POST", s->path1, bodies[i], u->w.seckey[i], on_sign1, q);
    }
}
