/*
 * sbx_cx.c — the "cx" imports: src/crypto's primitives for the guest.
 *
 * Fixed-size arguments are copied into host buffers, the primitive runs on
 * those, and outputs are copied back: arguments may then alias each other
 * in guest memory (out == a) exactly as the native build allows, and no
 * primitive ever sees a guest pointer. Variable-length messages are read in
 * place after the bounds check (read-only, and nothing else runs on this
 * instance meanwhile). Host copies of secrets are wiped.
 *
 * Each import charges fuel roughly in proportion to its cost (an EC
 * multiplication is tens of microseconds), so a guest looping around
 * imports still meets its CPU budget check in time (see wasm-rt.h).
 */
#include <pthread.h>

#include "cx.h"
#include "sbx_imports.h"
#include "sbx_internal.h"

#define COST_CHEAP (1 << 8)
#define COST_POINT (1 << 11)
#define COST_MUL (1 << 15)

static pthread_once_t cx_once = PTHREAD_ONCE_INIT;

static void cx_init_once(void)
{
    if (!cx_init()) abort(); /* no crypto, no service: not a guest's fault */
}

static sbx_instance *enter(struct Z_cx_instance_t *ctx, int64_t cost)
{
    pthread_once(&cx_once, cx_init_once);
    sbx_charge(cost);
    return (sbx_instance *)ctx;
}

static void in_(sbx_instance *in, uint8_t *dst, uint32_t ptr, size_t n)
{
    memcpy(dst, sbx_guest_span(in, ptr, n), n);
}

static void out_(sbx_instance *in, uint32_t ptr, const uint8_t *src, size_t n)
{
    memcpy(sbx_guest_span(in, ptr, n), src, n);
}

/* Working-form points are only ever made by the host; cx trusts them (a
 * malformed one gives a meaningless result, see cx.h), so every point a
 * guest hands back is checked, and a forged or corrupted one is the guest's
 * fault. Every 64-byte argument of the macros below is a point. */
static void in_arg(sbx_instance *in, uint8_t *dst, uint32_t ptr, size_t n)
{
    in_(in, dst, ptr, n);
    if (n == CX_POINT_LEN && !cx_point_check(dst)) sbx_raise(SBX_FAULT_ABI);
}

/* Checks an output span before the primitive runs, so a bad out pointer
 * faults without computing anything. */
static void check(sbx_instance *in, uint32_t ptr, size_t n)
{
    (void)sbx_guest_span(in, ptr, n);
}

/* out = f(a) and out = f(a, b) over fixed-size buffers. */
#define UNARY(name, OUTN, AN, cost)                                                                \
    uint32_t Z_cxZ_##name(struct Z_cx_instance_t *ctx, uint32_t out, uint32_t a)                   \
    {                                                                                              \
        sbx_instance *in = enter(ctx, cost);                                                       \
        uint8_t o[OUTN], x[AN];                                                                    \
        check(in, out, OUTN);                                                                      \
        in_arg(in, x, a, AN);                                                                      \
        int r = cx_##name(o, x);                                                                   \
        out_(in, out, o, OUTN);                                                                    \
        cx_wipe(x, sizeof x);                                                                      \
        cx_wipe(o, sizeof o);                                                                      \
        return (uint32_t)r;                                                                        \
    }
#define BINARY(name, OUTN, AN, BN, cost)                                                           \
    uint32_t Z_cxZ_##name(struct Z_cx_instance_t *ctx, uint32_t out, uint32_t a, uint32_t b)       \
    {                                                                                              \
        sbx_instance *in = enter(ctx, cost);                                                       \
        uint8_t o[OUTN], x[AN], y[BN];                                                             \
        check(in, out, OUTN);                                                                      \
        in_arg(in, x, a, AN);                                                                      \
        in_arg(in, y, b, BN);                                                                      \
        int r = cx_##name(o, x, y);                                                                \
        out_(in, out, o, OUTN);                                                                    \
        cx_wipe(x, sizeof x);                                                                      \
        cx_wipe(y, sizeof y);                                                                      \
        cx_wipe(o, sizeof o);                                                                      \
        return (uint32_t)r;                                                                        \
    }
#define PREDICATE(name, AN, cost)                                                                  \
    uint32_t Z_cxZ_##name(struct Z_cx_instance_t *ctx, uint32_t a)                                 \
    {                                                                                              \
        sbx_instance *in = enter(ctx, cost);                                                       \
        uint8_t x[AN];                                                                             \
        in_arg(in, x, a, AN);                                                                      \
        int r = cx_##name(x);                                                                      \
        cx_wipe(x, sizeof x);                                                                      \
        return (uint32_t)r;                                                                        \
    }

PREDICATE(scalar_check, 32, COST_CHEAP)
UNARY(scalar_reduce, 32, 32, COST_CHEAP)
BINARY(scalar_add, 32, 32, 32, COST_CHEAP)
BINARY(scalar_mul, 32, 32, 32, COST_CHEAP)
UNARY(scalar_neg, 32, 32, COST_CHEAP)
UNARY(scalar_inv, 32, 32, COST_POINT)
PREDICATE(scalar_is_zero, 32, COST_CHEAP)
UNARY(point_ser, 33, 64, COST_POINT)
UNARY(point_lift_x, 64, 32, COST_POINT)
PREDICATE(point_is_inf, 64, COST_CHEAP)
BINARY(point_add, 64, 64, 64, COST_POINT)
UNARY(point_neg, 64, 64, COST_POINT)
BINARY(point_mul, 64, 64, 32, COST_MUL)
UNARY(point_mul_base, 64, 32, COST_MUL)
UNARY(pubkey_from_seckey, 33, 32, COST_MUL)

uint32_t Z_cxZ_point_parse(struct Z_cx_instance_t *ctx, uint32_t out, uint32_t p,
                           uint32_t allow_inf)
{
    sbx_instance *in = enter(ctx, COST_POINT);
    uint8_t o[64], x[33];
    check(in, out, sizeof o);
    in_(in, x, p, sizeof x);
    int r = cx_point_parse(o, x, allow_inf != 0);
    out_(in, out, o, sizeof o);
    return (uint32_t)r;
}

uint32_t Z_cxZ_point_xonly(struct Z_cx_instance_t *ctx, uint32_t x, uint32_t y_even, uint32_t p)
{
    sbx_instance *in = enter(ctx, COST_POINT);
    uint8_t o[32], pt[64];
    int ye = 0;
    check(in, x, sizeof o);
    check(in, y_even, 4);
    in_arg(in, pt, p, sizeof pt);
    int r = cx_point_xonly(o, &ye, pt);
    out_(in, x, o, sizeof o);
    /* wasm32 int: 4 bytes little-endian, like the host. */
    int32_t ye32 = ye;
    out_(in, y_even, (const uint8_t *)&ye32, 4);
    return (uint32_t)r;
}

uint32_t Z_cxZ_point_eq(struct Z_cx_instance_t *ctx, uint32_t a, uint32_t b)
{
    sbx_instance *in = enter(ctx, COST_CHEAP);
    uint8_t x[64], y[64];
    in_arg(in, x, a, sizeof x);
    in_arg(in, y, b, sizeof y);
    return (uint32_t)cx_point_eq(x, y);
}

void Z_cxZ_sha256(struct Z_cx_instance_t *ctx, uint32_t out, uint32_t msg, uint32_t len)
{
    sbx_instance *in = enter(ctx, COST_CHEAP + len / 8);
    uint8_t o[32];
    check(in, out, sizeof o);
    cx_sha256(o, sbx_guest_span(in, msg, len), len);
    out_(in, out, o, sizeof o);
}

void Z_cxZ_tagged_hash(struct Z_cx_instance_t *ctx, uint32_t out, uint32_t tag, uint32_t tag_len,
                       uint32_t msg, uint32_t len)
{
    sbx_instance *in = enter(ctx, COST_CHEAP + ((int64_t)len + tag_len) / 8);
    uint8_t o[32];
    check(in, out, sizeof o);
    const char *t = (const char *)sbx_guest_span(in, tag, tag_len);
    const uint8_t *m = sbx_guest_span(in, msg, len);
    cx_tagged_hash(o, t, tag_len, m, len);
    out_(in, out, o, sizeof o);
}

uint32_t Z_cxZ_bip340_sign(struct Z_cx_instance_t *ctx, uint32_t sig, uint32_t msg,
                           uint32_t msg_len, uint32_t seckey, uint32_t aux)
{
    sbx_instance *in = enter(ctx, 2 * COST_MUL + msg_len / 8);
    uint8_t s[64], k[32], a[32];
    check(in, sig, sizeof s);
    in_(in, k, seckey, sizeof k);
    in_(in, a, aux, sizeof a);
    int r = cx_bip340_sign(s, sbx_guest_span(in, msg, msg_len), msg_len, k, a);
    cx_wipe(k, sizeof k);
    cx_wipe(a, sizeof a);
    out_(in, sig, s, sizeof s);
    return (uint32_t)r;
}

uint32_t Z_cxZ_bip340_verify(struct Z_cx_instance_t *ctx, uint32_t sig, uint32_t msg,
                             uint32_t msg_len, uint32_t xonly)
{
    sbx_instance *in = enter(ctx, 2 * COST_MUL + msg_len / 8);
    uint8_t s[64], x[32];
    in_(in, s, sig, sizeof s);
    in_(in, x, xonly, sizeof x);
    return (uint32_t)cx_bip340_verify(s, sbx_guest_span(in, msg, msg_len), msg_len, x);
}

void Z_cxZ_random(struct Z_cx_instance_t *ctx, uint32_t out, uint32_t len)
{
    sbx_instance *in = enter(ctx, COST_CHEAP + len / 8);
    /* In place: the bytes are fresh, nothing to alias or to leak. */
    cx_random(sbx_guest_span(in, out, len), len);
}

/* ----- added with BIP 445 signing (guest/frost) ------------------------------ */

/* The check itself answers instead of faulting. */
uint32_t Z_cxZ_point_check(struct Z_cx_instance_t *ctx, uint32_t p)
{
    sbx_instance *in = enter(ctx, COST_POINT);
    uint8_t x[64];
    in_(in, x, p, sizeof x);
    return (uint32_t)cx_point_check(x);
}
BINARY(point_add_mulg_public, 64, 64, 32, COST_MUL)

uint32_t Z_cxZ_point_sum(struct Z_cx_instance_t *ctx, uint32_t out, uint32_t pts, uint32_t n)
{
    enum { MAXN = 64 }; /* cx_point_sum's bound */
    sbx_instance *in = enter(ctx, COST_POINT * (1 + (int64_t)(n > MAXN ? MAXN : n)));
    uint8_t o[64], buf[MAXN * 64];
    check(in, out, sizeof o);
    if (n > MAXN) return 0;
    in_(in, buf, pts, (size_t)n * 64);
    for (uint32_t i = 0; i < n; i++)
        if (!cx_point_check(buf + 64 * i)) sbx_raise(SBX_FAULT_ABI);
    int r = cx_point_sum(o, buf, n);
    out_(in, out, o, sizeof o);
    return (uint32_t)r;
}

/* The SHA-256 state is plain bytes in guest memory (cx_sha256_ctx): copied
 * in, updated, copied back. It may hold secrets (nonce derivation), so the
 * host copy is wiped, and _final zeroes the guest's copy as cx does. */
void Z_cxZ_sha256_init(struct Z_cx_instance_t *ctx, uint32_t c)
{
    sbx_instance *in = enter(ctx, COST_CHEAP);
    cx_sha256_ctx h;
    check(in, c, sizeof h.opaque);
    cx_sha256_init(&h);
    out_(in, c, h.opaque, sizeof h.opaque);
}

void Z_cxZ_tagged_hash_init(struct Z_cx_instance_t *ctx, uint32_t c, uint32_t tag, uint32_t tag_len)
{
    sbx_instance *in = enter(ctx, COST_CHEAP + (int64_t)tag_len / 8);
    cx_sha256_ctx h;
    check(in, c, sizeof h.opaque);
    cx_tagged_hash_init(&h, (const char *)sbx_guest_span(in, tag, tag_len), tag_len);
    out_(in, c, h.opaque, sizeof h.opaque);
}

void Z_cxZ_sha256_update(struct Z_cx_instance_t *ctx, uint32_t c, uint32_t msg, uint32_t len)
{
    sbx_instance *in = enter(ctx, COST_CHEAP + (int64_t)len / 8);
    cx_sha256_ctx h;
    in_(in, h.opaque, c, sizeof h.opaque);
    cx_sha256_update(&h, sbx_guest_span(in, msg, len), len);
    out_(in, c, h.opaque, sizeof h.opaque);
    cx_wipe(&h, sizeof h);
}

void Z_cxZ_sha256_final(struct Z_cx_instance_t *ctx, uint32_t out, uint32_t c)
{
    sbx_instance *in = enter(ctx, COST_CHEAP);
    cx_sha256_ctx h;
    uint8_t o[32];
    check(in, out, sizeof o);
    in_(in, h.opaque, c, sizeof h.opaque);
    cx_sha256_final(o, &h);
    out_(in, c, h.opaque, sizeof h.opaque); /* zeroed by cx_sha256_final */
    out_(in, out, o, sizeof o);
    cx_wipe(o, sizeof o);
}
