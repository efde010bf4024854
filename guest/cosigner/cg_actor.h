/*
 * cg_actor.h — private: the cg_actor struct and the helpers its parts share
 * (cg_cosigner.c: dispatch, DKG, snapshot; cg_sign.c: signing sessions).
 */
#ifndef CG_ACTOR_H
#define CG_ACTOR_H

#include <stddef.h>
#include <stdint.h>

#include "cg_abi.h"
#include "cg_cmd.h"
#include "cg_cosigner.h"
#include "cg_cx.h"
/* Through guest/ (on the include path of both builds), not the part folders. */
#include "dkg/cg_dkg.h"
#include "frost/cg_frost.h"
#include "cg_mem.h"

/* Fault injection needs both this build switch and the host's runtime flag
 * (cg_configure). Where the build configuration is not on the include path
 * (the wasm32 build), the host's flag alone decides: the host sets it only
 * when its own build has fault injection. */
#if __has_include("cg_config.h")
#include "cg_config.h"
#endif
#ifndef CG_FAULT_INJECTION
#define CG_FAULT_INJECTION 1
#endif

typedef struct cg_waiter {
    uint64_t id;
    uint32_t sender;
} cg_waiter;

typedef struct cg_waitq {
    uint32_t n;
    cg_waiter w[CG_MAX_WAITERS];
} cg_waitq;

/* The service's durable wallet: its DKG output and the recovery data, and
 * whether an operator retired it (then it signs nothing, ever again). */
typedef struct cg_wallet {
    cg_dkg_params params;
    uint32_t my_idx;
    uint32_t retired;
    cg_dkg_output out; /* with the secret share */
    uint32_t recovery_len;
    uint8_t recovery[CG_DKG_RECOVERY_MAX];
} cg_wallet;

enum { DKG_R1 = 1, DKG_R2 = 2 };

typedef struct cg_dkg_sess {
    int phase;
    uint64_t deadline;
    cg_dkg_params params;
    uint32_t my_idx;
    uint32_t devices;      /* bit i: participant i is a device (must post) */
    uint32_t have1, have2; /* bit i: participant i's message is in */
    uint32_t pmsg1_len;    /* exact, from (t, n) */
    uint32_t cmsg1_len;
    cg_waitq q1, q2;
    uint8_t pmsg1[CG_DKG_MAX_N][CG_DKG_PMSG1_MAX];
    uint8_t pmsg2[CG_DKG_MAX_N][CG_DKG_PMSG2_LEN];
    uint8_t cmsg1[CG_DKG_CMSG1_MAX];
    cg_dkg_pstate1 pst1;
    cg_dkg_pstate2 pst2; /* secret share: wiped with the session */
    cg_dkg_cstate cst;
    cg_dkg_pinv inv; /* secret pads: wiped with the session */
    uint8_t cinvs[CG_DKG_MAX_N * CG_DKG_CINV_MAX];
    cg_dkg_output out;  /* scratch for finalize; secret */
    cg_dkg_output cout; /* coordinator's view */
    uint8_t cmsg2[CG_DKG_CMSG2_MAX];
    uint8_t recovery[CG_DKG_RECOVERY_MAX];
} cg_dkg_sess;

enum { SIGN_R1 = 1, SIGN_R2 = 2, SIGN_DONE = 3, SIGN_FAILED = 4 };

/* One BIP 445 session. Arrays indexed by position are in signer_ids order. */
typedef struct cg_sign_sess {
    int phase;
    uint64_t deadline;
    uint8_t sid[CG_SESSION_ID_LEN];
    uint8_t digest[32]; /* hash of the parameters every device must agree on */
    uint32_t count;
    uint32_t ids[CG_MAX_PARTICIPANTS];
    uint32_t my_pos;
    uint32_t devices;      /* bit i: participant i is a device signer */
    uint32_t have1, have2; /* bit i: participant i's pubnonce / psig is in */
    int has_secnonce;
    cg_frost_secnonce secnonce; /* secret: consumed by the single signing, never snapshotted */
    uint8_t pubnonce[CG_MAX_PARTICIPANTS][CG_PUBNONCE_LEN];
    uint8_t aggnonce[CG_PUBNONCE_LEN];
    uint8_t psig[CG_MAX_PARTICIPANTS][CG_PSIG_LEN];
    uint8_t sig[CG_SIG_LEN];
    cg_frost_tweak_ctx tweak;
    cg_frost_session fs;
    uint32_t msg_len;
    uint8_t *msg;    /* kept until the final signature is checked */
    int32_t fail_st; /* SIGN_FAILED: what every later post gets */
    uint64_t fail_blame;
    cg_waitq q1, q2;
} cg_sign_sess;

struct cg_actor {
    /* current invocation (native) */
    const cg_host *host;
    void *hctx;
    uint64_t now;
    int answered;

    int inited;
    int has_hostkey;
    uint8_t hostseckey[32];
    uint8_t hostpubkey[33];
    uint64_t rendezvous_ms;
    uint32_t flags;
    int fault_snapshot;

    int has_wallet;
    cg_wallet wallet;

    cg_dkg_sess *dkg;
    cg_sign_sess *sign[CG_MAX_SIGN_SESSIONS];
    /* The last validated signer set (Lagrange coefficients cost a scalar
     * multiplication per signer; a wallet mostly signs with one set). */
    int signers_valid;
    cg_frost_signers signers;

    /* reply assembly: larger than any reply payload */
    uint8_t out[2 + 33 + 4 + CG_DKG_CMSG1_MAX + 64];
};

/* ----- host calls (imports in wasm, the vtable natively) ----------------- */

void act_reply(cg_actor *a, rt_status st, const void *data, size_t len, uint64_t blame);
void act_reply_err(cg_actor *a, rt_status st, uint64_t blame, const char *msg);
/* Parks the current command into q; replies RESOURCE_EXHAUSTED if q is full. */
int cg_park(cg_actor *a, cg_waitq *q, uint32_t sender, uint64_t deadline);
void cg_complete_all(cg_actor *a, cg_waitq *q, rt_status st, const void *data, size_t len,
                     uint64_t blame);
void cg_complete_all_err(cg_actor *a, cg_waitq *q, rt_status st, uint64_t blame, const char *msg);
void cg_mark_dirty(cg_actor *a);

/* ----- session storage (heap natively, static slots in wasm) ------------- */
cg_dkg_sess *cg_dkg_sess_alloc(void);
void cg_dkg_sess_free(cg_dkg_sess *s);
cg_sign_sess *cg_sign_sess_alloc(void);
void cg_sign_sess_free(cg_sign_sess *s);
/* Message storage for a signing session (msg <= CG_MAX_MSG_LEN). */
uint8_t *cg_msg_alloc(size_t len);
void cg_msg_free(uint8_t *p, size_t len);

/* ----- signing (cg_sign.c) ----------------------------------------------- */
void cg_sign_round1(cg_actor *a, const cg_cmd *c, uint32_t sender);
void cg_sign_round2(cg_actor *a, const cg_cmd *c, uint32_t sender);
void cg_sign_expire(cg_actor *a, uint64_t now, int all);
/* Ends every signing session now: parked devices get st/msg, nonces are wiped. */
void cg_sign_abort_all(cg_actor *a, rt_status st, const char *msg);

static inline uint64_t bit(uint32_t i)
{
    return (uint64_t)1 << i;
}

#endif
