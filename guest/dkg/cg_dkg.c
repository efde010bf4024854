/*
 * cg_dkg.c — ChillDKG participant, coordinator, CertEq and recovery.
 *
 * Follows the reference implementation of BlockstreamResearch/bip-frost-dkg
 * (chilldkg.py over encpedpop.py over simplpedpop.py over vss.py) function by
 * function, so each check raises the same error as there and in the same
 * order; the published vectors pin that down. See cg_dkg.h for the API.
 *
 * Points are kept in the host's 64-byte working form while computing and in
 * 33-byte compressed form inside states and messages (the working form is
 * only valid within one process, states may outlive it). Stack frames stay
 * around 2-3 KiB: the largest temporaries are the hash inputs that contain
 * all host keys (33 n bytes).
 */
#include <stddef.h>
#include <string.h>

#include "cg_cx.h"
#include "cg_dkg.h"

#define MAGIC_PSTATE1 0x444b4731u /* "DKG1" */
#define MAGIC_PSTATE2 0x444b4732u
#define MAGIC_CSTATE 0x444b4743u
#define MAGIC_PINV 0x444b4749u

#define BIP_TAG "BIP DKG/"
#define POP_TAG_PREFIX BIP_TAG "pop message"
#define CERTEQ_TAG BIP_TAG "certeq message"

/* Room for be32(i) || be32(t) || hostpubkeys: the "context" of EncPedPop. */
#define CTX_MAX (8u + 33u * CG_DKG_MAX_N)

typedef uint8_t point[CX_POINT_LEN];

/* ----- errors ------------------------------------------------------------ */

static rt_status kind_status(cg_dkg_error_kind kind)
{
    switch (kind) {
    case CG_DKG_ERR_NONE:
        return RT_OK;
    case CG_DKG_ERR_VALUE:
    case CG_DKG_ERR_HOSTSECKEY:
    case CG_DKG_ERR_THRESHOLD_OR_COUNT:
    case CG_DKG_ERR_INVALID_HOSTPUBKEY:
    case CG_DKG_ERR_DUPLICATE_HOSTPUBKEY:
    case CG_DKG_ERR_RECOVERY_DATA:
        return RT_INVALID_ARGUMENT;
    case CG_DKG_ERR_TOO_MANY:
        return RT_OUT_OF_RANGE;
    case CG_DKG_ERR_FAULTY_PARTICIPANT:
    case CG_DKG_ERR_FAULTY_PARTICIPANT_OR_COORDINATOR:
    case CG_DKG_ERR_FAULTY_COORDINATOR:
    case CG_DKG_ERR_UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR:
        return RT_ABORTED;
    case CG_DKG_ERR_RANDOMNESS:
    case CG_DKG_ERR_INTERNAL:
    default:
        return RT_INTERNAL;
    }
}

static rt_status fail2(cg_dkg_error *err, cg_dkg_error_kind kind, int32_t p1, int32_t p2,
                       const char *msg)
{
    if (err) {
        err->kind = kind;
        err->participant = p1;
        err->participant2 = p2;
        err->msg = msg;
    }
    return kind_status(kind);
}

static rt_status fail(cg_dkg_error *err, cg_dkg_error_kind kind, const char *msg)
{
    return fail2(err, kind, -1, -1, msg);
}

static rt_status blame(cg_dkg_error *err, cg_dkg_error_kind kind, uint32_t who, const char *msg)
{
    return fail2(err, kind, (int32_t)who, -1, msg);
}

static rt_status ok(cg_dkg_error *err)
{
    return fail2(err, CG_DKG_ERR_NONE, -1, -1, NULL);
}

#define INTERNAL(err) fail(err, CG_DKG_ERR_INTERNAL, "primitive failed unexpectedly")

const char *cg_dkg_error_kind_name(cg_dkg_error_kind kind)
{
    static const char *const names[CG_DKG_ERR_KIND_COUNT_] = {
        "None",
        "ValueError",
        "HostSeckeyError",
        "ThresholdOrCountError",
        "InvalidHostPubkeyError",
        "DuplicateHostPubkeyError",
        "RandomnessError",
        "TooManyParticipants",
        "RecoveryDataError",
        "FaultyParticipantError",
        "FaultyParticipantOrCoordinatorError",
        "FaultyCoordinatorError",
        "UnknownFaultyParticipantOrCoordinatorError",
        "InternalError",
    };
    if ((unsigned)kind >= CG_DKG_ERR_KIND_COUNT_) return "InternalError";
    return names[kind];
}

void cg_dkg_wipe(void *p, size_t len)
{
    cx_wipe(p, len);
}

/* ----- small helpers ------------------------------------------------------ */

static void be32_put(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static uint32_t be32_get(const uint8_t in[4])
{
    return ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | in[3];
}

/* tagged_hash_bip_dkg: the BIP's own tags are all "BIP DKG/<name>". */
static void hash_dkg(uint8_t out[32], const char *name, const uint8_t *msg, size_t len)
{
    char tag[64];
    size_t nl = strlen(name);
    memcpy(tag, BIP_TAG, sizeof(BIP_TAG) - 1);
    memcpy(tag + sizeof(BIP_TAG) - 1, name, nl);
    cx_tagged_hash(out, tag, sizeof(BIP_TAG) - 1 + nl, msg, len);
}

static int is_all_zero(const uint8_t *p, size_t len)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < len; i++)
        acc |= p[i];
    return acc == 0;
}

static const uint8_t zero32[32];

/* Scalar subtraction a - b (mod n). */
static int scalar_sub(uint8_t out[32], const uint8_t a[32], const uint8_t b[32])
{
    uint8_t nb[32];
    if (!cx_scalar_neg(nb, b)) return 0;
    return cx_scalar_add(out, a, nb);
}

/* Bytes of the field prime p, for BIP340's r < p check. */
static const uint8_t field_p[32] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFC, 0x2F};

/* ----- BIP340 with a tag prefix (secp256k1lab's schnorr_sign/verify) ------
 * Proofs of possession use "BIP DKG/pop message" instead of "BIP0340" as the
 * tag prefix, which libsecp256k1 does not offer, so they are built from the
 * primitives. CertEq uses plain BIP340 and goes to the host directly. */

static void prefixed_hash(uint8_t out[32], const char *prefix, const char *suffix,
                          const uint8_t *msg, size_t len)
{
    char tag[64];
    size_t pl = strlen(prefix), sl = strlen(suffix);
    memcpy(tag, prefix, pl);
    memcpy(tag + pl, suffix, sl);
    cx_tagged_hash(out, tag, pl + sl, msg, len);
}

#define PFX_MSG_MAX 8u

/* pub33 is the compressed public key of seckey, which the caller already has. */
static int schnorr_sign_prefixed(uint8_t sig[64], const uint8_t *msg, size_t msg_len,
                                 const uint8_t seckey[32], const uint8_t pub33[33],
                                 const uint8_t aux[32], const char *prefix)
{
    uint8_t d[32], k[32], e[32], buf[32 + 32 + 32 + PFX_MSG_MAX], h[32];
    point R;
    int even, r = 0;

    if (msg_len > PFX_MSG_MAX || cx_scalar_is_zero(seckey) || !cx_scalar_check(seckey)) return 0;
    even = pub33[0] == 0x02;
    memcpy(buf + 32, pub33 + 1, 32);
    memcpy(d, seckey, 32);
    if (!even && !cx_scalar_neg(d, seckey)) goto out;
    prefixed_hash(h, prefix, "/aux", aux, 32);
    for (int i = 0; i < 32; i++)
        buf[i] = d[i] ^ h[i];
    memcpy(buf + 64, msg, msg_len);
    prefixed_hash(h, prefix, "/nonce", buf, 64 + msg_len);
    if (!cx_scalar_reduce(k, h) || cx_scalar_is_zero(k)) goto out;
    if (!cx_point_mul_base(R, k) || !cx_point_xonly(sig, &even, R)) goto out;
    if (!even && !cx_scalar_neg(k, k)) goto out;
    /* challenge input: R.x || P.x || msg; P.x already sits at buf + 32 */
    memcpy(buf, sig, 32);
    prefixed_hash(h, prefix, "/challenge", buf, 64 + msg_len);
    if (!cx_scalar_reduce(e, h) || !cx_scalar_mul(e, e, d) || !cx_scalar_add(sig + 32, k, e))
        goto out;
    r = 1;
out:
    cx_wipe(d, sizeof d);
    cx_wipe(k, sizeof k);
    cx_wipe(e, sizeof e); /* e * d */
    cx_wipe(buf, sizeof buf);
    cx_wipe(h, sizeof h);
    return r;
}

/* P is the even-y point with x-coordinate pkx, given in working form. */
static int schnorr_verify_prefixed(const uint8_t sig[64], const uint8_t *msg, size_t msg_len,
                                   const uint8_t pkx[32], const uint8_t P[64], const char *prefix)
{
    uint8_t buf[32 + 32 + PFX_MSG_MAX], h[32], e[32], rx[32];
    point R, T;
    int even;

    if (msg_len > PFX_MSG_MAX) return 0;
    if (memcmp(sig, field_p, 32) >= 0 || !cx_scalar_check(sig + 32)) return 0;
    memcpy(buf, sig, 32);
    memcpy(buf + 32, pkx, 32);
    memcpy(buf + 64, msg, msg_len);
    prefixed_hash(h, prefix, "/challenge", buf, 64 + msg_len);
    if (!cx_scalar_reduce(e, h) || !cx_scalar_neg(e, e)) return 0;
    if (!cx_point_mul_base(R, sig + 32) || !cx_point_mul(T, P, e) || !cx_point_add(R, R, T))
        return 0;
    if (cx_point_is_inf(R) || !cx_point_xonly(rx, &even, R)) return 0;
    return even && memcmp(rx, sig, 32) == 0;
}

/* ----- proofs of possession (simplpedpop) -------------------------------- */

static int pop_prove(uint8_t pop[64], const uint8_t seckey[32], const uint8_t com33[33],
                     uint32_t idx, const uint8_t aux[32])
{
    uint8_t m[4];
    be32_put(m, idx);
    return schnorr_sign_prefixed(pop, m, 4, seckey, com33, aux, POP_TAG_PREFIX);
}

/* com is a non-infinity commitment to a secret; the pop signs for its x-only key. */
static int pop_verify(const uint8_t pop[64], const uint8_t com[64], uint32_t idx)
{
    uint8_t m[4], x[32];
    point P;
    int even;
    be32_put(m, idx);
    if (!cx_point_xonly(x, &even, com)) return 0;
    if (even)
        memcpy(P, com, 64);
    else if (!cx_point_neg(P, com))
        return 0;
    return schnorr_verify_prefixed(pop, m, 4, x, P, POP_TAG_PREFIX);
}

/* ----- CertEq -------------------------------------------------------------- */

static void certeq_prefix(uint8_t *buf, uint32_t idx)
{
    memset(buf, 0, 33);
    memcpy(buf, CERTEQ_TAG, sizeof(CERTEQ_TAG) - 1);
    be32_put(buf + 33, idx);
}

static int certeq_sign(uint8_t sig[64], uint8_t *xbuf, size_t x_len, const uint8_t hostseckey[32],
                       uint32_t idx, const uint8_t aux[32])
{
    certeq_prefix(xbuf, idx);
    return cx_bip340_sign(sig, xbuf, CG_DKG_CERTEQ_PREFIX_LEN + x_len, hostseckey, aux);
}

/* Returns n if all signatures verify, else the index of the first bad one. */
static uint32_t certeq_check(const cg_dkg_params *params, uint8_t *xbuf, size_t x_len,
                             const uint8_t *cert)
{
    for (uint32_t i = 0; i < params->n; i++) {
        certeq_prefix(xbuf, i);
        /* Dropping the parity byte of the host key is fine: the message
         * commits to all full host keys and to i. */
        if (!cx_bip340_verify(cert + 64u * i, xbuf, CG_DKG_CERTEQ_PREFIX_LEN + x_len,
                              params->hostpubkeys[i] + 1))
            return i;
    }
    return params->n;
}

rt_status cg_dkg_certeq_verify(const cg_dkg_params *params, uint8_t *xbuf, size_t x_len,
                               const uint8_t *cert, size_t cert_len, cg_dkg_error *err)
{
    if (!params || !xbuf || !cert || params->n > CG_DKG_MAX_N)
        return fail(err, CG_DKG_ERR_VALUE, "bad arguments");
    if (cert_len != CG_DKG_CMSG2_LEN(params->n))
        return fail(err, CG_DKG_ERR_VALUE, "certificate length");
    uint32_t bad = certeq_check(params, xbuf, x_len, cert);
    if (bad != params->n)
        return blame(err, CG_DKG_ERR_FAULTY_PARTICIPANT, bad, "invalid signature in certificate");
    return ok(err);
}

/* ----- host keys and parameters ------------------------------------------ */

static rt_status hostkey_check(uint8_t pub[33], const uint8_t *sk, size_t len, cg_dkg_error *err)
{
    if (!sk || len != 32) return fail(err, CG_DKG_ERR_VALUE, "host secret key must be 32 bytes");
    if (cx_scalar_is_zero(sk) || !cx_scalar_check(sk))
        return fail(err, CG_DKG_ERR_HOSTSECKEY, "host secret key out of range");
    if (!cx_pubkey_from_seckey(pub, sk))
        return fail(err, CG_DKG_ERR_HOSTSECKEY, "host secret key out of range");
    return RT_OK;
}

rt_status cg_dkg_hostpubkey_gen(uint8_t hostpubkey[33], const uint8_t *hostseckey,
                                size_t hostseckey_len, cg_dkg_error *err)
{
    rt_status st = hostkey_check(hostpubkey, hostseckey, hostseckey_len, err);
    return st != RT_OK ? st : ok(err);
}

rt_status cg_dkg_params_validate(const cg_dkg_params *params, cg_dkg_error *err)
{
    point P;
    if (!params) return fail(err, CG_DKG_ERR_VALUE, "no params");
    if (params->n > CG_DKG_MAX_N)
        return fail(err, CG_DKG_ERR_TOO_MANY, "more participants than supported (32)");
    if (!(1 <= params->t && params->t <= params->n))
        return fail(err, CG_DKG_ERR_THRESHOLD_OR_COUNT, "need 1 <= t <= n");
    for (uint32_t i = 0; i < params->n; i++)
        if (!cx_point_parse(P, params->hostpubkeys[i], 0))
            return blame(err, CG_DKG_ERR_INVALID_HOSTPUBKEY, i, "invalid host public key");
    for (uint32_t i = 1; i < params->n; i++)
        for (uint32_t j = 0; j < i; j++)
            if (memcmp(params->hostpubkeys[j], params->hostpubkeys[i], 33) == 0)
                return fail2(err, CG_DKG_ERR_DUPLICATE_HOSTPUBKEY, (int32_t)j, (int32_t)i,
                             "duplicate host public key");
    return ok(err);
}

rt_status cg_dkg_params_hash(uint8_t out[32], const cg_dkg_params *params, cg_dkg_error *err)
{
    uint8_t buf[4 + 33 * CG_DKG_MAX_N];
    rt_status st = cg_dkg_params_validate(params, err);
    if (st != RT_OK) return st;
    be32_put(buf, params->t);
    memcpy(buf + 4, params->hostpubkeys, 33u * params->n);
    hash_dkg(out, "params_hash", buf, 4 + 33u * params->n);
    return ok(err);
}

static int hostpubkey_index(const cg_dkg_params *params, const uint8_t pub[33], uint32_t *idx)
{
    for (uint32_t i = 0; i < params->n; i++)
        if (memcmp(params->hostpubkeys[i], pub, 33) == 0) {
            *idx = i;
            return 1;
        }
    return 0;
}

/* ----- VSS ------------------------------------------------------------------ */

/* pubshare(i) of a commitment: sum_j (i+1)^j com[j], by Horner's rule. */
static int vss_pubshare(uint8_t out[64], const point *com, uint32_t t, uint32_t i)
{
    uint8_t x[32] = {0};
    be32_put(x + 28, i + 1);
    memcpy(out, com[t - 1], 64);
    for (uint32_t j = t - 1; j-- > 0;)
        if (!cx_point_mul(out, out, x) || !cx_point_add(out, out, com[j])) return 0;
    return 1;
}

/* BIP341-style commitment to an unspendable script path: adds TapTweak(x(com[0]))*G
 * to com[0] in place and returns the tweak and its point. */
static int invalid_taproot_commit(point *com, uint8_t tweak[32], uint8_t pubtweak[64])
{
    uint8_t x[32], h[32];
    int even;
    if (!cx_point_xonly(x, &even, com[0])) return 0;
    cx_tagged_hash(h, "TapTweak", 8, x, 32);
    if (!cx_scalar_check(h)) return 0;
    memcpy(tweak, h, 32);
    return cx_point_mul_base(pubtweak, tweak) && cx_point_add(com[0], com[0], pubtweak);
}

static int ser_points(uint8_t *out, const point *p, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        if (!cx_point_ser(out + 33u * i, p[i])) return 0;
    return 1;
}

/* Threshold key and all public shares of a (tweaked) summed commitment;
 * the pubshare of `known` (if < n) was computed already and is `known_P`. */
static int dkg_public_output(cg_dkg_output *out, const point *com, uint32_t t, uint32_t n,
                             uint32_t known, const uint8_t *known_P)
{
    point P;
    out->n = n;
    if (!cx_point_ser(out->threshold_pubkey, com[0])) return 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i == known) {
            if (!cx_point_ser(out->pubshares[i], known_P)) return 0;
        } else if (!vss_pubshare(P, com, t, i) || !cx_point_ser(out->pubshares[i], P)) {
            return 0;
        }
    }
    return 1;
}

/* ----- EncPedPop encryption ---------------------------------------------
 * Pads are hashes over (shared secret || keys || be32(i) || be32(t) ||
 * enckeys). One buffer holds it all, with the 98-byte head right in front of
 * the context so each hash is one contiguous call. */

typedef struct enc_buf {
    uint8_t b[98 + CTX_MAX];
    size_t ctx_len; /* be32(i) || enc_context */
} enc_buf;

static void enc_buf_init(enc_buf *eb, const cg_dkg_params *params)
{
    be32_put(eb->b + 98 + 4, params->t);
    memcpy(eb->b + 98 + 8, params->hostpubkeys, 33u * params->n);
    eb->ctx_len = 8 + 33u * params->n;
}

/* sha256 of the compressed shared point, as libsecp256k1's default ECDH. */
static int ecdh_raw(uint8_t out[32], const uint8_t seckey[32], const uint8_t theirs[33])
{
    point P;
    uint8_t ser[33];
    int r = 0;
    if (!cx_point_parse(P, theirs, 0)) return 0;
    if (cx_point_mul(P, P, seckey) && !cx_point_is_inf(P) && cx_point_ser(ser, P)) {
        cx_sha256(out, ser, 33);
        r = 1;
    }
    cx_wipe(P, sizeof P);
    cx_wipe(ser, sizeof ser);
    return r;
}

static int ecdh_pad(uint8_t pad[32], enc_buf *eb, uint32_t i, const uint8_t seckey[32],
                    const uint8_t mine[33], const uint8_t theirs[33], int sending)
{
    uint8_t h[32];
    be32_put(eb->b + 98, i);
    if (!ecdh_raw(eb->b, seckey, theirs)) return 0;
    memcpy(eb->b + 32, sending ? mine : theirs, 33);
    memcpy(eb->b + 65, sending ? theirs : mine, 33);
    hash_dkg(h, "encpedpop ecdh", eb->b, 98 + eb->ctx_len);
    cx_wipe(eb->b, 32);
    int r = cx_scalar_reduce(pad, h);
    cx_wipe(h, sizeof h);
    return r;
}

static int self_pad(uint8_t pad[32], enc_buf *eb, uint32_t i, const uint8_t symkey[32],
                    const uint8_t nonce[33])
{
    uint8_t h[32];
    be32_put(eb->b + 98, i);
    memcpy(eb->b + 33, symkey, 32);
    memcpy(eb->b + 65, nonce, 33);
    hash_dkg(h, "encaps_multi self_pad", eb->b + 33, 65 + eb->ctx_len);
    cx_wipe(eb->b + 33, 32);
    int r = cx_scalar_reduce(pad, h);
    cx_wipe(h, sizeof h);
    return r;
}

/* decaps_multi: the pads of all senders for recipient idx. On an invalid
 * pubnonce returns 0 with *bad set to the sender; 0 with *bad = n otherwise. */
static int decaps_multi(uint8_t (*pads)[32], const cg_dkg_params *params, uint32_t idx,
                        const uint8_t deckey[32], const uint8_t *pubnonces, uint32_t *bad)
{
    enc_buf eb;
    int r = 1;
    *bad = params->n;
    enc_buf_init(&eb, params);
    for (uint32_t j = 0; j < params->n && r; j++) {
        if (j == idx) {
            r = self_pad(pads[j], &eb, idx, deckey, pubnonces + 33u * j);
        } else if (!ecdh_pad(pads[j], &eb, idx, deckey, params->hostpubkeys[idx],
                             pubnonces + 33u * j, 0)) {
            /* deckey and enckey are well-formed, so the pubnonce is bad */
            *bad = j;
            r = 0;
        }
    }
    cx_wipe(&eb, sizeof eb);
    return r;
}

static int sum_scalars(uint8_t out[32], const uint8_t (*s)[32], uint32_t count)
{
    memcpy(out, zero32, 32);
    for (uint32_t i = 0; i < count; i++)
        if (!cx_scalar_add(out, out, s[i])) return 0;
    return 1;
}

/* ----- participant ----------------------------------------------------------- */

/* Step 2 keeps the parsed commitments in cg_dkg_pstate2.eq_buf for a while. */
_Static_assert(sizeof(((cg_dkg_pstate2 *)0)->eq_buf) >= CG_DKG_MAX_N * CX_POINT_LEN,
               "eq_buf too small for the parsed commitments");

rt_status cg_dkg_participant_step1(cg_dkg_pstate1 *st1, uint8_t *pmsg1, size_t pmsg1_cap,
                                   size_t *pmsg1_len, const uint8_t *hostseckey,
                                   size_t hostseckey_len, const cg_dkg_params *params,
                                   const uint8_t *random, size_t random_len, cg_dkg_error *err)
{
    uint8_t hostpubkey[33], seed[32], aux[32], secnonce[32], pubnonce[33];
    uint8_t coeffs[CG_DKG_MAX_N][32], share[32], pad[32], x[32];
    uint8_t hbuf[64 + 4 + 33 * CG_DKG_MAX_N];
    enc_buf eb;
    point P;
    uint32_t idx, t, n;
    rt_status st;

    if (!st1 || !pmsg1 || !pmsg1_len) return fail(err, CG_DKG_ERR_VALUE, "bad arguments");
    if ((st = hostkey_check(hostpubkey, hostseckey, hostseckey_len, err)) != RT_OK) return st;
    if ((st = cg_dkg_params_validate(params, err)) != RT_OK) return st;
    if (!hostpubkey_index(params, hostpubkey, &idx))
        return fail(err, CG_DKG_ERR_HOSTSECKEY,
                    "Host secret key does not match any host public key");
    if (!random || random_len != 32)
        return fail(err, CG_DKG_ERR_VALUE, "randomness must be 32 bytes");
    if (is_all_zero(random, 32)) return fail(err, CG_DKG_ERR_RANDOMNESS, "randomness is all zero");
    t = params->t;
    n = params->n;
    if (pmsg1_cap < CG_DKG_PMSG1_LEN(t, n))
        return fail(err, CG_DKG_ERR_VALUE, "pmsg1 buffer too small");

    /* EncPedPop: derive SimplPedPop's seed and the encryption nonce. All
     * entropy of the seed also goes into the nonce, so different shares are
     * never encrypted with the same pads. */
    memcpy(hbuf, hostseckey, 32);
    memcpy(hbuf + 32, random, 32);
    be32_put(hbuf + 64, t);
    memcpy(hbuf + 68, params->hostpubkeys, 33u * n);
    hash_dkg(seed, "encpedpop seed", hbuf, 68 + 33u * n);
    hash_dkg(aux, "simplpedpop aux", seed, 32);
    hash_dkg(secnonce, "encpedpop secnonce", seed, 32);
    st = INTERNAL(err);
    if (!cx_scalar_check(secnonce) || cx_scalar_is_zero(secnonce) ||
        !cx_pubkey_from_seckey(pubnonce, secnonce))
        goto out;

    /* SimplPedPop: VSS polynomial, commitment, proof of possession. */
    for (uint32_t j = 0; j < t; j++) {
        memcpy(hbuf, seed, 32);
        be32_put(hbuf + 32, j);
        hash_dkg(coeffs[j], "vss coeffs", hbuf, 36);
        if (!cx_scalar_check(coeffs[j])) goto out;
        if (!cx_point_mul_base(P, coeffs[j]) || !cx_point_ser(pmsg1 + 33u * j, P)) goto out;
    }
    if (!pop_prove(pmsg1 + 33u * t, coeffs[0], pmsg1, idx, aux)) goto out;
    memcpy(pmsg1 + 33u * t + 64, pubnonce, 33);

    /* Shares f(i+1), each encrypted to participant i (to ourselves with a
     * symmetric pad, saving an ECDH). */
    enc_buf_init(&eb, params);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *enc = pmsg1 + 33u * t + 97 + 32u * i;
        memset(x, 0, 32);
        be32_put(x + 28, i + 1);
        memcpy(share, zero32, 32);
        for (uint32_t j = t; j-- > 0;)
            if (!cx_scalar_mul(share, share, x) || !cx_scalar_add(share, share, coeffs[j]))
                goto out_eb;
        if (i == idx) {
            if (!self_pad(pad, &eb, i, hostseckey, pubnonce)) goto out_eb;
        } else if (!ecdh_pad(pad, &eb, i, secnonce, pubnonce, params->hostpubkeys[i], 1)) {
            goto out_eb;
        }
        if (!cx_scalar_add(enc, share, pad)) goto out_eb;
    }

    memset(st1, 0, sizeof *st1);
    st1->magic = MAGIC_PSTATE1;
    st1->idx = idx;
    st1->params = *params;
    memcpy(st1->com_to_secret, pmsg1, 33);
    memcpy(st1->pubnonce, pubnonce, 33);
    *pmsg1_len = CG_DKG_PMSG1_LEN(t, n);
    st = ok(err);
out_eb:
    cx_wipe(&eb, sizeof eb);
out:
    cx_wipe(seed, sizeof seed);
    cx_wipe(aux, sizeof aux);
    cx_wipe(secnonce, sizeof secnonce);
    cx_wipe(coeffs, sizeof coeffs);
    cx_wipe(share, sizeof share);
    cx_wipe(pad, sizeof pad);
    cx_wipe(hbuf, sizeof hbuf);
    cx_wipe(P, sizeof P);
    return st;
}

rt_status cg_dkg_participant_step2(cg_dkg_pstate2 *st2, uint8_t pmsg2[64],
                                   const uint8_t *hostseckey, size_t hostseckey_len,
                                   cg_dkg_pstate1 *st1, const uint8_t *cmsg1, size_t cmsg1_len,
                                   const uint8_t *aux_rand, size_t aux_rand_len, cg_dkg_pinv *inv,
                                   cg_dkg_error *err)
{
    uint8_t hostpubkey[33], pads[CG_DKG_MAX_N][32], secshare[32], tweak[32], tst[32];
    point sum[CG_DKG_MAX_N], P, Q, pubtweak;
    uint32_t t, n, idx, bad;
    rt_status st;

    if (!st2 || !pmsg2 || !st1 || st1->magic != MAGIC_PSTATE1)
        return fail(err, CG_DKG_ERR_VALUE, "bad arguments or state already used");
    if ((st = hostkey_check(hostpubkey, hostseckey, hostseckey_len, err)) != RT_OK) return st;
    if (!aux_rand || aux_rand_len != 32)
        return fail(err, CG_DKG_ERR_VALUE, "aux randomness must be 32 bytes");
    const cg_dkg_params *params = &st1->params;
    t = params->t;
    n = params->n;
    idx = st1->idx;
    if (memcmp(hostpubkey, params->hostpubkeys[idx], 33) != 0)
        return fail(err, CG_DKG_ERR_HOSTSECKEY,
                    "Host secret key does not match the one used in participant_step1");
    if (!cmsg1 || cmsg1_len != CG_DKG_CMSG1_LEN(t, n))
        return fail(err, CG_DKG_ERR_VALUE, "cmsg1 length");

    const uint8_t *coms = cmsg1;                        /* n points */
    const uint8_t *nonconst = coms + 33u * n;           /* t-1 points */
    const uint8_t *pops = nonconst + 33u * (t - 1);     /* n * 64 */
    const uint8_t *pubnonces = pops + 64u * n;          /* n * 33, parsed lazily */
    const uint8_t *enc_secshares = pubnonces + 33u * n; /* n scalars */

    /* Parse as the reference does: malformed content is the coordinator's.
     * The parsed commitments live in st2's equality-check buffer until the
     * pops are checked; eq_input is written there only afterwards. */
    point *cs = (point *)st2->eq_buf;
    memset(sum, 0, sizeof sum); /* sum[0] accumulates coms_to_secrets */
    for (uint32_t i = 0; i < n; i++) {
        if (!cx_point_parse(cs[i], coms + 33u * i, 1)) {
            st = fail(err, CG_DKG_ERR_FAULTY_COORDINATOR, "invalid commitment to secret");
            goto out;
        }
    }
    for (uint32_t j = 0; j + 1 < t; j++)
        if (!cx_point_parse(sum[j + 1], nonconst + 33u * j, 1)) {
            st = fail(err, CG_DKG_ERR_FAULTY_COORDINATOR,
                      "invalid sum commitment to non-constant term");
            goto out;
        }
    for (uint32_t i = 0; i < n; i++)
        if (!cx_scalar_check(enc_secshares + 32u * i)) {
            st = fail(err, CG_DKG_ERR_FAULTY_COORDINATOR, "invalid encrypted secret shares");
            goto out;
        }

    /* EncPedPop step 2 */
    if (memcmp(pubnonces + 33u * idx, st1->pubnonce, 33) != 0) {
        st = fail(err, CG_DKG_ERR_FAULTY_COORDINATOR, "Coordinator replied with wrong pubnonce");
        goto out;
    }
    if (!decaps_multi(pads, params, idx, hostseckey, pubnonces, &bad)) {
        st = bad < n ? blame(err, CG_DKG_ERR_FAULTY_PARTICIPANT_OR_COORDINATOR, bad,
                             "invalid public nonce")
                     : INTERNAL(err);
        goto out;
    }
    st = INTERNAL(err);
    if (!sum_scalars(secshare, (const uint8_t(*)[32])pads, n) ||
        !scalar_sub(secshare, enc_secshares + 32u * idx, secshare))
        goto out;

    /* SimplPedPop step 2 */
    if (memcmp(coms + 33u * idx, st1->com_to_secret, 33) != 0) {
        st = fail(err, CG_DKG_ERR_FAULTY_COORDINATOR,
                  "Coordinator sent unexpected first group element for local participant id");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (i != idx) {
            if (cx_point_is_inf(cs[i])) {
                st = blame(err, CG_DKG_ERR_FAULTY_PARTICIPANT_OR_COORDINATOR, i,
                           "Participant sent invalid commitment");
                goto out;
            }
            if (!pop_verify(pops + 64u * i, cs[i], i)) {
                st = blame(err, CG_DKG_ERR_FAULTY_PARTICIPANT_OR_COORDINATOR, i,
                           "Participant sent invalid proof-of-knowledge");
                goto out;
            }
        }
        if (!cx_point_add(sum[0], sum[0], cs[i])) goto out;
    }

    /* The untweaked summed commitment goes into the equality check. */
    uint8_t *eq = st2->eq_buf + CG_DKG_CERTEQ_PREFIX_LEN;
    memset(st2, 0, offsetof(cg_dkg_pstate2, eq_buf));
    be32_put(eq, t);
    if (!ser_points(eq + 4, (const point *)sum, t)) goto out;

    /* Checking the tweaked share against the tweaked pubshare is equivalent
     * and keeps the untweaked pubshare off the happy path. */
    if (!invalid_taproot_commit(sum, tweak, pubtweak)) goto out;
    if (!vss_pubshare(Q, (const point *)sum, t, idx) || !cx_scalar_add(tst, secshare, tweak) ||
        !cx_point_mul_base(P, tst))
        goto out;
    if (!cx_point_eq(P, Q)) {
        if (inv) {
            memset(inv, 0, sizeof *inv);
            inv->magic = MAGIC_PINV;
            inv->n = n;
            inv->idx = idx;
            memcpy(inv->secshare, secshare, 32);
            if (!cx_point_neg(P, pubtweak) || !cx_point_add(Q, Q, P) ||
                !cx_point_ser(inv->pubshare, Q))
                goto out;
            memcpy(inv->enc_secshare, enc_secshares + 32u * idx, 32);
            memcpy(inv->pads, pads, 32u * n);
        }
        st = fail(err, CG_DKG_ERR_UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR,
                  "Received invalid secshare; consider using participant_investigate() to "
                  "determine a faulty party");
        goto out;
    }

    cg_dkg_output *o = &st2->output;
    if (!dkg_public_output(o, (const point *)sum, t, n, idx, Q)) goto out;
    o->has_secshare = 1;
    memcpy(o->secshare, tst, 32);

    /* eq_input = t || sum_coms || enckeys || pubnonces || enc_secshares: the
     * shares are included so all agree on the recovery data. */
    size_t off = 4 + 33u * t;
    memcpy(eq + off, params->hostpubkeys, 33u * n);
    off += 33u * n;
    memcpy(eq + off, pubnonces, 33u * n);
    off += 33u * n;
    memcpy(eq + off, enc_secshares, 32u * n);
    off += 32u * n;
    st2->eq_input_len = (uint32_t)off;
    st2->params = *params;
    st2->idx = idx;
    if (!certeq_sign(pmsg2, st2->eq_buf, off, hostseckey, idx, aux_rand)) goto out;
    st2->magic = MAGIC_PSTATE2;
    cx_wipe(st1, sizeof *st1);
    st = ok(err);
out:
    if (st != RT_OK && st2) cx_wipe(&st2->output, sizeof st2->output);
    if (st != RT_OK && st != RT_INVALID_ARGUMENT)
        cx_wipe(st1, sizeof *st1); /* protocol fault: the session is over */
    cx_wipe(pads, sizeof pads);
    cx_wipe(secshare, sizeof secshare);
    cx_wipe(tst, sizeof tst);
    cx_wipe(P, sizeof P);
    return st;
}

rt_status cg_dkg_participant_finalize(cg_dkg_output *out, uint8_t *recovery, size_t recovery_cap,
                                      size_t *recovery_len, cg_dkg_pstate2 *st2,
                                      const uint8_t *cmsg2, size_t cmsg2_len, cg_dkg_error *err)
{
    if (!out || !recovery || !recovery_len || !st2 || st2->magic != MAGIC_PSTATE2)
        return fail(err, CG_DKG_ERR_VALUE, "bad arguments or state");
    const cg_dkg_params *params = &st2->params;
    uint32_t n = params->n;
    size_t eq_len = st2->eq_input_len;
    if (!cmsg2 || cmsg2_len != CG_DKG_CMSG2_LEN(n))
        return fail(err, CG_DKG_ERR_VALUE, "cmsg2 length");
    if (recovery_cap < eq_len + cmsg2_len)
        return fail(err, CG_DKG_ERR_VALUE, "recovery buffer too small");
    if (certeq_check(params, st2->eq_buf, eq_len, cmsg2) != n)
        return fail(err, CG_DKG_ERR_FAULTY_COORDINATOR,
                    "Coordinator has provided a certificate with an invalid signature");
    memcpy(recovery, st2->eq_buf + CG_DKG_CERTEQ_PREFIX_LEN, eq_len);
    memcpy(recovery + eq_len, cmsg2, cmsg2_len);
    *recovery_len = eq_len + cmsg2_len;
    *out = st2->output;
    return ok(err);
}

rt_status cg_dkg_participant_investigate(const cg_dkg_pinv *inv, const uint8_t *cinv,
                                         size_t cinv_len, cg_dkg_error *err)
{
    uint8_t psec[CG_DKG_MAX_N][32], s[32];
    point P, sum;
    rt_status st;

    if (!inv || inv->magic != MAGIC_PINV || inv->n == 0 || inv->n > CG_DKG_MAX_N ||
        inv->idx >= inv->n)
        return fail(err, CG_DKG_ERR_VALUE, "bad investigation data");
    uint32_t n = inv->n, idx = inv->idx;
    if (!cinv || cinv_len != CG_DKG_CINV_LEN(n)) return fail(err, CG_DKG_ERR_VALUE, "cinv length");
    const uint8_t *enc_partial = cinv, *partial_pub = cinv + 32u * n;

    for (uint32_t i = 0; i < n; i++)
        if (!cx_scalar_check(enc_partial + 32u * i))
            return fail(err, CG_DKG_ERR_FAULTY_COORDINATOR, "invalid encrypted partial secshare");
    memset(sum, 0, sizeof sum);
    for (uint32_t i = 0; i < n; i++) {
        if (!cx_point_parse(P, partial_pub + 33u * i, 1))
            return fail(err, CG_DKG_ERR_FAULTY_COORDINATOR, "invalid partial pubshare");
        if (!cx_point_add(sum, sum, P)) return INTERNAL(err);
    }
    st = INTERNAL(err);
    for (uint32_t i = 0; i < n; i++)
        if (!scalar_sub(psec[i], enc_partial + 32u * i, inv->pads[i])) goto out;

    if (!cx_point_parse(P, inv->pubshare, 1)) goto out;
    if (!cx_point_eq(sum, P)) {
        st = fail(err, CG_DKG_ERR_FAULTY_COORDINATOR,
                  "Sum of partial pubshares not equal to pubshare");
        goto out;
    }
    if (!sum_scalars(s, (const uint8_t(*)[32])psec, n)) goto out;
    if (memcmp(s, inv->secshare, 32) != 0) {
        /* The encryption is additively homomorphic, so the sums of the
         * encrypted values differ too: the coordinator's doing. */
        st = fail(err, CG_DKG_ERR_FAULTY_COORDINATOR,
                  "Sum of encrypted partial secshares not equal to encrypted secshare");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!cx_point_parse(sum, partial_pub + 33u * i, 1) || !cx_point_mul_base(P, psec[i]))
            goto out;
        if (!cx_point_eq(P, sum)) {
            st = i != idx ? blame(err, CG_DKG_ERR_FAULTY_PARTICIPANT_OR_COORDINATOR, i,
                                  "Participant sent invalid partial secshare")
                          : fail(err, CG_DKG_ERR_FAULTY_COORDINATOR,
                                 "Coordinator fiddled with the share from me to myself");
            goto out;
        }
    }
    /* All consistent: the caller handed us data that did not fail step 2. */
    st = fail(err, CG_DKG_ERR_VALUE, "investigation data is consistent; nothing to blame");
out:
    cx_wipe(psec, sizeof psec);
    cx_wipe(s, sizeof s);
    cx_wipe(P, sizeof P);
    return st;
}

/* ----- coordinator ------------------------------------------------------------ */

/* Length and content checks of all pmsg1, in participant order as the reference. */
static rt_status check_pmsgs1(const uint8_t *const *pmsgs1, const size_t *lens, uint32_t t,
                              uint32_t n, cg_dkg_error *err)
{
    point P;
    for (uint32_t i = 0; i < n; i++) {
        if (!pmsgs1[i] || lens[i] != CG_DKG_PMSG1_LEN(t, n))
            return fail(err, CG_DKG_ERR_VALUE, "pmsg1 length");
        for (uint32_t j = 0; j < t; j++)
            if (!cx_point_parse(P, pmsgs1[i] + 33u * j, 1))
                return blame(err, CG_DKG_ERR_FAULTY_PARTICIPANT, i, "invalid VSS commitment");
        for (uint32_t k = 0; k < n; k++)
            if (!cx_scalar_check(pmsgs1[i] + 33u * t + 97 + 32u * k))
                return blame(err, CG_DKG_ERR_FAULTY_PARTICIPANT, i,
                             "invalid encrypted secret share");
    }
    return RT_OK;
}

rt_status cg_dkg_coordinator_step1(cg_dkg_cstate *cst, uint8_t *cmsg1, size_t cmsg1_cap,
                                   size_t *cmsg1_len, const uint8_t *const *pmsgs1,
                                   const size_t *pmsgs1_len, size_t count,
                                   const cg_dkg_params *params, cg_dkg_error *err)
{
    point sum[CG_DKG_MAX_N], P, pubtweak;
    uint8_t tweak[32];
    rt_status st;

    if (!cst || !cmsg1 || !cmsg1_len) return fail(err, CG_DKG_ERR_VALUE, "bad arguments");
    if ((st = cg_dkg_params_validate(params, err)) != RT_OK) return st;
    uint32_t t = params->t, n = params->n;
    if (!pmsgs1 || !pmsgs1_len || count != n)
        return fail(err, CG_DKG_ERR_VALUE, "need exactly one pmsg1 per participant");
    if (cmsg1_cap < CG_DKG_CMSG1_LEN(t, n))
        return fail(err, CG_DKG_ERR_VALUE, "cmsg1 buffer too small");

    uint8_t *coms = cmsg1, *nonconst = coms + 33u * n, *pops = nonconst + 33u * (t - 1);
    uint8_t *pubnonces = pops + 64u * n, *enc_secshares = pubnonces + 33u * n;

    /* Commitments to the secrets stay separate (participants check the pops
     * against them); the other coefficients' commitments are summed. */
    memset(sum, 0, sizeof sum);
    for (uint32_t i = 0; i < n; i++) {
        /* Each message is checked (in participant order, as the reference
         * does) while it is added in, so every point is parsed once. */
        const uint8_t *m = pmsgs1[i];
        if (!m || pmsgs1_len[i] != CG_DKG_PMSG1_LEN(t, n))
            return fail(err, CG_DKG_ERR_VALUE, "pmsg1 length");
        for (uint32_t j = 0; j < t; j++) {
            if (!cx_point_parse(P, m + 33u * j, 1))
                return blame(err, CG_DKG_ERR_FAULTY_PARTICIPANT, i, "invalid VSS commitment");
            if (!cx_point_add(sum[j], sum[j], P)) return INTERNAL(err);
        }
        for (uint32_t k = 0; k < n; k++)
            if (!cx_scalar_check(m + 33u * t + 97 + 32u * k))
                return blame(err, CG_DKG_ERR_FAULTY_PARTICIPANT, i,
                             "invalid encrypted secret share");
        memcpy(coms + 33u * i, m, 33);
        memcpy(pops + 64u * i, m + 33u * t, 64);
        memcpy(pubnonces + 33u * i, m + 33u * t + 64, 33);
    }
    if (!ser_points(nonconst, (const point *)sum + 1, t - 1)) return INTERNAL(err);
    /* The coordinator adds the encrypted shares homomorphically. */
    for (uint32_t k = 0; k < n; k++) {
        uint8_t *acc = enc_secshares + 32u * k;
        memcpy(acc, zero32, 32);
        for (uint32_t i = 0; i < n; i++)
            if (!cx_scalar_add(acc, acc, pmsgs1[i] + 33u * t + 97 + 32u * k)) return INTERNAL(err);
    }

    memset(cst, 0, offsetof(cg_dkg_cstate, eq_buf));
    uint8_t *eq = cst->eq_buf + CG_DKG_CERTEQ_PREFIX_LEN;
    be32_put(eq, t);
    if (!ser_points(eq + 4, (const point *)sum, t)) return INTERNAL(err);
    size_t off = 4 + 33u * t;
    memcpy(eq + off, params->hostpubkeys, 33u * n);
    off += 33u * n;
    memcpy(eq + off, pubnonces, 33u * n);
    off += 33u * n;
    memcpy(eq + off, enc_secshares, 32u * n);
    off += 32u * n;
    cst->eq_input_len = (uint32_t)off;

    if (!invalid_taproot_commit(sum, tweak, pubtweak) ||
        !dkg_public_output(&cst->output, (const point *)sum, t, n, n, NULL))
        return INTERNAL(err);
    cst->output.has_secshare = 0;
    cst->params = *params;
    cst->magic = MAGIC_CSTATE;
    *cmsg1_len = CG_DKG_CMSG1_LEN(t, n);
    return ok(err);
}

rt_status cg_dkg_coordinator_finalize(uint8_t *cmsg2, size_t cmsg2_cap, size_t *cmsg2_len,
                                      cg_dkg_output *out, uint8_t *recovery, size_t recovery_cap,
                                      size_t *recovery_len, cg_dkg_cstate *cst,
                                      const uint8_t *const *pmsgs2, const size_t *pmsgs2_len,
                                      size_t count, cg_dkg_error *err)
{
    if (!cmsg2 || !cmsg2_len || !out || !recovery || !recovery_len || !cst ||
        cst->magic != MAGIC_CSTATE)
        return fail(err, CG_DKG_ERR_VALUE, "bad arguments or state");
    uint32_t n = cst->params.n;
    size_t eq_len = cst->eq_input_len;
    if (!pmsgs2 || !pmsgs2_len || count != n)
        return fail(err, CG_DKG_ERR_VALUE, "need exactly one pmsg2 per participant");
    for (uint32_t i = 0; i < n; i++)
        if (!pmsgs2[i] || pmsgs2_len[i] != CG_DKG_PMSG2_LEN)
            return fail(err, CG_DKG_ERR_VALUE, "pmsg2 length");
    if (cmsg2_cap < CG_DKG_CMSG2_LEN(n) || recovery_cap < eq_len + CG_DKG_CMSG2_LEN(n))
        return fail(err, CG_DKG_ERR_VALUE, "output buffer too small");
    for (uint32_t i = 0; i < n; i++)
        memcpy(cmsg2 + 64u * i, pmsgs2[i], 64);
    uint32_t bad = certeq_check(&cst->params, cst->eq_buf, eq_len, cmsg2);
    if (bad != n)
        return blame(err, CG_DKG_ERR_FAULTY_PARTICIPANT, bad,
                     "Participant has provided an invalid signature for the certificate");
    memcpy(recovery, cst->eq_buf + CG_DKG_CERTEQ_PREFIX_LEN, eq_len);
    memcpy(recovery + eq_len, cmsg2, CG_DKG_CMSG2_LEN(n));
    *recovery_len = eq_len + CG_DKG_CMSG2_LEN(n);
    *cmsg2_len = CG_DKG_CMSG2_LEN(n);
    *out = cst->output;
    return ok(err);
}

rt_status cg_dkg_coordinator_investigate(uint8_t *cinvs, size_t cinvs_cap, size_t *cinvs_len,
                                         const uint8_t *const *pmsgs1, const size_t *pmsgs1_len,
                                         size_t count, const cg_dkg_params *params,
                                         cg_dkg_error *err)
{
    point com[CG_DKG_MAX_N], P;
    rt_status st;

    if (!cinvs || !cinvs_len || !params || !pmsgs1 || !pmsgs1_len)
        return fail(err, CG_DKG_ERR_VALUE, "bad arguments");
    /* As the reference: n is the number of messages, t from the params. */
    if (count > CG_DKG_MAX_N || params->t > CG_DKG_MAX_N)
        return fail(err, CG_DKG_ERR_TOO_MANY, "more participants than supported (32)");
    uint32_t n = (uint32_t)count, t = params->t;
    if (n == 0 || t == 0) return fail(err, CG_DKG_ERR_VALUE, "empty session");
    if ((st = check_pmsgs1(pmsgs1, pmsgs1_len, t, n, err)) != RT_OK) return st;
    size_t len1 = CG_DKG_CINV_LEN(n);
    if (cinvs_cap < (size_t)n * len1) return fail(err, CG_DKG_ERR_VALUE, "cinvs buffer too small");

    /* Sender j's commitment is parsed once and evaluated for every recipient i. */
    for (uint32_t j = 0; j < n; j++) {
        const uint8_t *m = pmsgs1[j];
        for (uint32_t k = 0; k < t; k++)
            if (!cx_point_parse(com[k], m + 33u * k, 1)) return INTERNAL(err);
        for (uint32_t i = 0; i < n; i++) {
            uint8_t *ci = cinvs + (size_t)i * len1;
            memcpy(ci + 32u * j, m + 33u * t + 97 + 32u * i, 32);
            if (!vss_pubshare(P, (const point *)com, t, i) ||
                !cx_point_ser(ci + 32u * n + 33u * j, P))
                return INTERNAL(err);
        }
    }
    *cinvs_len = (size_t)n * len1;
    return ok(err);
}

/* ----- recovery ------------------------------------------------------------------ */

rt_status cg_dkg_recover(cg_dkg_output *out, cg_dkg_params *params_out, const uint8_t *hostseckey,
                         size_t hostseckey_len, const uint8_t *rec, size_t rec_len,
                         cg_dkg_scratch *scratch, cg_dkg_error *err)
{
    static const char *const bad_data = "Failed to deserialize recovery data";
    point sum[CG_DKG_MAX_N], P, pubtweak;
    uint8_t tweak[32], pads[CG_DKG_MAX_N][32], secshare[32], hostpubkey[33];
    cg_dkg_params params;
    uint32_t idx, bad;
    rt_status st;

    if (!out || !params_out || !scratch) return fail(err, CG_DKG_ERR_VALUE, "bad arguments");
    if (!rec || rec_len < 4) return fail(err, CG_DKG_ERR_RECOVERY_DATA, bad_data);
    uint64_t t = be32_get(rec), rest = rec_len - 4;
    if (rest < 33 * t) return fail(err, CG_DKG_ERR_RECOVERY_DATA, bad_data);
    rest -= 33 * t;
    if (rest % 162 != 0) return fail(err, CG_DKG_ERR_RECOVERY_DATA, bad_data);
    uint64_t n = rest / 162;
    if (t > CG_DKG_MAX_N || n > CG_DKG_MAX_N)
        return fail(err, CG_DKG_ERR_TOO_MANY, "more participants than supported (32)");
    const uint8_t *coms = rec + 4, *hpks = coms + 33 * t, *pubnonces = hpks + 33 * n;
    const uint8_t *enc_secshares = pubnonces + 33 * n, *cert = enc_secshares + 32 * n;
    for (uint32_t j = 0; j < t; j++)
        if (!cx_point_parse(sum[j], coms + 33u * j, 1))
            return fail(err, CG_DKG_ERR_RECOVERY_DATA, bad_data);
    for (uint32_t i = 0; i < n; i++)
        if (!cx_scalar_check(enc_secshares + 32u * i))
            return fail(err, CG_DKG_ERR_RECOVERY_DATA, bad_data);

    memset(&params, 0, sizeof params);
    params.n = (uint32_t)n;
    params.t = (uint32_t)t;
    memcpy(params.hostpubkeys, hpks, 33 * n);
    if (cg_dkg_params_validate(&params, NULL) != RT_OK)
        return fail(err, CG_DKG_ERR_RECOVERY_DATA, "Invalid session parameters in recovery data");

    size_t eq_len = (size_t)(cert - rec);
    memcpy(scratch->buf + CG_DKG_CERTEQ_PREFIX_LEN, rec, eq_len);
    bad = certeq_check(&params, scratch->buf, eq_len, cert);
    cx_wipe(scratch, sizeof *scratch);
    if (bad != n)
        return fail(err, CG_DKG_ERR_RECOVERY_DATA, "Invalid certificate in recovery data");

    if (!invalid_taproot_commit(sum, tweak, pubtweak)) return INTERNAL(err);
    memset(out, 0, sizeof *out);
    if (!dkg_public_output(out, (const point *)sum, (uint32_t)t, (uint32_t)n, (uint32_t)n, NULL))
        return INTERNAL(err);

    if (hostseckey || hostseckey_len) {
        if ((st = hostkey_check(hostpubkey, hostseckey, hostseckey_len, err)) != RT_OK) return st;
        if (!hostpubkey_index(&params, hostpubkey, &idx))
            return fail(err, CG_DKG_ERR_HOSTSECKEY,
                        "Host secret key does not match any host public key in the recovery data");
        st = INTERNAL(err);
        if (!decaps_multi(pads, &params, idx, hostseckey, pubnonces, &bad))
            goto out; /* the certificate covers the pubnonces: cannot happen */
        if (!sum_scalars(secshare, (const uint8_t(*)[32])pads, (uint32_t)n) ||
            !scalar_sub(secshare, enc_secshares + 32u * idx, secshare) ||
            !cx_scalar_add(secshare, secshare, tweak))
            goto out;
        /* Sanity check only: our own signature in the certificate says we
         * did this check during the session. */
        if (!cx_point_mul_base(P, secshare) || !cx_point_parse(pubtweak, out->pubshares[idx], 0) ||
            !cx_point_eq(P, pubtweak))
            goto out;
        memcpy(out->secshare, secshare, 32);
        out->has_secshare = 1;
    }
    *params_out = params;
    st = ok(err);
out:
    if (st != RT_OK) cx_wipe(out, sizeof *out);
    cx_wipe(pads, sizeof pads);
    cx_wipe(secshare, sizeof secshare);
    cx_wipe(P, sizeof P);
    return st;
}
