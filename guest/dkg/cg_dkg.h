/*
 * cg_dkg.h — ChillDKG (BlockstreamResearch/bip-frost-dkg) in the guest.
 *
 * Owns: the participant and coordinator algorithms of ChillDKG (SimplPedPop
 * wrapped in EncPedPop, plus the CertEq equality check), the exact byte
 * encodings of its messages and recovery data, recovery, and the optional
 * investigation procedure that narrows a failure down to a faulty party.
 * Knows nothing about sessions, rendezvous or storage: the cosigner actor
 * drives these functions and keeps the states between rounds.
 *
 * Plain C on top of cg_cx.h only (no libc beyond string.h, no allocation),
 * so the same code runs natively and inside the wasm32 sandbox. Every state
 * is a fixed-size, caller-allocated struct of plain bytes (no pointers, no
 * process-local point encodings), so it may be copied or kept in linear
 * memory across calls; n is bounded by CG_DKG_MAX_N. Stack use stays below
 * about 6 KiB per call.
 *
 * Encodings (all integers big-endian, points 33-byte compressed, scalars
 * 32 bytes; "point/inf" means 33 zero bytes encode the point at infinity):
 *   pmsg1  = com[t] (point/inf) || pop (64) || pubnonce (33) || enc_shares[n]
 *            -> CG_DKG_PMSG1_LEN(t, n) = 33t + 32n + 97
 *   cmsg1  = coms_to_secrets[n] (point/inf) || sum_coms_to_nonconst_terms[t-1]
 *            (point/inf) || pops[n] (64) || pubnonces[n] (33) || enc_secshares[n]
 *            -> CG_DKG_CMSG1_LEN(t, n) = 162n + 33(t-1)
 *   pmsg2  = CertEq signature (64)
 *   cmsg2  = certificate: the n signatures concatenated (64n)
 *   cinv   = enc_partial_secshares[n] || partial_pubshares[n] (point/inf) (65n)
 *   eq_input = t (4) || sum_coms[t] || hostpubkeys[n] || pubnonces[n] || enc_secshares[n]
 *   recovery data = eq_input || cert -> CG_DKG_RECOVERY_LEN(t, n) = 4 + 33t + 162n
 *
 * Errors. Every function returns an rt_status and, if `err` is non-NULL,
 * fills it with the kind of the reference implementation's exception and
 * the blamed participant index (0-based, -1 if none):
 *   RT_INVALID_ARGUMENT  VALUE (ValueError: wrong length, count or buffer size),
 *                        HOSTSECKEY, THRESHOLD_OR_COUNT, INVALID_HOSTPUBKEY
 *                        (participant), DUPLICATE_HOSTPUBKEY (participant,
 *                        participant2), RECOVERY_DATA
 *   RT_OUT_OF_RANGE      TOO_MANY: n > CG_DKG_MAX_N (valid per the spec, not
 *                        supported here)
 *   RT_INTERNAL          RANDOMNESS (all-zero randomness: a broken RNG),
 *                        INTERNAL (a primitive failed where it cannot)
 *   RT_ABORTED           protocol faults; the session must be abandoned:
 *                        FAULTY_PARTICIPANT (coordinator's view; participant),
 *                        FAULTY_PARTICIPANT_OR_COORDINATOR (participant),
 *                        FAULTY_COORDINATOR,
 *                        UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR (step 2
 *                        only; fills the cg_dkg_pinv for an investigation)
 * Outputs are unspecified on failure (and secret parts of them are wiped).
 *
 * Secrets: the host secret key is passed to each step that needs it and never
 * stored in a state. cg_dkg_pstate2 and cg_dkg_output hold the secret share,
 * cg_dkg_pinv holds decryption pads; callers wipe them with cg_dkg_wipe()
 * (or cx_wipe) when done. All internal secret temporaries are wiped.
 */
#ifndef CG_DKG_H
#define CG_DKG_H

#include <stddef.h>
#include <stdint.h>

#include "rt_status.h"

/* Largest supported number of participants (and hence threshold). */
#define CG_DKG_MAX_N 32u

#define CG_DKG_SECKEY_LEN 32u
#define CG_DKG_PUBKEY_LEN 33u
#define CG_DKG_PARAMS_HASH_LEN 32u
#define CG_DKG_RANDOM_LEN 32u

/* Message and recovery-data sizes for threshold t and n participants. */
#define CG_DKG_PMSG1_LEN(t, n) (33u * (t) + 32u * (n) + 97u)
#define CG_DKG_CMSG1_LEN(t, n) (162u * (n) + 33u * ((t)-1u))
#define CG_DKG_PMSG2_LEN 64u
#define CG_DKG_CMSG2_LEN(n) (64u * (n))
#define CG_DKG_CINV_LEN(n) (65u * (n))
#define CG_DKG_EQ_INPUT_LEN(t, n) (4u + 33u * (t) + 98u * (n))
#define CG_DKG_RECOVERY_LEN(t, n) (CG_DKG_EQ_INPUT_LEN(t, n) + 64u * (n))

#define CG_DKG_PMSG1_MAX CG_DKG_PMSG1_LEN(CG_DKG_MAX_N, CG_DKG_MAX_N)
#define CG_DKG_CMSG1_MAX CG_DKG_CMSG1_LEN(CG_DKG_MAX_N, CG_DKG_MAX_N)
#define CG_DKG_CMSG2_MAX CG_DKG_CMSG2_LEN(CG_DKG_MAX_N)
#define CG_DKG_CINV_MAX CG_DKG_CINV_LEN(CG_DKG_MAX_N)
#define CG_DKG_EQ_INPUT_MAX CG_DKG_EQ_INPUT_LEN(CG_DKG_MAX_N, CG_DKG_MAX_N)
#define CG_DKG_RECOVERY_MAX CG_DKG_RECOVERY_LEN(CG_DKG_MAX_N, CG_DKG_MAX_N)

/* CertEq signs "BIP DKG/certeq message" zero-padded to 33 bytes || idx (4) ||
 * eq_input; states keep this prefix room in front of eq_input so signing and
 * verifying need no multi-KiB temporary. */
#define CG_DKG_CERTEQ_PREFIX_LEN 37u

typedef enum cg_dkg_error_kind {
    CG_DKG_ERR_NONE = 0,
    CG_DKG_ERR_VALUE,
    CG_DKG_ERR_HOSTSECKEY,
    CG_DKG_ERR_THRESHOLD_OR_COUNT,
    CG_DKG_ERR_INVALID_HOSTPUBKEY,
    CG_DKG_ERR_DUPLICATE_HOSTPUBKEY,
    CG_DKG_ERR_RANDOMNESS,
    CG_DKG_ERR_TOO_MANY,
    CG_DKG_ERR_RECOVERY_DATA,
    CG_DKG_ERR_FAULTY_PARTICIPANT,
    CG_DKG_ERR_FAULTY_PARTICIPANT_OR_COORDINATOR,
    CG_DKG_ERR_FAULTY_COORDINATOR,
    CG_DKG_ERR_UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR,
    CG_DKG_ERR_INTERNAL,
    CG_DKG_ERR_KIND_COUNT_
} cg_dkg_error_kind;

typedef struct cg_dkg_error {
    cg_dkg_error_kind kind;
    int32_t participant;  /* blamed / offending index, -1 if none */
    int32_t participant2; /* second index of DUPLICATE_HOSTPUBKEY, else -1 */
    const char *msg;      /* static text (the reference's message where it has one) */
} cg_dkg_error;

/* Name of the reference exception ("FaultyParticipantError", ...). */
const char *cg_dkg_error_kind_name(cg_dkg_error_kind kind);

/* Session parameters: the ordered host public keys and the threshold. */
typedef struct cg_dkg_params {
    uint32_t n;
    uint32_t t;
    uint8_t hostpubkeys[CG_DKG_MAX_N][CG_DKG_PUBKEY_LEN];
} cg_dkg_params;

/* Result of a DKG session. The coordinator has no secret share. */
typedef struct cg_dkg_output {
    uint32_t n;
    uint8_t has_secshare;
    uint8_t secshare[32]; /* secret: wipe */
    uint8_t threshold_pubkey[CG_DKG_PUBKEY_LEN];
    uint8_t pubshares[CG_DKG_MAX_N][CG_DKG_PUBKEY_LEN];
} cg_dkg_output;

/* Participant state between step 1 and step 2. Holds no secret (the host key
 * is passed again to step 2). Consumed (wiped) by step 2. */
typedef struct cg_dkg_pstate1 {
    uint32_t magic;
    uint32_t idx;
    cg_dkg_params params;
    uint8_t com_to_secret[CG_DKG_PUBKEY_LEN];
    uint8_t pubnonce[CG_DKG_PUBKEY_LEN];
} cg_dkg_pstate1;

/* Participant state between step 2 and finalize. Holds the secret share. */
typedef struct cg_dkg_pstate2 {
    uint32_t magic;
    uint32_t idx;
    cg_dkg_params params;
    cg_dkg_output output;
    uint32_t eq_input_len;
    uint8_t eq_buf[CG_DKG_CERTEQ_PREFIX_LEN + CG_DKG_EQ_INPUT_MAX]; /* prefix room || eq_input */
} cg_dkg_pstate2;

/* Data an investigation needs after step 2 failed with
 * UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR. Secret: wipe when done. */
typedef struct cg_dkg_pinv {
    uint32_t magic;
    uint32_t n;
    uint32_t idx;
    uint8_t secshare[32]; /* untweaked, as decrypted */
    uint8_t pubshare[33]; /* untweaked, point/inf */
    uint8_t enc_secshare[32];
    uint8_t pads[CG_DKG_MAX_N][32];
} cg_dkg_pinv;

/* Coordinator state between step 1 and finalize. No secrets. */
typedef struct cg_dkg_cstate {
    uint32_t magic;
    cg_dkg_params params;
    cg_dkg_output output;
    uint32_t eq_input_len;
    uint8_t eq_buf[CG_DKG_CERTEQ_PREFIX_LEN + CG_DKG_EQ_INPUT_MAX];
} cg_dkg_cstate;

/* Workspace for recovery (certificate check over the recovery data). */
typedef struct cg_dkg_scratch {
    uint8_t buf[CG_DKG_CERTEQ_PREFIX_LEN + CG_DKG_EQ_INPUT_MAX];
} cg_dkg_scratch;

/* Wipes any of the structs above (or any secret buffer). */
void cg_dkg_wipe(void *p, size_t len);

/* ----- host keys and parameters ---------------------------------------- */

/* 33-byte compressed public key of a 32-byte host secret key.
 * VALUE if seckey_len != 32, HOSTSECKEY if the key is 0 or >= n. */
rt_status cg_dkg_hostpubkey_gen(uint8_t hostpubkey[33], const uint8_t *hostseckey,
                                size_t hostseckey_len, cg_dkg_error *err);

/* Checks 1 <= t <= n, n <= CG_DKG_MAX_N, every host key parses, no duplicates
 * (reported as the first earlier index and the later index). */
rt_status cg_dkg_params_validate(const cg_dkg_params *params, cg_dkg_error *err);

/* Tagged hash "BIP DKG/params_hash" of t (4) || hostpubkeys, for the
 * out-of-band comparison of the session parameters. Validates first. */
rt_status cg_dkg_params_hash(uint8_t out[32], const cg_dkg_params *params, cg_dkg_error *err);

/* ----- participant -------------------------------------------------------- */

/* Round 1. `random` must be 32 FRESH random bytes (RANDOMNESS if all zero).
 * Writes pmsg1 (CG_DKG_PMSG1_LEN(t, n) bytes) and initialises *st1. */
rt_status cg_dkg_participant_step1(cg_dkg_pstate1 *st1, uint8_t *pmsg1, size_t pmsg1_cap,
                                   size_t *pmsg1_len, const uint8_t *hostseckey,
                                   size_t hostseckey_len, const cg_dkg_params *params,
                                   const uint8_t *random, size_t random_len, cg_dkg_error *err);

/* Round 2: decrypts and checks this participant's share from cmsg1, signs the
 * CertEq message. Consumes *st1: it is wiped on success and on every
 * RT_ABORTED (the session is over); after RT_INVALID_ARGUMENT (wrong key or
 * length) it stays usable. Initialises *st2 (also used as workspace during
 * the call). `aux_rand` is 32 bytes of BIP340 auxiliary randomness.
 * On UNKNOWN_FAULTY_PARTICIPANT_OR_COORDINATOR, *inv (if non-NULL) receives
 * the data for cg_dkg_participant_investigate. */
rt_status cg_dkg_participant_step2(cg_dkg_pstate2 *st2, uint8_t pmsg2[64],
                                   const uint8_t *hostseckey, size_t hostseckey_len,
                                   cg_dkg_pstate1 *st1, const uint8_t *cmsg1, size_t cmsg1_len,
                                   const uint8_t *aux_rand, size_t aux_rand_len, cg_dkg_pinv *inv,
                                   cg_dkg_error *err);

/* Final round: verifies the coordinator's certificate. On success fills *out
 * (with the secret share) and writes the recovery data
 * (CG_DKG_RECOVERY_LEN(t, n) bytes). *st2 stays valid (only the prefix room
 * of its eq_buf is rewritten), so a retry with another cmsg2 is possible;
 * wipe it when done. Even on failure the session may have succeeded for
 * others: keep the host key, recovery data can still arrive (see the BIP). */
rt_status cg_dkg_participant_finalize(cg_dkg_output *out, uint8_t *recovery, size_t recovery_cap,
                                      size_t *recovery_len, cg_dkg_pstate2 *st2,
                                      const uint8_t *cmsg2, size_t cmsg2_len, cg_dkg_error *err);

/* Investigation with the coordinator's cinv for this participant. Never
 * succeeds: returns RT_ABORTED with FAULTY_PARTICIPANT_OR_COORDINATOR
 * (participant) or FAULTY_COORDINATOR; RT_INVALID_ARGUMENT (VALUE) on a
 * wrong length or if the data shows nothing to blame (misuse). */
rt_status cg_dkg_participant_investigate(const cg_dkg_pinv *inv, const uint8_t *cinv,
                                         size_t cinv_len, cg_dkg_error *err);

/* ----- coordinator -------------------------------------------------------- */

/* Aggregates the n pmsg1 (pmsgs1[i] of pmsgs1_len[i] bytes, i < count) into
 * cmsg1 (CG_DKG_CMSG1_LEN(t, n) bytes) and initialises *cst. */
rt_status cg_dkg_coordinator_step1(cg_dkg_cstate *cst, uint8_t *cmsg1, size_t cmsg1_cap,
                                   size_t *cmsg1_len, const uint8_t *const *pmsgs1,
                                   const size_t *pmsgs1_len, size_t count,
                                   const cg_dkg_params *params, cg_dkg_error *err);

/* Collects the n pmsg2 into the certificate (cmsg2, 64n bytes), checks every
 * signature (FAULTY_PARTICIPANT blames the first bad one), fills *out (no
 * secret share) and writes the recovery data. *cst stays valid (only the
 * prefix room of its eq_buf is rewritten): a retry with corrected pmsg2 works. */
rt_status cg_dkg_coordinator_finalize(uint8_t *cmsg2, size_t cmsg2_cap, size_t *cmsg2_len,
                                      cg_dkg_output *out, uint8_t *recovery, size_t recovery_cap,
                                      size_t *recovery_len, cg_dkg_cstate *cst,
                                      const uint8_t *const *pmsgs2, const size_t *pmsgs2_len,
                                      size_t count, cg_dkg_error *err);

/* Investigation messages, one per participant, written back to back into
 * `cinvs` (n * CG_DKG_CINV_LEN(n) bytes): message i starts at i * 65n. They
 * contain nothing confidential and may be broadcast. As in the reference, n
 * is `count` and only t is taken from params; a malformed pmsg1 is blamed
 * (FAULTY_PARTICIPANT). Error path only: costs n^2 (t-1) multiplications. */
rt_status cg_dkg_coordinator_investigate(uint8_t *cinvs, size_t cinvs_cap, size_t *cinvs_len,
                                         const uint8_t *const *pmsgs1, const size_t *pmsgs1_len,
                                         size_t count, const cg_dkg_params *params,
                                         cg_dkg_error *err);

/* ----- recovery ----------------------------------------------------------- */

/* Recovers the DKG output and session parameters from recovery data (after a
 * failed finalize, or on a new device from a backup of the host key).
 * Participant: hostseckey of 32 bytes; coordinator: hostseckey NULL, length 0
 * (no secret share). RECOVERY_DATA for malformed data, bad params or a bad
 * certificate; VALUE / HOSTSECKEY if the key has a wrong length, is invalid or
 * is not among the hostpubkeys; TOO_MANY if t or n exceeds CG_DKG_MAX_N.
 * `scratch` is caller workspace (wiped before returning). */
rt_status cg_dkg_recover(cg_dkg_output *out, cg_dkg_params *params_out, const uint8_t *hostseckey,
                         size_t hostseckey_len, const uint8_t *recovery, size_t recovery_len,
                         cg_dkg_scratch *scratch, cg_dkg_error *err);

/* ----- CertEq (exposed for tests and for the actor's own checks) -------- */

/* Verifies a certificate (64n bytes) over x for all n host keys; on a bad
 * signature returns RT_ABORTED with kind FAULTY_PARTICIPANT and the index.
 * `xbuf` holds CG_DKG_CERTEQ_PREFIX_LEN bytes of room followed by x (x_len
 * bytes); the room is overwritten. */
rt_status cg_dkg_certeq_verify(const cg_dkg_params *params, uint8_t *xbuf, size_t x_len,
                               const uint8_t *cert, size_t cert_len, cg_dkg_error *err);

#endif
