/*
 * net_int.h — internals shared by the files of src/net (not a public door).
 */
#ifndef NET_INT_H
#define NET_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <pthread.h>

#include "net.h"

/* ---- status -> HTTP: the one table (net_status.c) ---------------------- */

/* Pseudo status for the body cap, which has no canonical code of its own. */
#define NET_ST_PAYLOAD_TOO_LARGE 100
#define NET_ST_URI_TOO_LONG 101

/* FAILED_PRECONDITION (412) and ALREADY_EXISTS (409) have rows of their
 * own since wallet retirement and restore: see net_status.c. */
typedef struct net_http_status {
    unsigned http;
    const char *code; /* canonical name for the JSON error body */
    bool retry_after; /* the response carries Retry-After */
} net_http_status;

const net_http_status *net_status_http(int st);

/* ---- routes ------------------------------------------------------------ */

enum net_route {
    NET_R_UNKNOWN = 0,
    NET_R_INFO,
    NET_R_HEALTHZ,
    NET_R_READYZ,
    NET_R_METRICS,
    NET_R_DKG1,
    NET_R_DKG2,
    NET_R_SIGN1,
    NET_R_SIGN2,
    NET_R_WALLET,
    NET_R_FAULT,    /* fault-injection builds only */
    NET_R_RECOVERY, /* GET /v1/wallets/{id}/recovery */
    NET_R_RESTORE,  /* POST /v1/wallets/{id}/restore */
    NET_R_RETIRE,   /* POST /v1/admin/wallets/{id}/retire (admin keys only) */
    /* /v1/admin/...: signed by an admin key (net_admit.c) */
    NET_R_ADM_TOKENS,  /* POST /v1/admin/tokens: mint an enrollment token */
    NET_R_ADM_REVOKE,  /* POST /v1/admin/tokens/{id}/revoke */
    NET_R_ADM_GRANT,   /* POST /v1/admin/enrollments: grant one wallet's params */
    NET_R_ADM_WALLETS, /* POST /v1/admin/wallets/list */
    NET_R_ADM_WALLET,  /* GET /v1/admin/wallets/{id} */
    NET_R_ADM_AUDIT,   /* POST /v1/admin/audit/list */
    NET_R_COUNT_
};
extern const char *const net_route_names[NET_R_COUNT_];

/* ---- metrics (net_metrics.c) ------------------------------------------ */

enum net_auth_fail {
    NET_AF_MISSING = 0,
    NET_AF_MALFORMED,
    NET_AF_BAD_SIG,
    NET_AF_STALE,
    NET_AF_REPLAY,
    NET_AF_NOT_PARTICIPANT,
    NET_AF_CACHE_FULL,
    NET_AF_COUNT_
};

#define NET_HIST_BUCKETS 14
#define NET_HTTP_CODES 17

typedef struct net_metrics {
    _Atomic uint64_t count[NET_R_COUNT_][NET_HTTP_CODES];
    _Atomic uint64_t sum_us[NET_R_COUNT_][NET_HTTP_CODES];
    _Atomic uint64_t bucket[NET_R_COUNT_][NET_HTTP_CODES][NET_HIST_BUCKETS];
    _Atomic uint64_t auth_fail[NET_AF_COUNT_];
    _Atomic uint64_t connections_total;
    _Atomic uint64_t connections_refused;
    _Atomic uint64_t slow_uploads;
    _Atomic uint64_t forwarded;             /* requests sent on to the wallet's owner */
    _Atomic uint64_t forward_failures;      /* ... whose owner could not be reached */
    _Atomic uint64_t hop_refusals;          /* forwarded to us, but not ours either */
    _Atomic uint64_t forward_auth_failures; /* bad X-Cosigner-Forwarded */
    _Atomic uint64_t lease_gate_refusals;   /* replies withheld: lease lost meanwhile */
} net_metrics;

void net_metrics_observe(net_metrics *m, int route, unsigned http, uint64_t us);
void net_metrics_write(net_metrics *m, FILE *out);

/* ---- authentication (net_auth.c) --------------------------------------- */

typedef struct net_auth_hdr {
    uint8_t pk[33];
    uint64_t ts_ms;
    uint8_t nonce[16];
    uint8_t sig[64];
} net_auth_hdr;

/* Parses the Authorization value. Returns 1 on success. */
int net_auth_parse(net_auth_hdr *out, const char *value);

typedef struct net_replay net_replay;
net_replay *net_replay_new(size_t entries, uint64_t window_ms);
void net_replay_free(net_replay *r);
/* Records (pk, nonce); returns RT_OK when new, RT_ALREADY_EXISTS when seen,
 * RT_RESOURCE_EXHAUSTED when the cache is full (refuse: we cannot remember). */
rt_status net_replay_check(net_replay *r, const uint8_t pk[33], const uint8_t nonce[16],
                           uint64_t now_ms);

/*
 * Verifies a parsed header against the request. Returns RT_OK or
 * RT_UNAUTHENTICATED with *why (an enum net_auth_fail). Does not consult the
 * replay cache (the caller does, after the signature and the participant
 * check: only genuine requests by participants may occupy it).
 */
rt_status net_auth_verify(const net_auth_hdr *h, const char *method, const char *path,
                          const uint8_t *body, size_t len, uint64_t now_unix_ms, uint64_t window_ms,
                          int *why);

uint64_t net_unix_ms(void);

/* ---- forwarding to the owner node (net_fwd.c) -------------------------- */

/* Completion of a forward: http 0 = the owner could not be reached (or
 * answered garbage). Ownership of body (malloc'd, may be NULL) passes to
 * the callback. Called on the forwarding thread, or inline when refused. */
typedef void (*net_fwd_cb)(void *arg, unsigned http, char *body, size_t len, const char *ctype,
                           uint32_t retry_after_s);
typedef struct net_fwd net_fwd;
net_fwd *net_fwd_new(uint64_t timeout_ms);
/* Answers every forward still in flight (http 0) before it returns. */
void net_fwd_free(net_fwd *f);
/* Borrowed: everything is copied before return. cb fires exactly once. */
void net_fwd_submit(net_fwd *f, const char *url, const char *method, const char *auth,
                    const char *fwd_hdr, const char *body, size_t len, net_fwd_cb cb, void *arg);

/* X-Cosigner-Forwarded: "v1 <unix ms> <hex HMAC-SHA256>" under the cluster
 * key over the timestamp, method, path, Authorization value and body hash. */
#define NET_FWD_HDR_MAX 96
void net_fwd_sign(char out[NET_FWD_HDR_MAX], const uint8_t key[32], uint64_t now_ms,
                  const char *method, const char *path, const char *auth, const uint8_t *body,
                  size_t len);
/* 1 when hdr is a valid signature of this request within window_ms. */
int net_fwd_verify(const char *hdr, const uint8_t key[32], uint64_t now_ms, uint64_t window_ms,
                   const char *method, const char *path, const char *auth, const uint8_t *body,
                   size_t len);

#endif
