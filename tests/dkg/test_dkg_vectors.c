/*
 * Runs every file of tests/vectors/chilldkg against the guest ChillDKG code:
 * valid cases must reproduce the expected bytes, error cases must fail with
 * the reference's exception kind and blamed participant(s). Each file is one
 * cmocka test; every failing case is printed before the test fails.
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

#include "cg_cx.h"
#include "cg_dkg.h"

/* Which build of the DKG code answers: the native library, or the wasm32
 * guest through the sandbox (dkg_wasm_shim.c). */
#ifndef DKG_BACKEND
#define DKG_BACKEND "native"
#endif

typedef struct tally {
    const char *file;
    int run, failed;
} tally;

static json_t *load(const char *name)
{
    char path[512];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/chilldkg/%s", VECTORS_DIR, name);
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) fail_msg("cannot load %s: %s", path, jerr.text);
    return root;
}

/* Decodes a hex string into a fresh buffer (NULL, 0 for JSON null/absent). */
static uint8_t *hex(json_t *j, size_t *len)
{
    *len = 0;
    if (!j || json_is_null(j)) return NULL;
    const char *s = json_string_value(j);
    assert_non_null(s);
    size_t n = strlen(s) / 2;
    uint8_t *out = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    *len = n;
    return out;
}

static int hex_eq(json_t *j, const uint8_t *buf, size_t len)
{
    size_t n;
    uint8_t *exp = hex(j, &n);
    int eq = n == len && memcmp(exp, buf, len) == 0;
    free(exp);
    return eq;
}

static void params_from(cg_dkg_params *p, json_t *j)
{
    json_t *hpk = json_object_get(j, "hostpubkeys");
    memset(p, 0, sizeof *p);
    p->t = (uint32_t)json_integer_value(json_object_get(j, "t"));
    p->n = (uint32_t)json_array_size(hpk);
    assert_true(p->n <= CG_DKG_MAX_N);
    for (uint32_t i = 0; i < p->n; i++) {
        size_t len;
        uint8_t *b = hex(json_array_get(hpk, i), &len);
        assert_int_equal(len, 33);
        memcpy(p->hostpubkeys[i], b, 33);
        free(b);
    }
}

static int params_eq(const cg_dkg_params *p, json_t *j)
{
    cg_dkg_params e;
    params_from(&e, j);
    return e.n == p->n && e.t == p->t && memcmp(e.hostpubkeys, p->hostpubkeys, 33 * e.n) == 0;
}

static int output_eq(const cg_dkg_output *o, json_t *j)
{
    json_t *sec = json_object_get(j, "secshare"), *pubs = json_object_get(j, "pubshares");
    if (json_is_null(sec) ? o->has_secshare : !(o->has_secshare && hex_eq(sec, o->secshare, 32)))
        return 0;
    if (!hex_eq(json_object_get(j, "threshPk"), o->threshold_pubkey, 33)) return 0;
    if (json_array_size(pubs) != o->n) return 0;
    for (uint32_t i = 0; i < o->n; i++)
        if (!hex_eq(json_array_get(pubs, i), o->pubshares[i], 33)) return 0;
    return 1;
}

/* Checks status, kind and blamed indices against an expectedError object. */
static int error_matches(rt_status st, const cg_dkg_error *err, json_t *exp)
{
    const char *type = json_string_value(json_object_get(exp, "type"));
    json_t *p = json_object_get(exp, "participantId");
    json_t *p1 = json_object_get(exp, "participantId1");
    json_t *p2 = json_object_get(exp, "participantId2");
    if (st == RT_OK || strcmp(cg_dkg_error_kind_name(err->kind), type) != 0) return 0;
    if (p && err->participant != json_integer_value(p)) return 0;
    if (p1 &&
        (err->participant != json_integer_value(p1) || err->participant2 != json_integer_value(p2)))
        return 0;
    /* the blame-free kinds must not name anyone */
    if (!p && !p1 && err->participant != -1) return 0;
    return 1;
}

static void record(tally *t, json_t *tc, int pass, rt_status st, const cg_dkg_error *err)
{
    t->run++;
    if (!pass) {
        t->failed++;
        fprintf(stderr, "%s: tcId %lld (%s) FAILED: status %d kind %s participant %d/%d msg %s\n",
                t->file, (long long)json_integer_value(json_object_get(tc, "tcId")),
                json_string_value(json_object_get(tc, "comment")), (int)st,
                cg_dkg_error_kind_name(err->kind), err->participant, err->participant2,
                err->msg ? err->msg : "-");
    }
}

static void finish(tally *t, json_t *root)
{
    json_t *total = json_object_get(root, "totalTests");
    fprintf(stderr, "%s [%s]: %d/%d cases pass\n", t->file, DKG_BACKEND, t->run - t->failed,
            t->run);
    if (total) assert_int_equal(t->run, (int)json_integer_value(total));
    assert_int_equal(t->failed, 0);
    json_decref(root);
}

/* Iterates the groups of a file (files without groups are one group). */
#define FOR_GROUPS(root, g)                                                                        \
    json_t *groups_ = json_object_get(root, "testGroups");                                         \
    size_t ngroups_ = groups_ ? json_array_size(groups_) : 1;                                      \
    for (size_t gi_ = 0; gi_ < ngroups_ && ((g = groups_ ? json_array_get(groups_, gi_) : root));  \
         gi_++)

#define FOR_CASES(g, key, tc)                                                                      \
    json_t *cases_##key = json_object_get(g, #key);                                                \
    for (size_t ci_##key = 0; ci_##key < json_array_size(cases_##key) &&                           \
                              ((tc = json_array_get(cases_##key, ci_##key)));                      \
         ci_##key++)

/* Field of the case, falling back to the group's. */
static json_t *field(json_t *tc, json_t *g, const char *key)
{
    json_t *v = json_object_get(tc, key);
    return v ? v : json_object_get(g, key);
}

/* ----- hostpubkey_gen, params_hash ------------------------------------- */

static void test_hostpubkey_gen(void **state)
{
    (void)state;
    tally t = {"hostpubkey_gen", 0, 0};
    json_t *root = load("hostpubkey_gen_vectors.json"), *g, *tc;
    FOR_GROUPS(root, g)
    {
        FOR_CASES(g, validTestCases, tc)
        {
            size_t len;
            uint8_t *sk = hex(json_object_get(tc, "hostseckey"), &len), pk[33];
            cg_dkg_error err = {0};
            rt_status st = cg_dkg_hostpubkey_gen(pk, sk, len, &err);
            record(&t, tc, st == RT_OK && hex_eq(json_object_get(tc, "expectedHostpubkey"), pk, 33),
                   st, &err);
            free(sk);
        }
        FOR_CASES(g, errorTestCases, tc)
        {
            size_t len;
            uint8_t *sk = hex(json_object_get(tc, "hostseckey"), &len), pk[33];
            cg_dkg_error err = {0};
            rt_status st = cg_dkg_hostpubkey_gen(pk, sk, len, &err);
            record(&t, tc, error_matches(st, &err, json_object_get(tc, "expectedError")), st, &err);
            free(sk);
        }
    }
    finish(&t, root);
}

static void test_params_hash(void **state)
{
    (void)state;
    tally t = {"params_hash", 0, 0};
    json_t *root = load("params_hash_vectors.json"), *g, *tc;
    FOR_GROUPS(root, g)
    {
        FOR_CASES(g, validTestCases, tc)
        {
            cg_dkg_params p;
            uint8_t h[32];
            cg_dkg_error err = {0};
            params_from(&p, json_object_get(tc, "params"));
            rt_status st = cg_dkg_params_hash(h, &p, &err);
            record(&t, tc, st == RT_OK && hex_eq(json_object_get(tc, "expectedParamsHash"), h, 32),
                   st, &err);
        }
        FOR_CASES(g, errorTestCases, tc)
        {
            cg_dkg_params p;
            uint8_t h[32];
            cg_dkg_error err = {0};
            params_from(&p, json_object_get(tc, "params"));
            rt_status st = cg_dkg_params_hash(h, &p, &err);
            record(&t, tc, error_matches(st, &err, json_object_get(tc, "expectedError")), st, &err);
        }
    }
    finish(&t, root);
}

/* ----- participant ---------------------------------------------------------- */

/* Runs step 1 from the fields of tc/g; returns the status. */
static rt_status run_step1(cg_dkg_pstate1 *st1, uint8_t *pmsg1, size_t *pmsg1_len, json_t *tc,
                           json_t *g, cg_dkg_error *err)
{
    cg_dkg_params p;
    size_t sklen, rlen;
    params_from(&p, field(tc, g, "params"));
    uint8_t *sk = hex(field(tc, g, "hostseckey"), &sklen);
    uint8_t *rnd = hex(field(tc, g, "random"), &rlen);
    rt_status st = cg_dkg_participant_step1(st1, pmsg1, CG_DKG_PMSG1_MAX, pmsg1_len, sk, sklen, &p,
                                            rnd, rlen, err);
    free(sk);
    free(rnd);
    return st;
}

static void test_participant_step1(void **state)
{
    (void)state;
    tally t = {"participant_step1", 0, 0};
    json_t *root = load("participant_step1_vectors.json"), *g, *tc;
    static cg_dkg_pstate1 st1;
    static uint8_t pmsg1[CG_DKG_PMSG1_MAX];
    FOR_GROUPS(root, g)
    {
        FOR_CASES(g, validTestCases, tc)
        {
            size_t len = 0;
            cg_dkg_error err = {0};
            rt_status st = run_step1(&st1, pmsg1, &len, tc, g, &err);
            record(&t, tc, st == RT_OK && hex_eq(json_object_get(tc, "expectedPmsg1"), pmsg1, len),
                   st, &err);
        }
        FOR_CASES(g, errorTestCases, tc)
        {
            size_t len = 0;
            cg_dkg_error err = {0};
            rt_status st = run_step1(&st1, pmsg1, &len, tc, g, &err);
            record(&t, tc, error_matches(st, &err, json_object_get(tc, "expectedError")), st, &err);
        }
    }
    finish(&t, root);
}

/* Step 1 of a group's participant, checked against the group's pmsg1. */
static void group_step1(cg_dkg_pstate1 *st1, json_t *g)
{
    static uint8_t pmsg1[CG_DKG_PMSG1_MAX];
    size_t len = 0;
    cg_dkg_error err = {0};
    assert_int_equal(run_step1(st1, pmsg1, &len, NULL, g, &err), RT_OK);
    assert_true(hex_eq(json_object_get(g, "pmsg1"), pmsg1, len));
}

static rt_status run_step2(cg_dkg_pstate2 *st2, uint8_t pmsg2[64], const cg_dkg_pstate1 *st1_in,
                           json_t *cmsg1_j, json_t *tc, json_t *g, cg_dkg_pinv *inv,
                           cg_dkg_error *err)
{
    static cg_dkg_pstate1 st1;
    size_t sklen, alen, clen;
    st1 = *st1_in; /* step 2 consumes its state; every case starts afresh */
    uint8_t *sk = hex(field(tc, g, "hostseckey"), &sklen);
    uint8_t *aux = hex(field(tc, g, "auxRand"), &alen);
    uint8_t *cmsg1 = hex(cmsg1_j, &clen);
    rt_status st =
        cg_dkg_participant_step2(st2, pmsg2, sk, sklen, &st1, cmsg1, clen, aux, alen, inv, err);
    free(sk);
    free(aux);
    free(cmsg1);
    return st;
}

static void test_participant_step2(void **state)
{
    (void)state;
    tally t = {"participant_step2", 0, 0};
    json_t *root = load("participant_step2_vectors.json"), *g, *tc;
    static cg_dkg_pstate1 st1;
    static cg_dkg_pstate2 st2;
    static cg_dkg_pinv inv;
    uint8_t pmsg2[64];
    FOR_GROUPS(root, g)
    {
        group_step1(&st1, g);
        FOR_CASES(g, validTestCases, tc)
        {
            cg_dkg_error err = {0};
            rt_status st =
                run_step2(&st2, pmsg2, &st1, json_object_get(tc, "cmsg1"), tc, g, &inv, &err);
            record(&t, tc, st == RT_OK && hex_eq(json_object_get(tc, "expectedPmsg2"), pmsg2, 64),
                   st, &err);
        }
        FOR_CASES(g, errorTestCases, tc)
        {
            cg_dkg_error err = {0};
            rt_status st =
                run_step2(&st2, pmsg2, &st1, json_object_get(tc, "cmsg1"), tc, g, &inv, &err);
            record(&t, tc, error_matches(st, &err, json_object_get(tc, "expectedError")), st, &err);
        }
    }
    cg_dkg_wipe(&st2, sizeof st2);
    cg_dkg_wipe(&inv, sizeof inv);
    finish(&t, root);
}

static void test_participant_finalize(void **state)
{
    (void)state;
    tally t = {"participant_finalize", 0, 0};
    json_t *root = load("participant_finalize_vectors.json"), *g, *tc;
    static cg_dkg_pstate1 st1;
    static cg_dkg_pstate2 st2;
    static uint8_t rec[CG_DKG_RECOVERY_MAX];
    cg_dkg_output out;
    uint8_t pmsg2[64];
    FOR_GROUPS(root, g)
    {
        cg_dkg_error err = {0};
        group_step1(&st1, g);
        assert_int_equal(
            run_step2(&st2, pmsg2, &st1, json_object_get(g, "cmsg1"), NULL, g, NULL, &err), RT_OK);
        assert_true(hex_eq(json_object_get(g, "pmsg2"), pmsg2, 64));
        FOR_CASES(g, validTestCases, tc)
        {
            size_t clen, rlen = 0;
            uint8_t *cmsg2 = hex(json_object_get(tc, "cmsg2"), &clen);
            json_t *exp = json_object_get(tc, "expectedOutput");
            rt_status st =
                cg_dkg_participant_finalize(&out, rec, sizeof rec, &rlen, &st2, cmsg2, clen, &err);
            record(&t, tc,
                   st == RT_OK && output_eq(&out, json_object_get(exp, "dkgOutput")) &&
                       hex_eq(json_object_get(exp, "recoveryData"), rec, rlen),
                   st, &err);
            free(cmsg2);
        }
        FOR_CASES(g, errorTestCases, tc)
        {
            size_t clen, rlen = 0;
            uint8_t *cmsg2 = hex(json_object_get(tc, "cmsg2"), &clen);
            rt_status st =
                cg_dkg_participant_finalize(&out, rec, sizeof rec, &rlen, &st2, cmsg2, clen, &err);
            record(&t, tc, error_matches(st, &err, json_object_get(tc, "expectedError")), st, &err);
            free(cmsg2);
        }
    }
    cg_dkg_wipe(&st2, sizeof st2);
    cg_dkg_wipe(&out, sizeof out);
    finish(&t, root);
}

static void test_participant_investigate(void **state)
{
    (void)state;
    tally t = {"participant_investigate", 0, 0};
    json_t *root = load("participant_investigate_vectors.json"), *g, *tc;
    static cg_dkg_pstate1 st1;
    static cg_dkg_pstate2 st2;
    static cg_dkg_pinv inv;
    uint8_t pmsg2[64];
    FOR_GROUPS(root, g)
    {
        group_step1(&st1, g);
        FOR_CASES(g, errorTestCases, tc)
        {
            cg_dkg_error err = {0};
            size_t idx = (size_t)json_integer_value(json_object_get(tc, "cmsg1Index")), clen;
            json_t *cmsg1 = json_array_get(json_object_get(g, "cmsg1Pool"), idx);
            rt_status st = run_step2(&st2, pmsg2, &st1, cmsg1, NULL, g, &inv, &err);
            if (st != RT_ABORTED ||
                err.kind != CG_DKG_ERR_UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR) {
                record(&t, tc, 0, st, &err);
                continue;
            }
            uint8_t *cinv = hex(json_object_get(tc, "cinvMsg"), &clen);
            st = cg_dkg_participant_investigate(&inv, cinv, clen, &err);
            record(&t, tc, error_matches(st, &err, json_object_get(tc, "expectedError")), st, &err);
            free(cinv);
        }
    }
    cg_dkg_wipe(&inv, sizeof inv);
    finish(&t, root);
}

/* ----- coordinator --------------------------------------------------------- */

typedef struct msgs {
    size_t count;
    uint8_t *m[64];
    size_t len[64];
} msgs;

/* msgs from a list of hex strings, or from pool[indices]. */
static void msgs_from(msgs *ms, json_t *list, json_t *indices)
{
    ms->count = json_array_size(indices ? indices : list);
    assert_true(ms->count <= 64);
    for (size_t i = 0; i < ms->count; i++) {
        size_t k = indices ? (size_t)json_integer_value(json_array_get(indices, i)) : i;
        ms->m[i] = hex(json_array_get(list, k), &ms->len[i]);
    }
}

static void msgs_free(msgs *ms)
{
    for (size_t i = 0; i < ms->count; i++)
        free(ms->m[i]);
}

static void test_coordinator_step1(void **state)
{
    (void)state;
    tally t = {"coordinator_step1", 0, 0};
    json_t *root = load("coordinator_step1_vectors.json"), *g, *tc;
    static cg_dkg_cstate cst;
    static uint8_t cmsg1[CG_DKG_CMSG1_MAX];
    FOR_GROUPS(root, g)
    {
        json_t *pool = json_object_get(g, "pmsg1Pool");
        for (int pass = 0; pass < 2; pass++) {
            json_t *list = json_object_get(g, pass ? "errorTestCases" : "validTestCases");
            for (size_t ci = 0; ci < json_array_size(list); ci++) {
                tc = json_array_get(list, ci);
                msgs ms;
                cg_dkg_params p;
                cg_dkg_error err = {0};
                size_t len = 0;
                params_from(&p, json_object_get(tc, "params"));
                msgs_from(&ms, pool, json_object_get(tc, "pmsg1Indices"));
                rt_status st = cg_dkg_coordinator_step1(&cst, cmsg1, sizeof cmsg1, &len,
                                                        (const uint8_t *const *)ms.m, ms.len,
                                                        ms.count, &p, &err);
                int good =
                    pass ? error_matches(st, &err, json_object_get(tc, "expectedError"))
                         : st == RT_OK && hex_eq(json_object_get(tc, "expectedCmsg1"), cmsg1, len);
                record(&t, tc, good, st, &err);
                msgs_free(&ms);
            }
        }
    }
    finish(&t, root);
}

static void test_coordinator_finalize(void **state)
{
    (void)state;
    tally t = {"coordinator_finalize", 0, 0};
    json_t *root = load("coordinator_finalize_vectors.json"), *g, *tc;
    static cg_dkg_cstate cst;
    static uint8_t cmsg1[CG_DKG_CMSG1_MAX], cmsg2[CG_DKG_CMSG2_MAX], rec[CG_DKG_RECOVERY_MAX];
    FOR_GROUPS(root, g)
    {
        msgs ms1;
        cg_dkg_params p;
        cg_dkg_error err = {0};
        size_t len = 0;
        params_from(&p, json_object_get(g, "params"));
        msgs_from(&ms1, json_object_get(g, "pmsgs1"), NULL);
        assert_int_equal(cg_dkg_coordinator_step1(&cst, cmsg1, sizeof cmsg1, &len,
                                                  (const uint8_t *const *)ms1.m, ms1.len, ms1.count,
                                                  &p, &err),
                         RT_OK);
        assert_true(hex_eq(json_object_get(g, "cmsg1"), cmsg1, len));
        msgs_free(&ms1);
        json_t *pool = json_object_get(g, "pmsg2Pool");
        for (int pass = 0; pass < 2; pass++) {
            json_t *list = json_object_get(g, pass ? "errorTestCases" : "validTestCases");
            for (size_t ci = 0; ci < json_array_size(list); ci++) {
                tc = json_array_get(list, ci);
                msgs ms;
                cg_dkg_output out;
                size_t c2len = 0, rlen = 0;
                msgs_from(&ms, pool, json_object_get(tc, "pmsg2Indices"));
                rt_status st = cg_dkg_coordinator_finalize(
                    cmsg2, sizeof cmsg2, &c2len, &out, rec, sizeof rec, &rlen, &cst,
                    (const uint8_t *const *)ms.m, ms.len, ms.count, &err);
                json_t *exp = json_object_get(tc, "expectedOutput");
                int good = pass ? error_matches(st, &err, json_object_get(tc, "expectedError"))
                                : st == RT_OK &&
                                      hex_eq(json_object_get(exp, "cmsg2"), cmsg2, c2len) &&
                                      output_eq(&out, json_object_get(exp, "dkgOutput")) &&
                                      hex_eq(json_object_get(exp, "recoveryData"), rec, rlen);
                record(&t, tc, good, st, &err);
                msgs_free(&ms);
            }
        }
    }
    finish(&t, root);
}

static void test_coordinator_investigate(void **state)
{
    (void)state;
    tally t = {"coordinator_investigate", 0, 0};
    json_t *root = load("coordinator_investigate_vectors.json"), *g, *tc;
    static uint8_t cinvs[CG_DKG_MAX_N * CG_DKG_CINV_MAX];
    FOR_GROUPS(root, g)
    {
        msgs ms;
        cg_dkg_params p;
        params_from(&p, json_object_get(g, "params"));
        msgs_from(&ms, json_object_get(g, "pmsgs1"), NULL);
        FOR_CASES(g, validTestCases, tc)
        {
            cg_dkg_error err = {0};
            size_t len = 0;
            rt_status st = cg_dkg_coordinator_investigate(cinvs, sizeof cinvs, &len,
                                                          (const uint8_t *const *)ms.m, ms.len,
                                                          ms.count, &p, &err);
            json_t *exp = json_object_get(tc, "expectedCinvMsgs");
            int good = st == RT_OK && json_array_size(exp) == ms.count;
            size_t one = CG_DKG_CINV_LEN(ms.count);
            for (size_t i = 0; good && i < ms.count; i++)
                good = hex_eq(json_array_get(exp, i), cinvs + i * one, one);
            record(&t, tc, good, st, &err);
        }
        msgs_free(&ms);
    }
    finish(&t, root);
}

/* ----- recovery ------------------------------------------------------------ */

static void test_recover(void **state)
{
    (void)state;
    tally t = {"recover", 0, 0};
    json_t *root = load("recover_vectors.json"), *g, *tc;
    static cg_dkg_scratch scratch;
    FOR_GROUPS(root, g)
    {
        for (int pass = 0; pass < 2; pass++) {
            json_t *list = json_object_get(g, pass ? "errorTestCases" : "validTestCases");
            for (size_t ci = 0; ci < json_array_size(list); ci++) {
                tc = json_array_get(list, ci);
                size_t sklen, rlen;
                uint8_t *sk = hex(json_object_get(tc, "hostseckey"), &sklen);
                uint8_t *rec = hex(json_object_get(tc, "recoveryData"), &rlen);
                cg_dkg_output out;
                cg_dkg_params p;
                cg_dkg_error err = {0};
                rt_status st = cg_dkg_recover(&out, &p, sk, sklen, rec, rlen, &scratch, &err);
                json_t *exp = json_object_get(tc, "expectedOutput");
                int good = pass ? error_matches(st, &err, json_object_get(tc, "expectedError"))
                                : st == RT_OK &&
                                      output_eq(&out, json_object_get(exp, "dkgOutput")) &&
                                      params_eq(&p, json_object_get(exp, "params"));
                record(&t, tc, good, st, &err);
                cg_dkg_wipe(&out, sizeof out);
                free(sk);
                free(rec);
            }
        }
    }
    finish(&t, root);
}

int main(void)
{
    cx_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostpubkey_gen),
        cmocka_unit_test(test_params_hash),
        cmocka_unit_test(test_participant_step1),
        cmocka_unit_test(test_participant_step2),
        cmocka_unit_test(test_participant_finalize),
        cmocka_unit_test(test_participant_investigate),
        cmocka_unit_test(test_coordinator_step1),
        cmocka_unit_test(test_coordinator_finalize),
        cmocka_unit_test(test_coordinator_investigate),
        cmocka_unit_test(test_recover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
