/*
 * cg_cmd.h — the binary commands and replies between the service host (the
 * HTTP layer, native) and the cosigner guest (one wallet's actor).
 *
 * Owns: the byte layout of every command handed to cg_handle() and of every
 * successful reply payload, plus the host-only configuration record given
 * to cg_configure(). Both sides use the same encoders and decoders, so the
 * layout lives in exactly one place. Errors need no codec: they travel as
 * (rt_status, UTF-8 message, blame bitmask) through cg_host_reply().
 *
 * Why a custom binary layout rather than JSON inside the guest: the guest
 * must stay small and free of parsers; the host already parsed, bounded and
 * authenticated the JSON. Every decoder here still validates every length
 * and count against the bounds below and never reads past its input, since
 * a command is untrusted input for the guest (and it is fuzzed).
 *
 * All integers are big-endian. Every command starts with
 *     u8 version (CG_CMD_VERSION) || u8 kind || sender[33]
 * where sender is the ChillDKG host public key the HTTP layer authenticated
 * (the request's `pk`). The guest maps it to the participant index using the
 * wallet's (or the DKG round's) params and refuses non-participants with
 * PERMISSION_DENIED — the host does not need to know the participant list
 * of a wallet whose DKG is still in flight. Bodies, by kind:
 *
 *   DKG_ROUND1   u8 n || hostpubkeys[n][33] || u8 t || u32 len || pmsg1[len]
 *   DKG_ROUND2   u32 len || pmsg2[len]
 *   SIGN_ROUND1  session_id[32] || u8 k || signer_ids[k] (u8 each)
 *                || u32 len || msg[len] || u8 m || m * (tweak[32] || u8 xonly)
 *                || pubnonce[66]
 *   SIGN_ROUND2  session_id[32] || psig[32]
 *   GET_WALLET   (empty)
 *   GET_RECOVERY (empty)
 *   RESTORE      u32 len || recovery[len]   (ChillDKG recovery data, len <=
 *                CG_MAX_RECOVERY_LEN; its sender must be a device of the
 *                params inside it)
 *   RETIRE       (empty; the host authorizes it: the sender is an operator's
 *                admin key, which the guest cannot know. Retiring only ever
 *                takes abilities away, so trusting the host for it costs
 *                nothing: a host that lies could as well drop requests.)
 *   FAULT        u8 fault kind (only honoured when the host enabled fault
 *                injection with cg_configure(); compiled out of release builds)
 *
 * Successful reply payloads start with u8 version || u8 kind (of the command
 * answered), then:
 *
 *   DKG_ROUND1   u32 len || cmsg1[len]
 *   DKG_ROUND2   thresh_pubkey[33] || u32 len || cmsg2[len]
 *   SIGN_ROUND1  aggnonce[66]
 *   SIGN_ROUND2  signature[64]       (BIP340, verified under the tweaked key)
 *   GET_WALLET   thresh_pubkey[33] || u8 t || u8 n || hostpubkeys[n][33]
 *                || pubshares[n][33]
 *   GET_RECOVERY u32 len || recovery[len]   (exactly the bytes committed)
 *   RESTORE      thresh_pubkey[33]
 *   RETIRE       (empty)
 *
 * Configuration record (cg_configure, host-only; never reachable from a
 * client because it is not a command kind):
 *   u8 version || u32 rendezvous_ms || u8 flags (bit 0: fault injection)
 *
 * Memory: decoded structs borrow pointers into the input buffer (no copies,
 * the guest has no allocator to spare); they are valid as long as the input.
 * This file is freestanding so it also builds for wasm32.
 */
#ifndef CG_CMD_H
#define CG_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "rt_status.h"

#define CG_CMD_VERSION 1

/* Bounds (why: every allocation and loop in the guest is sized by these). */
#define CG_MAX_PARTICIPANTS 32 /* blame is a 64-bit mask; 32 keeps cmsg small */
#define CG_MAX_MSG_LEN 65536   /* message to sign */
#define CG_MAX_TWEAKS 16       /* BIP 341 key path needs 1; BIP 32 chains a few */
#define CG_MAX_PMSG_LEN 16384  /* ChillDKG pmsg1 for n = 32 is ~2.2 KB */
#define CG_MAX_CMSG_LEN 65536  /* ChillDKG cmsg1 for n = 32 is ~6.2 KB */
#define CG_HOSTPUBKEY_LEN 33
#define CG_SESSION_ID_LEN 32
#define CG_PUBNONCE_LEN 66
#define CG_PSIG_LEN 32
#define CG_SIG_LEN 64
#define CG_TWEAK_LEN 32
#define CG_WALLET_ID_LEN 32
#define CG_HOSTSECKEY_LEN 32
/* ChillDKG recovery data for t = n = CG_MAX_PARTICIPANTS: 4 + 33t + 162n. */
#define CG_MAX_RECOVERY_LEN (4u + 33u * CG_MAX_PARTICIPANTS + 162u * CG_MAX_PARTICIPANTS)

/* A command is never larger than this (SIGN_ROUND1 with the largest msg). */
#define CG_CMD_MAX_LEN                                                                             \
    (2 + 33 + 32 + 1 + CG_MAX_PARTICIPANTS + 4 + CG_MAX_MSG_LEN + 1 + CG_MAX_TWEAKS * 33 + 66)
/* A successful reply is never larger than this (DKG_ROUND2 / GET_WALLET bound). */
#define CG_REPLY_MAX_LEN (2 + 33 + 4 + CG_MAX_CMSG_LEN)

typedef enum cg_cmd_kind {
    CG_CMD_DKG_ROUND1 = 1,
    CG_CMD_DKG_ROUND2 = 2,
    CG_CMD_SIGN_ROUND1 = 3,
    CG_CMD_SIGN_ROUND2 = 4,
    CG_CMD_GET_WALLET = 5,
    CG_CMD_GET_RECOVERY = 6,
    CG_CMD_RESTORE = 7,
    CG_CMD_RETIRE = 8,
    CG_CMD_FAULT = 100,
} cg_cmd_kind;

/* Faults a test or chaos run can inject into a live actor. */
typedef enum cg_fault_kind {
    CG_FAULT_TRAP = 1,     /* trap (wasm unreachable; natively a non-OK return) */
    CG_FAULT_RETURN = 2,   /* return INTERNAL from the handler: a handler fault */
    CG_FAULT_SPIN = 3,     /* loop until the CPU budget kills it (wasm only) */
    CG_FAULT_OOM = 4,      /* grow memory until it fails, then trap (wasm only) */
    CG_FAULT_SNAPSHOT = 5, /* answer OK, but the next cg_snapshot() faults */
    CG_FAULT_KIND_MAX_ = 5,
} cg_fault_kind;

typedef struct cg_tweak {
    const uint8_t *tweak; /* 32 bytes */
    int xonly;            /* 0 = plain tweak, 1 = x-only (BIP 341 key path) */
} cg_tweak;

typedef struct cg_cmd {
    int kind;              /* cg_cmd_kind */
    const uint8_t *sender; /* 33-byte authenticated host pubkey */
    union {
        struct {
            uint32_t n, t;
            const uint8_t *hostpubkeys; /* n * 33 bytes, contiguous */
            const uint8_t *pmsg1;
            uint32_t pmsg1_len;
        } dkg1;
        struct {
            const uint8_t *pmsg2;
            uint32_t pmsg2_len;
        } dkg2;
        struct {
            const uint8_t *session_id; /* 32 */
            uint32_t n_signers;
            uint8_t signer_ids[CG_MAX_PARTICIPANTS]; /* copied: tiny, and validated */
            const uint8_t *msg;
            uint32_t msg_len;
            uint32_t n_tweaks;
            cg_tweak tweaks[CG_MAX_TWEAKS];
            const uint8_t *pubnonce; /* 66 */
        } sign1;
        struct {
            const uint8_t *session_id; /* 32 */
            const uint8_t *psig;       /* 32 */
        } sign2;
        struct {
            const uint8_t *recovery;
            uint32_t recovery_len;
        } restore;
        struct {
            uint32_t kind; /* cg_fault_kind */
        } fault;
    } u;
} cg_cmd;

/*
 * Decodes and bounds-checks a command. Checks structure only: lengths,
 * counts (1 <= t <= n <= 32; 1 <= signers <= 32, ids < 32 and distinct;
 * tweaks <= 16 with xonly in {0,1}; msg <= 64 KiB), no trailing bytes. Point
 * and scalar validity and protocol rules are the guest's job.
 * RT_INVALID_ARGUMENT on any violation, RT_UNIMPLEMENTED for an unknown
 * kind or version. *out borrows buf.
 */
rt_status cg_cmd_decode(cg_cmd *out, const uint8_t *buf, size_t len);

/*
 * Encodes cmd into out[0..cap). Returns RT_OUT_OF_RANGE when cap is too
 * small (*len then holds the size needed), RT_INVALID_ARGUMENT when the
 * command breaks a bound the decoder would refuse. cg_cmd_decode() accepts
 * everything this produces.
 */
rt_status cg_cmd_encode(const cg_cmd *cmd, uint8_t *out, size_t cap, size_t *len);

/* ----- replies ---------------------------------------------------------- */

typedef struct cg_reply {
    int kind; /* cg_cmd_kind of the command answered */
    union {
        struct {
            const uint8_t *cmsg1;
            uint32_t cmsg1_len;
        } dkg1;
        struct {
            const uint8_t *thresh_pubkey; /* 33 */
            const uint8_t *cmsg2;
            uint32_t cmsg2_len;
        } dkg2;
        struct {
            const uint8_t *aggnonce; /* 66 */
        } sign1;
        struct {
            const uint8_t *sig; /* 64 */
        } sign2;
        struct {
            const uint8_t *thresh_pubkey; /* 33 */
            uint32_t t, n;
            const uint8_t *hostpubkeys; /* n * 33 */
            const uint8_t *pubshares;   /* n * 33 */
        } wallet;
        struct {
            const uint8_t *data;
            uint32_t len;
        } recovery;
        struct {
            const uint8_t *thresh_pubkey; /* 33 */
        } restore;
    } u;
} cg_reply;

/* Same contracts as the command codec. FAULT has no reply payload: a fault
 * either faults or (CG_FAULT_SNAPSHOT) answers OK with an empty payload.
 * RETIRE's reply is the header alone. */
rt_status cg_reply_decode(cg_reply *out, const uint8_t *buf, size_t len);
rt_status cg_reply_encode(const cg_reply *r, uint8_t *out, size_t cap, size_t *len);

/* ----- configuration (host-only) ---------------------------------------- */

#define CG_RENDEZVOUS_DEFAULT_MS 60000u
#define CG_CONFIG_FAULT_INJECTION 0x01u
#define CG_CONFIG_LEN 6

typedef struct cg_config {
    uint32_t rendezvous_ms; /* 0 = default (60 s) */
    uint32_t flags;         /* CG_CONFIG_* */
} cg_config;

rt_status cg_config_decode(cg_config *out, const uint8_t *buf, size_t len);
/* Writes exactly CG_CONFIG_LEN bytes. */
void cg_config_encode(const cg_config *c, uint8_t out[CG_CONFIG_LEN]);

/* Name of a command kind, for logs and metrics ("SIGN_ROUND1"; "?" if unknown). */
const char *cg_cmd_kind_name(int kind);

#endif
