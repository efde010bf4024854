/*
 * fuzz_proto.c — the ChillDKG and BIP 445 message parsers (cg_dkg.h,
 * cg_frost.h): every message a device sends reaches one of them.
 *
 * A valid 2-of-3 ChillDKG session and a signing session are run once at
 * start-up; each input then replaces ONE message of that session with the
 * fuzzed bytes, so the parser under test sees otherwise valid context and
 * the fuzzer gets past the early length checks into point and signature
 * validation:
 *
 *   byte 0: which entry point (op below), byte 1: which participant/slot,
 *   rest: the message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_dkg.h"
#include "cg_frost.h"
#include "cx.h"
#include "fuzz.h"

#define N 3
#define T 2

enum {
    OP_PMSG1,       /* coordinator_step1 with one participant's pmsg1 replaced */
    OP_CMSG1,       /* participant_step2 on a fuzzed cmsg1 */
    OP_PMSG2,       /* coordinator_finalize with one pmsg2 replaced */
    OP_CMSG2,       /* participant_finalize on a fuzzed cmsg2 */
    OP_RECOVERY,    /* recover (coordinator or participant) from fuzzed recovery data */
    OP_INVESTIGATE, /* coordinator_investigate with one pmsg1 replaced */
    OP_PUBNONCE,    /* pubnonce_check and nonce_agg on fuzzed pubnonces */
    OP_AGGNONCE,    /* session_init on a fuzzed aggnonce (+ tweak, msg) */
    OP_PSIG,        /* partial_sig_verify / partial_sig_agg on a fuzzed psig */
    OP_SIGNERS,     /* signers_init from fuzzed ids and pubshares */
    OP_COUNT_
};

static struct {
    int ready;
    cg_dkg_params params;
    uint8_t sk[N][32];
    uint8_t pmsg1[N][CG_DKG_PMSG1_LEN(T, N)];
    cg_dkg_pstate1 st1[N];
    cg_dkg_cstate cst;
    uint8_t cmsg1[CG_DKG_CMSG1_LEN(T, N)];
    cg_dkg_pstate2 st2[N];
    uint8_t pmsg2[N][64];
    uint8_t cmsg2[CG_DKG_CMSG2_LEN(N)];
    uint8_t recovery[CG_DKG_RECOVERY_LEN(T, N)];
    cg_dkg_output out[N];
    cg_frost_signers signers;
    cg_frost_tweak_ctx tc;
    uint8_t pubnonce[T][66];
    uint8_t aggnonce[66];
    cg_frost_session sess;
    uint8_t psig[T][32];
} S;

/* Scratch big enough for any state copy; static (the structs are KiBs). */
static cg_dkg_pstate1 w_st1;
static cg_dkg_pstate2 w_st2;
static cg_dkg_cstate w_cst;
static cg_dkg_output w_out;
static cg_dkg_params w_params;
static cg_dkg_scratch w_scratch;
static uint8_t w_big[CG_DKG_RECOVERY_MAX + CG_DKG_CMSG1_MAX];
static uint8_t w_cinv[N * CG_DKG_CINV_LEN(N)];

static void setup(void)
{
    if (S.ready) return;
    FUZZ_CHECK(cx_init());
    cg_dkg_error e;
    S.params.n = N;
    S.params.t = T;
    for (int i = 0; i < N; i++) {
        memset(S.sk[i], 0x21 + i, 32); /* fixed: reproducible inputs */
        FUZZ_CHECK(cg_dkg_hostpubkey_gen(S.params.hostpubkeys[i], S.sk[i], 32, &e) == RT_OK);
    }
    const uint8_t *p1[N];
    size_t l1[N];
    for (int i = 0; i < N; i++) {
        uint8_t rnd[32];
        size_t len;
        memset(rnd, 0x51 + i, 32);
        FUZZ_CHECK(cg_dkg_participant_step1(&S.st1[i], S.pmsg1[i], sizeof S.pmsg1[i], &len, S.sk[i],
                                            32, &S.params, rnd, 32, &e) == RT_OK);
        p1[i] = S.pmsg1[i];
        l1[i] = len;
    }
    size_t len;
    FUZZ_CHECK(cg_dkg_coordinator_step1(&S.cst, S.cmsg1, sizeof S.cmsg1, &len, p1, l1, N, &S.params,
                                        &e) == RT_OK);
    const uint8_t *p2[N];
    size_t l2[N];
    for (int i = 0; i < N; i++) {
        uint8_t aux[32];
        memset(aux, 0x61 + i, 32);
        cg_dkg_pstate1 st1 = S.st1[i]; /* step 2 consumes it; keep the template */
        FUZZ_CHECK(cg_dkg_participant_step2(&S.st2[i], S.pmsg2[i], S.sk[i], 32, &st1, S.cmsg1,
                                            sizeof S.cmsg1, aux, 32, NULL, &e) == RT_OK);
        p2[i] = S.pmsg2[i];
        l2[i] = 64;
    }
    w_cst = S.cst;
    FUZZ_CHECK(cg_dkg_coordinator_finalize(S.cmsg2, sizeof S.cmsg2, &len, &w_out, S.recovery,
                                           sizeof S.recovery, &len, &w_cst, p2, l2, N,
                                           &e) == RT_OK);
    for (int i = 0; i < N; i++) {
        w_st2 = S.st2[i];
        FUZZ_CHECK(cg_dkg_participant_finalize(&S.out[i], w_big, sizeof w_big, &len, &w_st2,
                                               S.cmsg2, sizeof S.cmsg2, &e) == RT_OK);
    }
    /* Signing by participants 0 and 2. */
    cg_frost_error fe;
    uint32_t ids[T] = {0, 2};
    uint8_t ps[T][33];
    memcpy(ps[0], S.out[0].pubshares[0], 33);
    memcpy(ps[1], S.out[0].pubshares[2], 33);
    FUZZ_CHECK(cg_frost_signers_init(&S.signers, N, T, ids, (const uint8_t(*)[33])ps, T,
                                     S.out[0].threshold_pubkey, &fe) == RT_OK);
    FUZZ_CHECK(cg_frost_tweak_init(&S.tc, S.out[0].threshold_pubkey, &fe) == RT_OK);
    FUZZ_CHECK(cg_frost_tweak_apply_taproot(&S.tc, NULL, &fe) == RT_OK);
    cg_frost_secnonce sn[T];
    static const uint8_t msg[32] = {1, 2, 3};
    for (int k = 0; k < T; k++) {
        uint8_t rnd[32];
        memset(rnd, 0x71 + k, 32);
        FUZZ_CHECK(cg_frost_nonce_gen_internal(&sn[k], S.pubnonce[k], rnd, S.out[ids[k]].secshare,
                                               S.out[ids[k]].pubshares[ids[k]], NULL, msg, 32, NULL,
                                               0, &fe) == RT_OK);
    }
    FUZZ_CHECK(cg_frost_nonce_agg(S.aggnonce, (const uint8_t(*)[66])S.pubnonce, T, &fe) == RT_OK);
    FUZZ_CHECK(cg_frost_session_init(&S.sess, &S.signers, &S.tc, S.aggnonce, msg, 32, &fe) ==
               RT_OK);
    for (int k = 0; k < T; k++)
        FUZZ_CHECK(cg_frost_sign(S.psig[k], &sn[k], S.out[ids[k]].secshare, ids[k], &S.sess, &fe) ==
                   RT_OK);
    S.ready = 1;
}

static void check_dkg_err(rt_status st, const cg_dkg_error *e)
{
    /* Protocol errors are verdicts, never crashes; a verdict names a real
     * participant when it names one. */
    if (st == RT_OK) return;
    FUZZ_CHECK(e->kind > CG_DKG_ERR_NONE && e->kind < CG_DKG_ERR_KIND_COUNT_);
    FUZZ_CHECK(e->participant >= -1 && e->participant < N);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 2) return 0;
    unsigned op = data[0] % OP_COUNT_, slot = data[1] % N;
    const uint8_t *m = data + 2;
    size_t ml = size - 2;
    cg_dkg_error e;
    cg_frost_error fe;
    size_t len;
    rt_status st;
    const uint8_t *p[N];
    size_t l[N];
    switch (op) {
    case OP_PMSG1:
    case OP_INVESTIGATE:
        for (int i = 0; i < N; i++) {
            p[i] = S.pmsg1[i];
            l[i] = sizeof S.pmsg1[i];
        }
        p[slot] = m;
        l[slot] = ml;
        if (op == OP_PMSG1)
            st =
                cg_dkg_coordinator_step1(&w_cst, w_big, sizeof w_big, &len, p, l, N, &S.params, &e);
        else
            st =
                cg_dkg_coordinator_investigate(w_cinv, sizeof w_cinv, &len, p, l, N, &S.params, &e);
        check_dkg_err(st, &e);
        break;
    case OP_CMSG1: {
        uint8_t pmsg2[64], aux[32] = {9};
        cg_dkg_pinv inv;
        w_st1 = S.st1[slot];
        st = cg_dkg_participant_step2(&w_st2, pmsg2, S.sk[slot], 32, &w_st1, m, ml, aux, 32, &inv,
                                      &e);
        check_dkg_err(st, &e);
        if (st == RT_ABORTED && e.kind == CG_DKG_ERR_UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR) {
            /* Follow the investigation with the coordinator's real cinv. */
            for (int i = 0; i < N; i++) {
                p[i] = S.pmsg1[i];
                l[i] = sizeof S.pmsg1[i];
            }
            if (cg_dkg_coordinator_investigate(w_cinv, sizeof w_cinv, &len, p, l, N, &S.params,
                                               &e) == RT_OK) {
                st = cg_dkg_participant_investigate(&inv, w_cinv + slot * CG_DKG_CINV_LEN(N),
                                                    CG_DKG_CINV_LEN(N), &e);
                FUZZ_CHECK(st != RT_OK);
            }
        }
        cg_dkg_wipe(&inv, sizeof inv);
        break;
    }
    case OP_PMSG2:
        for (int i = 0; i < N; i++) {
            p[i] = S.pmsg2[i];
            l[i] = 64;
        }
        p[slot] = m;
        l[slot] = ml;
        w_cst = S.cst;
        st =
            cg_dkg_coordinator_finalize(w_big, sizeof w_big, &len, &w_out, w_big + CG_DKG_CMSG2_MAX,
                                        sizeof w_big - CG_DKG_CMSG2_MAX, &len, &w_cst, p, l, N, &e);
        check_dkg_err(st, &e);
        break;
    case OP_CMSG2:
        w_st2 = S.st2[slot];
        st = cg_dkg_participant_finalize(&w_out, w_big, sizeof w_big, &len, &w_st2, m, ml, &e);
        check_dkg_err(st, &e);
        if (st == RT_OK) /* only the real certificate may pass */
            FUZZ_CHECK(ml == sizeof S.cmsg2 && !memcmp(m, S.cmsg2, ml));
        break;
    case OP_RECOVERY:
        if (data[1] & 0x80)
            st = cg_dkg_recover(&w_out, &w_params, NULL, 0, m, ml, &w_scratch, &e);
        else
            st = cg_dkg_recover(&w_out, &w_params, S.sk[slot], 32, m, ml, &w_scratch, &e);
        if (st == RT_OK)
            FUZZ_CHECK(w_params.n >= 1 && w_params.t <= w_params.n && w_params.n <= CG_DKG_MAX_N);
        else
            FUZZ_CHECK(e.kind > CG_DKG_ERR_NONE && e.kind < CG_DKG_ERR_KIND_COUNT_);
        break;
    case OP_PUBNONCE: {
        uint8_t pn[CG_FROST_MAX_SIGNERS][66], agg[66];
        size_t count = ml / 66;
        if (count > CG_FROST_MAX_SIGNERS) count = CG_FROST_MAX_SIGNERS;
        if (count == 0) break;
        memcpy(pn, m, count * 66);
        for (size_t k = 0; k < count; k++)
            (void)cg_frost_pubnonce_check(pn[k]);
        st = cg_frost_nonce_agg(agg, (const uint8_t(*)[66])pn, count, &fe);
        if (st != RT_OK && fe.kind == CG_FROST_ERR_INVALID_CONTRIBUTION)
            FUZZ_CHECK(fe.signer >= 0 && (size_t)fe.signer < count);
        break;
    }
    case OP_AGGNONCE: {
        if (ml < 66 + 32) break;
        cg_frost_tweak_ctx tc = S.tc;
        cg_frost_session sess;
        if (cg_frost_tweak_apply(&tc, m + 66, 32, data[1] & 1, &fe) != RT_OK) break;
        st = cg_frost_session_init(&sess, &S.signers, &tc, m, m + 98, ml - 98, &fe);
        if (st == RT_OK) (void)cg_frost_partial_sig_verify(&sess, S.psig[0], S.pubnonce[0], 0, &fe);
        break;
    }
    case OP_PSIG: {
        if (ml < 32) break;
        uint8_t psigs[T][32], sig[64];
        memcpy(psigs, S.psig, sizeof psigs);
        memcpy(psigs[slot % T], m, 32);
        const uint8_t *pn = ml >= 98 ? m + 32 : S.pubnonce[slot % T];
        st = cg_frost_partial_sig_verify(&S.sess, m, pn, slot % T, &fe);
        if (st == RT_OK && ml < 98) FUZZ_CHECK(!memcmp(m, S.psig[slot % T], 32));
        if (cg_frost_partial_sig_agg(sig, &S.sess, (const uint8_t(*)[32])psigs, T, &fe) == RT_OK &&
            cg_frost_verify(&S.sess, sig, (const uint8_t[32]){1, 2, 3}, 32) == RT_OK)
            FUZZ_CHECK(!memcmp(m, S.psig[slot % T], 32)); /* only the real psig verifies */
        break;
    }
    case OP_SIGNERS: {
        /* k ids (one byte each), then k pubshares. */
        if (ml < 1) break;
        size_t k = m[0] % (CG_FROST_MAX_SIGNERS + 2);
        if (ml < 1 + k + 33 * k) break;
        uint32_t ids[CG_FROST_MAX_SIGNERS + 2];
        uint8_t ps[CG_FROST_MAX_SIGNERS + 2][33];
        for (size_t i = 0; i < k; i++) {
            ids[i] = m[1 + i];
            memcpy(ps[i], m + 1 + k + 33 * i, 33);
        }
        cg_frost_signers s;
        (void)cg_frost_signers_init(&s, N, T, ids, (const uint8_t(*)[33])ps, k,
                                    S.out[0].threshold_pubkey, &fe);
        break;
    }
    }
    return 0;
}

static int seed(const char *dir, const char *name, unsigned op, unsigned slot, const uint8_t *m,
                size_t ml)
{
    uint8_t *b = malloc(ml + 2);
    if (!b) return 0;
    b[0] = (uint8_t)op;
    b[1] = (uint8_t)slot;
    memcpy(b + 2, m, ml);
    int ok = fuzz_seed(dir, name, b, ml + 2);
    free(b);
    return ok;
}

int fuzz_write_seeds(const char *dir)
{
    setup();
    int n = 0;
    char name[64];
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof name, "pmsg1_%u", i);
        n += seed(dir, name, OP_PMSG1, i, S.pmsg1[i], sizeof S.pmsg1[i]);
        snprintf(name, sizeof name, "cmsg1_%u", i);
        n += seed(dir, name, OP_CMSG1, i, S.cmsg1, sizeof S.cmsg1);
        snprintf(name, sizeof name, "pmsg2_%u", i);
        n += seed(dir, name, OP_PMSG2, i, S.pmsg2[i], 64);
        snprintf(name, sizeof name, "cmsg2_%u", i);
        n += seed(dir, name, OP_CMSG2, i, S.cmsg2, sizeof S.cmsg2);
        snprintf(name, sizeof name, "recovery_%u", i);
        n += seed(dir, name, OP_RECOVERY, i, S.recovery, sizeof S.recovery);
        snprintf(name, sizeof name, "investigate_%u", i);
        n += seed(dir, name, OP_INVESTIGATE, i, S.pmsg1[i], sizeof S.pmsg1[i]);
    }
    n += seed(dir, "recovery_coordinator", OP_RECOVERY, 0x80, S.recovery, sizeof S.recovery);
    n += seed(dir, "pubnonces", OP_PUBNONCE, 0, S.pubnonce[0], sizeof S.pubnonce);
    uint8_t agg[66 + 32 + 32] = {0};
    memcpy(agg, S.aggnonce, 66);
    n += seed(dir, "aggnonce", OP_AGGNONCE, 1, agg, sizeof agg);
    for (unsigned k = 0; k < T; k++) {
        uint8_t b[32 + 66];
        memcpy(b, S.psig[k], 32);
        memcpy(b + 32, S.pubnonce[k], 66);
        snprintf(name, sizeof name, "psig_%u", k);
        n += seed(dir, name, OP_PSIG, k, b, 32);
        snprintf(name, sizeof name, "psig_pubnonce_%u", k);
        n += seed(dir, name, OP_PSIG, k, b, sizeof b);
    }
    uint8_t sg[1 + 2 + 66];
    sg[0] = 2;
    sg[1] = 0;
    sg[2] = 2;
    memcpy(sg + 3, S.out[0].pubshares[0], 33);
    memcpy(sg + 36, S.out[0].pubshares[2], 33);
    n += seed(dir, "signers", OP_SIGNERS, 0, sg, sizeof sg);
    return n;
}
