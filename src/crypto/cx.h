/*
 * cx.h — host crypto: the only door into src/crypto.
 *
 * Owns: thin, constant-time helpers over libsecp256k1 (scalar and point
 * arithmetic, tagged hashes, BIP340 sign/verify) and OS randomness. These are
 * the EC primitives the guest protocols (ChillDKG, BIP 445) are built from;
 * the sandbox exposes each of them to the wasm32 guest as an import, and the
 * native build of the guest links them directly.
 *
 * Every function is stateless and works on fixed-size byte buffers, so the
 * sandbox can bounds-check each argument once and copy it in and out of guest
 * memory. Knows nothing about sessions or protocol state.
 *
 * Encodings:
 *   scalar    32 bytes, big-endian, must be < n (the group order) on input;
 *             zero is a valid scalar.
 *   cx_point  64 bytes, opaque working form of a point (libsecp256k1's
 *             secp256k1_pubkey, valid only inside this process); all-zero
 *             bytes are the point at infinity. Using the working form avoids
 *             a square root per operation that a compressed form would cost.
 *   point33   33-byte compressed SEC1; 33 zero bytes encode infinity where a
 *             specification allows it ("cpoint_ext" in BIP 445 / ChillDKG).
 *   xonly     32-byte BIP340 x-only public key.
 *
 * Return convention: 1 on success, 0 on invalid input or an unrepresentable
 * result (e.g. inverse of zero). Outputs are unspecified on failure.
 * Secret inputs (scalars used as keys or nonces) are processed in constant
 * time by libsecp256k1; our glue branches only on public data.
 */
#ifndef CX_H
#define CX_H

#include <stddef.h>
#include <stdint.h>

#define CX_SCALAR_LEN 32
#define CX_POINT_LEN 64
#define CX_POINT33_LEN 33

/* Must be called once before any other cx_ function (idempotent, thread-safe). */
int cx_init(void);

/* ----- scalars mod n -------------------------------------------------- */
int cx_scalar_check(const uint8_t a[32]);                    /* a < n */
int cx_scalar_reduce(uint8_t out[32], const uint8_t in[32]); /* int(in) mod n, any input */
int cx_scalar_add(uint8_t out[32], const uint8_t a[32], const uint8_t b[32]);
int cx_scalar_mul(uint8_t out[32], const uint8_t a[32], const uint8_t b[32]);
int cx_scalar_neg(uint8_t out[32], const uint8_t a[32]);
int cx_scalar_inv(uint8_t out[32], const uint8_t a[32]); /* fails for 0 */
int cx_scalar_is_zero(const uint8_t a[32]);

/* ----- points ---------------------------------------------------------- */
/* Parse a 33-byte compressed point; allow_inf accepts 33 zero bytes. */
int cx_point_parse(uint8_t out[64], const uint8_t in[33], int allow_inf);
/* Serialize; infinity becomes 33 zero bytes. */
int cx_point_ser(uint8_t out[33], const uint8_t p[64]);
/* lift_x from BIP340: the point with even y and x-coordinate x. */
int cx_point_lift_x(uint8_t out[64], const uint8_t x[32]);
/* x-only serialization and whether y is even (fails for infinity). y_even
 * may be NULL natively; guest code always passes one (the import refuses a
 * NULL pointer). */
int cx_point_xonly(uint8_t x[32], int *y_even, const uint8_t p[64]);
int cx_point_is_inf(const uint8_t p[64]);
int cx_point_add(uint8_t out[64], const uint8_t a[64], const uint8_t b[64]);
int cx_point_neg(uint8_t out[64], const uint8_t p[64]);
int cx_point_mul(uint8_t out[64], const uint8_t p[64], const uint8_t k[32]); /* k*P, k may be 0 */
int cx_point_mul_base(uint8_t out[64], const uint8_t k[32]);                 /* k*G, k may be 0 */
int cx_point_eq(const uint8_t a[64], const uint8_t b[64]);
/* Whether 64 working-form bytes are a point this process could have made
 * (infinity or a valid curve point); cheap (no square root). The other point
 * functions trust their inputs: malformed bytes never crash or abort, but may
 * give a meaningless point (add, sum, eq) where they are not refused. The
 * sandbox checks points read from an untrusted guest with it. */
int cx_point_check(const uint8_t p[64]);
/* out = sum of n points stored back to back (n * 64 bytes, n <= 64), in one
 * normalisation; infinities are allowed and an empty sum is infinity. */
int cx_point_sum(uint8_t out[64], const uint8_t *pts, size_t n);
/* out = P + k*G in VARIABLE time: only for public k (signature and share
 * verification). About three times cheaper than cx_point_mul_base + add. */
int cx_point_add_mulg_public(uint8_t out[64], const uint8_t p[64], const uint8_t k[32]);

/* ----- hashes ----------------------------------------------------------- */
void cx_sha256(uint8_t out[32], const uint8_t *msg, size_t len);
/* BIP340 tagged hash: SHA256(SHA256(tag) || SHA256(tag) || msg). */
void cx_tagged_hash(uint8_t out[32], const char *tag, size_t tag_len, const uint8_t *msg,
                    size_t len);

/* Incremental SHA-256 for messages built from several parts (protocol
 * hashes over variable-length inputs, without a scratch buffer). The state is
 * plain bytes so it can live in guest memory; _final wipes it. */
#define CX_SHA256_CTX_LEN 128
typedef struct cx_sha256_ctx {
    uint8_t opaque[CX_SHA256_CTX_LEN];
} cx_sha256_ctx;
void cx_sha256_init(cx_sha256_ctx *c);
/* Starts a BIP340 tagged hash: init + absorb SHA256(tag) twice. */
void cx_tagged_hash_init(cx_sha256_ctx *c, const char *tag, size_t tag_len);
void cx_sha256_update(cx_sha256_ctx *c, const uint8_t *msg, size_t len);
void cx_sha256_final(uint8_t out[32], cx_sha256_ctx *c);

/* ----- BIP340 ----------------------------------------------------------- */
int cx_bip340_sign(uint8_t sig[64], const uint8_t *msg, size_t msg_len, const uint8_t seckey[32],
                   const uint8_t aux_rand[32]);
int cx_bip340_verify(const uint8_t sig[64], const uint8_t *msg, size_t msg_len,
                     const uint8_t xonly[32]);
/* Compressed public key of a secret key (ChillDKG host keys). */
int cx_pubkey_from_seckey(uint8_t out[33], const uint8_t seckey[32]);

/* ----- randomness ------------------------------------------------------- */
void cx_random(uint8_t *out, size_t len);

/* Wipes memory in a way the compiler cannot elide. */
void cx_wipe(void *p, size_t len);

#endif
