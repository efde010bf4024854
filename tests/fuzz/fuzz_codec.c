/*
 * fuzz_codec.c — the HTTP layer's JSON body -> command encoder, in process:
 * net_codec_target() and net_codec_encode() (src/net/net_codec.h) on any
 * route, URL wallet and JSON body, called as the server calls them (encode
 * only after the target was found), without the server, authentication or
 * an actor around them (fuzz_net_request reaches the same code over
 * loopback, at a fraction of the speed).
 *
 * Input: byte 0 route (any of enum net_route, one past the end too),
 * byte 1 URL wallet (0xff: none; else a string of the next byte1 % 72
 * bytes), byte 2 fault kind (for net_codec_fault on the fault route), then
 * the body, parsed with json_loadb as the server does (a body that is not
 * JSON, or not an object, is passed on anyway: the codec checks it).
 *
 * Oracles beyond memory safety and leaks:
 *   - every status is one of the codec's (OK, INVALID_ARGUMENT,
 *     RESOURCE_EXHAUSTED); a refusal leaves a non-empty message inside
 *     err_len and nothing written past it;
 *   - the target is the wallet the request names: the URL's 64 hex digits,
 *     the body's wallet_id, or (DKG round 1) the params hash of params that
 *     parse back (net_params_parse) as the body's hostpubkeys and t; blame
 *     only names listed keys;
 *   - routes without a command are refused; an encoded command is within
 *     CG_CMD_MAX_LEN, decodes with the guest's decoder (cg_cmd_decode) as
 *     the route's kind from the authenticated sender, re-encodes to the same
 *     bytes, and carries exactly the body's fields;
 *   - fault commands encode exactly the kinds the guest accepts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cg_cmd.h"
#include "cg_wallet_id.h"
#include "cx.h"
#include "fuzz.h"
#include "net_codec.h"

#define ERR_LEN 256

static const uint8_t sender[33] = {0x02, 0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac,
                                   0x55, 0xa0, 0x62, 0x95, 0xce, 0x87, 0x0b, 0x07, 0x02,
                                   0x9b, 0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2,
                                   0x81, 0x5b, 0x16, 0xf8, 0x17, 0x98};

static void check_err(rt_status st, const char *err)
{
    FUZZ_CHECK(st == RT_INVALID_ARGUMENT || st == RT_RESOURCE_EXHAUSTED);
    for (size_t i = ERR_LEN; i < ERR_LEN + 16; i++)
        FUZZ_CHECK(err[i] == 0x5a);
    if (st == RT_INVALID_ARGUMENT) FUZZ_CHECK(memchr(err, 0, ERR_LEN) && err[0]);
}

/* The JSON string obj.name is exactly the hex of b[0..len). */
static int hex_is(json_t *obj, const char *name, const uint8_t *b, size_t len)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_string(v) || json_string_length(v) != 2 * len) return 0;
    uint8_t *d = malloc(len + 1);
    FUZZ_CHECK(d != NULL);
    int ok = net_hex_decode(d, len, json_string_value(v), 2 * len) && (!len || !memcmp(d, b, len));
    free(d);
    return ok;
}

static int hex64_is(const char *s, const uint8_t key[32])
{
    uint8_t k[32];
    return s && strlen(s) == 64 && net_hex_decode(k, 32, s, 64) && !memcmp(k, key, 32);
}

static void check_target(int route, const char *wallet, json_t *body, const net_call *c)
{
    if (route == NET_R_SIGN1 || route == NET_R_SIGN2 || route == NET_R_WALLET ||
        route == NET_R_FAULT || route == NET_R_RECOVERY || route == NET_R_RETIRE) {
        FUZZ_CHECK(hex64_is(wallet, c->key.b));
        FUZZ_CHECK(!c->params);
        return;
    }
    FUZZ_CHECK(json_is_object(body));
    if (route == NET_R_RESTORE) {
        /* The params come from the recovery data and hash to the URL's id. */
        net_params p;
        uint8_t id[32];
        uint64_t blame = 1;
        FUZZ_CHECK(hex64_is(wallet, c->key.b));
        FUZZ_CHECK(c->params && net_params_parse(c->params, c->params_len, &p) == RT_OK);
        FUZZ_CHECK(cg_wallet_id(p.hostpubkeys, p.n, p.t, id, &blame) == RT_OK);
        FUZZ_CHECK(!memcmp(id, c->key.b, 32) && blame == 0);
        return;
    }
    if (route == NET_R_DKG2) {
        FUZZ_CHECK(hex64_is(json_string_value(json_object_get(body, "wallet_id")), c->key.b));
        return;
    }
    /* DKG round 1 (and any other route: the target names it by its params). */
    json_t *params = json_object_get(body, "params");
    json_t *hpk = json_object_get(params, "hostpubkeys");
    net_params p;
    FUZZ_CHECK(c->params && net_params_parse(c->params, c->params_len, &p) == RT_OK);
    FUZZ_CHECK(p.n == json_array_size(hpk));
    FUZZ_CHECK(json_integer_value(json_object_get(params, "t")) == (json_int_t)p.t);
    for (uint32_t i = 0; i < p.n; i++) {
        json_t *e = json_array_get(hpk, i);
        uint8_t k[33];
        FUZZ_CHECK(json_string_length(e) == 66 && net_hex_decode(k, 33, json_string_value(e), 66) &&
                   !memcmp(k, p.hostpubkeys + 33 * i, 33));
    }
    uint8_t id[32];
    uint64_t blame = 1;
    FUZZ_CHECK(cg_wallet_id(p.hostpubkeys, p.n, p.t, id, &blame) == RT_OK);
    FUZZ_CHECK(!memcmp(id, c->key.b, 32) && blame == 0);
}

static int kind_of(int route)
{
    switch (route) {
    case NET_R_DKG1:
        return CG_CMD_DKG_ROUND1;
    case NET_R_DKG2:
        return CG_CMD_DKG_ROUND2;
    case NET_R_SIGN1:
        return CG_CMD_SIGN_ROUND1;
    case NET_R_SIGN2:
        return CG_CMD_SIGN_ROUND2;
    case NET_R_WALLET:
        return CG_CMD_GET_WALLET;
    case NET_R_RECOVERY:
        return CG_CMD_GET_RECOVERY;
    case NET_R_RESTORE:
        return CG_CMD_RESTORE;
    case NET_R_RETIRE:
        return CG_CMD_RETIRE;
    default:
        return 0;
    }
}

static void check_command(int route, json_t *body, const net_call *c)
{
    static uint8_t again[CG_CMD_MAX_LEN];
    FUZZ_CHECK(c->cmd && c->cmd_len > 0 && c->cmd_len <= CG_CMD_MAX_LEN);
    cg_cmd d;
    FUZZ_CHECK(cg_cmd_decode(&d, c->cmd, c->cmd_len) == RT_OK);
    FUZZ_CHECK(d.kind == kind_of(route));
    FUZZ_CHECK(!memcmp(d.sender, sender, 33));
    size_t len = 0;
    FUZZ_CHECK(cg_cmd_encode(&d, again, sizeof again, &len) == RT_OK);
    FUZZ_CHECK(len == c->cmd_len && !memcmp(again, c->cmd, len));
    switch (d.kind) {
    case CG_CMD_DKG_ROUND1:
        FUZZ_CHECK(c->params[0] == d.u.dkg1.n && c->params[1 + 33 * d.u.dkg1.n] == d.u.dkg1.t);
        FUZZ_CHECK(!memcmp(d.u.dkg1.hostpubkeys, c->params + 1, 33 * d.u.dkg1.n));
        FUZZ_CHECK(hex_is(body, "pmsg1", d.u.dkg1.pmsg1, d.u.dkg1.pmsg1_len));
        break;
    case CG_CMD_DKG_ROUND2:
        FUZZ_CHECK(hex_is(body, "pmsg2", d.u.dkg2.pmsg2, d.u.dkg2.pmsg2_len));
        break;
    case CG_CMD_SIGN_ROUND1: {
        FUZZ_CHECK(hex_is(body, "session_id", d.u.sign1.session_id, 32));
        FUZZ_CHECK(hex_is(body, "pubnonce", d.u.sign1.pubnonce, 66));
        FUZZ_CHECK(hex_is(body, "msg", d.u.sign1.msg, d.u.sign1.msg_len));
        json_t *ids = json_object_get(body, "signer_ids");
        FUZZ_CHECK(d.u.sign1.n_signers == json_array_size(ids));
        for (uint32_t i = 0; i < d.u.sign1.n_signers; i++)
            FUZZ_CHECK(json_integer_value(json_array_get(ids, i)) == d.u.sign1.signer_ids[i]);
        json_t *tw = json_object_get(body, "tweaks");
        FUZZ_CHECK(d.u.sign1.n_tweaks == (json_is_array(tw) ? json_array_size(tw) : 0));
        for (uint32_t i = 0; i < d.u.sign1.n_tweaks; i++) {
            json_t *e = json_array_get(tw, i);
            FUZZ_CHECK(hex_is(e, "tweak", d.u.sign1.tweaks[i].tweak, 32));
            FUZZ_CHECK(d.u.sign1.tweaks[i].xonly == json_is_true(json_object_get(e, "xonly")));
        }
        break;
    }
    case CG_CMD_SIGN_ROUND2:
        FUZZ_CHECK(hex_is(body, "session_id", d.u.sign2.session_id, 32));
        FUZZ_CHECK(hex_is(body, "psig", d.u.sign2.psig, 32));
        break;
    case CG_CMD_RESTORE:
        FUZZ_CHECK(hex_is(body, "recovery", d.u.restore.recovery, d.u.restore.recovery_len));
        break;
    default: /* GET_WALLET, GET_RECOVERY, RETIRE: no body */
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        FUZZ_CHECK(cx_init());
        ready = 1;
    }
    if (size < 3) return 0;
    int route = data[0] % (NET_R_COUNT_ + 1);
    char *wallet = NULL;
    size_t off = 3;
    if (data[1] != 0xff) {
        size_t wl = data[1] % 72u;
        if (wl > size - off) wl = size - off;
        wallet = malloc(wl + 1);
        FUZZ_CHECK(wallet != NULL);
        memcpy(wallet, data + off, wl);
        wallet[wl] = 0;
        off += wl;
    }
    json_error_t je;
    json_t *body = json_loadb((const char *)data + off, size - off, JSON_REJECT_DUPLICATES, &je);

    char err[ERR_LEN + 16];
    memset(err, 0x5a, sizeof err);
    net_call c;
    memset(&c, 0, sizeof c);
    rt_status st = net_codec_target(route, wallet, body, &c, err, ERR_LEN);
    if (st != RT_OK) {
        check_err(st, err);
        /* blame names listed participants only (DKG round 1's params) */
        FUZZ_CHECK(!c.blame || (c.params && (c.blame >> c.params[0]) == 0));
    } else {
        check_target(route, wallet, body, &c);
        memset(err, 0x5a, sizeof err);
        st = net_codec_encode(route, body, sender, &c, err, ERR_LEN);
        if (st == RT_OK)
            check_command(route, body, &c);
        else
            check_err(st, err);
        if (!kind_of(route)) FUZZ_CHECK(st == RT_INVALID_ARGUMENT);
    }
    net_call_free(&c);

    if (route == NET_R_FAULT) {
        uint32_t kind = data[2];
        memset(err, 0x5a, sizeof err);
        memset(&c, 0, sizeof c);
        st = net_codec_fault(kind, sender, &c, err, ERR_LEN);
        if (kind >= 1 && kind <= CG_FAULT_KIND_MAX_) {
            cg_cmd d;
            FUZZ_CHECK(st == RT_OK && cg_cmd_decode(&d, c.cmd, c.cmd_len) == RT_OK);
            FUZZ_CHECK(d.kind == CG_CMD_FAULT && d.u.fault.kind == kind);
            FUZZ_CHECK(!memcmp(d.sender, sender, 33));
        } else {
            FUZZ_CHECK(st == RT_INVALID_ARGUMENT);
            check_err(st, err);
        }
        net_call_free(&c);
    }
    json_decref(body);
    free(wallet);
    return 0;
}

/* ---- seeds ------------------------------------------------------------- */

/* One input: route, URL wallet (NULL: none), fault kind, body. */
static int seed(const char *dir, const char *name, int route, const char *wallet, uint8_t fault,
                const char *body)
{
    size_t wl = wallet ? strlen(wallet) : 0, bl = strlen(body);
    uint8_t *b = malloc(3 + wl + bl);
    if (!b) return 0;
    b[0] = (uint8_t)route;
    b[1] = wallet ? (uint8_t)wl : 0xff;
    b[2] = fault;
    if (wl) memcpy(b + 3, wallet, wl);
    memcpy(b + 3 + wl, body, bl);
    int ok = fuzz_seed(dir, name, b, 3 + wl + bl);
    free(b);
    return ok;
}

int fuzz_write_seeds(const char *dir)
{
    FUZZ_CHECK(cx_init());
    int n = 0;
    /* Valid host public keys: k*G for k = 1, 2, 3. */
    char pk[3][67], w[65], s[8192];
    for (int i = 0; i < 3; i++) {
        uint8_t sk[32] = {0}, p[33];
        sk[31] = (uint8_t)(i + 1);
        FUZZ_CHECK(cx_pubkey_from_seckey(p, sk));
        net_hex_encode(pk[i], p, 33);
    }
    memset(w, 'a', 64);
    w[64] = 0;
    char pmsg[2 * 163 + 1];
    memset(pmsg, 'c', sizeof pmsg - 1);
    pmsg[sizeof pmsg - 1] = 0;

    snprintf(s, sizeof s,
             "{\"params\":{\"hostpubkeys\":[\"%s\",\"%s\",\"%s\"],\"t\":2},\"pmsg1\":\"%s\"}",
             pk[0], pk[1], pk[2], pmsg);
    n += seed(dir, "dkg1", NET_R_DKG1, NULL, 0, s);
    n += seed(dir, "info_dkg1_body", NET_R_INFO, NULL, 0, s); /* no command for the route */
    snprintf(s, sizeof s,
             "{\"params\":{\"hostpubkeys\":[\"%s\",\"%s\",\"%s\"],\"t\":2},\"pmsg1\":\"%s\"}",
             pk[0], pk[1], pk[0], pmsg);
    n += seed(dir, "dkg1_duplicate_key", NET_R_DKG1, NULL, 0, s);
    snprintf(s, sizeof s,
             "{\"params\":{\"hostpubkeys\":[\"%s\",\"02%064d\"],\"t\":1},\"pmsg1\":\"00\"}", pk[1],
             0);
    n += seed(dir, "dkg1_not_a_point", NET_R_DKG1, NULL, 0, s);
    snprintf(s, sizeof s, "{\"params\":{\"hostpubkeys\":[\"%s\"],\"t\":1},\"pmsg1\":\"\"}", pk[2]);
    n += seed(dir, "dkg1_empty_pmsg", NET_R_DKG1, NULL, 0, s);
    snprintf(s, sizeof s, "{\"params\":{\"hostpubkeys\":[\"%s\",\"%s\"],\"t\":3},\"pmsg1\":\"00\"}",
             pk[0], pk[1]);
    n += seed(dir, "dkg1_t_above_n", NET_R_DKG1, NULL, 0, s);
    snprintf(s, sizeof s, "{\"wallet_id\":\"%s\",\"pmsg2\":\"%s\"}", w, pmsg);
    n += seed(dir, "dkg2", NET_R_DKG2, NULL, 0, s);
    snprintf(s, sizeof s, "{\"wallet_id\":\"%.63s\",\"pmsg2\":\"00\"}", w);
    n += seed(dir, "dkg2_short_id", NET_R_DKG2, NULL, 0, s);
    snprintf(
        s, sizeof s,
        "{\"session_id\":\"%064d\",\"signer_ids\":[0,2],\"msg\":\"68656c6c6f\","
        "\"tweaks\":[{\"tweak\":\"%064d\",\"xonly\":true},{\"tweak\":\"%064d\",\"xonly\":false}],"
        "\"pubnonce\":\"%s%s\"}",
        7, 1, 2, pk[0], pk[1]);
    n += seed(dir, "sign1", NET_R_SIGN1, w, 0, s);
    snprintf(s, sizeof s,
             "{\"session_id\":\"%064d\",\"signer_ids\":[1],\"msg\":\"\",\"tweaks\":null,"
             "\"pubnonce\":\"%s%s\"}",
             7, pk[2], pk[2]);
    n += seed(dir, "sign1_no_tweaks", NET_R_SIGN1, w, 0, s);
    snprintf(s, sizeof s,
             "{\"session_id\":\"%064d\",\"signer_ids\":[0,0],\"msg\":\"00\",\"pubnonce\":\"%s%s\"}",
             7, pk[0], pk[1]);
    n += seed(dir, "sign1_dup_signer", NET_R_SIGN1, w, 0, s);
    snprintf(s, sizeof s, "{\"session_id\":\"%064d\",\"psig\":\"%064d\"}", 7, 5);
    n += seed(dir, "sign2", NET_R_SIGN2, w, 0, s);
    n += seed(dir, "sign2_bad_url_wallet", NET_R_SIGN2, "zz", 0, s);
    n += seed(dir, "sign2_no_url_wallet", NET_R_SIGN2, NULL, 0, s);
    n += seed(dir, "wallet", NET_R_WALLET, w, 0, "");
    n += seed(dir, "fault_trap", NET_R_FAULT, w, CG_FAULT_TRAP, "{\"kind\":\"trap\"}");
    n += seed(dir, "fault_bad_kind", NET_R_FAULT, w, 0, "{\"kind\":\"trap\"}");
    n += seed(dir, "not_json", NET_R_SIGN2, w, 0, "{\"session_id\":");
    n += seed(dir, "array_body", NET_R_DKG2, NULL, 0, "[1,2]");
    return n;
}
