/*
 * cg_frost.c — BIP 445 signing on the cx primitives (see cg_frost.h).
 *
 * Follows the reference implementation step by step, in the same order of
 * checks, so that an input with several faults reports the same error as the
 * reference. Secret values (secret nonces, the secret share and everything
 * derived from them) only ever pass through cx_ scalar functions, which are
 * constant time, and are wiped before returning; branches depend on public
 * data only (points, parities, identifiers, validity of inputs).
 */
#include "cg_frost.h"

#include <string.h>

#include "cg_cx.h"

#define SIGNERS_MAGIC 0x46524f53u /* "FROS" */
#define TWEAK_MAGIC 0x46525457u   /* "FRTW" */
#define SESSION_MAGIC 0x46525353u /* "FRSS" */

#define TAG(s) (s), (sizeof(s) - 1)

static const uint8_t ONE[32] = {[31] = 1};

/* ----- errors ---------------------------------------------------------------- */

const char *cg_frost_error_kind_name(cg_frost_error_kind kind)
{
    switch (kind) {
    case CG_FROST_ERR_NONE:
        return "None";
    case CG_FROST_ERR_VALUE:
        return "ValueError";
    case CG_FROST_ERR_INVALID_CONTRIBUTION:
        return "InvalidContributionError";
    case CG_FROST_ERR_TOO_MANY:
        return "TooManySigners";
    case CG_FROST_ERR_INTERNAL:
        return "InternalError";
    }
    return "Unknown";
}

const char *cg_frost_contrib_name(cg_frost_contrib contrib)
{
    switch (contrib) {
    case CG_FROST_CONTRIB_NONE:
        return "";
    case CG_FROST_CONTRIB_AGGOTHERNONCE:
        return "aggothernonce";
    case CG_FROST_CONTRIB_AGGNONCE:
        return "aggnonce";
    case CG_FROST_CONTRIB_PSIG:
        return "psig";
    case CG_FROST_CONTRIB_PUBNONCE:
        return "pubnonce";
    }
    return "";
}

static void err_clear(cg_frost_error *err)
{
    if (err) {
        err->kind = CG_FROST_ERR_NONE;
        err->contrib = CG_FROST_CONTRIB_NONE;
        err->signer = -1;
        err->index = -1;
        err->msg = "";
    }
}

static rt_status fail_value(cg_frost_error *err, const char *msg, int32_t index)
{
    if (err) {
        err_clear(err);
        err->kind = CG_FROST_ERR_VALUE;
        err->index = index;
        err->msg = msg;
    }
    return RT_INVALID_ARGUMENT;
}

static rt_status fail_contrib(cg_frost_error *err, cg_frost_contrib contrib, int32_t signer)
{
    if (err) {
        err_clear(err);
        err->kind = CG_FROST_ERR_INVALID_CONTRIBUTION;
        err->contrib = contrib;
        err->signer = signer;
        err->msg = "invalid contribution";
    }
    return RT_ABORTED;
}

static rt_status fail_internal(cg_frost_error *err, const char *msg)
{
    if (err) {
        err_clear(err);
        err->kind = CG_FROST_ERR_INTERNAL;
        err->msg = msg;
    }
    return RT_INTERNAL;
}

static rt_status fail_too_many(cg_frost_error *err)
{
    if (err) {
        err_clear(err);
        err->kind = CG_FROST_ERR_TOO_MANY;
        err->msg = "More signers than supported.";
    }
    return RT_OUT_OF_RANGE;
}

/* ----- small helpers --------------------------------------------------------- */

static void be32(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static void be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* The scalar of a 33-bit unsigned value (id + 1 needs 33 bits). */
static void scalar_u64(uint8_t out[32], uint64_t v)
{
    memset(out, 0, 32);
    be64(out + 24, v);
}

static void xor32(uint8_t out[32], const uint8_t a[32], const uint8_t b[32])
{
    for (int i = 0; i < 32; i++)
        out[i] = a[i] ^ b[i];
}

/* A hash output as a scalar, nonzero (zero has negligible probability). */
static int hash_to_scalar(uint8_t out[32], const uint8_t h[32])
{
    return cx_scalar_reduce(out, h) && !cx_scalar_is_zero(out);
}

/* Nonzero scalar < n: the range of secret keys and secret nonces. */
static int scalar_nonzero_checked(const uint8_t a[32])
{
    return cx_scalar_check(a) && !cx_scalar_is_zero(a);
}

/* Sorted identifiers, 4 bytes each: the BIP binds the signer *set*. */
static void ser_ids(uint8_t *out, const uint32_t *ids, size_t count)
{
    uint32_t s[CG_FROST_MAX_SIGNERS];
    memcpy(s, ids, count * sizeof *s);
    for (size_t i = 1; i < count; i++) { /* insertion sort, count <= 32 */
        uint32_t v = s[i];
        size_t j = i;
        while (j > 0 && s[j - 1] > v) {
            s[j] = s[j - 1];
            j--;
        }
        s[j] = v;
    }
    for (size_t i = 0; i < count; i++)
        be32(out + 4 * i, s[i]);
}

/* ----- nonces ---------------------------------------------------------------- */

void cg_frost_secnonce_wipe(cg_frost_secnonce *secnonce)
{
    if (secnonce) cx_wipe(secnonce->k, sizeof secnonce->k);
}

static void nonce_hash(uint8_t out[32], const uint8_t rand[32], const uint8_t *pubshare,
                       const uint8_t *thresh_pk, const uint8_t *msg, size_t msg_len,
                       const uint8_t *extra_in, size_t extra_in_len, uint8_t i)
{
    cx_sha256_ctx h;
    uint8_t b[9];
    cx_tagged_hash_init(&h, TAG("BIP0445/nonce"));
    cx_sha256_update(&h, rand, 32);
    b[0] = pubshare ? 33 : 0;
    cx_sha256_update(&h, b, 1);
    if (pubshare) cx_sha256_update(&h, pubshare, 33);
    b[0] = thresh_pk ? 32 : 0;
    cx_sha256_update(&h, b, 1);
    if (thresh_pk) cx_sha256_update(&h, thresh_pk, 32);
    if (msg) {
        b[0] = 1;
        be64(b + 1, (uint64_t)msg_len);
        cx_sha256_update(&h, b, 9);
        cx_sha256_update(&h, msg, msg_len);
    } else {
        b[0] = 0;
        cx_sha256_update(&h, b, 1);
    }
    be32(b, (uint32_t)(extra_in ? extra_in_len : 0));
    cx_sha256_update(&h, b, 4);
    if (extra_in) cx_sha256_update(&h, extra_in, extra_in_len);
    cx_sha256_update(&h, &i, 1);
    cx_sha256_final(out, &h);
    cx_wipe(&h, sizeof h); /* absorbed secrets; not left to the import */
}

/* pubnonce = k1*G || k2*G for the secret nonce pair k (64 bytes). */
static int pubnonce_of(uint8_t pubnonce[66], const uint8_t k[64])
{
    uint8_t R[64];
    int ok = cx_point_mul_base(R, k) && !cx_point_is_inf(R) && cx_point_ser(pubnonce, R) &&
             cx_point_mul_base(R, k + 32) && !cx_point_is_inf(R) && cx_point_ser(pubnonce + 33, R);
    return ok;
}

rt_status cg_frost_nonce_gen_internal(cg_frost_secnonce *secnonce, uint8_t pubnonce[66],
                                      const uint8_t rand_[32], const uint8_t *secshare,
                                      const uint8_t *pubshare, const uint8_t *thresh_pk_xonly,
                                      const uint8_t *msg, size_t msg_len, const uint8_t *extra_in,
                                      size_t extra_in_len, cg_frost_error *err)
{
    uint8_t rand[32], h[32];
    int ok;
    err_clear(err);
    if (!secnonce || !pubnonce || !rand_)
        return fail_value(err, "Missing output or randomness.", -1);
    if (extra_in_len > UINT32_MAX) return fail_value(err, "extra_in is too long.", -1);
    if (secshare) {
        cx_tagged_hash(h, TAG("BIP0445/aux"), rand_, 32);
        xor32(rand, secshare, h);
    } else {
        memcpy(rand, rand_, 32);
    }
    nonce_hash(h, rand, pubshare, thresh_pk_xonly, msg, msg_len, extra_in, extra_in_len, 0);
    ok = hash_to_scalar(secnonce->k, h);
    nonce_hash(h, rand, pubshare, thresh_pk_xonly, msg, msg_len, extra_in, extra_in_len, 1);
    ok = ok && hash_to_scalar(secnonce->k + 32, h);
    ok = ok && pubnonce_of(pubnonce, secnonce->k);
    cx_wipe(rand, sizeof rand);
    cx_wipe(h, sizeof h);
    if (!ok) {
        cg_frost_secnonce_wipe(secnonce);
        return fail_internal(err, "Nonce derivation failed.");
    }
    return RT_OK;
}

rt_status cg_frost_nonce_gen(cg_frost_secnonce *secnonce, uint8_t pubnonce[66],
                             const uint8_t *secshare, const uint8_t *pubshare,
                             const uint8_t *thresh_pk_xonly, const uint8_t *msg, size_t msg_len,
                             const uint8_t *extra_in, size_t extra_in_len, cg_frost_error *err)
{
    uint8_t rand_[32];
    rt_status st;
    cx_random(rand_, sizeof rand_);
    /* An all-zero draw means a broken randomness source, not luck (checked
     * in constant time: rand_ is secret). */
    if (cx_scalar_is_zero(rand_)) return fail_internal(err, "Randomness source returned zeros.");
    st = cg_frost_nonce_gen_internal(secnonce, pubnonce, rand_, secshare, pubshare, thresh_pk_xonly,
                                     msg, msg_len, extra_in, extra_in_len, err);
    cx_wipe(rand_, sizeof rand_);
    return st;
}

rt_status cg_frost_pubnonce_check(const uint8_t pubnonce[66])
{
    uint8_t R[64];
    if (!cx_point_parse(R, pubnonce, 0) || !cx_point_parse(R, pubnonce + 33, 0))
        return RT_INVALID_ARGUMENT;
    return RT_OK;
}

rt_status cg_frost_nonce_agg(uint8_t aggnonce[66], const uint8_t (*pubnonces)[66], size_t count,
                             cg_frost_error *err)
{
    uint8_t pts[CG_FROST_MAX_SIGNERS * 64], R[64];
    err_clear(err);
    if (count > CG_FROST_MAX_SIGNERS) return fail_too_many(err);
    for (size_t j = 0; j < 2; j++) {
        for (size_t i = 0; i < count; i++)
            if (!cx_point_parse(pts + 64 * i, pubnonces[i] + 33 * j, 0))
                return fail_contrib(err, CG_FROST_CONTRIB_PUBNONCE, (int32_t)i);
        if (!cx_point_sum(R, pts, count) || !cx_point_ser(aggnonce + 33 * j, R))
            return fail_internal(err, "Point sum failed.");
    }
    return RT_OK;
}

/* ----- signers ---------------------------------------------------------------- */

/* lambda[i] = prod_{j != i} (id_j + 1) / (id_j - id_i) for distinct ids, with
 * one inversion for all denominators (Montgomery's trick). Public data. */
static int lagrange_all(uint8_t (*lambda)[32], const uint32_t *ids, size_t count)
{
    uint8_t den[CG_FROST_MAX_SIGNERS][32], pre[CG_FROST_MAX_SIGNERS][32], inv[32], t[32];
    for (size_t i = 0; i < count; i++) {
        memcpy(lambda[i], ONE, 32);
        memcpy(den[i], ONE, 32);
        for (size_t j = 0; j < count; j++) {
            if (j == i) continue;
            scalar_u64(t, (uint64_t)ids[j] + 1);
            if (!cx_scalar_mul(lambda[i], lambda[i], t)) return 0;
            if (ids[j] > ids[i]) {
                scalar_u64(t, (uint64_t)(ids[j] - ids[i]));
            } else {
                scalar_u64(t, (uint64_t)(ids[i] - ids[j]));
                if (!cx_scalar_neg(t, t)) return 0;
            }
            if (!cx_scalar_mul(den[i], den[i], t)) return 0;
        }
    }
    if (count == 0) return 1;
    memcpy(pre[0], den[0], 32);
    for (size_t i = 1; i < count; i++)
        if (!cx_scalar_mul(pre[i], pre[i - 1], den[i])) return 0;
    if (!cx_scalar_inv(inv, pre[count - 1])) /* ids distinct: never zero */
        return 0;
    for (size_t i = count; i-- > 0;) {
        /* inv = 1 / (den_0 ... den_i) */
        if (i > 0) {
            if (!cx_scalar_mul(t, inv, pre[i - 1])) /* 1 / den_i */
                return 0;
            if (!cx_scalar_mul(inv, inv, den[i])) return 0;
        } else {
            memcpy(t, inv, 32);
        }
        if (!cx_scalar_mul(lambda[i], lambda[i], t)) return 0;
    }
    return 1;
}

rt_status cg_frost_signers_init(cg_frost_signers *s, uint32_t n, uint32_t t, const uint32_t *ids,
                                const uint8_t (*pubshares)[33], size_t count,
                                const uint8_t thresh_pk[33], cg_frost_error *err)
{
    uint8_t terms[CG_FROST_MAX_SIGNERS * 64], Q[64], q33[33];
    err_clear(err);
    if (!s) return fail_value(err, "Missing signers context.", -1);
    memset(s, 0, sizeof *s);
    if (t < 1 || t > n) return fail_value(err, "The threshold must be 1 <= t <= n.", -1);
    if (count < t || count > n)
        return fail_value(err, "The number of signers must be between t and n.", -1);
    if (count > CG_FROST_MAX_SIGNERS) return fail_too_many(err);
    for (size_t i = 0; i < count; i++) {
        if (ids[i] > n - 1)
            return fail_value(err, "The participant identifier at index %d is out of range.",
                              (int32_t)i);
        if (!cx_point_parse(s->P[i], pubshares[i], 0))
            return fail_value(err, "Invalid pubshare at index %d.", (int32_t)i);
    }
    for (size_t i = 0; i < count; i++)
        for (size_t j = i + 1; j < count; j++)
            if (ids[i] == ids[j])
                return fail_value(
                    err, "The participant identifier list contains duplicate elements.", -1);
    if (!lagrange_all(s->lambda, ids, count))
        return fail_internal(err, "Lagrange coefficient failed.");
    for (size_t i = 0; i < count; i++)
        if (!cx_point_mul(terms + 64 * i, s->P[i], s->lambda[i]))
            return fail_internal(err, "Point multiplication failed.");
    if (!cx_point_sum(Q, terms, count) || !cx_point_ser(q33, Q))
        return fail_internal(err, "Point sum failed.");
    if (cx_point_is_inf(Q) || memcmp(q33, thresh_pk, 33) != 0)
        return fail_value(err, "The provided key material is incorrect.", -1);
    s->n = n;
    s->t = t;
    s->count = (uint32_t)count;
    memcpy(s->ids, ids, count * sizeof *ids);
    memcpy(s->pubshares, pubshares, count * 33);
    memcpy(s->thresh_pk, thresh_pk, 33);
    s->magic = SIGNERS_MAGIC;
    return RT_OK;
}

int cg_frost_signers_pos(const cg_frost_signers *s, uint32_t id)
{
    if (!s || s->magic != SIGNERS_MAGIC) return -1;
    for (uint32_t i = 0; i < s->count; i++)
        if (s->ids[i] == id) return (int)i;
    return -1;
}

/* ----- tweaks ----------------------------------------------------------------- */

rt_status cg_frost_tweak_init(cg_frost_tweak_ctx *tc, const uint8_t thresh_pk[33],
                              cg_frost_error *err)
{
    err_clear(err);
    if (!tc) return fail_value(err, "Missing tweak context.", -1);
    memset(tc, 0, sizeof *tc);
    if (!cx_point_parse(tc->Q, thresh_pk, 0))
        return fail_value(err, "Invalid threshold public key.", -1);
    tc->gacc = 1;
    tc->magic = TWEAK_MAGIC;
    return RT_OK;
}

rt_status cg_frost_tweak_apply(cg_frost_tweak_ctx *tc, const uint8_t *tweak, size_t tweak_len,
                               int is_xonly, cg_frost_error *err)
{
    uint8_t x[32], Qg[64], Qn[64], tacc[32];
    int even;
    err_clear(err);
    if (!tc || tc->magic != TWEAK_MAGIC) return fail_value(err, "Uninitialised tweak context.", -1);
    if (!tweak || tweak_len != 32) return fail_value(err, "The tweak must be a 32-byte array.", -1);
    if (!cx_point_xonly(x, &even, tc->Q)) return fail_internal(err, "Tweaked key is infinity.");
    int negate = is_xonly && !even;
    if (!cx_scalar_check(tweak)) return fail_value(err, "The tweak value is out of range.", -1);
    /* Q' = g*Q + t*G; the tweak is public, so the variable-time form is fine. */
    if (negate) {
        if (!cx_point_neg(Qg, tc->Q)) return fail_internal(err, "Point negation failed.");
    } else {
        memcpy(Qg, tc->Q, 64);
    }
    if (!cx_point_add_mulg_public(Qn, Qg, tweak))
        return fail_internal(err, "Point operation failed.");
    if (cx_point_is_inf(Qn))
        return fail_value(err, "The result of tweaking cannot be infinity.", -1);
    /* tacc' = t + g*tacc */
    memcpy(tacc, tc->tacc, 32);
    if (negate && !cx_scalar_neg(tacc, tacc)) return fail_internal(err, "Scalar negation failed.");
    if (!cx_scalar_add(tacc, tweak, tacc)) return fail_internal(err, "Scalar addition failed.");
    memcpy(tc->Q, Qn, 64);
    memcpy(tc->tacc, tacc, 32);
    if (negate) tc->gacc = -tc->gacc;
    tc->count++;
    return RT_OK;
}

rt_status cg_frost_tweak_ctx_build(cg_frost_tweak_ctx *tc, const uint8_t thresh_pk[33],
                                   const uint8_t *const *tweaks, const size_t *tweak_lens,
                                   size_t n_tweaks, const uint8_t *is_xonly, size_t n_is_xonly,
                                   cg_frost_error *err)
{
    rt_status st;
    err_clear(err);
    if (n_tweaks != n_is_xonly)
        return fail_value(err, "The tweaks and is_xonly arrays must have the same length.", -1);
    st = cg_frost_tweak_init(tc, thresh_pk, err);
    for (size_t i = 0; st == RT_OK && i < n_tweaks; i++)
        st = cg_frost_tweak_apply(tc, tweaks[i], tweak_lens[i], is_xonly[i], err);
    return st;
}

rt_status cg_frost_tweak_xonly(uint8_t out[32], const cg_frost_tweak_ctx *tc)
{
    int even; /* a real pointer: the wasm import refuses NULL as a bad pointer */
    if (!tc || tc->magic != TWEAK_MAGIC || !cx_point_xonly(out, &even, tc->Q))
        return RT_INVALID_ARGUMENT;
    return RT_OK;
}

rt_status cg_frost_tweak_plain(uint8_t out[33], const cg_frost_tweak_ctx *tc)
{
    if (!tc || tc->magic != TWEAK_MAGIC || !cx_point_ser(out, tc->Q)) return RT_INVALID_ARGUMENT;
    return RT_OK;
}

rt_status cg_frost_taproot_tweak(uint8_t tweak[32], const cg_frost_tweak_ctx *tc,
                                 const uint8_t *merkle_root)
{
    uint8_t buf[64];
    if (cg_frost_tweak_xonly(buf, tc) != RT_OK) return RT_INVALID_ARGUMENT;
    if (merkle_root) memcpy(buf + 32, merkle_root, 32);
    cx_tagged_hash(tweak, TAG("TapTweak"), buf, merkle_root ? 64 : 32);
    return RT_OK;
}

rt_status cg_frost_tweak_apply_taproot(cg_frost_tweak_ctx *tc, const uint8_t *merkle_root,
                                       cg_frost_error *err)
{
    uint8_t t[32];
    err_clear(err);
    if (cg_frost_taproot_tweak(t, tc, merkle_root) != RT_OK)
        return fail_value(err, "Uninitialised tweak context.", -1);
    /* t >= n has negligible probability; BIP 341 then has no output key. */
    return cg_frost_tweak_apply(tc, t, 32, 1, err);
}

/* ----- session ---------------------------------------------------------------- */

rt_status cg_frost_session_init(cg_frost_session *sess, const cg_frost_signers *signers,
                                const cg_frost_tweak_ctx *tweak, const uint8_t aggnonce[66],
                                const uint8_t *msg, size_t msg_len, cg_frost_error *err)
{
    uint8_t ids[4 * CG_FROST_MAX_SIGNERS], qx[32], h[32], R1[64], R2[64], bR2[64], Rs[64];
    cx_sha256_ctx hc;
    int q_even;
    err_clear(err);
    if (!sess || !signers || signers->magic != SIGNERS_MAGIC || !tweak ||
        tweak->magic != TWEAK_MAGIC)
        return fail_value(err, "Uninitialised signers or tweak context.", -1);
    if (!msg && msg_len) return fail_value(err, "Missing message.", -1);
    memset(sess, 0, sizeof *sess);
    if (!cx_point_xonly(qx, &q_even, tweak->Q))
        return fail_internal(err, "Tweaked key is infinity.");
    ser_ids(ids, signers->ids, signers->count);
    cx_tagged_hash_init(&hc, TAG("BIP0445/noncecoef"));
    cx_sha256_update(&hc, ids, 4 * (size_t)signers->count);
    cx_sha256_update(&hc, aggnonce, 66);
    cx_sha256_update(&hc, qx, 32);
    cx_sha256_update(&hc, msg, msg_len);
    cx_sha256_final(h, &hc);
    if (!hash_to_scalar(sess->b, h)) return fail_internal(err, "Binding value is zero.");
    if (!cx_point_parse(R1, aggnonce, 1) || !cx_point_parse(R2, aggnonce + 33, 1))
        return fail_contrib(err, CG_FROST_CONTRIB_AGGNONCE, -1);
    if (!cx_point_mul(bR2, R2, sess->b) || !cx_point_add(Rs, R1, bR2))
        return fail_internal(err, "Point operation failed.");
    if (cx_point_is_inf(Rs) && !cx_point_mul_base(Rs, ONE)) /* R = G then */
        return fail_internal(err, "Point operation failed.");
    if (!cx_point_xonly(sess->R_x, &sess->R_even, Rs))
        return fail_internal(err, "Point operation failed.");
    cx_tagged_hash_init(&hc, TAG("BIP0340/challenge"));
    cx_sha256_update(&hc, sess->R_x, 32);
    cx_sha256_update(&hc, qx, 32);
    cx_sha256_update(&hc, msg, msg_len);
    cx_sha256_final(h, &hc);
    if (!hash_to_scalar(sess->e, h)) return fail_internal(err, "Challenge is zero.");
    memcpy(sess->R, Rs, 64);
    memcpy(sess->aggnonce, aggnonce, 66);
    sess->signers = *signers;
    sess->tweak = *tweak;
    sess->Q_even = q_even;
    sess->magic = SESSION_MAGIC;
    return RT_OK;
}

/* The sign of the secret share in the signature equation: g * gacc, where g
 * makes the final key even (BIP340 x-only). */
static int share_negated(const cg_frost_session *sess)
{
    return (sess->Q_even ? 1 : -1) * sess->tweak.gacc < 0;
}

rt_status cg_frost_sign(uint8_t psig[32], cg_frost_secnonce *secnonce, const uint8_t secshare[32],
                        uint32_t my_id, const cg_frost_session *sess, cg_frost_error *err)
{
    uint8_t k[64], d[32], t[32], P[64], p33[33];
    rt_status st = RT_OK;
    int pos = -1;
    err_clear(err);
    if (!secnonce) return fail_value(err, "Missing secret nonce.", -1);
    /* Consume the nonce before anything can fail: a secnonce signs once. */
    memcpy(k, secnonce->k, 64);
    cg_frost_secnonce_wipe(secnonce);
    if (!sess || sess->magic != SESSION_MAGIC) {
        st = fail_value(err, "Uninitialised session.", -1);
        goto out;
    }
    if (!scalar_nonzero_checked(k)) {
        st = fail_value(err, "first secnonce value is out of range.", -1);
        goto out;
    }
    if (!scalar_nonzero_checked(k + 32)) {
        st = fail_value(err, "second secnonce value is out of range.", -1);
        goto out;
    }
    if (!sess->R_even && !(cx_scalar_neg(k, k) && cx_scalar_neg(k + 32, k + 32))) {
        st = fail_internal(err, "Scalar negation failed.");
        goto out;
    }
    if (!scalar_nonzero_checked(secshare)) {
        st = fail_value(err, "The signer's secret share value is out of range.", -1);
        goto out;
    }
    if (!cx_point_mul_base(P, secshare) || !cx_point_ser(p33, P)) {
        st = fail_internal(err, "Point operation failed.");
        goto out;
    }
    {
        int found = 0;
        for (uint32_t i = 0; i < sess->signers.count; i++)
            found |= memcmp(sess->signers.pubshares[i], p33, 33) == 0;
        if (!found) {
            st = fail_value(err, "The signer's pubshare must be included in the list of pubshares.",
                            -1);
            goto out;
        }
    }
    pos = cg_frost_signers_pos(&sess->signers, my_id);
    if (pos < 0) {
        st = fail_value(err, "The signer's id must be present in the participant identifier list.",
                        -1);
        goto out;
    }
    /* s = k1 + b*k2 + e*lambda*d, d = g*gacc*d' */
    memcpy(d, secshare, 32);
    if ((share_negated(sess) && !cx_scalar_neg(d, d)) ||
        !cx_scalar_mul(t, sess->e, sess->signers.lambda[pos]) || !cx_scalar_mul(t, t, d) ||
        !cx_scalar_mul(d, sess->b, k + 32) || !cx_scalar_add(t, t, d) ||
        !cx_scalar_add(psig, t, k)) {
        st = fail_internal(err, "Scalar operation failed.");
        goto out;
    }
out:
    cx_wipe(k, sizeof k);
    cx_wipe(d, sizeof d);
    cx_wipe(t, sizeof t);
    return st;
}

rt_status cg_frost_partial_sig_verify(const cg_frost_session *sess, const uint8_t psig[32],
                                      const uint8_t pubnonce[66], size_t pos, cg_frost_error *err)
{
    uint8_t R1[64], R2[64], Re[64], c[32], ns[32], cP[64], W[64];
    err_clear(err);
    if (!sess || sess->magic != SESSION_MAGIC) return fail_value(err, "Uninitialised session.", -1);
    if (pos >= sess->signers.count) return fail_value(err, "The signer index is out of range.", -1);
    if (!cx_scalar_check(psig)) return fail_contrib(err, CG_FROST_CONTRIB_PSIG, (int32_t)pos);
    if (!cx_point_parse(R1, pubnonce, 0) || !cx_point_parse(R2, pubnonce + 33, 0))
        return fail_contrib(err, CG_FROST_CONTRIB_PUBNONCE, (int32_t)pos);
    /* Re = +-(R1 + b*R2), c = e*lambda*g*gacc; valid iff s*G = Re + c*P,
     * checked as c*P - s*G = -Re (s and c are public: variable time). */
    if (!cx_point_mul(R2, R2, sess->b) || !cx_point_add(Re, R1, R2) ||
        (sess->R_even && !cx_point_neg(Re, Re)) ||
        !cx_scalar_mul(c, sess->e, sess->signers.lambda[pos]) ||
        (share_negated(sess) && !cx_scalar_neg(c, c)) ||
        !cx_point_mul(cP, sess->signers.P[pos], c) || !cx_scalar_neg(ns, psig) ||
        !cx_point_add_mulg_public(W, cP, ns))
        return fail_internal(err, "Point operation failed.");
    if (!cx_point_eq(W, Re)) return fail_contrib(err, CG_FROST_CONTRIB_PSIG, (int32_t)pos);
    return RT_OK;
}

rt_status cg_frost_partial_sig_agg(uint8_t sig[64], const cg_frost_session *sess,
                                   const uint8_t (*psigs)[32], size_t count, cg_frost_error *err)
{
    uint8_t s[32] = {0}, t[32];
    err_clear(err);
    if (!sess || sess->magic != SESSION_MAGIC) return fail_value(err, "Uninitialised session.", -1);
    if (count != sess->signers.count)
        return fail_value(err, "The psigs and ids arrays must have the same length.", -1);
    for (size_t i = 0; i < count; i++) {
        if (!cx_scalar_check(psigs[i])) return fail_contrib(err, CG_FROST_CONTRIB_PSIG, (int32_t)i);
        if (!cx_scalar_add(s, s, psigs[i])) return fail_internal(err, "Scalar addition failed.");
    }
    /* s += e * g * tacc */
    if (!cx_scalar_mul(t, sess->e, sess->tweak.tacc) || (!sess->Q_even && !cx_scalar_neg(t, t)) ||
        !cx_scalar_add(s, s, t))
        return fail_internal(err, "Scalar operation failed.");
    memcpy(sig, sess->R_x, 32);
    memcpy(sig + 32, s, 32);
    return RT_OK;
}

rt_status cg_frost_verify(const cg_frost_session *sess, const uint8_t sig[64], const uint8_t *msg,
                          size_t msg_len)
{
    uint8_t qx[32];
    if (!sess || sess->magic != SESSION_MAGIC || cg_frost_tweak_xonly(qx, &sess->tweak) != RT_OK)
        return RT_INVALID_ARGUMENT;
    return cx_bip340_verify(sig, msg, msg_len, qx) ? RT_OK : RT_INVALID_ARGUMENT;
}

/* ----- deterministic signing -------------------------------------------------- */

static void det_nonce_hash(uint8_t out[32], const uint8_t secshare_[32], uint32_t my_id,
                           const cg_frost_signers *s, const uint8_t aggothernonce[66],
                           const uint8_t tpk[32], const uint8_t *msg, size_t msg_len, uint8_t i)
{
    cx_sha256_ctx h;
    uint8_t b[8], ids[4 * CG_FROST_MAX_SIGNERS];
    cx_tagged_hash_init(&h, TAG("BIP0445/deterministic/nonce"));
    cx_sha256_update(&h, secshare_, 32);
    be32(b, my_id);
    cx_sha256_update(&h, b, 4);
    be32(b, s->count);
    cx_sha256_update(&h, b, 4);
    ser_ids(ids, s->ids, s->count);
    cx_sha256_update(&h, ids, 4 * (size_t)s->count);
    if (aggothernonce) /* absent for a sole signer: the empty string */
        cx_sha256_update(&h, aggothernonce, 66);
    cx_sha256_update(&h, tpk, 32);
    be64(b, (uint64_t)msg_len);
    cx_sha256_update(&h, b, 8);
    cx_sha256_update(&h, msg, msg_len);
    cx_sha256_update(&h, &i, 1);
    cx_sha256_final(out, &h);
    cx_wipe(&h, sizeof h); /* absorbed secrets; not left to the import */
}

rt_status cg_frost_deterministic_sign(uint8_t pubnonce[66], uint8_t psig[32],
                                      const uint8_t secshare[32], uint32_t my_id,
                                      const uint8_t aggothernonce[66],
                                      const cg_frost_signers *signers,
                                      const cg_frost_tweak_ctx *tweak, const uint8_t *msg,
                                      size_t msg_len, const uint8_t *rand, cg_frost_error *err)
{
    uint8_t sec_[32], h[32], tpk[32], pn[2][66], aggnonce[66];
    cg_frost_secnonce sn;
    cg_frost_session sess;
    rt_status st;
    int ok;
    err_clear(err);
    if (!signers || signers->magic != SIGNERS_MAGIC || !tweak || tweak->magic != TWEAK_MAGIC)
        return fail_value(err, "Uninitialised signers or tweak context.", -1);
    if (!msg && msg_len) return fail_value(err, "Missing message.", -1);
    if (cg_frost_tweak_xonly(tpk, tweak) != RT_OK)
        return fail_internal(err, "Tweaked key is infinity.");
    if (rand) {
        cx_tagged_hash(h, TAG("BIP0445/aux"), rand, 32);
        xor32(sec_, secshare, h);
    } else {
        memcpy(sec_, secshare, 32);
    }
    det_nonce_hash(h, sec_, my_id, signers, aggothernonce, tpk, msg, msg_len, 0);
    ok = hash_to_scalar(sn.k, h);
    det_nonce_hash(h, sec_, my_id, signers, aggothernonce, tpk, msg, msg_len, 1);
    ok = ok && hash_to_scalar(sn.k + 32, h);
    ok = ok && pubnonce_of(pn[0], sn.k);
    cx_wipe(sec_, sizeof sec_);
    cx_wipe(h, sizeof h);
    if (!ok) {
        cg_frost_secnonce_wipe(&sn);
        return fail_internal(err, "Nonce derivation failed.");
    }
    if (aggothernonce) {
        memcpy(pn[1], aggothernonce, 66);
        st = cg_frost_nonce_agg(aggnonce, (const uint8_t(*)[66])pn, 2, err);
    } else { /* a sole signer's own nonce is the aggregate */
        memcpy(aggnonce, pn[0], 66);
        st = RT_OK;
    }
    if (st != RT_OK) {
        cg_frost_secnonce_wipe(&sn);
        /* our own pubnonce is valid: the fault is the aggothernonce's */
        return st == RT_ABORTED ? fail_contrib(err, CG_FROST_CONTRIB_AGGOTHERNONCE, -1) : st;
    }
    st = cg_frost_session_init(&sess, signers, tweak, aggnonce, msg, msg_len, err);
    if (st != RT_OK) {
        cg_frost_secnonce_wipe(&sn);
        return st;
    }
    st = cg_frost_sign(psig, &sn, secshare, my_id, &sess, err); /* wipes sn */
    if (st == RT_OK) memcpy(pubnonce, pn[0], 66);
    return st;
}
