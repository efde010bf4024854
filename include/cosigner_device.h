/*
 * cosigner_device.h — one device of a cosignerd wallet, as a C library
 * (pkg-config name: cosigner-device).
 *
 * A wallet is a FROST group (ChillDKG key generation, BIP 445 signing) of
 * the user's devices plus the cosigner service. This library is one of those
 * devices: it holds the device's host secret key and, once a DKG is done,
 * its wallet state (the secret share and the public wallet data), and it
 * speaks the service's HTTP API (docs/API.md) for its own part only. Each
 * other device runs its own copy, in its own process or on its own
 * hardware; the service is the ChillDKG coordinator and the BIP 445
 * coordinator, and holds every round until all devices have posted.
 *
 * Flow:
 *   cdev_keygen, cdev_key_save         once per device: its host key pair
 *   cdev_service_hostpubkey            the service's host key, for the params
 *   cdev_new                           a handle on the device's key
 *   cdev_dkg_join                      ChillDKG with the given params
 *   cdev_state_save / cdev_state_load  keep the wallet state between runs
 *   cdev_sign_join                     one signer of a BIP 445 session
 *   cdev_recover                       rebuild the state from the host key and
 *                                      the service's copy of the recovery data
 *   cdev_free                          wipes everything
 *
 * Conventions. Every function that can fail returns a cdev_status; on
 * failure cdev_error() says why in words (for logs, not for parsing) and,
 * when the service answered with an error, cdev_http_code() and
 * cdev_error_code() give its HTTP status and canonical code. Binary values
 * are raw bytes (host keys and points 33-byte compressed, scalars 32 bytes).
 * Calls that talk to the service block until its round completes (up to the
 * service's rendezvous deadline, at most 120 s per request). A cdev_device
 * must be used by one thread at a time, and one process should run one
 * network call at a time (the library keeps small process-wide contexts).
 *
 * Ownership and secrets. A cdev_device owns copies of everything it is
 * given; nothing returned points into it except the strings of cdev_error()
 * and cdev_error_code() (valid until the next call on that device). The host
 * secret key and the secret share live only in the cdev_device and in the
 * files the caller asks for (cdev_key_save, cdev_state_save: mode 0600); the
 * state file never holds the host secret key. Secret nonces exist only in
 * memory during cdev_sign_join and are wiped as soon as the partial
 * signature is computed. cdev_free wipes the device.
 *
 * State file: one JSON object, written atomically (temporary file, fsync,
 * rename, fsync of the directory):
 *   {"version": 1, "wallet_id": hex32,
 *    "params": {"hostpubkeys": [hex33...], "t": int}, "index": int,
 *    "secshare": hex32, "thresh_pubkey": hex33, "pubshares": [hex33...],
 *    "recovery": hex}                  ("recovery" only when known)
 * cdev_state_load checks all of it against the device's key.
 */
#ifndef COSIGNER_DEVICE_H
#define COSIGNER_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest number of participants of a wallet (devices plus the service). */
#define CDEV_MAX_PARTICIPANTS 32
#define CDEV_SECKEY_LEN 32
#define CDEV_PUBKEY_LEN 33
#define CDEV_WALLET_ID_LEN 32
#define CDEV_SESSION_ID_LEN 32
#define CDEV_SIG_LEN 64
/* Longest message cdev_sign_join signs. */
#define CDEV_MSG_MAX 256
/* Longest enrollment token (hex digits). */
#define CDEV_TOKEN_MAX 79

typedef enum cdev_status {
    CDEV_OK = 0,
    CDEV_ERR_ARG,       /* a caller argument is invalid, or the device has no wallet yet */
    CDEV_ERR_IO,        /* a file could not be read or written */
    CDEV_ERR_FORMAT,    /* a key file, state file or recovery data is malformed or does
                           not belong to this device / wallet */
    CDEV_ERR_TRANSPORT, /* no HTTP response from the service */
    CDEV_ERR_REFUSED,   /* the service answered with an error (see cdev_http_code) */
    CDEV_ERR_BAD_REPLY, /* the service's 200 does not parse or contradicts what the
                           device computed */
    CDEV_ERR_PROTOCOL,  /* a ChillDKG or BIP 445 step failed on the device: a faulty
                           party, the session must be abandoned */
    CDEV_ERR_VERIFY,    /* the final signature does not verify under the wallet's key */
    CDEV_ERR_NOMEM,
    CDEV_ERR_INTERNAL, /* the crypto library failed to initialise, or a primitive failed */
} cdev_status;

/* Static text naming st ("ok", "invalid argument", ...). */
const char *cdev_status_str(cdev_status st);

/* Initialises the library (the crypto backends). Every other function calls
 * it as needed; call it first yourself from a multi-threaded program. */
cdev_status cdev_init(void);

/* Overwrites len bytes at p with zeros in a way the compiler cannot drop:
 * for the caller's copies of host secret keys. */
void cdev_wipe(void *p, size_t len);

/* ---- host keys --------------------------------------------------------- */

/* A fresh host key pair from the system's CSPRNG. The caller owns seckey
 * and should wipe it when done. */
cdev_status cdev_keygen(uint8_t seckey[CDEV_SECKEY_LEN], uint8_t pubkey[CDEV_PUBKEY_LEN]);
/* Writes seckey as one line of hex to path (mode 0600, atomically: an
 * existing file is replaced). The format `cosigner-cli keygen --out` uses. */
cdev_status cdev_key_save(const char *path, const uint8_t seckey[CDEV_SECKEY_LEN]);
/* Reads a key file written by cdev_key_save or cosigner-cli keygen. */
cdev_status cdev_key_load(const char *path, uint8_t seckey[CDEV_SECKEY_LEN]);

/* ---- the device -------------------------------------------------------- */

typedef struct cdev_device cdev_device;

/* A device with host secret key seckey (copied) and no wallet yet. *out is
 * the caller's, to cdev_free. FORMAT if seckey is not a valid key. */
cdev_status cdev_new(cdev_device **out, const uint8_t seckey[CDEV_SECKEY_LEN]);
/* Wipes and frees d (NULL is fine). */
void cdev_free(cdev_device *d);

/* The device's host public key (what goes into the wallet's params). */
void cdev_hostpubkey(const cdev_device *d, uint8_t pubkey[CDEV_PUBKEY_LEN]);
/* Why the last call on d failed ("" after a success). */
const char *cdev_error(const cdev_device *d);
/* The HTTP status of the service's error answer in the last call (0 if it
 * did not answer with an error). */
long cdev_http_code(const cdev_device *d);
/* The canonical code of the last failure: the service's ("UNAVAILABLE",
 * "NOT_FOUND", ...; docs/API.md) or "TRANSPORT", "NO_CODE", "BAD_REPLY",
 * "BAD_SIGNATURE", "LOCAL"; "" after a success. */
const char *cdev_error_code(const cdev_device *d);

/* The public side of the device's wallet. */
typedef struct cdev_wallet_info {
    uint8_t wallet_id[CDEV_WALLET_ID_LEN]; /* ChillDKG params hash */
    uint8_t thresh_pubkey[CDEV_PUBKEY_LEN];
    uint32_t n, t;       /* participants (service included), threshold */
    uint32_t index;      /* this device's participant index */
    size_t recovery_len; /* bytes of recovery data kept, 0 if none */
} cdev_wallet_info;

/* ARG if d has no wallet yet. */
cdev_status cdev_wallet(const cdev_device *d, cdev_wallet_info *out);
/* Host public key of participant i of the wallet (i < n). */
cdev_status cdev_wallet_hostpubkey(const cdev_device *d, uint32_t i,
                                   uint8_t pubkey[CDEV_PUBKEY_LEN]);
/* Copies the ChillDKG recovery data (public; any party's copy rebuilds any
 * participant's state together with that participant's host secret key).
 * ARG if none is kept or cap is too small; *len is set either way. */
cdev_status cdev_recovery_data(const cdev_device *d, uint8_t *buf, size_t cap, size_t *len);

/* ---- talking to the service -------------------------------------------- */

/* The service's host public key (GET /v1/info, unauthenticated). url is the
 * service's base URL ("http://127.0.0.1:7074"; "URL,URL" for a cluster). */
cdev_status cdev_service_hostpubkey(const char *url, uint8_t pubkey[CDEV_PUBKEY_LEN]);

/*
 * Runs this device's ChillDKG steps: POST /v1/dkg/round1 (answered once
 * every device has posted), round 2, then finalize, which checks the
 * service's certificate. Params: the n host public keys in participant
 * order (this device's and the service's among them) and threshold t; every
 * device must pass the same. token: the enrollment token the operator
 * minted (hex, at most CDEV_TOKEN_MAX digits), sent as "token" in round 1,
 * or NULL for none. On success d holds the wallet (replacing any before),
 * with its recovery data; save it with cdev_state_save.
 */
cdev_status cdev_dkg_join(cdev_device *d, const char *url,
                          const uint8_t (*hostpubkeys)[CDEV_PUBKEY_LEN], uint32_t n, uint32_t t,
                          const char *token);

/*
 * One signer of a BIP 445 session of d's wallet: posts this device's fresh
 * public nonce (sign round 1, answered once every device signer has posted),
 * then its partial signature (round 2), and verifies the service's final
 * signature locally (BIP340, libsecp256k1). Every signer passes the same
 * session_id (32 bytes agreed out of band, fresh per session), msg (at most
 * CDEV_MSG_MAX bytes), signer set and tweak: signers[count] are participant
 * indices, at least t, distinct, this device's and the service's among them
 * (their order does not matter). taproot: apply the BIP 341 key-path tweak,
 * with merkle_root (32 bytes) or NULL for a key-path-only output. Writes the
 * signature and the x-only key it verifies under (either may be NULL).
 * VERIFY if the signature does not verify.
 */
cdev_status cdev_sign_join(cdev_device *d, const char *url,
                           const uint8_t session_id[CDEV_SESSION_ID_LEN], const uint32_t *signers,
                           size_t count, const uint8_t *msg, size_t msg_len, int taproot,
                           const uint8_t *merkle_root, uint8_t sig[CDEV_SIG_LEN],
                           uint8_t pubkey_xonly[32]);

/*
 * Rebuilds the wallet state of a device that kept only its host secret key:
 * fetches the service's copy of the ChillDKG recovery data (GET
 * /v1/wallets/{wallet_id}/recovery, authenticated by this device's key) and
 * runs ChillDKG recovery with the host secret key (which checks the
 * certificate of every participant), then checks that the recovered params
 * hash to wallet_id. On success d holds the wallet.
 */
cdev_status cdev_recover(cdev_device *d, const char *url,
                         const uint8_t wallet_id[CDEV_WALLET_ID_LEN]);
/* The same from recovery data the caller has (a backup, another device's
 * copy). wallet_id may be NULL to accept any wallet this device is part of. */
cdev_status cdev_recover_from(cdev_device *d, const uint8_t *recovery, size_t recovery_len,
                              const uint8_t *wallet_id);

/* ---- the state file ---------------------------------------------------- */

/* Writes d's wallet state to path (format above; mode 0600, atomic). ARG
 * if d has no wallet. */
cdev_status cdev_state_save(const cdev_device *d, const char *path);
/* Reads a state file into d (replacing its wallet). FORMAT if the file is
 * malformed, inconsistent, or not of this device's key. */
cdev_status cdev_state_load(cdev_device *d, const char *path);

#ifdef __cplusplus
}
#endif

#endif
