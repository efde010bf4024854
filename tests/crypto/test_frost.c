/*
 * test_frost — BIP 445 signing (guest/frost, native build) against every
 * published vector in tests/vectors/bip445, plus end-to-end sessions whose
 * final signatures are checked independently with libsecp256k1.
 *
 * Each vector runs through the same call sequence the cosigner uses
 * (signers -> tweaks -> nonces -> session -> sign/verify/aggregate); an error
 * case must fail at some step with the reference's exception mapped to our
 * kind, message, contribution and blamed position.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "cg_frost.h"
#include "cx.h"

#ifndef VECTORS_DIR
#error VECTORS_DIR must be defined
#endif

#define MAXS CG_FROST_MAX_SIGNERS

static secp256k1_context *g_secp;

/* ----- JSON helpers --------------------------------------------------------- */

static json_t *load(const char *name)
{
    char path[512];
    json_error_t e;
    snprintf(path, sizeof path, "%s/bip445/%s", VECTORS_DIR, name);
    json_t *j = json_load_file(path, 0, &e);
    if (!j) fail_msg("%s: %s (line %d)", path, e.text, e.line);
    return j;
}

/* Hex string into buf; returns its length in bytes. */
static size_t hex(uint8_t *buf, size_t cap, const json_t *v)
{
    const char *s = json_string_value(v);
    assert_non_null(s);
    size_t n = strlen(s);
    assert_int_equal(n % 2, 0);
    assert_true(n / 2 <= cap);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned x;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &x), 1);
        buf[i] = (uint8_t)x;
    }
    return n / 2;
}

static void hexn(uint8_t *buf, size_t want, const json_t *v)
{
    assert_int_equal(hex(buf, want, v), want);
}

static json_t *get(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!v) fail_msg("missing key %s", k);
    return v;
}

static int geti(const json_t *o, const char *k)
{
    return (int)json_integer_value(get(o, k));
}

static size_t u32_list(uint32_t *out, size_t cap, const json_t *arr)
{
    size_t n = json_array_size(arr);
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++)
        out[i] = (uint32_t)json_integer_value(json_array_get(arr, i));
    return n;
}

/* Message: hex, possibly empty ("" is a zero-length message, not absent). */
static uint8_t g_msg[1024];
static size_t msg_of(const json_t *tc)
{
    return hex(g_msg, sizeof g_msg, get(tc, "msg"));
}

/* ----- error matching ----------------------------------------------------- */

static int g_err_cases;

/* The reference exception of an error case against our status and error. */
static void expect_error(const json_t *tc, rt_status st, const cg_frost_error *err)
{
    const json_t *e = get(tc, "error");
    const char *type = json_string_value(get(e, "type"));
    int id = geti(tc, "tc_id");
    if (st == RT_OK) fail_msg("tc %d: succeeded, expected %s", id, type);
    assert_string_equal(cg_frost_error_kind_name(err->kind), type);
    if (strcmp(type, "ValueError") == 0) {
        char msg[256];
        assert_int_equal(st, RT_INVALID_ARGUMENT);
        if (err->index >= 0)
            snprintf(msg, sizeof msg, err->msg, (int)err->index);
        else
            snprintf(msg, sizeof msg, "%s", err->msg);
        if (strcmp(msg, json_string_value(get(e, "message"))) != 0)
            fail_msg("tc %d: message '%s', expected '%s'", id, msg,
                     json_string_value(get(e, "message")));
    } else {
        const json_t *si = get(e, "signer_index");
        assert_int_equal(st, RT_ABORTED);
        assert_string_equal(cg_frost_contrib_name(err->contrib),
                            json_string_value(get(e, "contrib")));
        assert_int_equal(err->signer, json_is_null(si) ? -1 : (int)json_integer_value(si));
    }
    g_err_cases++;
}

/* ----- group fixtures --------------------------------------------------------- */

typedef struct group {
    uint32_t n, t;
    uint8_t thresh_pk[33];
    uint8_t pubshares[8][33];
    size_t n_pubshares;
    uint8_t pubnonces[8][66];
    size_t n_pubnonces;
    uint8_t secshares[8][32];
    size_t n_secshares;
    uint8_t secnonces[8][64];
    size_t n_secnonces;
    uint8_t tweaks[8][40];
    size_t tweak_lens[8];
    size_t n_tweaks;
} group;

static void group_load(group *g, const json_t *j)
{
    const json_t *a;
    size_t i;
    memset(g, 0, sizeof *g);
    g->n = (uint32_t)geti(j, "n");
    g->t = (uint32_t)geti(j, "t");
    hexn(g->thresh_pk, 33, get(j, "thresh_pk"));
    json_array_foreach(get(j, "pubshares"), i, a) hexn(g->pubshares[g->n_pubshares++], 33, a);
    if ((a = json_object_get(j, "pubnonces"))) {
        const json_t *v;
        json_array_foreach(a, i, v) hexn(g->pubnonces[g->n_pubnonces++], 66, v);
    }
    if ((a = json_object_get(j, "secshares"))) {
        const json_t *v;
        json_array_foreach(a, i, v) hexn(g->secshares[g->n_secshares++], 32, v);
    }
    if ((a = json_object_get(j, "secnonces"))) {
        const json_t *v;
        json_array_foreach(a, i, v) hexn(g->secnonces[g->n_secnonces++], 64, v);
    }
    if ((a = json_object_get(j, "tweaks"))) {
        const json_t *v;
        json_array_foreach(a, i, v)
        {
            g->tweak_lens[g->n_tweaks] = hex(g->tweaks[g->n_tweaks], 40, v);
            g->n_tweaks++;
        }
    }
}

/* ids and the pubshares they select; returns the signer count. */
static size_t signer_list(const group *g, const json_t *tc, uint32_t *ids, uint8_t (*ps)[33])
{
    uint32_t idx[MAXS];
    size_t n = u32_list(ids, MAXS, get(tc, "ids"));
    size_t m = u32_list(idx, MAXS, get(tc, "pubshare_indices"));
    assert_int_equal(n, m);
    for (size_t i = 0; i < m; i++) {
        assert_true(idx[i] < g->n_pubshares);
        memcpy(ps[i], g->pubshares[idx[i]], 33);
    }
    return n;
}

static size_t pubnonce_list(const group *g, const json_t *tc, uint8_t (*pn)[66])
{
    uint32_t idx[MAXS];
    size_t m = u32_list(idx, MAXS, get(tc, "pubnonce_indices"));
    for (size_t i = 0; i < m; i++) {
        assert_true(idx[i] < g->n_pubnonces);
        memcpy(pn[i], g->pubnonces[idx[i]], 66);
    }
    return m;
}

/* Tweaks of a test: by index into the group's list ("tweak_indices") or
 * inline ("tweaks", det_sign). Builds the tweak context. */
static rt_status tweak_ctx_of(cg_frost_tweak_ctx *tc, const group *g, const json_t *t,
                              const uint8_t thresh_pk[33], cg_frost_error *err)
{
    const uint8_t *tw[16];
    size_t lens[16];
    uint8_t inl[16][40], modes[16];
    size_t nt = 0, nm = 0, i;
    const json_t *v;
    if (json_object_get(t, "tweak_indices")) {
        json_array_foreach(get(t, "tweak_indices"), i, v)
        {
            size_t k = (size_t)json_integer_value(v);
            assert_true(k < g->n_tweaks && nt < 16);
            tw[nt] = g->tweaks[k];
            lens[nt++] = g->tweak_lens[k];
        }
    } else if (json_object_get(t, "tweaks")) {
        json_array_foreach(get(t, "tweaks"), i, v)
        {
            assert_true(nt < 16);
            lens[nt] = hex(inl[nt], 40, v);
            tw[nt] = inl[nt];
            nt++;
        }
    }
    if (json_object_get(t, "is_xonly")) {
        json_array_foreach(get(t, "is_xonly"), i, v)
        {
            assert_true(nm < 16);
            modes[nm++] = json_is_true(v);
        }
    }
    return cg_frost_tweak_ctx_build(tc, thresh_pk, tw, lens, nt, modes, nm, err);
}

/* Independent BIP340 check of a final signature, straight with libsecp256k1. */
static void secp_verify(const uint8_t sig[64], const uint8_t *msg, size_t len,
                        const uint8_t xonly[32])
{
    secp256k1_xonly_pubkey pk;
    assert_true(secp256k1_xonly_pubkey_parse(g_secp, &pk, xonly));
    assert_true(secp256k1_schnorrsig_verify(g_secp, sig, len ? msg : NULL, len, &pk));
}

/* ----- nonce_gen / nonce_agg ---------------------------------------------------- */

static void test_nonce_gen_vectors(void **state)
{
    (void)state;
    json_t *root = load("nonce_gen_vectors.json");
    const json_t *tc;
    size_t i, count = 0;
    json_array_foreach(get(root, "valid_tests"), i, tc)
    {
        uint8_t rand_[32], sk[32], pk[33], tpk[32], msg[256], extra[256], exp_s[64], exp_p[66];
        uint8_t pubnonce[66];
        size_t msg_len = 0, extra_len = 0;
        const uint8_t *psk = NULL, *ppk = NULL, *ptpk = NULL, *pmsg = NULL, *pextra = NULL;
        cg_frost_secnonce sn;
        cg_frost_error err;
        hexn(rand_, 32, get(tc, "rand_"));
        if (!json_is_null(get(tc, "secshare"))) hexn(sk, 32, get(tc, "secshare")), psk = sk;
        if (!json_is_null(get(tc, "pubshare"))) hexn(pk, 33, get(tc, "pubshare")), ppk = pk;
        if (!json_is_null(get(tc, "thresh_pk"))) hexn(tpk, 32, get(tc, "thresh_pk")), ptpk = tpk;
        if (!json_is_null(get(tc, "msg")))
            msg_len = hex(msg, sizeof msg, get(tc, "msg")), pmsg = msg;
        if (!json_is_null(get(tc, "extra_in")))
            extra_len = hex(extra, sizeof extra, get(tc, "extra_in")), pextra = extra;
        hexn(exp_s, 64, json_array_get(get(tc, "expected"), 0));
        hexn(exp_p, 66, json_array_get(get(tc, "expected"), 1));
        assert_int_equal(cg_frost_nonce_gen_internal(&sn, pubnonce, rand_, psk, ppk, ptpk, pmsg,
                                                     msg_len, pextra, extra_len, &err),
                         RT_OK);
        assert_memory_equal(sn.k, exp_s, 64);
        assert_memory_equal(pubnonce, exp_p, 66);
        assert_int_equal(cg_frost_pubnonce_check(pubnonce), RT_OK);
        count++;
    }
    assert_int_equal(count, 5);
    json_decref(root);
}

static void test_nonce_agg_vectors(void **state)
{
    (void)state;
    json_t *root = load("nonce_agg_vectors.json");
    uint8_t pn[8][66];
    size_t npn = 0, i, valid = 0, errs = 0;
    const json_t *v, *tc;
    json_array_foreach(get(root, "pubnonces"), i, v) hexn(pn[npn++], 66, v);
    json_array_foreach(get(root, "valid_tests"), i, tc)
    {
        uint32_t idx[MAXS];
        uint8_t sel[MAXS][66], agg[66], exp[66];
        size_t m = u32_list(idx, MAXS, get(tc, "pubnonce_indices"));
        for (size_t k = 0; k < m; k++)
            memcpy(sel[k], pn[idx[k]], 66);
        hexn(exp, 66, get(tc, "expected"));
        assert_int_equal(cg_frost_nonce_agg(agg, (const uint8_t(*)[66])sel, m, NULL), RT_OK);
        assert_memory_equal(agg, exp, 66);
        valid++;
    }
    json_array_foreach(get(root, "error_tests"), i, tc)
    {
        uint32_t idx[MAXS];
        uint8_t sel[MAXS][66], agg[66];
        cg_frost_error err;
        size_t m = u32_list(idx, MAXS, get(tc, "pubnonce_indices"));
        for (size_t k = 0; k < m; k++)
            memcpy(sel[k], pn[idx[k]], 66);
        expect_error(tc, cg_frost_nonce_agg(agg, (const uint8_t(*)[66])sel, m, &err), &err);
        /* the blamed pubnonce is also refused on receipt */
        assert_int_equal(cg_frost_pubnonce_check(sel[err.signer]), RT_INVALID_ARGUMENT);
        errs++;
    }
    assert_int_equal(valid, 2);
    assert_int_equal(errs, 3);
    json_decref(root);
}

/* ----- sign / verify / tweak ----------------------------------------------------- */

typedef struct counts {
    int valid, sign_err, verify_fail, verify_err;
} counts;

/* One signing test (valid or error) of sign_verify or tweak: signers ->
 * tweaks -> session -> sign. Returns the status, err filled. */
static rt_status run_sign(const group *g, const json_t *tc, uint8_t psig[32],
                          cg_frost_session *sess, cg_frost_error *err)
{
    uint32_t ids[MAXS];
    uint8_t ps[MAXS][33], agg[66];
    cg_frost_signers signers;
    cg_frost_tweak_ctx tw;
    cg_frost_secnonce sn;
    rt_status st;
    size_t cnt = signer_list(g, tc, ids, ps);
    size_t msg_len = msg_of(tc);
    int si = geti(tc, "secshare_index"), ni = geti(tc, "secnonce_index");
    st = cg_frost_signers_init(&signers, g->n, g->t, ids, (const uint8_t(*)[33])ps, cnt,
                               g->thresh_pk, err);
    if (st != RT_OK) return st;
    st = tweak_ctx_of(&tw, g, tc, g->thresh_pk, err);
    if (st != RT_OK) return st;
    hexn(agg, 66, get(tc, "aggnonce"));
    st = cg_frost_session_init(sess, &signers, &tw, agg, g_msg, msg_len, err);
    if (st != RT_OK) return st;
    memcpy(sn.k, g->secnonces[ni], 64);
    st = cg_frost_sign(psig, &sn, g->secshares[si], (uint32_t)geti(tc, "my_id"), sess, err);
    /* consumed whatever the outcome */
    for (int k = 0; k < 64; k++)
        assert_int_equal(sn.k[k], 0);
    return st;
}

static void check_valid_sign(const group *g, const json_t *tc)
{
    uint8_t psig[32], exp[32], pn[MAXS][66], agg[66], agg_exp[66];
    cg_frost_session sess;
    cg_frost_error err;
    assert_int_equal(run_sign(g, tc, psig, &sess, &err), RT_OK);
    hexn(exp, 32, get(tc, "expected"));
    assert_memory_equal(psig, exp, 32);
    /* the vector's pubnonces aggregate to its aggnonce, and the psig verifies
     * at the signer's position (and not at another's) */
    size_t m = pubnonce_list(g, tc, pn);
    assert_int_equal(cg_frost_nonce_agg(agg, (const uint8_t(*)[66])pn, m, NULL), RT_OK);
    hexn(agg_exp, 66, get(tc, "aggnonce"));
    assert_memory_equal(agg, agg_exp, 66);
    int pos = cg_frost_signers_pos(&sess.signers, (uint32_t)geti(tc, "my_id"));
    assert_true(pos >= 0);
    assert_int_equal(cg_frost_partial_sig_verify(&sess, psig, pn[pos], (size_t)pos, &err), RT_OK);
    if (m > 1) {
        size_t other = (size_t)(pos + 1) % m;
        assert_int_equal(cg_frost_partial_sig_verify(&sess, psig, pn[other], other, &err),
                         RT_ABORTED);
        assert_int_equal(err.contrib, CG_FROST_CONTRIB_PSIG);
        assert_int_equal(err.signer, (int32_t)other);
    }
}

/* verify_fail / verify_error: signers -> nonce_agg(pubnonces) -> session ->
 * partial_sig_verify at signer_index. */
static rt_status run_verify(const group *g, const json_t *tc, cg_frost_error *err)
{
    uint32_t ids[MAXS];
    uint8_t ps[MAXS][33], pn[MAXS][66], agg[66], psig[32];
    cg_frost_signers signers;
    cg_frost_tweak_ctx tw;
    cg_frost_session sess;
    rt_status st;
    size_t cnt = signer_list(g, tc, ids, ps);
    size_t msg_len = msg_of(tc);
    size_t m = pubnonce_list(g, tc, pn);
    int pos = geti(tc, "signer_index");
    hexn(psig, 32, get(tc, "psig"));
    st = cg_frost_signers_init(&signers, g->n, g->t, ids, (const uint8_t(*)[33])ps, cnt,
                               g->thresh_pk, err);
    if (st != RT_OK) return st;
    st = tweak_ctx_of(&tw, g, tc, g->thresh_pk, err);
    if (st != RT_OK) return st;
    st = cg_frost_nonce_agg(agg, (const uint8_t(*)[66])pn, m, err);
    if (st != RT_OK) return st;
    st = cg_frost_session_init(&sess, &signers, &tw, agg, g_msg, msg_len, err);
    if (st != RT_OK) return st;
    return cg_frost_partial_sig_verify(&sess, psig, pn[pos], (size_t)pos, err);
}

static void test_sign_verify_vectors(void **state)
{
    (void)state;
    json_t *root = load("sign_verify_vectors.json");
    const json_t *gj, *tc;
    size_t gi, i;
    counts c = {0};
    json_array_foreach(get(root, "test_groups"), gi, gj)
    {
        group g;
        group_load(&g, gj);
        json_array_foreach(get(gj, "valid_tests"), i, tc)
        {
            check_valid_sign(&g, tc);
            c.valid++;
        }
        json_array_foreach(get(gj, "sign_error_tests"), i, tc)
        {
            uint8_t psig[32];
            cg_frost_session sess;
            cg_frost_error err;
            expect_error(tc, run_sign(&g, tc, psig, &sess, &err), &err);
            c.sign_err++;
        }
        json_array_foreach(get(gj, "verify_fail_tests"), i, tc)
        {
            cg_frost_error err;
            /* the reference returns False: for us an invalid psig, blamed */
            assert_int_equal(run_verify(&g, tc, &err), RT_ABORTED);
            assert_int_equal(err.kind, CG_FROST_ERR_INVALID_CONTRIBUTION);
            assert_int_equal(err.contrib, CG_FROST_CONTRIB_PSIG);
            assert_int_equal(err.signer, geti(tc, "signer_index"));
            c.verify_fail++;
        }
        json_array_foreach(get(gj, "verify_error_tests"), i, tc)
        {
            cg_frost_error err;
            expect_error(tc, run_verify(&g, tc, &err), &err);
            c.verify_err++;
        }
    }
    print_message("sign_verify: %d valid, %d sign errors, %d verify fails, %d verify errors\n",
                  c.valid, c.sign_err, c.verify_fail, c.verify_err);
    assert_int_equal(c.valid, 25);
    assert_int_equal(c.sign_err, 48);
    assert_int_equal(c.verify_fail, 12);
    assert_int_equal(c.verify_err, 8);
    json_decref(root);
}

static void test_tweak_vectors(void **state)
{
    (void)state;
    json_t *root = load("tweak_vectors.json");
    const json_t *gj, *tc;
    size_t gi, i;
    int valid = 0, errs = 0;
    json_array_foreach(get(root, "test_groups"), gi, gj)
    {
        group g;
        group_load(&g, gj);
        json_array_foreach(get(gj, "valid_tests"), i, tc)
        {
            check_valid_sign(&g, tc);
            valid++;
        }
        json_array_foreach(get(gj, "error_tests"), i, tc)
        {
            uint8_t psig[32];
            cg_frost_session sess;
            cg_frost_error err;
            expect_error(tc, run_sign(&g, tc, psig, &sess, &err), &err);
            errs++;
        }
    }
    print_message("tweak: %d valid, %d errors\n", valid, errs);
    assert_int_equal(valid, 28);
    assert_int_equal(errs, 16);
    json_decref(root);
}

/* ----- sig_agg ----------------------------------------------------------------- */

static void test_sig_agg_vectors(void **state)
{
    (void)state;
    json_t *root = load("sig_agg_vectors.json");
    const json_t *gj, *tc;
    size_t gi, i;
    int valid = 0, errs = 0;
    json_array_foreach(get(root, "test_groups"), gi, gj)
    {
        group g;
        group_load(&g, gj);
        for (int pass = 0; pass < 2; pass++) {
            const json_t *list = get(gj, pass ? "error_tests" : "valid_tests");
            json_array_foreach(list, i, tc)
            {
                uint32_t ids[MAXS];
                uint8_t ps[MAXS][33], agg[66], psigs[MAXS][32], sig[64];
                cg_frost_signers signers;
                cg_frost_tweak_ctx tw;
                cg_frost_session sess;
                cg_frost_error err;
                size_t np = 0, k;
                const json_t *v;
                rt_status st;
                size_t cnt = signer_list(&g, tc, ids, ps);
                size_t msg_len = msg_of(tc);
                json_array_foreach(get(tc, "psigs"), k, v) hexn(psigs[np++], 32, v);
                hexn(agg, 66, get(tc, "aggnonce"));
                st = cg_frost_signers_init(&signers, g.n, g.t, ids, (const uint8_t(*)[33])ps, cnt,
                                           g.thresh_pk, &err);
                if (st == RT_OK) st = tweak_ctx_of(&tw, &g, tc, g.thresh_pk, &err);
                if (st == RT_OK)
                    st = cg_frost_session_init(&sess, &signers, &tw, agg, g_msg, msg_len, &err);
                if (st == RT_OK)
                    st =
                        cg_frost_partial_sig_agg(sig, &sess, (const uint8_t(*)[32])psigs, np, &err);
                if (pass == 0) {
                    uint8_t exp[64], qx[32];
                    assert_int_equal(st, RT_OK);
                    hexn(exp, 64, get(tc, "expected"));
                    assert_memory_equal(sig, exp, 64);
                    assert_int_equal(cg_frost_verify(&sess, sig, g_msg, msg_len), RT_OK);
                    assert_int_equal(cg_frost_tweak_xonly(qx, &sess.tweak), RT_OK);
                    secp_verify(sig, g_msg, msg_len, qx);
                    sig[63] ^= 1;
                    assert_int_equal(cg_frost_verify(&sess, sig, g_msg, msg_len),
                                     RT_INVALID_ARGUMENT);
                    valid++;
                } else {
                    expect_error(tc, st, &err);
                    errs++;
                }
            }
        }
    }
    print_message("sig_agg: %d valid, %d errors\n", valid, errs);
    assert_int_equal(valid, 14);
    assert_int_equal(errs, 8);
    json_decref(root);
}

/* ----- det_sign ---------------------------------------------------------------- */

static void test_det_sign_vectors(void **state)
{
    (void)state;
    json_t *root = load("det_sign_vectors.json");
    const json_t *gj, *tc;
    size_t gi, i;
    int valid = 0, errs = 0;
    json_array_foreach(get(root, "test_groups"), gi, gj)
    {
        group g;
        group_load(&g, gj);
        for (int pass = 0; pass < 2; pass++) {
            const json_t *list = get(gj, pass ? "error_tests" : "valid_tests");
            json_array_foreach(list, i, tc)
            {
                uint32_t ids[MAXS];
                uint8_t ps[MAXS][33], otherbuf[66], rand[32], pubnonce[66], psig[32];
                const uint8_t *other = NULL;
                cg_frost_signers signers;
                cg_frost_tweak_ctx tw;
                cg_frost_error err;
                rt_status st;
                size_t cnt = signer_list(&g, tc, ids, ps);
                size_t msg_len = msg_of(tc);
                uint32_t my_id = (uint32_t)geti(tc, "my_id");
                const uint8_t *prand = NULL;
                if (!json_is_null(get(tc, "aggothernonce")))
                    hexn(otherbuf, 66, get(tc, "aggothernonce")), other = otherbuf;
                if (!json_is_null(get(tc, "rand"))) hexn(rand, 32, get(tc, "rand")), prand = rand;
                st = cg_frost_signers_init(&signers, g.n, g.t, ids, (const uint8_t(*)[33])ps, cnt,
                                           g.thresh_pk, &err);
                if (st == RT_OK) st = tweak_ctx_of(&tw, &g, tc, g.thresh_pk, &err);
                if (st == RT_OK)
                    st = cg_frost_deterministic_sign(
                        pubnonce, psig, g.secshares[geti(tc, "secshare_index")], my_id, other,
                        &signers, &tw, g_msg, msg_len, prand, &err);
                if (pass == 0) {
                    uint8_t en[66], es[32], pn[2][66], agg[66];
                    cg_frost_session sess;
                    if (st != RT_OK)
                        fail_msg("det_sign tc %d: %s %s %s %d", geti(tc, "tc_id"),
                                 cg_frost_error_kind_name(err.kind), err.msg,
                                 cg_frost_contrib_name(err.contrib), err.signer);
                    hexn(en, 66, json_array_get(get(tc, "expected"), 0));
                    hexn(es, 32, json_array_get(get(tc, "expected"), 1));
                    assert_memory_equal(pubnonce, en, 66);
                    assert_memory_equal(psig, es, 32);
                    /* and the psig verifies in the session it was made for */
                    memcpy(pn[0], pubnonce, 66);
                    if (other) {
                        memcpy(pn[1], other, 66);
                        assert_int_equal(cg_frost_nonce_agg(agg, (const uint8_t(*)[66])pn, 2, NULL),
                                         RT_OK);
                    } else {
                        memcpy(agg, pubnonce, 66);
                    }
                    assert_int_equal(
                        cg_frost_session_init(&sess, &signers, &tw, agg, g_msg, msg_len, &err),
                        RT_OK);
                    int pos = cg_frost_signers_pos(&signers, my_id);
                    assert_int_equal(
                        cg_frost_partial_sig_verify(&sess, psig, pubnonce, (size_t)pos, &err),
                        RT_OK);
                    valid++;
                } else {
                    expect_error(tc, st, &err);
                    errs++;
                }
            }
        }
    }
    print_message("det_sign: %d valid, %d errors\n", valid, errs);
    assert_int_equal(valid, 33);
    assert_int_equal(errs, 48);
    json_decref(root);
}

/* ----- end-to-end sessions ------------------------------------------------------ */

typedef struct dealer {
    uint32_t n, t;
    uint8_t secshares[MAXS][32];
    uint8_t pubshares[MAXS][33];
    uint8_t thresh_pk[33];
} dealer;

static void rand_scalar(uint8_t out[32])
{
    uint8_t r[32];
    cx_random(r, 32);
    assert_true(cx_scalar_reduce(out, r));
}

/* Shamir shares of a random key: share of id i is f(i + 1). */
static void deal(dealer *d, uint32_t n, uint32_t t)
{
    uint8_t coef[MAXS][32], P[64];
    d->n = n;
    d->t = t;
    for (uint32_t k = 0; k < t; k++)
        rand_scalar(coef[k]);
    assert_true(cx_point_mul_base(P, coef[0]));
    assert_true(cx_point_ser(d->thresh_pk, P));
    for (uint32_t i = 0; i < n; i++) {
        uint8_t x[32] = {0}, acc[32] = {0};
        x[31] = (uint8_t)(i + 1);
        for (uint32_t k = t; k-- > 0;) { /* Horner */
            assert_true(cx_scalar_mul(acc, acc, x));
            assert_true(cx_scalar_add(acc, acc, coef[k]));
        }
        memcpy(d->secshares[i], acc, 32);
        assert_true(cx_pubkey_from_seckey(d->pubshares[i], acc));
    }
}

static uint32_t rnd(uint32_t bound)
{
    uint32_t v;
    cx_random((uint8_t *)&v, sizeof v);
    return v % bound;
}

/* One complete session among the signers ids[0..count): random message,
 * random plain tweaks then a BIP 341 tweak; optionally the last signer signs
 * deterministically and one psig is corrupted. Checks everything a
 * coordinator checks, plus independent libsecp256k1 verification. */
static void one_session(const dealer *d, const uint32_t *ids, size_t count, int det_last,
                        int corrupt)
{
    uint8_t ps[MAXS][33], pn[MAXS][66], psig[MAXS][32], agg[66], msg[100], sig[64], x[32];
    uint8_t tweak[32], root[32], internal_x[32];
    cg_frost_secnonce sn[MAXS];
    cg_frost_signers signers;
    cg_frost_tweak_ctx tw;
    cg_frost_session sess;
    cg_frost_error err;
    size_t msg_len = rnd(sizeof msg + 1);
    size_t nrand = det_last ? count - 1 : count;
    cx_random(msg, sizeof msg);
    for (size_t i = 0; i < count; i++)
        memcpy(ps[i], d->pubshares[ids[i]], 33);
    assert_int_equal(cg_frost_signers_init(&signers, d->n, d->t, ids, (const uint8_t(*)[33])ps,
                                           count, d->thresh_pk, &err),
                     RT_OK);
    assert_int_equal(cg_frost_tweak_init(&tw, d->thresh_pk, &err), RT_OK);
    for (uint32_t k = rnd(3); k > 0; k--) {
        rand_scalar(tweak);
        assert_int_equal(cg_frost_tweak_apply(&tw, tweak, 32, (int)rnd(2), &err), RT_OK);
    }
    /* BIP 341: our helper agrees with libsecp256k1's x-only tweak */
    {
        secp256k1_xonly_pubkey in, outx;
        secp256k1_pubkey out;
        int with_root = (int)rnd(2), parity;
        cx_random(root, 32);
        assert_int_equal(cg_frost_tweak_xonly(internal_x, &tw), RT_OK);
        assert_int_equal(cg_frost_taproot_tweak(tweak, &tw, with_root ? root : NULL), RT_OK);
        assert_int_equal(cg_frost_tweak_apply_taproot(&tw, with_root ? root : NULL, &err), RT_OK);
        assert_true(secp256k1_xonly_pubkey_parse(g_secp, &in, internal_x));
        assert_true(secp256k1_xonly_pubkey_tweak_add(g_secp, &out, &in, tweak));
        assert_true(secp256k1_xonly_pubkey_from_pubkey(g_secp, &outx, &parity, &out));
        assert_true(secp256k1_xonly_pubkey_serialize(g_secp, x, &outx));
        uint8_t ours[32];
        assert_int_equal(cg_frost_tweak_xonly(ours, &tw), RT_OK);
        assert_memory_equal(ours, x, 32);
        assert_true(secp256k1_xonly_pubkey_tweak_add_check(g_secp, ours, parity, &in, tweak));
    }
    assert_int_equal(cg_frost_tweak_xonly(x, &tw), RT_OK);
    for (size_t i = 0; i < nrand; i++)
        assert_int_equal(cg_frost_nonce_gen(&sn[i], pn[i], d->secshares[ids[i]], ps[i], x, msg,
                                            msg_len, NULL, 0, &err),
                         RT_OK);
    if (det_last) {
        uint8_t other[66], rand[32];
        size_t last = count - 1;
        cx_random(rand, 32);
        assert_int_equal(cg_frost_nonce_agg(other, (const uint8_t(*)[66])pn, nrand, &err), RT_OK);
        assert_int_equal(cg_frost_deterministic_sign(pn[last], psig[last], d->secshares[ids[last]],
                                                     ids[last], nrand ? other : NULL, &signers, &tw,
                                                     msg, msg_len, rand, &err),
                         RT_OK);
    }
    assert_int_equal(cg_frost_nonce_agg(agg, (const uint8_t(*)[66])pn, count, &err), RT_OK);
    assert_int_equal(cg_frost_session_init(&sess, &signers, &tw, agg, msg, msg_len, &err), RT_OK);
    for (size_t i = 0; i < nrand; i++) {
        assert_int_equal(cg_frost_sign(psig[i], &sn[i], d->secshares[ids[i]], ids[i], &sess, &err),
                         RT_OK);
        /* the nonce is gone: a second signature with it is refused */
        uint8_t again[32];
        assert_int_equal(cg_frost_sign(again, &sn[i], d->secshares[ids[i]], ids[i], &sess, &err),
                         RT_INVALID_ARGUMENT);
        assert_string_equal(err.msg, "first secnonce value is out of range.");
    }
    int bad = -1;
    if (corrupt) {
        uint8_t one[32] = {[31] = 1};
        bad = (int)rnd((uint32_t)count);
        assert_true(cx_scalar_add(psig[bad], psig[bad], one));
    }
    for (size_t i = 0; i < count; i++) {
        rt_status st = cg_frost_partial_sig_verify(&sess, psig[i], pn[i], i, &err);
        if ((int)i == bad) {
            assert_int_equal(st, RT_ABORTED);
            assert_int_equal(err.kind, CG_FROST_ERR_INVALID_CONTRIBUTION);
            assert_int_equal(err.contrib, CG_FROST_CONTRIB_PSIG);
            assert_int_equal(err.signer, (int32_t)i);
            assert_int_equal(sess.signers.ids[err.signer], ids[i]);
        } else {
            assert_int_equal(st, RT_OK);
        }
    }
    assert_int_equal(cg_frost_partial_sig_agg(sig, &sess, (const uint8_t(*)[32])psig, count, &err),
                     RT_OK);
    if (bad >= 0) {
        assert_int_equal(cg_frost_verify(&sess, sig, msg, msg_len), RT_INVALID_ARGUMENT);
        return;
    }
    assert_int_equal(cg_frost_verify(&sess, sig, msg, msg_len), RT_OK);
    secp_verify(sig, msg, msg_len, x);
}

/* Cheap enough (about 1 ms a session under ASan) to run in full everywhere. */
#define E2E_SESSIONS 100

static void test_e2e_2of2(void **state)
{
    (void)state;
    dealer d;
    uint32_t ids[2] = {0, 1};
    deal(&d, 2, 2);
    for (int i = 0; i < E2E_SESSIONS; i++)
        one_session(&d, ids, 2, i % 4 == 3, i % 5 == 4);
}

static void test_e2e_2of3(void **state)
{
    (void)state;
    dealer d;
    deal(&d, 3, 2);
    for (int i = 0; i < E2E_SESSIONS; i++) {
        uint32_t ids[3];
        size_t count = 2 + rnd(2);
        if (count == 3) {
            ids[0] = 2, ids[1] = 0, ids[2] = 1;
        } else {
            uint32_t skip = rnd(3), k = 0;
            for (uint32_t j = 0; j < 3; j++)
                if (j != skip) ids[k++] = j;
        }
        one_session(&d, ids, count, i % 3 == 2, i % 7 == 6);
    }
}

static void test_e2e_sole_and_wide(void **state)
{
    (void)state;
    dealer d;
    uint32_t one[1] = {1}, five[5] = {4, 0, 3, 1, 2};
    deal(&d, 3, 1);
    for (int i = 0; i < 5; i++)
        one_session(&d, one, 1, i % 2, 0);
    deal(&d, 5, 3);
    for (int i = 0; i < 5; i++)
        one_session(&d, five, 5, i % 2, i == 4);
}

/* The API refuses what the BIP refuses even without a vector for it. */
static void test_api_misuse(void **state)
{
    (void)state;
    dealer d;
    uint32_t ids[2] = {0, 1};
    cg_frost_signers signers;
    cg_frost_tweak_ctx tw;
    cg_frost_session sess;
    cg_frost_secnonce sn;
    cg_frost_error err;
    uint8_t pn[66], agg[66], psig[32], sig[64], msg[32] = {7};
    deal(&d, 2, 2);
    memset(&sess, 0, sizeof sess);
    /* uninitialised contexts */
    assert_int_equal(cg_frost_sign(psig, &sn, d.secshares[0], 0, &sess, &err), RT_INVALID_ARGUMENT);
    assert_int_equal(cg_frost_partial_sig_agg(sig, &sess, NULL, 0, &err), RT_INVALID_ARGUMENT);
    assert_int_equal(cg_frost_signers_init(&signers, d.n, d.t, ids,
                                           (const uint8_t(*)[33])d.pubshares, 2, d.thresh_pk, &err),
                     RT_OK);
    assert_int_equal(cg_frost_tweak_init(&tw, d.thresh_pk, &err), RT_OK);
    /* too many signers for this build */
    {
        static uint32_t many[MAXS + 1];
        static uint8_t mps[MAXS + 1][33];
        for (uint32_t i = 0; i <= MAXS; i++)
            many[i] = i, memcpy(mps[i], d.pubshares[0], 33);
        assert_int_equal(cg_frost_signers_init(&signers, MAXS + 1, 1, many,
                                               (const uint8_t(*)[33])mps, MAXS + 1, d.thresh_pk,
                                               &err),
                         RT_OUT_OF_RANGE);
        assert_int_equal(err.kind, CG_FROST_ERR_TOO_MANY);
        assert_int_equal(cg_frost_signers_init(&signers, d.n, d.t, ids,
                                               (const uint8_t(*)[33])d.pubshares, 2, d.thresh_pk,
                                               &err),
                         RT_OK);
    }
    /* a pubnonce that is not two points is refused on receipt */
    assert_int_equal(cg_frost_nonce_gen(&sn, pn, NULL, NULL, NULL, NULL, 0, NULL, 0, &err), RT_OK);
    assert_int_equal(cg_frost_pubnonce_check(pn), RT_OK);
    pn[0] = 0x05;
    assert_int_equal(cg_frost_pubnonce_check(pn), RT_INVALID_ARGUMENT);
    pn[0] = 0x02;
    /* two fresh nonces differ */
    {
        cg_frost_secnonce sn2;
        uint8_t pn2[66];
        assert_int_equal(cg_frost_nonce_gen(&sn2, pn2, NULL, NULL, NULL, NULL, 0, NULL, 0, &err),
                         RT_OK);
        assert_memory_not_equal(sn.k, sn2.k, 64);
        cg_frost_secnonce_wipe(&sn2);
        for (int i = 0; i < 64; i++)
            assert_int_equal(sn2.k[i], 0);
    }
    /* an aggnonce half that is not a point blames the coordinator */
    memset(agg, 0, sizeof agg);
    agg[0] = 0x02; /* x = 0 is not on the curve */
    assert_int_equal(cg_frost_session_init(&sess, &signers, &tw, agg, msg, 32, &err), RT_ABORTED);
    assert_int_equal(err.contrib, CG_FROST_CONTRIB_AGGNONCE);
    assert_int_equal(err.signer, -1);
    /* a position outside the signer list */
    memset(agg, 0, sizeof agg);
    assert_int_equal(cg_frost_session_init(&sess, &signers, &tw, agg, msg, 32, &err), RT_OK);
    assert_int_equal(cg_frost_partial_sig_verify(&sess, psig, pn, 2, &err), RT_INVALID_ARGUMENT);
    /* a tweak of the wrong length */
    assert_int_equal(cg_frost_tweak_apply(&tw, msg, 31, 0, &err), RT_INVALID_ARGUMENT);
    assert_string_equal(err.msg, "The tweak must be a 32-byte array.");
    cg_frost_secnonce_wipe(&sn);
}

/* Random bytes wherever the wire can put them: every call returns one of its
 * documented statuses and never crashes (ASan/UBSan watch the rest). */
static void test_garbage_inputs(void **state)
{
    (void)state;
    dealer d;
    uint32_t ids[2] = {0, 1};
    cg_frost_signers signers;
    cg_frost_tweak_ctx tw;
    cg_frost_session sess;
    cg_frost_error err;
    deal(&d, 2, 2);
    assert_int_equal(cg_frost_signers_init(&signers, d.n, d.t, ids,
                                           (const uint8_t(*)[33])d.pubshares, 2, d.thresh_pk, &err),
                     RT_OK);
    for (int i = 0; i < 2000; i++) {
        uint8_t pn[2][66], agg[66], psig[32], tweak[32], ps[2][33], tpk[33], sig[64], msg[8];
        uint32_t rids[2];
        rt_status st;
        cx_random((uint8_t *)pn, sizeof pn);
        cx_random(agg, sizeof agg);
        cx_random(psig, sizeof psig);
        cx_random(tweak, sizeof tweak);
        cx_random((uint8_t *)ps, sizeof ps);
        cx_random(tpk, sizeof tpk);
        cx_random((uint8_t *)rids, sizeof rids);
        cx_random(msg, sizeof msg);
        /* make some of them well-formed-looking */
        if (i & 1) pn[0][0] = 2, pn[0][33] = 3, agg[0] = 2, agg[33] = 3, ps[0][0] = 2, tpk[0] = 3;
        if (i & 2) memset(agg, 0, 33);
        if (i & 4) rids[0] %= 3, rids[1] %= 3;
        st = cg_frost_nonce_agg(agg, (const uint8_t(*)[66])pn, 2, &err);
        assert_true(st == RT_OK || (st == RT_ABORTED && err.contrib == CG_FROST_CONTRIB_PUBNONCE));
        st = cg_frost_signers_init(&sess.signers, 3, 2, rids, (const uint8_t(*)[33])ps, 2, tpk,
                                   &err);
        assert_int_equal(st, RT_INVALID_ARGUMENT);
        st = cg_frost_tweak_init(&tw, (i & 8) ? tpk : d.thresh_pk, &err);
        assert_true(st == RT_OK || st == RT_INVALID_ARGUMENT);
        if (st != RT_OK) continue;
        st = cg_frost_tweak_apply(&tw, tweak, 32, i & 16, &err);
        assert_true(st == RT_OK || st == RT_INVALID_ARGUMENT);
        st = cg_frost_session_init(&sess, &signers, &tw, agg, msg, sizeof msg, &err);
        assert_true(st == RT_OK || (st == RT_ABORTED && err.contrib == CG_FROST_CONTRIB_AGGNONCE));
        if (st != RT_OK) continue;
        st = cg_frost_partial_sig_verify(&sess, psig, pn[0], 0, &err);
        assert_int_equal(st, RT_ABORTED); /* a random psig never verifies */
        st = cg_frost_partial_sig_agg(sig, &sess, (const uint8_t(*)[32])pn, 2, &err);
        assert_true(st == RT_OK || (st == RT_ABORTED && err.contrib == CG_FROST_CONTRIB_PSIG));
        if (st == RT_OK)
            assert_int_equal(cg_frost_verify(&sess, sig, msg, sizeof msg), RT_INVALID_ARGUMENT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nonce_gen_vectors),
        cmocka_unit_test(test_nonce_agg_vectors),
        cmocka_unit_test(test_sign_verify_vectors),
        cmocka_unit_test(test_tweak_vectors),
        cmocka_unit_test(test_sig_agg_vectors),
        cmocka_unit_test(test_det_sign_vectors),
        cmocka_unit_test(test_e2e_2of2),
        cmocka_unit_test(test_e2e_2of3),
        cmocka_unit_test(test_e2e_sole_and_wide),
        cmocka_unit_test(test_api_misuse),
        cmocka_unit_test(test_garbage_inputs),
    };
    int rc;
    assert_true(cx_init());
    g_secp = secp256k1_context_create(SECP256K1_CONTEXT_VERIFY);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    print_message("bip445 error cases matched: %d\n", g_err_cases);
    secp256k1_context_destroy(g_secp);
    return rc;
}
