/*
 * cg_cx.h — how guest code reaches the host crypto primitives.
 *
 * The guest is plain C compiled twice: natively (fast unit tests, published
 * vectors), where these are direct calls into src/crypto, and to wasm32,
 * where each becomes an import of module "cx" that the sandbox implements
 * with bounds-checked copies in and out of linear memory. Guest code includes
 * this header, never cx.h directly, so both builds see the same declarations.
 */
#ifndef CG_CX_H
#define CG_CX_H

#if defined(__wasm__)
#include <stddef.h>
#include <stdint.h>
#define CG_IMPORT(name) __attribute__((import_module("cx"), import_name(#name)))
#define CX_SCALAR_LEN 32
#define CX_POINT_LEN 64
#define CX_POINT33_LEN 33
CG_IMPORT(scalar_check) int cx_scalar_check(const uint8_t a[32]);
CG_IMPORT(scalar_reduce) int cx_scalar_reduce(uint8_t out[32], const uint8_t in[32]);
CG_IMPORT(scalar_add) int cx_scalar_add(uint8_t out[32], const uint8_t a[32], const uint8_t b[32]);
CG_IMPORT(scalar_mul) int cx_scalar_mul(uint8_t out[32], const uint8_t a[32], const uint8_t b[32]);
CG_IMPORT(scalar_neg) int cx_scalar_neg(uint8_t out[32], const uint8_t a[32]);
CG_IMPORT(scalar_inv) int cx_scalar_inv(uint8_t out[32], const uint8_t a[32]);
CG_IMPORT(scalar_is_zero) int cx_scalar_is_zero(const uint8_t a[32]);
CG_IMPORT(point_parse) int cx_point_parse(uint8_t out[64], const uint8_t in[33], int allow_inf);
CG_IMPORT(point_ser) int cx_point_ser(uint8_t out[33], const uint8_t p[64]);
CG_IMPORT(point_lift_x) int cx_point_lift_x(uint8_t out[64], const uint8_t x[32]);
CG_IMPORT(point_xonly) int cx_point_xonly(uint8_t x[32], int *y_even, const uint8_t p[64]);
CG_IMPORT(point_is_inf) int cx_point_is_inf(const uint8_t p[64]);
CG_IMPORT(point_add) int cx_point_add(uint8_t out[64], const uint8_t a[64], const uint8_t b[64]);
CG_IMPORT(point_neg) int cx_point_neg(uint8_t out[64], const uint8_t p[64]);
CG_IMPORT(point_mul) int cx_point_mul(uint8_t out[64], const uint8_t p[64], const uint8_t k[32]);
CG_IMPORT(point_mul_base) int cx_point_mul_base(uint8_t out[64], const uint8_t k[32]);
CG_IMPORT(point_eq) int cx_point_eq(const uint8_t a[64], const uint8_t b[64]);
CG_IMPORT(point_check) int cx_point_check(const uint8_t p[64]);
CG_IMPORT(point_sum) int cx_point_sum(uint8_t out[64], const uint8_t *pts, size_t n);
CG_IMPORT(point_add_mulg_public)
int cx_point_add_mulg_public(uint8_t out[64], const uint8_t p[64], const uint8_t k[32]);
CG_IMPORT(sha256) void cx_sha256(uint8_t out[32], const uint8_t *msg, size_t len);
CG_IMPORT(tagged_hash)
void cx_tagged_hash(uint8_t out[32], const char *tag, size_t tag_len, const uint8_t *msg,
                    size_t len);
#define CX_SHA256_CTX_LEN 128
typedef struct cx_sha256_ctx {
    uint8_t opaque[CX_SHA256_CTX_LEN];
} cx_sha256_ctx;
CG_IMPORT(sha256_init) void cx_sha256_init(cx_sha256_ctx *c);
CG_IMPORT(tagged_hash_init)
void cx_tagged_hash_init(cx_sha256_ctx *c, const char *tag, size_t tag_len);
CG_IMPORT(sha256_update) void cx_sha256_update(cx_sha256_ctx *c, const uint8_t *msg, size_t len);
CG_IMPORT(sha256_final) void cx_sha256_final(uint8_t out[32], cx_sha256_ctx *c);
CG_IMPORT(bip340_sign)
int cx_bip340_sign(uint8_t sig[64], const uint8_t *msg, size_t msg_len, const uint8_t seckey[32],
                   const uint8_t aux_rand[32]);
CG_IMPORT(bip340_verify)
int cx_bip340_verify(const uint8_t sig[64], const uint8_t *msg, size_t msg_len,
                     const uint8_t xonly[32]);
CG_IMPORT(pubkey_from_seckey) int cx_pubkey_from_seckey(uint8_t out[33], const uint8_t seckey[32]);
CG_IMPORT(random) void cx_random(uint8_t *out, size_t len);
/* Wiping guest memory needs no host call: volatile stores the compiler keeps. */
static inline void cx_wipe(void *p, size_t len)
{
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (len--)
        *v++ = 0;
}
#else
#include "cx.h"
#endif

#endif
