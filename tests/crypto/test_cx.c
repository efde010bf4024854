/*
 * test_cx — host crypto: scalar and point algebra, infinity and zero edge
 * cases, encodings that must be refused, and every BIP340 test vector.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "cx.h"

#ifndef VECTORS_DIR
#error VECTORS_DIR must be defined
#endif

static int unhex(uint8_t *out, size_t cap, const char *hex, size_t *outlen)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > cap) return 0;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return 0;
        out[i] = (uint8_t)v;
    }
    if (outlen) *outlen = n / 2;
    return 1;
}

static void hex32(uint8_t out[32], const char *hex)
{
    size_t n;
    assert_true(unhex(out, 32, hex, &n));
    assert_int_equal(n, 32);
}

static const char *N_HEX = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141";
static const char *NM1_HEX = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140";

static void rand_scalar(uint8_t out[32])
{
    uint8_t t[32];
    cx_random(t, 32);
    assert_true(cx_scalar_reduce(out, t));
}

static void scalar_u32(uint8_t out[32], uint32_t v)
{
    memset(out, 0, 32);
    out[28] = (uint8_t)(v >> 24);
    out[29] = (uint8_t)(v >> 16);
    out[30] = (uint8_t)(v >> 8);
    out[31] = (uint8_t)v;
}

static void test_scalar_check_reduce(void **state)
{
    (void)state;
    uint8_t n[32], nm1[32], z[32] = {0}, ff[32], r[32], e[32];
    hex32(n, N_HEX);
    hex32(nm1, NM1_HEX);
    memset(ff, 0xFF, 32);
    assert_true(cx_scalar_check(z));
    assert_true(cx_scalar_check(nm1));
    assert_false(cx_scalar_check(n));
    assert_false(cx_scalar_check(ff));
    assert_true(cx_scalar_reduce(r, n));
    assert_true(cx_scalar_is_zero(r));
    assert_true(cx_scalar_reduce(r, nm1));
    assert_memory_equal(r, nm1, 32);
    /* 2^256 - 1 - n */
    hex32(e, "000000000000000000000000000000014551231950B75FC4402DA1732FC9BEBE");
    assert_true(cx_scalar_reduce(r, ff));
    assert_memory_equal(r, e, 32);
    /* Out-of-range inputs are refused by every arithmetic function. */
    assert_false(cx_scalar_add(r, n, z));
    assert_false(cx_scalar_add(r, z, n));
    assert_false(cx_scalar_mul(r, ff, nm1));
    assert_false(cx_scalar_neg(r, n));
    assert_false(cx_scalar_inv(r, n));
    {
        uint8_t P[64];
        assert_false(cx_point_mul_base(P, n));
    }
}

static void test_scalar_zero_cases(void **state)
{
    (void)state;
    uint8_t z[32] = {0}, one[32], nm1[32], a[32], r[32];
    scalar_u32(one, 1);
    hex32(nm1, NM1_HEX);
    rand_scalar(a);
    assert_true(cx_scalar_add(r, z, z));
    assert_true(cx_scalar_is_zero(r));
    assert_true(cx_scalar_add(r, a, z));
    assert_memory_equal(r, a, 32);
    assert_true(cx_scalar_add(r, z, a));
    assert_memory_equal(r, a, 32);
    assert_true(cx_scalar_add(r, nm1, one)); /* wraps to exactly zero */
    assert_true(cx_scalar_is_zero(r));
    assert_true(cx_scalar_add(r, nm1, nm1)); /* n-2 */
    assert_int_equal(r[31], 0x3F);
    assert_true(cx_scalar_mul(r, a, z));
    assert_true(cx_scalar_is_zero(r));
    assert_true(cx_scalar_mul(r, z, a));
    assert_true(cx_scalar_is_zero(r));
    assert_true(cx_scalar_mul(r, nm1, nm1)); /* (-1)^2 */
    assert_memory_equal(r, one, 32);
    assert_true(cx_scalar_neg(r, z));
    assert_true(cx_scalar_is_zero(r));
    assert_true(cx_scalar_neg(r, one));
    assert_memory_equal(r, nm1, 32);
    assert_false(cx_scalar_inv(r, z));
    assert_true(cx_scalar_inv(r, nm1));
    assert_memory_equal(r, nm1, 32);
    assert_true(cx_scalar_inv(r, one));
    assert_memory_equal(r, one, 32);
    assert_false(cx_scalar_is_zero(one));
}

static void test_scalar_algebra(void **state)
{
    (void)state;
    uint8_t a[32], b[32], c[32], t1[32], t2[32], t3[32], one[32], two[32], inv2[32];
    scalar_u32(one, 1);
    scalar_u32(two, 2);
    /* (n+1)/2 */
    hex32(inv2, "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A1");
    assert_true(cx_scalar_inv(t1, two));
    assert_memory_equal(t1, inv2, 32);
    for (int i = 0; i < 50; i++) {
        rand_scalar(a);
        rand_scalar(b);
        rand_scalar(c);
        /* commutativity */
        assert_true(cx_scalar_add(t1, a, b));
        assert_true(cx_scalar_add(t2, b, a));
        assert_memory_equal(t1, t2, 32);
        assert_true(cx_scalar_mul(t1, a, b));
        assert_true(cx_scalar_mul(t2, b, a));
        assert_memory_equal(t1, t2, 32);
        /* distributivity a(b+c) = ab + ac */
        assert_true(cx_scalar_add(t1, b, c));
        assert_true(cx_scalar_mul(t1, a, t1));
        assert_true(cx_scalar_mul(t2, a, b));
        assert_true(cx_scalar_mul(t3, a, c));
        assert_true(cx_scalar_add(t2, t2, t3));
        assert_memory_equal(t1, t2, 32);
        /* a + (-a) = 0, a * a^-1 = 1 */
        assert_true(cx_scalar_neg(t1, a));
        assert_true(cx_scalar_add(t1, a, t1));
        assert_true(cx_scalar_is_zero(t1));
        assert_true(cx_scalar_inv(t1, a));
        assert_true(cx_scalar_mul(t1, a, t1));
        assert_memory_equal(t1, one, 32);
        /* in-place use (out aliases an input) */
        memcpy(t1, a, 32);
        assert_true(cx_scalar_add(t1, t1, b));
        assert_true(cx_scalar_add(t2, a, b));
        assert_memory_equal(t1, t2, 32);
    }
}

static void test_point_algebra(void **state)
{
    (void)state;
    uint8_t a[32], b[32], s[32], A[64], B[64], S[64], T[64], U[64], inf[64] = {0};
    uint8_t z[32] = {0}, nm1[32];
    hex32(nm1, NM1_HEX);
    for (int i = 0; i < 20; i++) {
        rand_scalar(a);
        rand_scalar(b);
        assert_true(cx_point_mul_base(A, a));
        assert_true(cx_point_mul_base(B, b));
        assert_true(cx_point_check(A));
        /* (a+b)G = aG + bG */
        assert_true(cx_scalar_add(s, a, b));
        assert_true(cx_point_mul_base(S, s));
        assert_true(cx_point_add(T, A, B));
        assert_true(cx_point_eq(S, T));
        /* (ab)G = b(aG) */
        assert_true(cx_scalar_mul(s, a, b));
        assert_true(cx_point_mul_base(S, s));
        assert_true(cx_point_mul(T, A, b));
        assert_true(cx_point_eq(S, T));
        /* A + B + S via one sum */
        {
            uint8_t pts[4 * 64];
            memcpy(pts, A, 64);
            memcpy(pts + 64, inf, 64);
            memcpy(pts + 128, B, 64);
            memcpy(pts + 192, S, 64);
            assert_true(cx_point_sum(T, pts, 4));
            assert_true(cx_point_add(U, A, B));
            assert_true(cx_point_add(U, U, S));
            assert_true(cx_point_eq(T, U));
        }
        /* A + bG, public variant */
        assert_true(cx_point_add_mulg_public(T, A, b));
        assert_true(cx_point_add(U, A, B));
        assert_true(cx_point_eq(T, U));
        /* -(aG) = (n-a)G; A + (-A) = infinity */
        assert_true(cx_point_neg(T, A));
        assert_true(cx_scalar_neg(s, a));
        assert_true(cx_point_mul_base(S, s));
        assert_true(cx_point_eq(S, T));
        assert_true(cx_point_add(U, A, T));
        assert_true(cx_point_is_inf(U));
        assert_false(cx_point_eq(A, B));
        /* P + (-a)G = infinity through the public helper */
        assert_true(cx_point_add_mulg_public(U, A, s));
        assert_true(cx_point_is_inf(U));
        /* serialization round trip and x-only */
        {
            uint8_t c[33], x[32];
            int even;
            assert_true(cx_point_ser(c, A));
            assert_true(c[0] == 2 || c[0] == 3);
            assert_true(cx_point_parse(T, c, 0));
            assert_true(cx_point_eq(A, T));
            assert_true(cx_point_xonly(x, &even, A));
            assert_int_equal(even, c[0] == 2);
            assert_memory_equal(x, c + 1, 32);
            assert_true(cx_point_lift_x(T, x));
            if (even)
                assert_true(cx_point_eq(A, T));
            else {
                assert_true(cx_point_neg(U, A));
                assert_true(cx_point_eq(U, T));
            }
        }
    }
    /* infinity arithmetic */
    assert_true(cx_point_mul_base(S, z));
    assert_true(cx_point_is_inf(S));
    assert_true(cx_point_mul(S, A, z));
    assert_true(cx_point_is_inf(S));
    assert_true(cx_point_mul(S, inf, a));
    assert_true(cx_point_is_inf(S));
    assert_true(cx_point_add(S, inf, A));
    assert_true(cx_point_eq(S, A));
    assert_true(cx_point_add(S, A, inf));
    assert_true(cx_point_eq(S, A));
    assert_true(cx_point_add(S, inf, inf));
    assert_true(cx_point_is_inf(S));
    assert_true(cx_point_neg(S, inf));
    assert_true(cx_point_is_inf(S));
    assert_true(cx_point_eq(inf, inf));
    assert_false(cx_point_eq(inf, A));
    assert_false(cx_point_eq(A, inf));
    assert_true(cx_point_check(inf));
    assert_true(cx_point_sum(S, inf, 1));
    assert_true(cx_point_is_inf(S));
    assert_true(cx_point_sum(S, NULL, 0));
    assert_true(cx_point_is_inf(S));
    assert_true(cx_point_add_mulg_public(S, inf, a));
    assert_true(cx_point_mul_base(T, a));
    assert_true(cx_point_eq(S, T));
    /* (n-1)A + A = infinity */
    assert_true(cx_point_mul(S, A, nm1));
    assert_true(cx_point_add(S, S, A));
    assert_true(cx_point_is_inf(S));
    {
        uint8_t c[33], x[32];
        assert_true(cx_point_ser(c, inf));
        for (int i = 0; i < 33; i++)
            assert_int_equal(c[i], 0);
        assert_false(cx_point_xonly(x, NULL, inf));
        assert_false(cx_point_parse(S, c, 0));
        assert_true(cx_point_parse(S, c, 1));
        assert_true(cx_point_is_inf(S));
    }
}

static void test_point_bad_encodings(void **state)
{
    (void)state;
    uint8_t c[33], P[64], x[32], junk[64];
    size_t n;
    /* G with wrong prefixes */
    assert_true(
        unhex(c, 33, "0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798", &n));
    assert_true(cx_point_parse(P, c, 0));
    c[0] = 0x04;
    assert_false(cx_point_parse(P, c, 1));
    c[0] = 0x00;
    assert_false(cx_point_parse(P, c, 1));
    c[0] = 0x05;
    assert_false(cx_point_parse(P, c, 1));
    /* x = p (field overflow), then an x off the curve (BIP340 vector 5) */
    assert_true(
        unhex(c, 33, "02FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F", &n));
    assert_false(cx_point_parse(P, c, 1));
    memcpy(x, c + 1, 32);
    assert_false(cx_point_lift_x(P, x));
    assert_true(
        unhex(c, 33, "03EEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34", &n));
    assert_false(cx_point_parse(P, c, 1));
    /* 33 bytes: a non-zero prefix with zero x is not infinity */
    memset(c, 0, 33);
    c[0] = 2;
    assert_false(cx_point_parse(P, c, 1));
    /* working-form bytes that no valid point has: refused, never a crash */
    memset(junk, 0, 64);
    junk[40] = 1; /* x = 0, y != 0 */
    assert_false(cx_point_check(junk));
    {
        uint8_t G[64], k[32] = {[31] = 5};
        assert_true(cx_point_mul_base(G, k));
        /* Addition and comparison trust their inputs (libsecp256k1's
         * combine does not validate), which is why guest-supplied points go
         * through cx_point_check; they must still not crash. */
        (void)cx_point_add(P, junk, G);
        (void)cx_point_eq(junk, G);
        assert_false(cx_point_mul(P, junk, k));
        assert_false(cx_point_neg(P, junk));
        assert_false(cx_point_ser(c, junk));
        assert_false(cx_point_xonly(x, NULL, junk));
        assert_false(cx_point_add_mulg_public(P, junk, k));
    }
    memset(junk, 0x5A, 64);
    assert_false(cx_point_check(junk));
}

static void test_hashes(void **state)
{
    (void)state;
    uint8_t h[32], e[32];
    cx_sha256(h, (const uint8_t *)"abc", 3);
    hex32(e, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD");
    assert_memory_equal(h, e, 32);
    /* tagged hash agrees with libsecp256k1's own */
    {
        secp256k1_context *c = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
        const char *tag = "BIP0340/challenge";
        uint8_t msg[77];
        for (size_t i = 0; i < sizeof msg; i++)
            msg[i] = (uint8_t)i;
        cx_tagged_hash(h, tag, strlen(tag), msg, sizeof msg);
        assert_true(
            secp256k1_tagged_sha256(c, e, (const uint8_t *)tag, strlen(tag), msg, sizeof msg));
        assert_memory_equal(h, e, 32);
        /* the incremental form, split at every position, agrees */
        for (size_t cut = 0; cut <= sizeof msg; cut += 7) {
            cx_sha256_ctx hc;
            cx_tagged_hash_init(&hc, tag, strlen(tag));
            cx_sha256_update(&hc, msg, cut);
            cx_sha256_update(&hc, msg + cut, sizeof msg - cut);
            cx_sha256_final(h, &hc);
            assert_memory_equal(h, e, 32);
            for (size_t i = 0; i < sizeof hc.opaque; i++)
                assert_int_equal(hc.opaque[i], 0); /* final wipes the state */
        }
        {
            cx_sha256_ctx hc;
            cx_sha256_init(&hc);
            cx_sha256_update(&hc, (const uint8_t *)"a", 1);
            cx_sha256_update(&hc, (const uint8_t *)"bc", 2);
            cx_sha256_final(h, &hc);
            cx_sha256(e, (const uint8_t *)"abc", 3);
            assert_memory_equal(h, e, 32);
        }
        secp256k1_context_destroy(c);
    }
}

/* Every row of the BIP's own vectors: signing reproduces the signature
 * byte for byte, verification gives the expected verdict. */
static void test_bip340_vectors(void **state)
{
    (void)state;
    FILE *f = fopen(VECTORS_DIR "/bip340/bip340.csv", "r");
    char line[1024];
    int rows = 0, signed_rows = 0;
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f)); /* header */
    while (fgets(line, sizeof line, f)) {
        char *fld[8] = {0};
        char *p = line;
        int k = 0;
        uint8_t sk[32], pk[32], aux[32], msg[256], sig[64], out[64];
        size_t msglen = 0, n;
        line[strcspn(line, "\r\n")] = 0;
        for (k = 0; k < 8; k++) {
            fld[k] = p;
            p = strchr(p, ',');
            if (!p) break;
            *p++ = 0;
        }
        assert_true(k >= 6);
        assert_true(unhex(pk, 32, fld[2], &n) && n == 32);
        assert_true(unhex(msg, sizeof msg, fld[4], &msglen));
        assert_true(unhex(sig, 64, fld[5], &n) && n == 64);
        int expect = strcmp(fld[6], "TRUE") == 0;
        if (fld[1][0]) {
            uint8_t c[33];
            assert_true(unhex(sk, 32, fld[1], &n) && n == 32);
            assert_true(unhex(aux, 32, fld[3], &n) && n == 32);
            assert_true(cx_bip340_sign(out, msg, msglen, sk, aux));
            assert_memory_equal(out, sig, 64);
            assert_true(cx_pubkey_from_seckey(c, sk));
            assert_memory_equal(c + 1, pk, 32);
            signed_rows++;
        }
        assert_int_equal(cx_bip340_verify(sig, msg, msglen, pk), expect);
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, 19);
    assert_int_equal(signed_rows, 8);
}

static void test_bip340_roundtrip_and_bad_keys(void **state)
{
    (void)state;
    uint8_t sk[32], aux[32], sig[64], c[33], msg[5] = {1, 2, 3, 4, 5};
    uint8_t z[32] = {0}, n[32];
    hex32(n, N_HEX);
    rand_scalar(sk);
    cx_random(aux, 32);
    assert_true(cx_bip340_sign(sig, msg, sizeof msg, sk, aux));
    assert_true(cx_pubkey_from_seckey(c, sk));
    assert_true(cx_bip340_verify(sig, msg, sizeof msg, c + 1));
    msg[0] ^= 1;
    assert_false(cx_bip340_verify(sig, msg, sizeof msg, c + 1));
    assert_true(cx_bip340_sign(sig, NULL, 0, sk, aux));
    assert_true(cx_bip340_verify(sig, NULL, 0, c + 1));
    assert_false(cx_bip340_sign(sig, msg, sizeof msg, z, aux));
    assert_false(cx_bip340_sign(sig, msg, sizeof msg, n, aux));
    assert_false(cx_pubkey_from_seckey(c, z));
    assert_false(cx_pubkey_from_seckey(c, n));
}

static void test_wipe_random(void **state)
{
    (void)state;
    uint8_t a[64], b[64];
    cx_random(a, sizeof a);
    cx_random(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
    cx_wipe(a, sizeof a);
    for (size_t i = 0; i < sizeof a; i++)
        assert_int_equal(a[i], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_check_reduce),
        cmocka_unit_test(test_scalar_zero_cases),
        cmocka_unit_test(test_scalar_algebra),
        cmocka_unit_test(test_point_algebra),
        cmocka_unit_test(test_point_bad_encodings),
        cmocka_unit_test(test_hashes),
        cmocka_unit_test(test_bip340_vectors),
        cmocka_unit_test(test_bip340_roundtrip_and_bad_keys),
        cmocka_unit_test(test_wipe_random),
    };
    assert_true(cx_init());
    return cmocka_run_group_tests(tests, NULL, NULL);
}
