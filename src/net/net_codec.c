/*
 * net_codec.c — JSON of the wire contract <-> the cosigner command codec.
 *
 * Every field is checked here (types, hex, exact lengths, counts) so the
 * client gets a precise 400 instead of a guest refusal; the guest still
 * validates everything again, as commands are untrusted input for it.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cg_cmd.h"
#include "cg_wallet_id.h"
#include "net_codec.h"

#define ERR(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, err_len, __VA_ARGS__);                                                       \
        return RT_INVALID_ARGUMENT;                                                                \
    } while (0)

/* Decodes a hex string field of exactly len bytes (len 0 = any length up to
 * max, written to *out malloc'd). */
static rt_status hex_field(json_t *obj, const char *name, uint8_t *fixed, size_t len, uint8_t **out,
                           size_t *out_len, size_t max, char *err, size_t err_len)
{
    json_t *v = json_object_get(obj, name);
    if (!v || !json_is_string(v)) ERR("field \"%s\" must be a hex string", name);
    const char *s = json_string_value(v);
    size_t sl = json_string_length(v);
    if (fixed) {
        if (sl != 2 * len)
            ERR("field \"%s\" must be %zu bytes (%zu hex digits)", name, len, 2 * len);
        if (!net_hex_decode(fixed, len, s, sl)) ERR("field \"%s\" is not valid hex", name);
        return RT_OK;
    }
    if (sl % 2) ERR("field \"%s\" has an odd number of hex digits", name);
    if (sl / 2 > max) ERR("field \"%s\" is longer than %zu bytes", name, max);
    uint8_t *b = malloc(sl / 2 + 1);
    if (!b) return RT_RESOURCE_EXHAUSTED;
    if (!net_hex_decode(b, sl / 2, s, sl)) {
        free(b);
        ERR("field \"%s\" is not valid hex", name);
    }
    *out = b;
    *out_len = sl / 2;
    return RT_OK;
}

void net_call_free(net_call *c)
{
    free(c->cmd);
    free(c->params);
    c->cmd = c->params = NULL;
}

rt_status net_params_parse(const uint8_t *meta, size_t len, net_params *p)
{
    if (len < 2) return RT_DATA_LOSS;
    p->n = meta[0];
    if (p->n < 1 || p->n > CG_MAX_PARTICIPANTS) return RT_DATA_LOSS;
    size_t plen = 2 + 33u * p->n;
    if (len != plen && (len != plen + NET_RETIRED_SUFFIX_LEN || meta[plen] != 'R'))
        return RT_DATA_LOSS;
    p->hostpubkeys = meta + 1;
    p->t = meta[1 + 33 * p->n];
    if (p->t < 1 || p->t > p->n) return RT_DATA_LOSS;
    return RT_OK;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int net_meta_retired(const uint8_t *meta, size_t len, net_retired *r)
{
    net_params p;
    if (!meta || net_params_parse(meta, len, &p) != RT_OK) return -1;
    size_t plen = 2 + 33u * p.n;
    if (len == plen) return 0;
    r->retired_at_ms = get_be64(meta + plen + 1);
    r->wipe_after_ms = get_be64(meta + plen + 9);
    return 1;
}

int net_params_index(const net_params *p, const uint8_t pk[33])
{
    for (uint32_t i = 0; i < p->n; i++)
        if (!memcmp(p->hostpubkeys + 33 * i, pk, 33)) return (int)i;
    return -1;
}

static rt_status encode(const cg_cmd *cmd, net_call *out, char *err, size_t err_len)
{
    size_t need = 0;
    rt_status st = cg_cmd_encode(cmd, NULL, 0, &need);
    if (st != RT_OK && st != RT_OUT_OF_RANGE) ERR("request breaks a protocol bound");
    out->cmd = malloc(need ? need : 1);
    if (!out->cmd) return RT_RESOURCE_EXHAUSTED;
    st = cg_cmd_encode(cmd, out->cmd, need, &out->cmd_len);
    if (st != RT_OK) ERR("request breaks a protocol bound");
    return RT_OK;
}

static rt_status wallet_from_hex(const char *hex, rt_key *key, char *err, size_t err_len)
{
    if (!hex || !net_hex_decode(key->b, 32, hex, strlen(hex)))
        ERR("wallet_id must be 32 bytes of hex");
    return RT_OK;
}

/*
 * Restore: authorization needs the params before anything else, and the
 * service may have lost the wallet's metadata with its record, so they come
 * from the recovery data itself: eq_input = t (u32) || sum_coms[t][33] ||
 * hostpubkeys[n][33] || pubnonces[n][33] || enc_secshares[n][32], then the
 * certificate (n * 64), so len = 4 + 33t + 162n fixes n. Trusting them for
 * authorization is safe: they must hash to the wallet id in the URL, and the
 * guest verifies the certificate (every participant's signature over
 * eq_input, the service's own included) before anything is kept.
 */
static rt_status restore_target(const char *url_wallet, json_t *body, net_call *out, char *err,
                                size_t err_len)
{
    rt_key url;
    rt_status st = wallet_from_hex(url_wallet, &url, err, err_len);
    if (st != RT_OK) return st;
    uint8_t *rec = NULL;
    size_t len = 0;
    if ((st = hex_field(body, "recovery", NULL, 0, &rec, &len, CG_MAX_RECOVERY_LEN, err, err_len)))
        return st;
    uint32_t t =
        len >= 4 ? (uint32_t)rec[0] << 24 | (uint32_t)rec[1] << 16 | (uint32_t)rec[2] << 8 | rec[3]
                 : 0;
    size_t n = 0;
    if (t >= 1 && t <= CG_MAX_PARTICIPANTS && len > 4 + 33u * t && (len - 4 - 33u * t) % 162 == 0)
        n = (len - 4 - 33u * t) / 162;
    if (n < t || n > CG_MAX_PARTICIPANTS) {
        free(rec);
        ERR("recovery data has no valid length for any threshold and participant count");
    }
    out->params_len = 2 + 33 * n;
    out->params = malloc(out->params_len);
    if (!out->params) {
        free(rec);
        return RT_RESOURCE_EXHAUSTED;
    }
    out->params[0] = (uint8_t)n;
    memcpy(out->params + 1, rec + 4 + 33u * t, 33 * n);
    out->params[1 + 33 * n] = (uint8_t)t;
    free(rec);
    uint64_t blame = 0;
    if (cg_wallet_id(out->params + 1, (uint32_t)n, t, out->key.b, &blame) != RT_OK) {
        out->blame = blame;
        ERR("recovery data names invalid params: a host public key is not a valid point or is "
            "duplicated");
    }
    if (memcmp(out->key.b, url.b, 32))
        ERR("the recovery data belongs to another wallet (its params hash is not the wallet id)");
    return RT_OK;
}

rt_status net_codec_target(int route, const char *url_wallet, json_t *body, net_call *out,
                           char *err, size_t err_len)
{
    if (route == NET_R_SIGN1 || route == NET_R_SIGN2 || route == NET_R_WALLET ||
        route == NET_R_FAULT || route == NET_R_RECOVERY || route == NET_R_RETIRE)
        return wallet_from_hex(url_wallet, &out->key, err, err_len);
    if (!json_is_object(body)) ERR("body must be a JSON object");
    if (route == NET_R_RESTORE) return restore_target(url_wallet, body, out, err, err_len);
    if (route == NET_R_DKG2) {
        json_t *w = json_object_get(body, "wallet_id");
        if (!json_is_string(w)) ERR("field \"wallet_id\" must be a hex string");
        return wallet_from_hex(json_string_value(w), &out->key, err, err_len);
    }
    /* DKG round 1: the wallet is named by its params. */
    json_t *params = json_object_get(body, "params");
    if (!json_is_object(params)) ERR("field \"params\" must be an object");
    json_t *hpk = json_object_get(params, "hostpubkeys");
    json_t *t = json_object_get(params, "t");
    if (!json_is_array(hpk)) ERR("field \"params.hostpubkeys\" must be an array");
    if (!json_is_integer(t)) ERR("field \"params.t\" must be an integer");
    size_t n = json_array_size(hpk);
    json_int_t tv = json_integer_value(t);
    if (n < 1 || n > CG_MAX_PARTICIPANTS)
        ERR("params must list 1..%d host public keys", CG_MAX_PARTICIPANTS);
    if (tv < 1 || (size_t)tv > n) ERR("params.t must be in 1..%zu", n);
    out->params_len = 2 + 33 * n;
    out->params = malloc(out->params_len);
    if (!out->params) return RT_RESOURCE_EXHAUSTED;
    out->params[0] = (uint8_t)n;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(hpk, i);
        if (!json_is_string(e) || !net_hex_decode(out->params + 1 + 33 * i, 33,
                                                  json_string_value(e), json_string_length(e)))
            ERR("params.hostpubkeys[%zu] must be 33 bytes of hex", i);
    }
    out->params[1 + 33 * n] = (uint8_t)tv;
    uint64_t blame = 0;
    rt_status st = cg_wallet_id(out->params + 1, (uint32_t)n, (uint32_t)tv, out->key.b, &blame);
    if (st != RT_OK) {
        out->blame = blame;
        ERR("invalid params: a host public key is not a valid point or is duplicated");
    }
    return RT_OK;
}

rt_status net_codec_encode(int route, json_t *body, const uint8_t sender[33], net_call *out,
                           char *err, size_t err_len)
{
    cg_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.sender = sender;
    uint8_t *buf = NULL;
    size_t blen = 0;
    uint8_t sid[32], pubnonce[66], psig[32], tweaks[CG_MAX_TWEAKS][32];
    rt_status st = RT_OK;
    switch (route) {
    case NET_R_WALLET:
        cmd.kind = CG_CMD_GET_WALLET;
        return encode(&cmd, out, err, err_len);
    case NET_R_RECOVERY:
        cmd.kind = CG_CMD_GET_RECOVERY;
        return encode(&cmd, out, err, err_len);
    case NET_R_RETIRE:
        cmd.kind = CG_CMD_RETIRE;
        return encode(&cmd, out, err, err_len);
    case NET_R_RESTORE:
        if (!json_is_object(body)) ERR("body must be a JSON object");
        cmd.kind = CG_CMD_RESTORE;
        if ((st = hex_field(body, "recovery", NULL, 0, &buf, &blen, CG_MAX_RECOVERY_LEN, err,
                            err_len)))
            return st;
        if (blen == 0) {
            free(buf);
            ERR("field \"recovery\" must not be empty");
        }
        cmd.u.restore.recovery = buf;
        cmd.u.restore.recovery_len = (uint32_t)blen;
        break;
    case NET_R_DKG1:
        cmd.kind = CG_CMD_DKG_ROUND1;
        if ((st = hex_field(body, "pmsg1", NULL, 0, &buf, &blen, CG_MAX_PMSG_LEN, err, err_len)))
            return st;
        cmd.u.dkg1.n = out->params[0];
        cmd.u.dkg1.hostpubkeys = out->params + 1;
        cmd.u.dkg1.t = out->params[1 + 33 * out->params[0]];
        cmd.u.dkg1.pmsg1 = buf;
        cmd.u.dkg1.pmsg1_len = (uint32_t)blen;
        break;
    case NET_R_DKG2:
        cmd.kind = CG_CMD_DKG_ROUND2;
        if ((st = hex_field(body, "pmsg2", NULL, 0, &buf, &blen, CG_MAX_PMSG_LEN, err, err_len)))
            return st;
        cmd.u.dkg2.pmsg2 = buf;
        cmd.u.dkg2.pmsg2_len = (uint32_t)blen;
        break;
    case NET_R_SIGN1: {
        if (!json_is_object(body)) ERR("body must be a JSON object");
        cmd.kind = CG_CMD_SIGN_ROUND1;
        if ((st = hex_field(body, "session_id", sid, 32, NULL, NULL, 0, err, err_len))) return st;
        if ((st = hex_field(body, "pubnonce", pubnonce, 66, NULL, NULL, 0, err, err_len)))
            return st;
        json_t *ids = json_object_get(body, "signer_ids");
        if (!json_is_array(ids) || json_array_size(ids) < 1 ||
            json_array_size(ids) > CG_MAX_PARTICIPANTS)
            ERR("field \"signer_ids\" must be an array of 1..%d participant indices",
                CG_MAX_PARTICIPANTS);
        cmd.u.sign1.n_signers = (uint32_t)json_array_size(ids);
        for (size_t i = 0; i < json_array_size(ids); i++) {
            json_t *e = json_array_get(ids, i);
            if (!json_is_integer(e) || json_integer_value(e) < 0 ||
                json_integer_value(e) >= CG_MAX_PARTICIPANTS)
                ERR("signer_ids[%zu] must be a participant index", i);
            for (size_t j = 0; j < i; j++)
                if (cmd.u.sign1.signer_ids[j] == json_integer_value(e))
                    ERR("signer_ids[%zu] is a duplicate", i);
            cmd.u.sign1.signer_ids[i] = (uint8_t)json_integer_value(e);
        }
        json_t *tw = json_object_get(body, "tweaks");
        if (tw && !json_is_null(tw)) {
            if (!json_is_array(tw) || json_array_size(tw) > CG_MAX_TWEAKS)
                ERR("field \"tweaks\" must be an array of at most %d tweaks", CG_MAX_TWEAKS);
            cmd.u.sign1.n_tweaks = (uint32_t)json_array_size(tw);
            for (size_t i = 0; i < json_array_size(tw); i++) {
                json_t *e = json_array_get(tw, i);
                if (!json_is_object(e)) ERR("tweaks[%zu] must be an object", i);
                if ((st = hex_field(e, "tweak", tweaks[i], 32, NULL, NULL, 0, err, err_len)))
                    return st;
                json_t *x = json_object_get(e, "xonly");
                if (!json_is_boolean(x)) ERR("tweaks[%zu].xonly must be a boolean", i);
                cmd.u.sign1.tweaks[i].tweak = tweaks[i];
                cmd.u.sign1.tweaks[i].xonly = json_is_true(x);
            }
        }
        if ((st = hex_field(body, "msg", NULL, 0, &buf, &blen, CG_MAX_MSG_LEN, err, err_len)))
            return st;
        cmd.u.sign1.session_id = sid;
        cmd.u.sign1.msg = buf;
        cmd.u.sign1.msg_len = (uint32_t)blen;
        cmd.u.sign1.pubnonce = pubnonce;
        break;
    }
    case NET_R_SIGN2:
        if (!json_is_object(body)) ERR("body must be a JSON object");
        cmd.kind = CG_CMD_SIGN_ROUND2;
        if ((st = hex_field(body, "session_id", sid, 32, NULL, NULL, 0, err, err_len))) return st;
        if ((st = hex_field(body, "psig", psig, 32, NULL, NULL, 0, err, err_len))) return st;
        cmd.u.sign2.session_id = sid;
        cmd.u.sign2.psig = psig;
        break;
    default:
        ERR("no command for this route");
    }
    st = encode(&cmd, out, err, err_len);
    free(buf);
    return st;
}

rt_status net_codec_fault(uint32_t kind, const uint8_t sender[33], net_call *out, char *err,
                          size_t err_len)
{
    cg_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.kind = CG_CMD_FAULT;
    cmd.sender = sender;
    cmd.u.fault.kind = kind;
    return encode(&cmd, out, err, err_len);
}

static char *hexdup(const uint8_t *b, size_t len)
{
    char *s = malloc(2 * len + 1);
    if (s) net_hex_encode(s, b, len);
    return s;
}

static void set_hex(json_t *o, const char *k, const uint8_t *b, size_t len)
{
    char *s = hexdup(b, len);
    if (s) json_object_set_new(o, k, json_stringn_nocheck(s, 2 * len));
    free(s);
}

rt_status net_codec_reply(int route, const net_call *call, const uint8_t *data, size_t len,
                          json_t **out)
{
    cg_reply r;
    if (route == NET_R_FAULT) {
        *out = json_pack("{s:b}", "injected", 1);
        return RT_OK;
    }
    if (cg_reply_decode(&r, data, len) != RT_OK) return RT_INTERNAL;
    json_t *o = json_object();
    if (!o) return RT_RESOURCE_EXHAUSTED;
    switch (route) {
    case NET_R_DKG1:
        if (r.kind != CG_CMD_DKG_ROUND1) goto bad;
        set_hex(o, "wallet_id", call->key.b, 32);
        set_hex(o, "cmsg1", r.u.dkg1.cmsg1, r.u.dkg1.cmsg1_len);
        break;
    case NET_R_DKG2:
        if (r.kind != CG_CMD_DKG_ROUND2) goto bad;
        set_hex(o, "cmsg2", r.u.dkg2.cmsg2, r.u.dkg2.cmsg2_len);
        set_hex(o, "thresh_pubkey", r.u.dkg2.thresh_pubkey, 33);
        break;
    case NET_R_SIGN1:
        if (r.kind != CG_CMD_SIGN_ROUND1) goto bad;
        set_hex(o, "aggnonce", r.u.sign1.aggnonce, 66);
        break;
    case NET_R_SIGN2:
        if (r.kind != CG_CMD_SIGN_ROUND2) goto bad;
        set_hex(o, "signature", r.u.sign2.sig, 64);
        break;
    case NET_R_WALLET: {
        if (r.kind != CG_CMD_GET_WALLET) goto bad;
        set_hex(o, "thresh_pubkey", r.u.wallet.thresh_pubkey, 33);
        json_object_set_new(o, "t", json_integer(r.u.wallet.t));
        json_t *h = json_array(), *p = json_array();
        for (uint32_t i = 0; i < r.u.wallet.n; i++) {
            char s[67];
            net_hex_encode(s, r.u.wallet.hostpubkeys + 33 * i, 33);
            json_array_append_new(h, json_string(s));
            net_hex_encode(s, r.u.wallet.pubshares + 33 * i, 33);
            json_array_append_new(p, json_string(s));
        }
        json_object_set_new(o, "hostpubkeys", h);
        json_object_set_new(o, "pubshares", p);
        break;
    }
    case NET_R_RECOVERY:
        if (r.kind != CG_CMD_GET_RECOVERY) goto bad;
        set_hex(o, "wallet_id", call->key.b, 32);
        set_hex(o, "recovery", r.u.recovery.data, r.u.recovery.len);
        break;
    case NET_R_RESTORE:
        if (r.kind != CG_CMD_RESTORE) goto bad;
        set_hex(o, "wallet_id", call->key.b, 32);
        set_hex(o, "thresh_pubkey", r.u.restore.thresh_pubkey, 33);
        break;
    case NET_R_RETIRE:
        if (r.kind != CG_CMD_RETIRE) goto bad;
        set_hex(o, "wallet_id", call->key.b, 32);
        json_object_set_new(o, "retired_at_ms",
                            json_integer((json_int_t)call->retired.retired_at_ms));
        json_object_set_new(o, "wipe_after_ms",
                            json_integer((json_int_t)call->retired.wipe_after_ms));
        break;
    default:
        goto bad;
    }
    *out = o;
    return RT_OK;
bad:
    json_decref(o);
    return RT_INTERNAL;
}
