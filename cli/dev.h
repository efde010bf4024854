/*
 * dev.h — one wallet's devices, driven against the service: ChillDKG as
 * participants (the service coordinates), then BIP 445 signing sessions as
 * signers. Shared by cosigner-cli and cosigner-bench. Event-driven on an
 * http_client so many wallets progress at once.
 *
 * Secrets: device host keys and secret shares live in the dev_wallet;
 * secret nonces only between the two signing rounds, wiped after use.
 */
#ifndef CLI_DEV_H
#define CLI_DEV_H

#include <stdint.h>

#include "cg_dkg.h"
#include "cg_frost.h"
#include "http.h"

#define DEV_MAX_N 32

typedef struct dev_wallet {
    uint32_t n, t, svc; /* participants, threshold, service index */
    uint8_t hostpk[DEV_MAX_N][33];
    uint8_t is_dev[DEV_MAX_N];       /* participants simulated here */
    uint8_t seckey[DEV_MAX_N][32];   /* their host secret keys */
    uint8_t secshare[DEV_MAX_N][32]; /* their secret shares (after DKG) */
    uint8_t wallet_id[32];
    uint8_t thresh_pk[33];
    uint8_t pubshares[DEV_MAX_N][33];
    int ready; /* DKG completed */
    /* Enrollment token the operator minted for this wallet, sent as "token"
     * in every device's DKG round 1 body; "" = none (the field is omitted). */
    char token[80];
} dev_wallet;

typedef enum dev_phase { DEV_DKG1 = 0, DEV_DKG2, DEV_SIGN1, DEV_SIGN2, DEV_PHASES } dev_phase;
extern const char *const dev_phase_names[DEV_PHASES];

typedef struct dev_user dev_user;
/* Called once per operation (dkg or sign). ok = 1 on success; on failure
 * code is the HTTP code (0 = transport or local failure) and msg says why. */
typedef void (*dev_done)(dev_user *u, int ok, long code, const char *msg);
/* Called when a phase of an operation has completed for every device. */
typedef void (*dev_phase_cb)(dev_user *u, dev_phase ph, double ms);

struct dev_user {
    dev_wallet w;
    http_client *hc;
    dev_done done;
    dev_phase_cb on_phase;
    void *ud;
    /* current operation */
    int pending, failed;
    long fail_code;
    char fail_msg[256];
    /* The canonical code of the failure: the JSON error body's code
     * ("UNAVAILABLE", ...), "TRANSPORT" (no HTTP response), "NO_CODE" (an
     * HTTP error without a JSON error body), "BAD_REPLY" (a 200 that does
     * not parse or is inconsistent), "BAD_SIGNATURE" (the final signature
     * does not verify) or "LOCAL" (device side). */
    char fail_code_name[32];
    double phase_t0;
    dev_phase phase;
    void *st; /* per-operation state */
    /* last signature */
    uint8_t sig[64];
    uint8_t msg[256];
    size_t msg_len;
    uint8_t verify_xonly[32]; /* the (tweaked) key the signature verifies under */
    /* the validated signer set of the last session (reused while it repeats) */
    cg_frost_signers *signers;
    uint32_t signers_ids[DEV_MAX_N];
    size_t signers_count;
    /* Devices in separate processes must post the same session id, agreed out
     * of band: with fixed_session_id set, dev_sign uses session_id instead of
     * a fresh random one. */
    int fixed_session_id;
    uint8_t session_id[32];
    /* If recovery is non-NULL (recovery_cap bytes, caller-owned), dev_dkg
     * copies the ChillDKG recovery data there and sets recovery_len (0 if it
     * did not fit or the DKG failed). */
    uint8_t *recovery;
    size_t recovery_cap, recovery_len;
};

/* Frees what the user holds between operations (not the wallet). */
void dev_user_release(dev_user *u);

/* Sets up the wallet params: the devices' keys are in w (is_dev/seckey/hostpk),
 * svc_pk is the service's host key, placed at index svc. */
void dev_wallet_init(dev_wallet *w, uint32_t n, uint32_t t, uint32_t svc, const uint8_t svc_pk[33]);
/* Generates a fresh host key pair for participant i (a simulated device). */
int dev_keygen(uint8_t sk[32], uint8_t pk[33]);

/* Runs ChillDKG for every simulated device of u->w. */
void dev_dkg(dev_user *u);
/* One signing session by signers[count] (participant indices; must include
 * the service), message msg, optional Taproot tweak (taproot = 1, merkle_root
 * NULL for key-path only). Writes u->sig and checks it locally. */
void dev_sign(dev_user *u, const uint32_t *signers, size_t count, const uint8_t *msg,
              size_t msg_len, int taproot, const uint8_t *merkle_root);

double dev_now_ms(void);
/* BIP340 verification with libsecp256k1 directly (independent of our glue). */
int dev_verify_bip340(const uint8_t sig[64], const uint8_t *msg, size_t len,
                      const uint8_t xonly[32]);

#endif
