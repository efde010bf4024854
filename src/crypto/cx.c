/*
 * cx.c — cx.h on libsecp256k1 0.2.0 and libsodium.
 *
 * libsecp256k1 0.2.0 has no public scalar or group API, so scalar and point
 * arithmetic is expressed through its key-tweaking functions. Those refuse
 * zero keys and zero results, and report both by returning 0 and clearing the
 * output, which is exactly the algebraic answer (0 or infinity) in every case
 * we rely on; where it is not (a zero key for tweak_add), the right answer is
 * selected in constant time. Branches in this file depend only on public data
 * (points, which are public in every protocol here, and failure of input
 * validation).
 */
#include "cx.h"

#include <pthread.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* The refusals of the key-tweaking calls are the algebraic answer (see
 * above), so their return values carry no information here. */
#define IGNORE(call)                                                                               \
    do {                                                                                           \
        int ignored_ = (call);                                                                     \
        (void)ignored_;                                                                            \
    } while (0)

static secp256k1_context *g_ctx;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Malformed arguments (e.g. a 64-byte working point with x = 0 coming from
 * guest memory) must fail the call, not abort the process: with a callback
 * that returns, libsecp256k1's argument checks make the call return 0. */
static void on_illegal(const char *msg, void *data)
{
    (void)msg;
    (void)data;
}

static void init_once(void)
{
    uint8_t seed[32];
    if (sodium_init() < 0) abort();
    g_ctx = secp256k1_context_create(SECP256K1_CONTEXT_SIGN | SECP256K1_CONTEXT_VERIFY);
    if (!g_ctx) abort();
    secp256k1_context_set_illegal_callback(g_ctx, on_illegal, NULL);
    /* Blinding of the constant-time generator multiplication. */
    randombytes_buf(seed, sizeof seed);
    if (!secp256k1_context_randomize(g_ctx, seed)) abort();
    sodium_memzero(seed, sizeof seed);
}

static inline const secp256k1_context *ctx(void)
{
    pthread_once(&g_once, init_once);
    return g_ctx;
}

int cx_init(void)
{
    return ctx() != NULL;
}

/* ----- constant-time helpers ---------------------------------------------- */

/* 1 if all len bytes are zero, without data-dependent branches. */
static int ct_is_zero(const uint8_t *p, size_t len)
{
    uint32_t acc = 0;
    for (size_t i = 0; i < len; i++)
        acc |= p[i];
    return (int)(((acc | (0u - acc)) >> 31) ^ 1u);
}

/* dst = flag ? src : dst, flag in {0,1}. */
static void ct_cmov(uint8_t *dst, const uint8_t *src, size_t len, int flag)
{
    uint8_t mask = (uint8_t)(0u - (unsigned)flag);
    for (size_t i = 0; i < len; i++)
        dst[i] ^= (uint8_t)(mask & (dst[i] ^ src[i]));
}

static const uint8_t N_BE[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48,
                                 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41};

/* out = a - n (mod 2^256); returns the borrow (1 iff a < n). */
static uint32_t sub_n(uint8_t out[32], const uint8_t a[32])
{
    uint32_t borrow = 0;
    for (int i = 31; i >= 0; i--) {
        uint32_t d = (uint32_t)a[i] - N_BE[i] - borrow;
        out[i] = (uint8_t)d;
        borrow = (d >> 8) & 1u;
    }
    return borrow;
}

/* ----- scalars -------------------------------------------------------------- */

int cx_scalar_is_zero(const uint8_t a[32])
{
    return ct_is_zero(a, 32);
}

int cx_scalar_check(const uint8_t a[32])
{
    uint8_t t[32];
    uint32_t lt = sub_n(t, a);
    cx_wipe(t, sizeof t);
    return (int)lt;
}

int cx_scalar_reduce(uint8_t out[32], const uint8_t in[32])
{
    /* in < 2^256 < 2n, so one conditional subtraction reduces fully. */
    uint8_t t[32];
    uint32_t lt = sub_n(t, in);
    memmove(out, in, 32);
    ct_cmov(out, t, 32, (int)(lt ^ 1u));
    cx_wipe(t, sizeof t);
    return 1;
}

int cx_scalar_add(uint8_t out[32], const uint8_t a[32], const uint8_t b[32])
{
    uint8_t r[32];
    int ok = cx_scalar_check(a) & cx_scalar_check(b);
    if (!ok) return 0;
    /* tweak_add(b, a) = a + b, or 0 when the sum is 0 (cleared on failure),
     * except that it also refuses b = 0, where the answer is a. */
    memcpy(r, b, 32);
    IGNORE(secp256k1_ec_seckey_tweak_add(ctx(), r, a));
    ct_cmov(r, a, 32, ct_is_zero(b, 32));
    memcpy(out, r, 32);
    cx_wipe(r, sizeof r);
    return 1;
}

int cx_scalar_mul(uint8_t out[32], const uint8_t a[32], const uint8_t b[32])
{
    uint8_t r[32];
    if (!(cx_scalar_check(a) & cx_scalar_check(b))) return 0;
    /* n is prime: the product is 0 exactly when a factor is, which is when
     * tweak_mul refuses and clears its output. */
    memcpy(r, a, 32);
    IGNORE(secp256k1_ec_seckey_tweak_mul(ctx(), r, b));
    memcpy(out, r, 32);
    cx_wipe(r, sizeof r);
    return 1;
}

int cx_scalar_neg(uint8_t out[32], const uint8_t a[32])
{
    uint8_t r[32];
    if (!cx_scalar_check(a)) return 0;
    /* negate maps the refused 0 to 0, which is -0. */
    memcpy(r, a, 32);
    IGNORE(secp256k1_ec_seckey_negate(ctx(), r));
    memcpy(out, r, 32);
    cx_wipe(r, sizeof r);
    return 1;
}

int cx_scalar_inv(uint8_t out[32], const uint8_t a[32])
{
    /* Fermat: a^(n-2). The exponent is public, so square-and-multiply over
     * its bits is constant time in a. */
    static const uint8_t E[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                  0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48,
                                  0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x3F};
    const secp256k1_context *c = ctx();
    uint8_t r[32], t[32], win[16][32];
    if (!cx_scalar_check(a) || cx_scalar_is_zero(a)) return 0;
    /* 4-bit fixed window: 252 squarings + 64 multiplications. */
    memset(win[0], 0, 32);
    win[0][31] = 1;
    memcpy(win[1], a, 32);
    for (int i = 2; i < 16; i++) {
        memcpy(win[i], win[i - 1], 32);
        IGNORE(secp256k1_ec_seckey_tweak_mul(c, win[i], a));
    }
    memcpy(r, win[E[0] >> 4], 32);
    for (int i = 1; i < 64; i++) {
        unsigned nib = (i & 1) ? (E[i / 2] & 0x0F) : (E[i / 2] >> 4);
        for (int s = 0; s < 4; s++) {
            memcpy(t, r, 32); /* no aliasing between key and tweak */
            IGNORE(secp256k1_ec_seckey_tweak_mul(c, r, t));
        }
        if (nib) /* public exponent digit */
            IGNORE(secp256k1_ec_seckey_tweak_mul(c, r, win[nib]));
    }
    memcpy(out, r, 32);
    cx_wipe(r, sizeof r);
    cx_wipe(t, sizeof t);
    cx_wipe(win, sizeof win);
    return 1;
}

/* ----- points --------------------------------------------------------------- */

static int is_inf(const uint8_t p[64])
{
    return ct_is_zero(p, 64);
}

int cx_point_is_inf(const uint8_t p[64])
{
    return is_inf(p);
}

int cx_point_parse(uint8_t out[64], const uint8_t in[33], int allow_inf)
{
    secp256k1_pubkey pk;
    if (ct_is_zero(in, 33)) {
        if (!allow_inf) return 0;
        memset(out, 0, 64);
        return 1;
    }
    if (in[0] != 0x02 && in[0] != 0x03) return 0;
    if (!secp256k1_ec_pubkey_parse(ctx(), &pk, in, 33)) return 0;
    memcpy(out, pk.data, 64);
    return 1;
}

int cx_point_ser(uint8_t out[33], const uint8_t p[64])
{
    secp256k1_pubkey pk;
    size_t len = 33;
    if (is_inf(p)) {
        memset(out, 0, 33);
        return 1;
    }
    memcpy(pk.data, p, 64);
    return secp256k1_ec_pubkey_serialize(ctx(), out, &len, &pk, SECP256K1_EC_COMPRESSED);
}

int cx_point_check(const uint8_t p[64])
{
    secp256k1_pubkey pk, q;
    uint8_t u[65];
    size_t len = sizeof u;
    if (is_inf(p)) return 1;
    /* A round trip through the uncompressed form accepts exactly the points
     * libsecp256k1 itself produces: serialising normalises the coordinates
     * (a non-canonical encoding comes back different) and parsing checks the
     * curve equation, with no square root (unlike the compressed form). */
    memcpy(pk.data, p, 64);
    if (!secp256k1_ec_pubkey_serialize(ctx(), u, &len, &pk, SECP256K1_EC_UNCOMPRESSED)) return 0;
    if (!secp256k1_ec_pubkey_parse(ctx(), &q, u, sizeof u)) return 0;
    return memcmp(q.data, p, 64) == 0;
}

int cx_point_lift_x(uint8_t out[64], const uint8_t x[32])
{
    uint8_t c[33];
    c[0] = 0x02;
    memcpy(c + 1, x, 32);
    return cx_point_parse(out, c, 0);
}

int cx_point_xonly(uint8_t x[32], int *y_even, const uint8_t p[64])
{
    uint8_t c[33];
    if (is_inf(p) || !cx_point_ser(c, p)) return 0;
    memcpy(x, c + 1, 32);
    if (y_even) *y_even = c[0] == 0x02;
    return 1;
}

int cx_point_add(uint8_t out[64], const uint8_t a[64], const uint8_t b[64])
{
    secp256k1_pubkey pa, pb, r;
    const secp256k1_pubkey *ins[2] = {&pa, &pb};
    if (is_inf(a)) {
        memmove(out, b, 64);
        return 1;
    }
    if (is_inf(b)) {
        memmove(out, a, 64);
        return 1;
    }
    memcpy(pa.data, a, 64);
    memcpy(pb.data, b, 64);
    /* combine refuses only a sum at infinity (for well-formed inputs). */
    if (!secp256k1_ec_pubkey_combine(ctx(), &r, ins, 2)) {
        if (!cx_point_check(a) || !cx_point_check(b)) return 0;
        memset(out, 0, 64);
        return 1;
    }
    memcpy(out, r.data, 64);
    return 1;
}

int cx_point_sum(uint8_t out[64], const uint8_t *pts, size_t n)
{
    enum { MAXN = 64 };
    secp256k1_pubkey buf[MAXN], r;
    const secp256k1_pubkey *ins[MAXN];
    size_t k = 0;
    if (n > MAXN) return 0;
    for (size_t i = 0; i < n; i++) {
        if (is_inf(pts + 64 * i)) continue;
        memcpy(buf[k].data, pts + 64 * i, 64);
        ins[k] = &buf[k];
        k++;
    }
    if (k == 0) {
        memset(out, 0, 64);
        return 1;
    }
    if (!secp256k1_ec_pubkey_combine(ctx(), &r, ins, k)) {
        for (size_t i = 0; i < n; i++)
            if (!cx_point_check(pts + 64 * i)) return 0;
        memset(out, 0, 64);
        return 1;
    }
    memcpy(out, r.data, 64);
    return 1;
}

int cx_point_neg(uint8_t out[64], const uint8_t p[64])
{
    secp256k1_pubkey pk;
    if (is_inf(p)) {
        memset(out, 0, 64);
        return 1;
    }
    memcpy(pk.data, p, 64);
    if (!secp256k1_ec_pubkey_negate(ctx(), &pk)) return 0;
    memcpy(out, pk.data, 64);
    return 1;
}

int cx_point_mul(uint8_t out[64], const uint8_t p[64], const uint8_t k[32])
{
    static const uint8_t zero[64];
    secp256k1_pubkey pk;
    int ok;
    if (!cx_scalar_check(k)) return 0;
    if (is_inf(p)) {
        memset(out, 0, 64);
        return 1;
    }
    memcpy(pk.data, p, 64);
    /* Constant-time multiplication; a zero k is refused and the result
     * cleared, which is infinity. Select it without branching on k. */
    ok = secp256k1_ec_pubkey_tweak_mul(ctx(), &pk, k);
    ct_cmov(pk.data, zero, 64, ok ^ 1);
    if (!ok && !ct_is_zero(k, 32)) return 0; /* p was malformed */
    memcpy(out, pk.data, 64);
    return 1;
}

int cx_point_mul_base(uint8_t out[64], const uint8_t k[32])
{
    static const uint8_t zero[64];
    secp256k1_pubkey pk;
    int ok;
    if (!cx_scalar_check(k)) return 0;
    ok = secp256k1_ec_pubkey_create(ctx(), &pk, k);
    ct_cmov(pk.data, zero, 64, ok ^ 1);
    memcpy(out, pk.data, 64);
    return 1;
}

int cx_point_add_mulg_public(uint8_t out[64], const uint8_t p[64], const uint8_t k[32])
{
    secp256k1_pubkey pk;
    uint8_t g[64];
    if (!cx_scalar_check(k)) return 0;
    if (is_inf(p)) return cx_point_mul_base(out, k);
    memcpy(pk.data, p, 64);
    /* tweak_add computes P + kG in one (variable-time) double multiplication
     * and refuses a result at infinity; k is public wherever this is used. */
    if (secp256k1_ec_pubkey_tweak_add(ctx(), &pk, k)) {
        memcpy(out, pk.data, 64);
        return 1;
    }
    if (!cx_point_mul_base(g, k) || !cx_point_check(p)) return 0;
    return cx_point_add(out, p, g);
}

int cx_point_eq(const uint8_t a[64], const uint8_t b[64])
{
    secp256k1_pubkey pa, pb;
    int ia = is_inf(a), ib = is_inf(b);
    if (ia || ib) return ia && ib;
    memcpy(pa.data, a, 64);
    memcpy(pb.data, b, 64);
    return secp256k1_ec_pubkey_cmp(ctx(), &pa, &pb) == 0;
}

/* ----- hashes ---------------------------------------------------------------- */

void cx_sha256(uint8_t out[32], const uint8_t *msg, size_t len)
{
    crypto_hash_sha256(out, msg, len);
}

void cx_tagged_hash(uint8_t out[32], const char *tag, size_t tag_len, const uint8_t *msg,
                    size_t len)
{
    crypto_hash_sha256_state st;
    uint8_t th[32];
    crypto_hash_sha256(th, (const uint8_t *)tag, tag_len);
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, th, 32);
    crypto_hash_sha256_update(&st, th, 32);
    crypto_hash_sha256_update(&st, msg, len);
    crypto_hash_sha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

_Static_assert(sizeof(crypto_hash_sha256_state) <= CX_SHA256_CTX_LEN, "cx_sha256_ctx too small");

/* The opaque bytes may be unaligned (guest memory): work on an aligned copy. */
void cx_sha256_init(cx_sha256_ctx *c)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    memset(c->opaque, 0, sizeof c->opaque);
    memcpy(c->opaque, &st, sizeof st);
}

void cx_tagged_hash_init(cx_sha256_ctx *c, const char *tag, size_t tag_len)
{
    uint8_t th[32];
    crypto_hash_sha256(th, (const uint8_t *)tag, tag_len);
    cx_sha256_init(c);
    cx_sha256_update(c, th, 32);
    cx_sha256_update(c, th, 32);
}

void cx_sha256_update(cx_sha256_ctx *c, const uint8_t *msg, size_t len)
{
    crypto_hash_sha256_state st;
    memcpy(&st, c->opaque, sizeof st);
    crypto_hash_sha256_update(&st, msg, len);
    memcpy(c->opaque, &st, sizeof st);
    sodium_memzero(&st, sizeof st);
}

void cx_sha256_final(uint8_t out[32], cx_sha256_ctx *c)
{
    crypto_hash_sha256_state st;
    memcpy(&st, c->opaque, sizeof st);
    crypto_hash_sha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(c->opaque, sizeof c->opaque);
}

/* ----- BIP340 ---------------------------------------------------------------- */

int cx_bip340_sign(uint8_t sig[64], const uint8_t *msg, size_t msg_len, const uint8_t seckey[32],
                   const uint8_t aux_rand[32])
{
    secp256k1_keypair kp;
    secp256k1_xonly_pubkey xpk;
    secp256k1_schnorrsig_extraparams ep = SECP256K1_SCHNORRSIG_EXTRAPARAMS_INIT;
    uint8_t aux[32];
    int ok;
    if (!secp256k1_keypair_create(ctx(), &kp, seckey)) return 0;
    memcpy(aux, aux_rand, 32);
    ep.ndata = aux;
    ok = secp256k1_schnorrsig_sign_custom(ctx(), sig, msg_len ? msg : NULL, msg_len, &kp, &ep);
    /* Never hand out a signature that does not verify (fault attacks). */
    ok = ok && secp256k1_keypair_xonly_pub(ctx(), &xpk, NULL, &kp) &&
         secp256k1_schnorrsig_verify(ctx(), sig, msg_len ? msg : NULL, msg_len, &xpk);
    sodium_memzero(&kp, sizeof kp);
    sodium_memzero(aux, sizeof aux);
    return ok;
}

int cx_bip340_verify(const uint8_t sig[64], const uint8_t *msg, size_t msg_len,
                     const uint8_t xonly[32])
{
    secp256k1_xonly_pubkey pk;
    if (!secp256k1_xonly_pubkey_parse(ctx(), &pk, xonly)) return 0;
    return secp256k1_schnorrsig_verify(ctx(), sig, msg_len ? msg : NULL, msg_len, &pk);
}

int cx_pubkey_from_seckey(uint8_t out[33], const uint8_t seckey[32])
{
    secp256k1_pubkey pk;
    size_t len = 33;
    if (!secp256k1_ec_pubkey_create(ctx(), &pk, seckey)) return 0;
    return secp256k1_ec_pubkey_serialize(ctx(), out, &len, &pk, SECP256K1_EC_COMPRESSED);
}

/* ----- randomness, wiping ---------------------------------------------------- */

void cx_random(uint8_t *out, size_t len)
{
    (void)ctx(); /* sodium_init */
    randombytes_buf(out, len);
}

void cx_wipe(void *p, size_t len)
{
    sodium_memzero(p, len);
}
