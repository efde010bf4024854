/*
 * crypto_bench.c — service CPU per BIP 445 signing session, next to its bound.
 *
 * The service is the coordinator and one signer of a 2-of-2 session with one
 * device, for a Taproot (BIP 341) key-path output. We time only the service's
 * work on this thread's CPU clock: validating the signer set, the tweak
 * context, its own nonce generation, nonce aggregation, the session values,
 * its partial signature, verification of the device's partial signature,
 * aggregation and the final BIP340 verification. The device's nonce and
 * partial signature are made untimed in between.
 *
 * The bound is measured in the same run, on the same session's data: the
 * libsecp256k1 operations those steps require, called directly:
 *   signer set:   2 parses (pubshares), 2 multiplications (lambda_i X_i),
 *                 1 combine, 1 serialisation (compare with the threshold key)
 *   tweak:        1 parse (threshold key), 1 serialisation, 1 tagged hash
 *                 (TapTweak), 1 tweak-add (Q + tG)
 *   nonce gen:    2 keygens (k1 G, k2 G), 2 serialisations
 *   nonce agg:    4 parses, 2 combines, 2 serialisations
 *   session:      2 parses (aggnonce), 1 multiplication (b R2), 1 combine,
 *                 2 serialisations, 2 tagged hashes (noncecoef, challenge)
 *   sign:         1 keygen (own pubshare check), 1 serialisation, scalar
 *                 arithmetic (2 negations, 3 multiplications, 2 additions)
 *   verify psig:  2 parses, 2 multiplications (b R2_i, c P_i), 1 combine,
 *                 1 negation, 1 tweak-add (c P_i - s G), 1 comparison
 *   aggregate:    2 scalar additions
 *   final:        1 x-only parse, 1 BIP340 verification
 * What the bound leaves out is our own cost: the glue, SHA-256 of the nonce
 * derivation, and the one scalar inversion of the Lagrange coefficients
 * (libsecp256k1 0.2.0 has no public inversion; ours is an exponentiation).
 *
 * Prints {"workload":"sign_session",...} and {"workload":"auth_verify",...}
 * (one request authentication: the service pays one per device request); with the ChillDKG bench
 * linked in (CRYPTO_BENCH_HAVE_DKG) also its {"workload":"dkg",...} line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "cg_frost.h"
#include "cx.h"

#ifdef CRYPTO_BENCH_HAVE_DKG
int crypto_bench_dkg(FILE *out, int iterations);
#endif

#define DEVICE 0u
#define SERVICE 1u

static secp256k1_context *g_secp;
static volatile int g_sink; /* keeps results the bound computes alive */

static double cpu_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what)
{
    fprintf(stderr, "crypto_bench: %s failed\n", what);
    exit(1);
}

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) die(#x);                                                                         \
    } while (0)

/* The wallet: a 2-of-2 key dealt once (how it was made is not measured). */
typedef struct wallet {
    uint8_t secshares[2][32];
    uint8_t pubshares[2][33];
    uint8_t thresh_pk[33];
} wallet;

static void wallet_make(wallet *w)
{
    uint8_t a0[32], a1[32], r[32], P[64];
    cx_random(r, 32);
    CHECK(cx_scalar_reduce(a0, r));
    cx_random(r, 32);
    CHECK(cx_scalar_reduce(a1, r));
    CHECK(cx_point_mul_base(P, a0) && cx_point_ser(w->thresh_pk, P));
    for (uint32_t i = 0; i < 2; i++) { /* f(i + 1) = a0 + a1 (i + 1) */
        uint8_t x[32] = {0};
        x[31] = (uint8_t)(i + 1);
        CHECK(cx_scalar_mul(w->secshares[i], a1, x));
        CHECK(cx_scalar_add(w->secshares[i], w->secshares[i], a0));
        CHECK(cx_pubkey_from_seckey(w->pubshares[i], w->secshares[i]));
    }
}

/* What the bound needs from the measured session (same data, same sizes). */
typedef struct trace {
    uint8_t pubnonces[2][66];
    uint8_t aggnonce[66];
    uint8_t psig_dev[32];
    uint8_t lambda[2][32];
    uint8_t b[32], e[32];
    uint8_t msg[32];
    uint8_t sig[64];
    uint8_t xonly[32];
    uint8_t internal[32];
} trace;

/* One session; returns the service's CPU time in microseconds. */
static double service_session(const wallet *w, trace *tr)
{
    const uint32_t ids[2] = {DEVICE, SERVICE};
    cg_frost_signers signers;
    cg_frost_tweak_ctx tw;
    cg_frost_session sess;
    cg_frost_secnonce sn_dev, sn_svc;
    uint8_t psigs[2][32], xq[32];
    double t0, spent = 0;

    cx_random(tr->msg, 32);
    /* device, round 1 (untimed): it knows the tweaked key already */
    CHECK(cg_frost_tweak_init(&tw, w->thresh_pk, NULL) == RT_OK &&
          cg_frost_tweak_apply_taproot(&tw, NULL, NULL) == RT_OK &&
          cg_frost_tweak_xonly(xq, &tw) == RT_OK);
    CHECK(cg_frost_nonce_gen(&sn_dev, tr->pubnonces[DEVICE], w->secshares[DEVICE],
                             w->pubshares[DEVICE], xq, tr->msg, 32, NULL, 0, NULL) == RT_OK);

    /* service, round 1: signer set, tweaks, own nonce, aggregation, session,
     * own partial signature */
    t0 = cpu_now_us();
    CHECK(cg_frost_signers_init(&signers, 2, 2, ids, (const uint8_t(*)[33])w->pubshares, 2,
                                w->thresh_pk, NULL) == RT_OK);
    CHECK(cg_frost_tweak_init(&tw, w->thresh_pk, NULL) == RT_OK);
    CHECK(cg_frost_tweak_xonly(tr->internal, &tw) == RT_OK);
    CHECK(cg_frost_tweak_apply_taproot(&tw, NULL, NULL) == RT_OK);
    CHECK(cg_frost_tweak_xonly(xq, &tw) == RT_OK);
    CHECK(cg_frost_nonce_gen(&sn_svc, tr->pubnonces[SERVICE], w->secshares[SERVICE],
                             w->pubshares[SERVICE], xq, tr->msg, 32, NULL, 0, NULL) == RT_OK);
    CHECK(cg_frost_nonce_agg(tr->aggnonce, (const uint8_t(*)[66])tr->pubnonces, 2, NULL) == RT_OK);
    CHECK(cg_frost_session_init(&sess, &signers, &tw, tr->aggnonce, tr->msg, 32, NULL) == RT_OK);
    CHECK(cg_frost_sign(psigs[SERVICE], &sn_svc, w->secshares[SERVICE], SERVICE, &sess, NULL) ==
          RT_OK);
    spent += cpu_now_us() - t0;

    /* device, round 2 (untimed) */
    {
        cg_frost_session dsess;
        CHECK(cg_frost_session_init(&dsess, &signers, &tw, tr->aggnonce, tr->msg, 32, NULL) ==
              RT_OK);
        CHECK(cg_frost_sign(psigs[DEVICE], &sn_dev, w->secshares[DEVICE], DEVICE, &dsess, NULL) ==
              RT_OK);
    }

    /* service, round 2: verify the device, aggregate, verify the result */
    t0 = cpu_now_us();
    CHECK(cg_frost_partial_sig_verify(&sess, psigs[DEVICE], tr->pubnonces[DEVICE], DEVICE, NULL) ==
          RT_OK);
    CHECK(cg_frost_partial_sig_agg(tr->sig, &sess, (const uint8_t(*)[32])psigs, 2, NULL) == RT_OK);
    CHECK(cg_frost_verify(&sess, tr->sig, tr->msg, 32) == RT_OK);
    spent += cpu_now_us() - t0;

    memcpy(tr->psig_dev, psigs[DEVICE], 32);
    memcpy(tr->lambda, sess.signers.lambda, sizeof tr->lambda);
    memcpy(tr->b, sess.b, 32);
    memcpy(tr->e, sess.e, 32);
    memcpy(tr->xonly, xq, 32);
    return spent;
}

/* The libsecp256k1 operations of the same session, called directly. */
static double bound_session(const wallet *w, const trace *tr)
{
    const secp256k1_context *c = g_secp;
    secp256k1_pubkey X[2], T[2], Q, R1[2], R2[2], A[2], pk, cP, Re;
    secp256k1_xonly_pubkey xq;
    const secp256k1_pubkey *ins[2];
    uint8_t ser[33], tw[32], k[32], s[32];
    size_t len;
    double t0 = cpu_now_us();

    /* signer set */
    for (int i = 0; i < 2; i++) {
        CHECK(secp256k1_ec_pubkey_parse(c, &X[i], w->pubshares[i], 33));
        T[i] = X[i];
        CHECK(secp256k1_ec_pubkey_tweak_mul(c, &T[i], tr->lambda[i]));
        ins[i] = &T[i];
    }
    CHECK(secp256k1_ec_pubkey_combine(c, &Q, ins, 2));
    len = 33;
    CHECK(secp256k1_ec_pubkey_serialize(c, ser, &len, &Q, SECP256K1_EC_COMPRESSED));
    /* tweak */
    CHECK(secp256k1_ec_pubkey_parse(c, &Q, w->thresh_pk, 33));
    len = 33;
    CHECK(secp256k1_ec_pubkey_serialize(c, ser, &len, &Q, SECP256K1_EC_COMPRESSED));
    CHECK(secp256k1_tagged_sha256(c, tw, (const uint8_t *)"TapTweak", 8, ser + 1, 32));
    if (ser[0] == 3) CHECK(secp256k1_ec_pubkey_negate(c, &Q));
    CHECK(secp256k1_ec_pubkey_tweak_add(c, &Q, tw));
    /* nonce gen */
    memcpy(k, w->secshares[SERVICE], 32); /* any valid scalar: same cost */
    for (int j = 0; j < 2; j++) {
        CHECK(secp256k1_ec_pubkey_create(c, &pk, k));
        len = 33;
        CHECK(secp256k1_ec_pubkey_serialize(c, ser, &len, &pk, SECP256K1_EC_COMPRESSED));
    }
    /* nonce agg */
    for (int i = 0; i < 2; i++) {
        CHECK(secp256k1_ec_pubkey_parse(c, &R1[i], tr->pubnonces[i], 33));
        CHECK(secp256k1_ec_pubkey_parse(c, &R2[i], tr->pubnonces[i] + 33, 33));
    }
    for (int j = 0; j < 2; j++) {
        ins[0] = j ? &R2[0] : &R1[0];
        ins[1] = j ? &R2[1] : &R1[1];
        CHECK(secp256k1_ec_pubkey_combine(c, &A[j], ins, 2));
        len = 33;
        CHECK(secp256k1_ec_pubkey_serialize(c, ser, &len, &A[j], SECP256K1_EC_COMPRESSED));
    }
    /* session */
    CHECK(secp256k1_ec_pubkey_parse(c, &A[0], tr->aggnonce, 33));
    CHECK(secp256k1_ec_pubkey_parse(c, &A[1], tr->aggnonce + 33, 33));
    CHECK(
        secp256k1_tagged_sha256(c, k, (const uint8_t *)"BIP0445/noncecoef", 17, tr->aggnonce, 66));
    CHECK(secp256k1_ec_pubkey_tweak_mul(c, &A[1], tr->b));
    ins[0] = &A[0];
    ins[1] = &A[1];
    CHECK(secp256k1_ec_pubkey_combine(c, &pk, ins, 2));
    len = 33;
    CHECK(secp256k1_ec_pubkey_serialize(c, ser, &len, &pk, SECP256K1_EC_COMPRESSED));
    len = 33;
    CHECK(secp256k1_ec_pubkey_serialize(c, ser, &len, &Q, SECP256K1_EC_COMPRESSED));
    CHECK(secp256k1_tagged_sha256(c, k, (const uint8_t *)"BIP0340/challenge", 17, ser, 33));
    /* sign */
    CHECK(secp256k1_ec_pubkey_create(c, &pk, w->secshares[SERVICE]));
    len = 33;
    CHECK(secp256k1_ec_pubkey_serialize(c, ser, &len, &pk, SECP256K1_EC_COMPRESSED));
    memcpy(k, w->secshares[SERVICE], 32);
    memcpy(s, tr->e, 32);
    CHECK(secp256k1_ec_seckey_negate(c, k));
    CHECK(secp256k1_ec_seckey_negate(c, k));
    CHECK(secp256k1_ec_seckey_tweak_mul(c, s, tr->lambda[SERVICE]));
    CHECK(secp256k1_ec_seckey_tweak_mul(c, s, k));
    CHECK(secp256k1_ec_seckey_tweak_mul(c, k, tr->b));
    CHECK(secp256k1_ec_seckey_tweak_add(c, s, k));
    CHECK(secp256k1_ec_seckey_tweak_add(c, s, tr->b));
    /* verify the device's psig */
    CHECK(secp256k1_ec_pubkey_parse(c, &R1[0], tr->pubnonces[DEVICE], 33));
    CHECK(secp256k1_ec_pubkey_parse(c, &R2[0], tr->pubnonces[DEVICE] + 33, 33));
    CHECK(secp256k1_ec_pubkey_tweak_mul(c, &R2[0], tr->b));
    ins[0] = &R1[0];
    ins[1] = &R2[0];
    CHECK(secp256k1_ec_pubkey_combine(c, &Re, ins, 2));
    CHECK(secp256k1_ec_pubkey_negate(c, &Re));
    cP = X[DEVICE];
    CHECK(secp256k1_ec_pubkey_tweak_mul(c, &cP, tr->e));
    memcpy(s, tr->psig_dev, 32);
    CHECK(secp256k1_ec_seckey_negate(c, s));
    CHECK(secp256k1_ec_pubkey_tweak_add(c, &cP, s));
    g_sink += secp256k1_ec_pubkey_cmp(c, &cP, &Re);
    /* aggregate */
    memcpy(s, tr->psig_dev, 32);
    CHECK(secp256k1_ec_seckey_tweak_add(c, s, tr->e));
    CHECK(secp256k1_ec_seckey_tweak_add(c, s, tr->b));
    /* final verification */
    CHECK(secp256k1_xonly_pubkey_parse(c, &xq, tr->xonly));
    CHECK(secp256k1_schnorrsig_verify(c, tr->sig, tr->msg, 32, &xq));
    return cpu_now_us() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median per session over `iterations`, the two interleaved so that both
 * see the same machine state. */
static int bench_sign_session(FILE *out, int iterations)
{
    wallet w;
    trace tr;
    double *cpu = calloc((size_t)iterations, sizeof *cpu);
    double *bound = calloc((size_t)iterations, sizeof *bound);
    if (!cpu || !bound) die("calloc");
    wallet_make(&w);
    for (int i = 0; i < 20; i++) { /* warm-up */
        (void)service_session(&w, &tr);
        (void)bound_session(&w, &tr);
    }
    for (int i = 0; i < iterations; i++) {
        cpu[i] = service_session(&w, &tr);
        bound[i] = bound_session(&w, &tr);
    }
    qsort(cpu, (size_t)iterations, sizeof *cpu, cmp_double);
    qsort(bound, (size_t)iterations, sizeof *bound, cmp_double);
    double c = cpu[iterations / 2], b = bound[iterations / 2];
    fprintf(out,
            "{\"workload\":\"sign_session\",\"cpu_us\":%.1f,\"bound_us\":%.1f,\"ratio\":%.2f}\n", c,
            b, c / b);
    free(cpu);
    free(bound);
    return 0;
}

/*
 * One request authentication as the service does it (API.md): parse the
 * 33-byte host key, take its x-only form, one tagged SHA-256 over a
 * request-sized body (standing for SHA-256(body) and the auth message's
 * tagged hash), one BIP340 verification. The end-to-end bound of a session
 * in scripts/service_bench.sh adds one of these per device request.
 */
static int bench_auth_verify(FILE *out, int iterations)
{
    secp256k1_context *c = g_secp;
    uint8_t sk[32], pk33[33], body[160], msg[32], sig[64];
    size_t l = 33;
    secp256k1_keypair kp;
    secp256k1_pubkey pk;
    cx_random(body, sizeof body);
    do
        cx_random(sk, 32);
    while (!secp256k1_keypair_create(c, &kp, sk));
    CHECK(secp256k1_keypair_pub(c, &pk, &kp));
    CHECK(secp256k1_ec_pubkey_serialize(c, pk33, &l, &pk, SECP256K1_EC_COMPRESSED));
    cx_random(msg, 32);
    CHECK(secp256k1_schnorrsig_sign32(c, sig, msg, &kp, NULL));
    double *t = calloc((size_t)iterations, sizeof *t);
    if (!t) die("calloc");
    for (int i = -20; i < iterations; i++) {
        double t0 = cpu_now_us();
        secp256k1_pubkey p;
        secp256k1_xonly_pubkey x;
        uint8_t h[32];
        CHECK(secp256k1_ec_pubkey_parse(c, &p, pk33, 33));
        CHECK(secp256k1_xonly_pubkey_from_pubkey(c, &x, NULL, &p));
        CHECK(secp256k1_tagged_sha256(c, h, (const uint8_t *)"cosignerd/auth/v1", 17, body,
                                      sizeof body));
        g_sink += h[0];
        CHECK(secp256k1_schnorrsig_verify(c, sig, msg, 32, &x));
        if (i >= 0) t[i] = cpu_now_us() - t0;
    }
    qsort(t, (size_t)iterations, sizeof *t, cmp_double);
    fprintf(out, "{\"workload\":\"auth_verify\",\"cpu_us\":%.1f}\n", t[iterations / 2]);
    free(t);
    cx_wipe(sk, sizeof sk);
    return 0;
}

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 500;
    int rc;
    uint8_t seed[32];
    if (iterations < 1) iterations = 1;
    CHECK(cx_init());
    g_secp = secp256k1_context_create(SECP256K1_CONTEXT_SIGN | SECP256K1_CONTEXT_VERIFY);
    cx_random(seed, 32);
    CHECK(secp256k1_context_randomize(g_secp, seed));
    rc = bench_sign_session(stdout, iterations);
    if (rc == 0) rc = bench_auth_verify(stdout, iterations);
#ifdef CRYPTO_BENCH_HAVE_DKG
    if (rc == 0) rc = crypto_bench_dkg(stdout, iterations);
#endif
    secp256k1_context_destroy(g_secp);
    return rc;
}
