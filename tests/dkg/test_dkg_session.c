/*
 * Full ChillDKG sessions in one process: every participant and the
 * coordinator run their steps on each other's messages, as the devices and the
 * service do over the network. Checks that all parties agree on the threshold
 * key, the public shares and the recovery data, that the secret shares
 * interpolate to the threshold key, that recovery reproduces the outputs, and
 * that faults are blamed on the right party.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cg_config.h"
#include "cg_cx.h"
#include "cg_dkg.h"

/* Everything one session needs, on the heap (the states are a few KiB each). */
typedef struct session {
    uint32_t n, t;
    uint8_t sk[CG_DKG_MAX_N][32];
    cg_dkg_params params;
    cg_dkg_pstate1 st1[CG_DKG_MAX_N];
    cg_dkg_pstate2 st2[CG_DKG_MAX_N];
    cg_dkg_cstate cst;
    uint8_t pmsg1[CG_DKG_MAX_N][CG_DKG_PMSG1_MAX];
    size_t pmsg1_len[CG_DKG_MAX_N];
    const uint8_t *pmsg1_ptr[CG_DKG_MAX_N];
    uint8_t cmsg1[CG_DKG_CMSG1_MAX];
    size_t cmsg1_len;
    uint8_t pmsg2[CG_DKG_MAX_N][64];
    size_t pmsg2_len[CG_DKG_MAX_N];
    const uint8_t *pmsg2_ptr[CG_DKG_MAX_N];
    uint8_t cmsg2[CG_DKG_CMSG2_MAX];
    size_t cmsg2_len;
    cg_dkg_output pout[CG_DKG_MAX_N], cout;
    uint8_t prec[CG_DKG_MAX_N][CG_DKG_RECOVERY_MAX], crec[CG_DKG_RECOVERY_MAX];
    size_t prec_len[CG_DKG_MAX_N], crec_len;
    cg_dkg_pinv inv;
    cg_dkg_scratch scratch;
} session;

static session *session_new(uint32_t n, uint32_t t)
{
    session *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->n = n;
    s->t = t;
    s->params.n = n;
    s->params.t = t;
    for (uint32_t i = 0; i < n; i++) {
        do
            cx_random(s->sk[i], 32);
        while (!cx_scalar_check(s->sk[i]) || cx_scalar_is_zero(s->sk[i]));
        assert_int_equal(cg_dkg_hostpubkey_gen(s->params.hostpubkeys[i], s->sk[i], 32, NULL),
                         RT_OK);
    }
    return s;
}

static void session_free(session *s)
{
    cg_dkg_wipe(s, sizeof *s);
    free(s);
}

static void round1(session *s)
{
    cg_dkg_error err;
    for (uint32_t i = 0; i < s->n; i++) {
        uint8_t rnd[32];
        cx_random(rnd, 32);
        assert_int_equal(cg_dkg_participant_step1(&s->st1[i], s->pmsg1[i], sizeof s->pmsg1[i],
                                                  &s->pmsg1_len[i], s->sk[i], 32, &s->params, rnd,
                                                  32, &err),
                         RT_OK);
        assert_int_equal(s->pmsg1_len[i], CG_DKG_PMSG1_LEN(s->t, s->n));
        s->pmsg1_ptr[i] = s->pmsg1[i];
    }
    assert_int_equal(cg_dkg_coordinator_step1(&s->cst, s->cmsg1, sizeof s->cmsg1, &s->cmsg1_len,
                                              s->pmsg1_ptr, s->pmsg1_len, s->n, &s->params, &err),
                     RT_OK);
    assert_int_equal(s->cmsg1_len, CG_DKG_CMSG1_LEN(s->t, s->n));
}

static void round2(session *s)
{
    cg_dkg_error err;
    for (uint32_t i = 0; i < s->n; i++) {
        uint8_t aux[32];
        cx_random(aux, 32);
        assert_int_equal(cg_dkg_participant_step2(&s->st2[i], s->pmsg2[i], s->sk[i], 32, &s->st1[i],
                                                  s->cmsg1, s->cmsg1_len, aux, 32, NULL, &err),
                         RT_OK);
        s->pmsg2_len[i] = 64;
        s->pmsg2_ptr[i] = s->pmsg2[i];
    }
}

static void finalize_all(session *s)
{
    cg_dkg_error err;
    assert_int_equal(cg_dkg_coordinator_finalize(s->cmsg2, sizeof s->cmsg2, &s->cmsg2_len, &s->cout,
                                                 s->crec, sizeof s->crec, &s->crec_len, &s->cst,
                                                 s->pmsg2_ptr, s->pmsg2_len, s->n, &err),
                     RT_OK);
    for (uint32_t i = 0; i < s->n; i++)
        assert_int_equal(cg_dkg_participant_finalize(&s->pout[i], s->prec[i], sizeof s->prec[i],
                                                     &s->prec_len[i], &s->st2[i], s->cmsg2,
                                                     s->cmsg2_len, &err),
                         RT_OK);
}

/* Lagrange coefficient of x_i = i+1 over the participant set ids (x = id+1), at 0. */
static void lagrange(uint8_t out[32], const uint32_t *ids, uint32_t count, uint32_t i)
{
    uint8_t num[32] = {0}, den[32] = {0}, xj[32], xi[32], d[32];
    num[31] = 1;
    den[31] = 1;
    memset(xi, 0, 32);
    xi[31] = (uint8_t)(i + 1);
    for (uint32_t k = 0; k < count; k++) {
        if (ids[k] == i) continue;
        memset(xj, 0, 32);
        xj[31] = (uint8_t)(ids[k] + 1);
        assert_true(cx_scalar_mul(num, num, xj));
        assert_true(cx_scalar_neg(d, xi));
        assert_true(cx_scalar_add(d, xj, d));
        assert_true(cx_scalar_mul(den, den, d));
    }
    assert_true(cx_scalar_inv(den, den));
    assert_true(cx_scalar_mul(out, num, den));
}

/* Every party agrees, and any t shares reconstruct the threshold key. */
static void check_outputs(session *s)
{
    uint8_t P[64], Q[64], x[32], l[32], term[32];
    uint32_t ids[CG_DKG_MAX_N];

    assert_false(s->cout.has_secshare);
    for (uint32_t i = 0; i < s->n; i++) {
        const cg_dkg_output *o = &s->pout[i];
        assert_true(o->has_secshare);
        assert_int_equal(o->n, s->n);
        assert_memory_equal(o->threshold_pubkey, s->cout.threshold_pubkey, 33);
        assert_memory_equal(o->pubshares, s->cout.pubshares, 33 * s->n);
        assert_int_equal(s->prec_len[i], CG_DKG_RECOVERY_LEN(s->t, s->n));
        assert_int_equal(s->prec_len[i], s->crec_len);
        assert_memory_equal(s->prec[i], s->crec, s->crec_len);
        assert_true(cx_point_mul_base(P, o->secshare));
        assert_true(cx_point_parse(Q, o->pubshares[i], 0));
        assert_true(cx_point_eq(P, Q));
    }
    /* the last t participants (a different subset than the first t when t < n) */
    memset(x, 0, 32);
    for (uint32_t k = 0; k < s->t; k++)
        ids[k] = s->n - s->t + k;
    for (uint32_t k = 0; k < s->t; k++) {
        lagrange(l, ids, s->t, ids[k]);
        assert_true(cx_scalar_mul(term, l, s->pout[ids[k]].secshare));
        assert_true(cx_scalar_add(x, x, term));
    }
    assert_true(cx_point_mul_base(P, x));
    assert_true(cx_point_parse(Q, s->cout.threshold_pubkey, 0));
    assert_true(cx_point_eq(P, Q));
    cg_dkg_wipe(x, sizeof x);
    cg_dkg_wipe(term, sizeof term);
}

static void check_recovery(session *s)
{
    cg_dkg_output out;
    cg_dkg_params p;
    cg_dkg_error err;
    for (uint32_t i = 0; i < s->n; i++) {
        assert_int_equal(
            cg_dkg_recover(&out, &p, s->sk[i], 32, s->crec, s->crec_len, &s->scratch, &err), RT_OK);
        assert_memory_equal(&out, &s->pout[i], sizeof out - sizeof out.pubshares);
        assert_memory_equal(out.pubshares, s->pout[i].pubshares, 33 * s->n);
        assert_int_equal(p.n, s->n);
        assert_int_equal(p.t, s->t);
        assert_memory_equal(p.hostpubkeys, s->params.hostpubkeys, 33 * s->n);
    }
    assert_int_equal(cg_dkg_recover(&out, &p, NULL, 0, s->crec, s->crec_len, &s->scratch, &err),
                     RT_OK);
    assert_false(out.has_secshare);
    assert_memory_equal(out.threshold_pubkey, s->cout.threshold_pubkey, 33);
    cg_dkg_wipe(&out, sizeof out);
}

static void full_session(uint32_t n, uint32_t t)
{
    session *s = session_new(n, t);
    uint8_t h0[32], h1[32];
    assert_int_equal(cg_dkg_params_hash(h0, &s->params, NULL), RT_OK);
    round1(s);
    round2(s);
    finalize_all(s);
    check_outputs(s);
    check_recovery(s);
    /* The parameters hash is what users compare out of band: it changes with t. */
    s->params.t = t == 1 ? 2 : 1;
    if (s->params.t <= n) {
        assert_int_equal(cg_dkg_params_hash(h1, &s->params, NULL), RT_OK);
        assert_memory_not_equal(h0, h1, 32);
    }
    session_free(s);
}

static void test_session_2_of_2(void **state)
{
    (void)state;
    full_session(2, 2);
}

static void test_session_2_of_3(void **state)
{
    (void)state;
    full_session(3, 2);
}

static void test_session_other_shapes(void **state)
{
    (void)state;
    full_session(1, 1);
    full_session(5, 3);
    full_session(4, 4);
}

static void test_session_max_n(void **state)
{
    (void)state;
    full_session(CG_DKG_MAX_N, 17);
}

/* n beyond the supported bound is refused up front, with its own kind. */
static void test_too_many_participants(void **state)
{
    (void)state;
    cg_dkg_params p;
    cg_dkg_error err;
    uint8_t h[32];
    memset(&p, 0, sizeof p);
    p.n = CG_DKG_MAX_N + 1;
    p.t = 2;
    assert_int_equal(cg_dkg_params_hash(h, &p, &err), RT_OUT_OF_RANGE);
    assert_int_equal(err.kind, CG_DKG_ERR_TOO_MANY);
    p.n = 3;
    p.t = 4;
    assert_int_equal(cg_dkg_params_validate(&p, &err), RT_INVALID_ARGUMENT);
    assert_int_equal(err.kind, CG_DKG_ERR_THRESHOLD_OR_COUNT);
}

/* A participant's bad certificate signature is blamed on it by the coordinator. */
static void test_bad_pmsg2_blamed(void **state)
{
    (void)state;
    session *s = session_new(3, 2);
    cg_dkg_error err;
    round1(s);
    round2(s);
    s->pmsg2[2][10] ^= 1;
    assert_int_equal(cg_dkg_coordinator_finalize(s->cmsg2, sizeof s->cmsg2, &s->cmsg2_len, &s->cout,
                                                 s->crec, sizeof s->crec, &s->crec_len, &s->cst,
                                                 s->pmsg2_ptr, s->pmsg2_len, s->n, &err),
                     RT_ABORTED);
    assert_int_equal(err.kind, CG_DKG_ERR_FAULTY_PARTICIPANT);
    assert_int_equal(err.participant, 2);
    session_free(s);
}

/* A participant that encrypts a wrong share to another is found through the
 * investigation: step 2 cannot tell who, the coordinator's cinv can. */
static void test_bad_share_investigated(void **state)
{
    (void)state;
    session *s = session_new(3, 2);
    cg_dkg_error err;
    uint8_t one[32] = {0}, aux[32] = {0}, pmsg2[64];
    uint8_t *cinvs = malloc(CG_DKG_MAX_N * CG_DKG_CINV_MAX);
    size_t cinvs_len;
    one[31] = 1;
    for (uint32_t i = 0; i < s->n; i++) {
        uint8_t rnd[32];
        cx_random(rnd, 32);
        assert_int_equal(cg_dkg_participant_step1(&s->st1[i], s->pmsg1[i], sizeof s->pmsg1[i],
                                                  &s->pmsg1_len[i], s->sk[i], 32, &s->params, rnd,
                                                  32, NULL),
                         RT_OK);
        s->pmsg1_ptr[i] = s->pmsg1[i];
    }
    /* participant 1 adds 1 to its encrypted share for participant 0 */
    uint8_t *enc10 = s->pmsg1[1] + 33 * s->t + 97;
    assert_true(cx_scalar_add(enc10, enc10, one));
    assert_int_equal(cg_dkg_coordinator_step1(&s->cst, s->cmsg1, sizeof s->cmsg1, &s->cmsg1_len,
                                              s->pmsg1_ptr, s->pmsg1_len, s->n, &s->params, &err),
                     RT_OK);
    assert_int_equal(cg_dkg_participant_step2(&s->st2[0], pmsg2, s->sk[0], 32, &s->st1[0], s->cmsg1,
                                              s->cmsg1_len, aux, 32, &s->inv, &err),
                     RT_ABORTED);
    assert_int_equal(err.kind, CG_DKG_ERR_UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR);
    /* the state was consumed by the fault: a retry is refused */
    assert_int_equal(cg_dkg_participant_step2(&s->st2[0], pmsg2, s->sk[0], 32, &s->st1[0], s->cmsg1,
                                              s->cmsg1_len, aux, 32, NULL, &err),
                     RT_INVALID_ARGUMENT);
    /* participant 2 is unaffected */
    assert_int_equal(cg_dkg_participant_step2(&s->st2[2], pmsg2, s->sk[2], 32, &s->st1[2], s->cmsg1,
                                              s->cmsg1_len, aux, 32, NULL, &err),
                     RT_OK);
    assert_int_equal(cg_dkg_coordinator_investigate(cinvs, CG_DKG_MAX_N * CG_DKG_CINV_MAX,
                                                    &cinvs_len, s->pmsg1_ptr, s->pmsg1_len, s->n,
                                                    &s->params, &err),
                     RT_OK);
    assert_int_equal(cinvs_len, s->n * CG_DKG_CINV_LEN(s->n));
    assert_int_equal(cg_dkg_participant_investigate(&s->inv, cinvs, CG_DKG_CINV_LEN(s->n), &err),
                     RT_ABORTED);
    assert_int_equal(err.kind, CG_DKG_ERR_FAULTY_PARTICIPANT_OR_COORDINATOR);
    assert_int_equal(err.participant, 1);
    free(cinvs);
    session_free(s);
}

/* Secrets do not survive in a consumed state. */
static void test_step2_consumes_state(void **state)
{
    (void)state;
    session *s = session_new(2, 2);
    cg_dkg_error err;
    uint8_t aux[32] = {1}, pmsg2[64];
    round1(s);
    assert_int_equal(cg_dkg_participant_step2(&s->st2[0], pmsg2, s->sk[0], 32, &s->st1[0], s->cmsg1,
                                              s->cmsg1_len, aux, 32, NULL, &err),
                     RT_OK);
    static const cg_dkg_pstate1 zero;
    assert_memory_equal(&s->st1[0], &zero, sizeof zero);
    assert_int_equal(cg_dkg_participant_step2(&s->st2[0], pmsg2, s->sk[0], 32, &s->st1[0], s->cmsg1,
                                              s->cmsg1_len, aux, 32, NULL, &err),
                     RT_INVALID_ARGUMENT);
    session_free(s);
}

/* Mutated messages (flipped bytes, wrong lengths) at every entry point: never
 * a crash or an out-of-bounds access (ASan), always a defined verdict, and a
 * blamed index is always a real participant. */
static uint32_t rnd32(void)
{
    uint32_t v;
    cx_random((uint8_t *)&v, sizeof v);
    return v;
}

static size_t mutate(uint8_t *dst, const uint8_t *src, size_t len, size_t cap)
{
    size_t out = len;
    memcpy(dst, src, len);
    switch (rnd32() % 4) {
    case 0: /* shorter */
        out = len ? rnd32() % len : 0;
        break;
    case 1: /* longer */
        out = len + 1 + rnd32() % 64;
        if (out > cap) out = cap;
        for (size_t i = len; i < out; i++)
            dst[i] = (uint8_t)rnd32();
        break;
    default: /* 1-3 flipped bytes */
        for (uint32_t k = 1 + rnd32() % 3; k-- > 0 && len;)
            dst[rnd32() % len] ^= (uint8_t)(1 + rnd32() % 255);
        break;
    }
    return out;
}

static void check_verdict(rt_status st, const cg_dkg_error *err, uint32_t n)
{
    assert_true(st == RT_OK || st == RT_INVALID_ARGUMENT || st == RT_ABORTED);
    if (st == RT_ABORTED && err->kind != CG_DKG_ERR_FAULTY_COORDINATOR &&
        err->kind != CG_DKG_ERR_UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR) {
        assert_true(err->participant >= 0);
        assert_true((uint32_t)err->participant < n);
    }
}

static void test_mutated_messages(void **state)
{
    (void)state;
    session *s = session_new(3, 2);
    static cg_dkg_pstate1 st1;
    static cg_dkg_pstate2 st2;
    static cg_dkg_cstate cst;
    static uint8_t buf[CG_DKG_RECOVERY_MAX + 64], out2[CG_DKG_RECOVERY_MAX];
    static uint8_t cinvs[CG_DKG_MAX_N * CG_DKG_CINV_MAX];
    cg_dkg_output out;
    cg_dkg_params p;
    cg_dkg_error err;
    uint8_t aux[32] = {3}, pmsg2[64];
    size_t len, olen, olen2;
    int iters = CG_SANITIZE_ADDRESS ? 150 : 600;

    round1(s);
    st1 = s->st1[0];
    round2(s);
    finalize_all(s);
    assert_int_equal(cg_dkg_coordinator_investigate(cinvs, sizeof cinvs, &olen, s->pmsg1_ptr,
                                                    s->pmsg1_len, s->n, &s->params, &err),
                     RT_OK);
    for (int it = 0; it < iters; it++) {
        /* participant step 2 on a mutated cmsg1 */
        cg_dkg_pstate1 copy = st1;
        len = mutate(buf, s->cmsg1, s->cmsg1_len, sizeof buf);
        rt_status st = cg_dkg_participant_step2(&st2, pmsg2, s->sk[0], 32, &copy, buf, len, aux, 32,
                                                &s->inv, &err);
        check_verdict(st, &err, s->n);
        if (st == RT_ABORTED && err.kind == CG_DKG_ERR_UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR) {
            len = mutate(buf, cinvs, CG_DKG_CINV_LEN(s->n), sizeof buf);
            st = cg_dkg_participant_investigate(&s->inv, buf, len, &err);
            check_verdict(st, &err, s->n);
        }

        /* coordinator step 1 with one mutated pmsg1 */
        uint32_t victim = rnd32() % s->n;
        const uint8_t *ptrs[3] = {s->pmsg1[0], s->pmsg1[1], s->pmsg1[2]};
        size_t lens[3] = {s->pmsg1_len[0], s->pmsg1_len[1], s->pmsg1_len[2]};
        lens[victim] = mutate(buf, s->pmsg1[victim], s->pmsg1_len[victim], sizeof buf);
        ptrs[victim] = buf;
        st = cg_dkg_coordinator_step1(&cst, out2, sizeof out2, &olen, ptrs, lens, s->n, &s->params,
                                      &err);
        check_verdict(st, &err, s->n);
        st = cg_dkg_coordinator_investigate(cinvs + CG_DKG_CINV_MAX * 4, sizeof cinvs / 2, &olen,
                                            ptrs, lens, s->n, &s->params, &err);
        check_verdict(st, &err, s->n);

        /* finalize on a mutated certificate */
        len = mutate(buf, s->cmsg2, s->cmsg2_len, sizeof buf);
        st = cg_dkg_participant_finalize(&out, out2, sizeof out2, &olen2, &s->st2[1], buf, len,
                                         &err);
        check_verdict(st, &err, s->n);
        assert_true(st != RT_OK || len == s->cmsg2_len);

        /* recovery from mutated data, as a participant and as the coordinator */
        len = mutate(buf, s->crec, s->crec_len, sizeof buf);
        st = cg_dkg_recover(&out, &p, (it & 1) ? s->sk[1] : NULL, (it & 1) ? 32 : 0, buf, len,
                            &s->scratch, &err);
        assert_true(st == RT_OK || st == RT_INVALID_ARGUMENT || st == RT_OUT_OF_RANGE);
        if (st == RT_OK) assert_memory_equal(out.threshold_pubkey, s->cout.threshold_pubkey, 33);
    }
    cg_dkg_wipe(&st2, sizeof st2);
    cg_dkg_wipe(&out, sizeof out);
    session_free(s);
}

int main(void)
{
    cx_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_2_of_2),         cmocka_unit_test(test_session_2_of_3),
        cmocka_unit_test(test_session_other_shapes),   cmocka_unit_test(test_session_max_n),
        cmocka_unit_test(test_too_many_participants),  cmocka_unit_test(test_bad_pmsg2_blamed),
        cmocka_unit_test(test_bad_share_investigated), cmocka_unit_test(test_step2_consumes_state),
        cmocka_unit_test(test_mutated_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
