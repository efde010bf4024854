/*
 * net_admit.h — internal to src/net: admission control. Who may create a
 * wallet (enrollment tokens and admin grants), how much each host key may
 * use (token-bucket rate limits, wallet and pending-DKG quotas), the
 * per-address limit on failed authentication, and the operator's durable,
 * append-only audit log.
 *
 * Durable records (tokens, grants, quota counters, audit entries) live in
 * the store's public metadata under keys derived from a tag, each MAC'd
 * with the admission key (derived from the host secret key), so a database
 * that can be written but not read from the host cannot mint a token,
 * reset a quota or rewrite history undetected. Nothing here activates an
 * actor: every refusal happens before rt_send.
 */
#ifndef NET_ADMIT_H
#define NET_ADMIT_H

#include <jansson.h>

#include "net_codec.h"
#include "net_int.h"

/* ---- token buckets ----------------------------------------------------- */

/*
 * A bounded table of token buckets keyed by short byte strings (host keys,
 * client addresses). An absent key is a full bucket, so when the table is
 * full the stalest bucket is simply forgotten: that can only ever give a
 * key more allowance, never refuse a key that has not spent its own.
 */
typedef struct net_limiter net_limiter;
/* rate 0 disables the limiter (every take succeeds). NULL on OOM. */
net_limiter *net_limiter_new(size_t capacity, double rate_per_s, double burst);
void net_limiter_free(net_limiter *l);
/* Takes one token. 1 when allowed; 0 when the bucket is empty, with
 * *retry_ms until the next token. klen <= 33. */
int net_limiter_take(net_limiter *l, const uint8_t *key, size_t klen, uint64_t now_ms,
                     uint32_t *retry_ms);
/* 1 when at least one token is left, without taking it. */
int net_limiter_ok(net_limiter *l, const uint8_t *key, size_t klen, uint64_t now_ms,
                   uint32_t *retry_ms);

/* ---- durable records --------------------------------------------------- */

enum net_token_state { NET_TOKEN_FRESH = 0, NET_TOKEN_BOUND = 1, NET_TOKEN_REVOKED = 2 };

#define NET_TOKEN_MAX_KEYS 31 /* a wallet's devices: every participant but the service */

typedef struct net_token {
    uint8_t state;
    uint8_t n; /* keys it may enroll, 1..NET_TOKEN_MAX_KEYS */
    uint64_t created_ms, expires_ms;
    uint8_t wallet[32]; /* NET_TOKEN_BOUND: the one wallet it enrolls */
    uint8_t minted_by[33];
    uint8_t keys[NET_TOKEN_MAX_KEYS][33];
} net_token;

/* Record codecs, exposed for the fuzzers. decode returns RT_OK or
 * RT_DATA_LOSS (truncated, out of range, or a MAC that does not verify
 * under akey for this record's key mkey). */
size_t net_token_encode(const net_token *t, const uint8_t akey[32], const uint8_t mkey[32],
                        uint8_t *out, size_t cap);
rt_status net_token_decode(const uint8_t *p, size_t n, const uint8_t akey[32],
                           const uint8_t mkey[32], net_token *out);

/* An audit record: one per admin action, chained by MAC. */
#define NET_AUDIT_DETAIL_MAX 1024
typedef struct net_audit_rec {
    uint64_t seq, ts_ms;
    uint8_t admin[33];
    char action[24];
    size_t detail_len;
    char detail[NET_AUDIT_DETAIL_MAX]; /* JSON object text */
    uint8_t prev_mac[32], mac[32];
} net_audit_rec;
size_t net_audit_encode(const net_audit_rec *r, const uint8_t akey[32], uint8_t *out, size_t cap);
/* Also recomputes the MAC (over prev_mac as stored) and refuses a mismatch. */
rt_status net_audit_decode(const uint8_t *p, size_t n, const uint8_t akey[32], net_audit_rec *out);

/* ---- admission state --------------------------------------------------- */

typedef struct net_admit net_admit;

net_admit *net_admit_new(const net_config *cfg);
void net_admit_free(net_admit *a);

/*
 * Before an actor sees a request from pk: its rate limit. RT_OK, or
 * RT_RESOURCE_EXHAUSTED with *retry_ms and msg.
 */
rt_status net_admit_rate(net_admit *a, const uint8_t pk[33], uint64_t now_ms, uint32_t *retry_ms,
                         const char **msg);

/* Per source address: may a request from ip be served at all (1), given
 * its recent authentication failures? */
int net_admit_addr_ok(net_admit *a, const uint8_t ip[16], uint64_t now_ms, uint32_t *retry_ms);
/* An authentication failure from ip. */
void net_admit_addr_fail(net_admit *a, const uint8_t ip[16], uint64_t now_ms);

/*
 * DKG round 1 from pk for a wallet that does not exist yet (params p, id in
 * call->key): enrollment (the mode's grant: a token from the body, or an
 * admin grant for exactly these params) and quotas. On RT_OK the request
 * holds one pending-DKG slot of pk until net_admit_dkg_done. Refusals:
 * RESOURCE_EXHAUSTED (quota; *retry_ms set), PERMISSION_DENIED (enrollment),
 * UNAVAILABLE (store). msg is a static or err-held reason.
 */
rt_status net_admit_dkg(net_admit *a, const uint8_t pk[33], const net_params *p,
                        const net_call *call, json_t *body, uint64_t now_ms, uint32_t *retry_ms,
                        char *err, size_t errn);
void net_admit_dkg_done(net_admit *a, const uint8_t pk[33]);

/*
 * A wallet was just created (its metadata recorded for the first time):
 * counts it against every device's wallet quota.
 */
void net_admit_wallet_created(net_admit *a, const net_params *p);

/* ---- admin routes ------------------------------------------------------ */

/* 1 when pk is one of the configured admin keys. */
int net_admit_is_admin(const net_admit *a, const uint8_t pk[33]);

/*
 * Serves an admin route for admin pk. On RT_OK *out is the JSON reply
 * (ownership passes to the caller); otherwise err holds the reason.
 * arg is the route's path argument (wallet id or token id hex), may be "".
 */
rt_status net_admit_admin(net_admit *a, int route, const char *arg, json_t *body,
                          const uint8_t admin[33], uint64_t now_ms, json_t **out, char *err,
                          size_t errn);

/* Appends one audit record (before the action it describes takes effect). */
rt_status net_admit_audit(net_admit *a, const uint8_t admin[33], const char *action, json_t *detail,
                          uint64_t now_ms);

/* Prometheus lines of admission (refusals by reason, enrollments). */
void net_admit_metrics(net_admit *a, FILE *f);

#endif
