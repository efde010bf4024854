/*
 * cg_frost.h — BIP 445 FROST signing for BIP340 (siv2r/bip-frost-signing) in
 * the guest, with plain and x-only tweaks and the BIP 341 Taproot tweak.
 *
 * Owns: nonce generation and aggregation, the signers / tweak / session
 * contexts, partial signing (random and deterministic nonces), partial
 * signature verification with identifiable abort, aggregation and the final
 * BIP340 check. Knows nothing about rendezvous, storage or the wire: the
 * cosigner actor decodes commands, keeps the contexts between rounds and
 * drives these functions.
 *
 * Plain C on top of cg_cx.h only (string.h, no allocation), so the same code
 * runs natively and inside the wasm32 sandbox. Every context is a fixed-size,
 * caller-allocated struct; the number of signers is bounded by
 * CG_FROST_MAX_SIGNERS (the number of tweaks is not bounded: a tweak context
 * keeps only the accumulated values).
 *
 * Flow of one session (the reference's functions in brackets):
 *   cg_frost_nonce_gen            -> secnonce (kept), pubnonce (sent)  [nonce_gen]
 *   cg_frost_nonce_agg            pubnonces of all signers -> aggnonce [nonce_agg]
 *   cg_frost_signers_init         n, t, ids, pubshares, thresh_pk      [validate_signers_ctx]
 *   cg_frost_tweak_init / _apply  threshold key and tweaks             [thresh_pubkey_and_tweak]
 *   cg_frost_session_init         signers, tweaks, aggnonce, msg       [get_session_values]
 *   cg_frost_sign                 consumes the secnonce -> psig        [sign]
 *   cg_frost_partial_sig_verify   one signer's psig against its pubnonce
 *   cg_frost_partial_sig_agg      -> 64-byte BIP340 signature          [partial_sig_agg]
 *   cg_frost_verify               final BIP340 check under the tweaked key
 * The signers context depends only on the wallet and the signer set, so it
 * may be computed once and reused for many sessions.
 *
 * Identifiers: a signer's id is its 0-based participant index (< n); the
 * Lagrange coefficients interpolate at id + 1 as the BIP does. "Position"
 * below is an index into the session's signer list (ids[pos]); blame is
 * reported as a position, like the reference's signer_index.
 *
 * Encodings (big-endian, as in the BIP): pubnonce = 2 compressed points
 * (66 bytes); aggnonce = 2 compressed points where 33 zero bytes encode
 * infinity (66); secnonce = k1 || k2 (64); psig = scalar (32);
 * signature = BIP340 (64); thresh_pk and pubshares compressed (33).
 *
 * Errors. Every function returns an rt_status and, if `err` is non-NULL,
 * fills it (kind NONE on success):
 *   RT_INVALID_ARGUMENT  CG_FROST_ERR_VALUE: the reference's ValueError (a
 *                        precondition on the caller's inputs); err->msg is
 *                        the reference's message, where a "%d" stands for
 *                        err->index (the two messages that name an index).
 *   RT_ABORTED           CG_FROST_ERR_INVALID_CONTRIBUTION: a signer (err->signer
 *                        = its position) or the coordinator (err->signer = -1)
 *                        sent an invalid value of kind err->contrib. The
 *                        session must be abandoned and the party blamed.
 *   RT_OUT_OF_RANGE      CG_FROST_ERR_TOO_MANY: more signers than supported
 *                        here (valid per the BIP).
 *   RT_INTERNAL          CG_FROST_ERR_INTERNAL: a primitive failed where it
 *                        cannot (negligible probability, or a broken host).
 * Outputs are unspecified on failure; secret temporaries are always wiped.
 *
 * Secret nonces: a cg_frost_secnonce is produced by nonce generation and
 * consumed by exactly one cg_frost_sign, which zeroes it before anything
 * else, whatever the outcome; signing with a zeroed (used) secnonce fails.
 * Never copy, persist or snapshot one; wipe abandoned ones with
 * cg_frost_secnonce_wipe.
 */
#ifndef CG_FROST_H
#define CG_FROST_H

#include <stddef.h>
#include <stdint.h>

#include "rt_status.h"

#define CG_FROST_MAX_SIGNERS 32u

#define CG_FROST_PUBNONCE_LEN 66u
#define CG_FROST_AGGNONCE_LEN 66u
#define CG_FROST_SECNONCE_LEN 64u
#define CG_FROST_PSIG_LEN 32u
#define CG_FROST_SIG_LEN 64u
#define CG_FROST_PUBKEY_LEN 33u

typedef enum cg_frost_error_kind {
    CG_FROST_ERR_NONE = 0,
    CG_FROST_ERR_VALUE,                /* ValueError */
    CG_FROST_ERR_INVALID_CONTRIBUTION, /* InvalidContributionError */
    CG_FROST_ERR_TOO_MANY,
    CG_FROST_ERR_INTERNAL,
} cg_frost_error_kind;

/* What an invalid contribution was (the reference's ContribKind). */
typedef enum cg_frost_contrib {
    CG_FROST_CONTRIB_NONE = 0,
    CG_FROST_CONTRIB_AGGOTHERNONCE,
    CG_FROST_CONTRIB_AGGNONCE,
    CG_FROST_CONTRIB_PSIG,
    CG_FROST_CONTRIB_PUBNONCE,
} cg_frost_contrib;

typedef struct cg_frost_error {
    cg_frost_error_kind kind;
    cg_frost_contrib contrib; /* INVALID_CONTRIBUTION only */
    int32_t signer;           /* INVALID_CONTRIBUTION: blamed position, -1 = coordinator */
    int32_t index;            /* VALUE: the index an indexed message names, else -1 */
    const char *msg;          /* static text; "%d" stands for index */
} cg_frost_error;

/* Reference exception name ("ValueError", "InvalidContributionError", ...). */
const char *cg_frost_error_kind_name(cg_frost_error_kind kind);
/* Reference contribution name ("pubnonce", "psig", ...; "" for NONE). */
const char *cg_frost_contrib_name(cg_frost_contrib contrib);

/* ----- nonces --------------------------------------------------------------- */

typedef struct cg_frost_secnonce {
    uint8_t k[CG_FROST_SECNONCE_LEN]; /* secret: k1 || k2, all zero once used */
} cg_frost_secnonce;

/*
 * Fresh nonce pair from cx_random. All other inputs are optional
 * defence-in-depth (NULL = absent): secshare (32), pubshare (33), thresh_pk
 * as x-only (32), msg (msg == NULL means absent; an empty message is a
 * non-NULL msg with msg_len 0), extra_in. Fills *secnonce (caller keeps it,
 * in memory only) and pubnonce (sent to the coordinator).
 */
rt_status cg_frost_nonce_gen(cg_frost_secnonce *secnonce, uint8_t pubnonce[66],
                             const uint8_t *secshare, const uint8_t *pubshare,
                             const uint8_t *thresh_pk_xonly, const uint8_t *msg, size_t msg_len,
                             const uint8_t *extra_in, size_t extra_in_len, cg_frost_error *err);

/* Same with caller-supplied randomness rand_ (32 bytes). Only for test
 * vectors: rand_ must be fresh and uniform, or keys leak. */
rt_status cg_frost_nonce_gen_internal(cg_frost_secnonce *secnonce, uint8_t pubnonce[66],
                                      const uint8_t rand_[32], const uint8_t *secshare,
                                      const uint8_t *pubshare, const uint8_t *thresh_pk_xonly,
                                      const uint8_t *msg, size_t msg_len, const uint8_t *extra_in,
                                      size_t extra_in_len, cg_frost_error *err);

void cg_frost_secnonce_wipe(cg_frost_secnonce *secnonce);

/* Whether a received pubnonce is two valid points (for rejecting a bad one
 * on receipt): RT_OK or RT_INVALID_ARGUMENT. */
rt_status cg_frost_pubnonce_check(const uint8_t pubnonce[66]);

/* aggnonce from the pubnonces of the count signers, in position order.
 * An invalid pubnonce is an INVALID_CONTRIBUTION (PUBNONCE) of its position. */
rt_status cg_frost_nonce_agg(uint8_t aggnonce[66], const uint8_t (*pubnonces)[66], size_t count,
                             cg_frost_error *err);

/* ----- signers ---------------------------------------------------------------- */

/* The validated signer set of one session: parsed public shares and their
 * Lagrange coefficients. Public data only. */
typedef struct cg_frost_signers {
    uint32_t magic;
    uint32_t n, t, count;
    uint32_t ids[CG_FROST_MAX_SIGNERS];
    uint8_t pubshares[CG_FROST_MAX_SIGNERS][33];
    uint8_t thresh_pk[33];
    uint8_t P[CG_FROST_MAX_SIGNERS][64];      /* parsed pubshares (cx_point) */
    uint8_t lambda[CG_FROST_MAX_SIGNERS][32]; /* Lagrange coefficient of ids[i] */
} cg_frost_signers;

/*
 * Validates (n, t, ids[count], pubshares[count], thresh_pk) as the BIP's
 * ValidateSignersCtx does, in the same order and with the same messages:
 * 1 <= t <= n, t <= count <= n, each id < n and pubshare valid, no duplicate
 * ids, and sum(lambda_i * P_i) == thresh_pk. count > CG_FROST_MAX_SIGNERS is
 * TOO_MANY. Costs count scalar multiplications: reuse the result.
 */
rt_status cg_frost_signers_init(cg_frost_signers *s, uint32_t n, uint32_t t, const uint32_t *ids,
                                const uint8_t (*pubshares)[33], size_t count,
                                const uint8_t thresh_pk[33], cg_frost_error *err);

/* Position of id in the signer list, or -1. */
int cg_frost_signers_pos(const cg_frost_signers *s, uint32_t id);

/* ----- tweaks ---------------------------------------------------------------- */

/* The threshold key after tweaking, Q, with the accumulated sign gacc and
 * tweak tacc of the BIP. Public data only. */
typedef struct cg_frost_tweak_ctx {
    uint32_t magic;
    uint32_t count; /* tweaks applied */
    uint8_t Q[64];  /* cx_point, never infinity */
    int32_t gacc;   /* +1 or -1 */
    uint8_t tacc[32];
} cg_frost_tweak_ctx;

/* Q = thresh_pk (33-byte compressed), no tweak yet. */
rt_status cg_frost_tweak_init(cg_frost_tweak_ctx *tc, const uint8_t thresh_pk[33],
                              cg_frost_error *err);

/* Applies one tweak (tweak_len must be 32: the length is checked here
 * because tweaks arrive from the wire). is_xonly: BIP341-style tweak of the
 * even-y key; otherwise a plain (BIP32-style) tweak. */
rt_status cg_frost_tweak_apply(cg_frost_tweak_ctx *tc, const uint8_t *tweak, size_t tweak_len,
                               int is_xonly, cg_frost_error *err);

/* The reference's thresh_pubkey_and_tweak: init + apply each tweak in order;
 * n_tweaks must equal n_is_xonly. */
rt_status cg_frost_tweak_ctx_build(cg_frost_tweak_ctx *tc, const uint8_t thresh_pk[33],
                                   const uint8_t *const *tweaks, const size_t *tweak_lens,
                                   size_t n_tweaks, const uint8_t *is_xonly, size_t n_is_xonly,
                                   cg_frost_error *err);

/* BIP 341 key-path tweak of the current key: t = hashTapTweak(xonly(Q) ||
 * merkle_root), merkle_root NULL for a key-path-only output. Apply the
 * result with is_xonly = 1 (cg_frost_tweak_apply_taproot does both). */
rt_status cg_frost_taproot_tweak(uint8_t tweak[32], const cg_frost_tweak_ctx *tc,
                                 const uint8_t *merkle_root);
rt_status cg_frost_tweak_apply_taproot(cg_frost_tweak_ctx *tc, const uint8_t *merkle_root,
                                       cg_frost_error *err);

/* The (tweaked) key: x-only (what BIP340 signatures verify under) and
 * compressed. */
rt_status cg_frost_tweak_xonly(uint8_t out[32], const cg_frost_tweak_ctx *tc);
rt_status cg_frost_tweak_plain(uint8_t out[33], const cg_frost_tweak_ctx *tc);

/* ----- session ---------------------------------------------------------------- */

/* Everything a signer and the coordinator derive from (signers, tweaks,
 * aggnonce, msg): binding factor b, final nonce R, challenge e. Public data
 * only; copies the signers and tweak contexts, so those may be reused. */
typedef struct cg_frost_session {
    uint32_t magic;
    cg_frost_signers signers;
    cg_frost_tweak_ctx tweak;
    uint8_t aggnonce[66];
    uint8_t b[32];
    uint8_t e[32];
    uint8_t R[64];
    uint8_t R_x[32];
    int32_t R_even;
    int32_t Q_even;
} cg_frost_session;

/* An aggnonce half that is not a point or infinity is an INVALID_CONTRIBUTION
 * (AGGNONCE) of the coordinator. */
rt_status cg_frost_session_init(cg_frost_session *sess, const cg_frost_signers *signers,
                                const cg_frost_tweak_ctx *tweak, const uint8_t aggnonce[66],
                                const uint8_t *msg, size_t msg_len, cg_frost_error *err);

/*
 * Partial signature of the signer with identifier my_id and secret share
 * secshare. Consumes *secnonce: it is zeroed first, whatever the outcome.
 * Checks (the BIP's order): secnonce halves non-zero and < n, secshare
 * non-zero and < n, its public share in the signer list, my_id in ids.
 */
rt_status cg_frost_sign(uint8_t psig[32], cg_frost_secnonce *secnonce, const uint8_t secshare[32],
                        uint32_t my_id, const cg_frost_session *sess, cg_frost_error *err);

/*
 * Verifies the partial signature of the signer at position pos against its
 * pubnonce: RT_OK, or RT_ABORTED with INVALID_CONTRIBUTION blaming pos
 * (contrib PSIG when the psig is out of range or the equation fails,
 * PUBNONCE when the pubnonce is malformed). pos out of range is VALUE.
 */
rt_status cg_frost_partial_sig_verify(const cg_frost_session *sess, const uint8_t psig[32],
                                      const uint8_t pubnonce[66], size_t pos, cg_frost_error *err);

/* Sums count psigs (position order; count must equal the signer count) into
 * the final signature. A psig >= n is INVALID_CONTRIBUTION (PSIG) of its
 * position. Does not verify: call cg_frost_partial_sig_verify per signer
 * first (identifiable abort) and cg_frost_verify after. */
rt_status cg_frost_partial_sig_agg(uint8_t sig[64], const cg_frost_session *sess,
                                   const uint8_t (*psigs)[32], size_t count, cg_frost_error *err);

/* BIP340 verification of sig on msg under the session's tweaked x-only key:
 * RT_OK or RT_INVALID_ARGUMENT. */
rt_status cg_frost_verify(const cg_frost_session *sess, const uint8_t sig[64], const uint8_t *msg,
                          size_t msg_len);

/* ----- deterministic signing ------------------------------------------------ */

/*
 * The BIP's DeterministicSign for a signer that signs last, with the nonces
 * of all others already aggregated (aggothernonce): derives its nonce from
 * secshare, the session and optional rand (NULL = absent), aggregates, signs.
 * Outputs its pubnonce and psig. No secret nonce outlives the call. An
 * invalid aggothernonce is INVALID_CONTRIBUTION (AGGOTHERNONCE, signer -1);
 * aggothernonce is NULL for a sole signer (its own nonce is the aggregate).
 */
rt_status cg_frost_deterministic_sign(uint8_t pubnonce[66], uint8_t psig[32],
                                      const uint8_t secshare[32], uint32_t my_id,
                                      const uint8_t aggothernonce[66],
                                      const cg_frost_signers *signers,
                                      const cg_frost_tweak_ctx *tweak, const uint8_t *msg,
                                      size_t msg_len, const uint8_t *rand, cg_frost_error *err);

#endif
