/*
 * crypto_bench_dkg.c — service CPU per ChillDKG session, next to its bound.
 *
 * The service is the coordinator and one participant of a 2-of-2 DKG with one
 * device. We time only the service's calls (participant step 1, coordinator
 * step 1, participant step 2, coordinator finalize, participant finalize) on
 * this thread's CPU clock; the device's steps run untimed in between.
 *
 * The bound is measured in the same run: the libsecp256k1 operations these
 * steps require, called directly, per role (n participants, threshold t):
 *   participant step 1:   (t+3) keygen (host key, enc. nonce, t coefficients,
 *                         pop nonce), n parses, n-1 ECDH multiplications
 *   coordinator step 1:   n + n t parses, t + 1 + n combines, 1 keygen
 *                         (Taproot tweak), n (t-1) multiplications (pubshares)
 *   participant step 2:   3 keygen (host key, tweak, share check),
 *                         n + t - 1 + n - 1 parses, n - 1 + n (t-1)
 *                         multiplications, n + 2 combines, n - 1 verifications
 *                         (pops), 1 signature (CertEq)
 *   coordinator finalize: n verifications (certificate)
 *   participant finalize: n verifications (certificate)
 * Hashing and serialisation are left out, so the bound is a little low.
 *
 * crypto_bench_dkg() prints the JSON line; the crypto bench can call it, and
 * built on its own (CRYPTO_BENCH_DKG_MAIN) this file is a program.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <secp256k1.h>
#include <secp256k1_schnorrsig.h>

#include "cg_cx.h"
#include "cg_dkg.h"

#define N 2u
#define T 2u
#define SERVICE 1u /* participant index of the service; 0 is the device */

static double thread_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what)
{
    fprintf(stderr, "crypto_bench_dkg: %s failed\n", what);
    exit(1);
}

typedef struct bench_state {
    uint8_t sk[N][32];
    cg_dkg_params params;
    cg_dkg_pstate1 st1[N];
    cg_dkg_pstate2 st2[N];
    cg_dkg_cstate cst;
    uint8_t pmsg1[N][CG_DKG_PMSG1_LEN(T, N)];
    size_t pmsg1_len[N];
    const uint8_t *pmsg1_ptr[N];
    uint8_t cmsg1[CG_DKG_CMSG1_LEN(T, N)];
    uint8_t pmsg2[N][64];
    size_t pmsg2_len[N];
    const uint8_t *pmsg2_ptr[N];
    uint8_t cmsg2[CG_DKG_CMSG2_LEN(N)];
    cg_dkg_output out[N], cout;
    uint8_t rec[N + 1][CG_DKG_RECOVERY_LEN(T, N)];
} bench_state;

/* One DKG; returns the CPU time of the service's calls. */
static double one_dkg(bench_state *b)
{
    uint8_t rnd[32], aux[32];
    size_t len;
    double t0, us = 0;

    for (uint32_t i = 0; i < N; i++) {
        cx_random(rnd, 32);
        t0 = thread_us();
        if (cg_dkg_participant_step1(&b->st1[i], b->pmsg1[i], sizeof b->pmsg1[i], &b->pmsg1_len[i],
                                     b->sk[i], 32, &b->params, rnd, 32, NULL) != RT_OK)
            die("participant_step1");
        if (i == SERVICE) us += thread_us() - t0;
        b->pmsg1_ptr[i] = b->pmsg1[i];
    }
    t0 = thread_us();
    if (cg_dkg_coordinator_step1(&b->cst, b->cmsg1, sizeof b->cmsg1, &len, b->pmsg1_ptr,
                                 b->pmsg1_len, N, &b->params, NULL) != RT_OK)
        die("coordinator_step1");
    us += thread_us() - t0;
    for (uint32_t i = 0; i < N; i++) {
        cx_random(aux, 32);
        t0 = thread_us();
        if (cg_dkg_participant_step2(&b->st2[i], b->pmsg2[i], b->sk[i], 32, &b->st1[i], b->cmsg1,
                                     sizeof b->cmsg1, aux, 32, NULL, NULL) != RT_OK)
            die("participant_step2");
        if (i == SERVICE) us += thread_us() - t0;
        b->pmsg2_len[i] = 64;
        b->pmsg2_ptr[i] = b->pmsg2[i];
    }
    t0 = thread_us();
    if (cg_dkg_coordinator_finalize(b->cmsg2, sizeof b->cmsg2, &len, &b->cout, b->rec[N],
                                    sizeof b->rec[N], &len, &b->cst, b->pmsg2_ptr, b->pmsg2_len, N,
                                    NULL) != RT_OK)
        die("coordinator_finalize");
    us += thread_us() - t0;
    for (uint32_t i = 0; i < N; i++) {
        t0 = thread_us();
        if (cg_dkg_participant_finalize(&b->out[i], b->rec[i], sizeof b->rec[i], &len, &b->st2[i],
                                        b->cmsg2, sizeof b->cmsg2, NULL) != RT_OK)
            die("participant_finalize");
        if (i == SERVICE) us += thread_us() - t0;
    }
    return us;
}

/* Operation counts of the bound (see the top comment). */
enum {
    OPS_KEYGEN = (T + 3) + 1 + 3,
    OPS_PARSE = N + (N + N * T) + (N + T - 1 + N - 1),
    OPS_MUL = (N - 1) + N * (T - 1) + (N - 1 + N * (T - 1)),
    OPS_COMBINE = (T + 1 + N) + (N + 2),
    OPS_VERIFY = (N - 1) + N + N,
    OPS_SIGN = 1,
};

/* CPU time of one DKG's worth of raw libsecp256k1 operations. */
static double one_bound(const secp256k1_context *ctx, const uint8_t sk[32], const uint8_t *msg,
                        size_t msg_len)
{
    secp256k1_pubkey pk, pk2, sum;
    secp256k1_keypair kp;
    secp256k1_xonly_pubkey xpk;
    uint8_t ser[33], sig[64], aux[32] = {7};
    size_t len = 33;
    const secp256k1_pubkey *ins[2] = {&pk, &pk2};
    int r = 1;

    if (!secp256k1_keypair_create(ctx, &kp, sk) ||
        !secp256k1_keypair_xonly_pub(ctx, &xpk, NULL, &kp))
        die("keypair");
    if (!secp256k1_ec_pubkey_create(ctx, &pk, sk) ||
        !secp256k1_ec_pubkey_serialize(ctx, ser, &len, &pk, SECP256K1_EC_COMPRESSED))
        die("pubkey");
    if (!secp256k1_schnorrsig_sign_custom(ctx, sig, msg, msg_len, &kp, NULL)) die("sign");

    double t0 = thread_us();
    for (int i = 0; i < OPS_KEYGEN; i++)
        r &= secp256k1_ec_pubkey_create(ctx, &pk2, sk);
    for (int i = 0; i < OPS_PARSE; i++)
        r &= secp256k1_ec_pubkey_parse(ctx, &pk, ser, 33);
    for (int i = 0; i < OPS_MUL; i++) {
        pk2 = pk;
        r &= secp256k1_ec_pubkey_tweak_mul(ctx, &pk2, sk);
    }
    for (int i = 0; i < OPS_COMBINE; i++)
        r &= secp256k1_ec_pubkey_combine(ctx, &sum, ins, 2);
    for (int i = 0; i < OPS_VERIFY; i++)
        r &= secp256k1_schnorrsig_verify(ctx, sig, msg, msg_len, &xpk);
    for (int i = 0; i < OPS_SIGN; i++) {
        secp256k1_schnorrsig_extraparams ep = SECP256K1_SCHNORRSIG_EXTRAPARAMS_INIT;
        ep.ndata = aux;
        r &= secp256k1_schnorrsig_sign_custom(ctx, sig, msg, msg_len, &kp, &ep);
    }
    double us = thread_us() - t0;
    if (!r) die("bound operations");
    return us;
}

int crypto_bench_dkg(FILE *out, int iterations)
{
    bench_state *b = calloc(1, sizeof *b);
    secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    uint8_t msg[CG_DKG_CERTEQ_PREFIX_LEN + CG_DKG_EQ_INPUT_LEN(T, N)];
    double cpu = 0, bound = 0;

    if (!b || !ctx || !cx_init()) die("setup");
    b->params.n = N;
    b->params.t = T;
    for (uint32_t i = 0; i < N; i++) {
        do
            cx_random(b->sk[i], 32);
        while (!cx_scalar_check(b->sk[i]) || cx_scalar_is_zero(b->sk[i]));
        if (cg_dkg_hostpubkey_gen(b->params.hostpubkeys[i], b->sk[i], 32, NULL) != RT_OK)
            die("hostpubkey_gen");
    }
    cx_random(msg, sizeof msg);
    one_dkg(b); /* warm-up */
    one_bound(ctx, b->sk[SERVICE], msg, sizeof msg);
    for (int it = 0; it < iterations; it++) {
        cpu += one_dkg(b);
        bound += one_bound(ctx, b->sk[SERVICE], msg, sizeof msg);
    }
    cpu /= iterations;
    bound /= iterations;
    fprintf(out, "{\"workload\":\"dkg\",\"cpu_us\":%.1f,\"bound_us\":%.1f,\"ratio\":%.2f}\n", cpu,
            bound, cpu / bound);
    secp256k1_context_destroy(ctx);
    cg_dkg_wipe(b, sizeof *b);
    free(b);
    return 0;
}

#ifdef CRYPTO_BENCH_DKG_MAIN
int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 300;
    return crypto_bench_dkg(stdout, iterations > 0 ? iterations : 300);
}
#endif
