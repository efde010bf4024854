/*
 * net.h — the cosignerd service: the only door into src/net.
 *
 * Owns: the HTTP/1.1 server (libmicrohttpd, epoll, its own thread pool), the
 * routes and JSON of the wire contract (API.md), request authentication
 * (BIP340-signed requests, timestamp window, bounded replay cache),
 * authorization against each wallet's participant list, request limits, the
 * one status -> HTTP table, and the Prometheus metrics, health and readiness
 * endpoints.
 *
 * Knows nothing about guest internals: a request becomes a command of the
 * cosigner command codec and is sent to the wallet's actor with rt_send();
 * rendezvous requests are suspended (no thread waits on them) and resumed
 * from the reply callback.
 *
 * Nothing here touches an actor before the request is authenticated and the
 * signer is known to be a participant: unauthenticated floods cost a
 * signature check each and never activate a wallet.
 */
#ifndef NET_H
#define NET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rt.h"

/*
 * Public per-wallet metadata (the session parameters: who may talk to the
 * wallet). Stored outside the actor so authorization never activates one.
 * get: RT_NOT_FOUND when the wallet has none; ownership of *val passes to
 * the caller (free()). put: durable before return.
 */
typedef struct net_meta {
    rt_status (*get)(void *ud, const rt_key *wallet, uint8_t **val, size_t *len);
    rt_status (*put)(void *ud, const rt_key *wallet, const uint8_t *val, size_t len);
    /* Compare-and-swap, atomic across every writer (store_cas_meta): writes
     * val only if the record is exactly expect (absent when expect is
     * NULL); RT_ABORTED otherwise. Admission control (one-time tokens,
     * quotas, the audit log) needs it; NULL disables those. */
    rt_status (*cas)(void *ud, const rt_key *key, const uint8_t *expect, size_t expect_len,
                     const uint8_t *val, size_t len);
    /* Up to max wallets with a durable record, in id order, strictly after
     * `after` (NULL = from the first): ids and record versions. May be NULL
     * (the admin listing answers UNIMPLEMENTED). */
    rt_status (*list)(void *ud, const rt_key *after, rt_key *ids, uint64_t *versions, size_t max,
                      size_t *n);
    void *ud;
} net_meta;

/* Who may create a wallet (DKG round 1 for params not known yet). */
typedef enum net_enrollment {
    NET_ENROLL_TOKEN = 0, /* a one-time token minted by an admin, or an admin grant */
    NET_ENROLL_OPEN,      /* anyone who signs the request (quotas still apply) */
    NET_ENROLL_ADMIN,     /* only params an admin granted */
} net_enrollment;

/*
 * A cluster of nodes on one database (NULL in net_config = a single node).
 * route   Who serves wallet now: RT_OK with *local = 1 (this node holds, or
 *         just took, its lease) or *local = 0 and the owner's base URL in
 *         url (NUL-terminated); RT_UNAVAILABLE when the database cannot be
 *         reached. Called on HTTP threads, after authentication and the
 *         participant check, before anything reaches an actor.
 * valid   Local, no round trip: does this node still hold wallet's lease?
 *         Checked before a reply is released, so a node paused past its
 *         lease never answers for a wallet another node now serves.
 * reachable  For /readyz: 1 when the database answers.
 * key     Authenticates forwarding between nodes (X-Cosigner-Forwarded).
 */
typedef struct net_cluster {
    rt_status (*route)(void *ud, const rt_key *wallet, int *local, char *url, size_t url_len);
    int (*valid)(void *ud, const rt_key *wallet);
    int (*reachable)(void *ud);
    void *ud;
    uint8_t key[32];
} net_cluster;

typedef struct net_config {
    const char *host;         /* listen address (numeric IPv4/IPv6), NULL = 127.0.0.1 */
    uint16_t port;            /* 0 = pick a free port (see net_port) */
    unsigned threads;         /* HTTP thread pool size, 0 = 2 */
    size_t body_max;          /* request body cap, 0 = 64 KiB -> 413 */
    size_t header_max;        /* per-connection header memory, 0 = 16 KiB -> 431 */
    size_t url_max;           /* 0 = 512 bytes -> 414 */
    unsigned conn_timeout_s;  /* idle connection timeout, 0 = 15 s (slowloris) */
    uint64_t request_max_ms;  /* whole upload of one request, 0 = 30 s */
    unsigned max_connections; /* above -> 429 + Retry-After, 0 = 1024 */
    unsigned max_per_ip;      /* 0 = unlimited */
    uint64_t rendezvous_ms;   /* deadline of one actor request, 0 = 30 s */
    uint64_t auth_window_ms;  /* timestamp window, 0 = 300 s */
    size_t replay_entries;    /* replay cache capacity per generation, 0 = 1 Mi */
    uint8_t hostpubkey[33];   /* the service's ChillDKG host public key */
    const char *version;
    int fault_injection;        /* honour X-Cosigner-Fault (fault-injection builds only) */
    rt_runtime *rt;             /* borrowed; must outlive the server */
    net_meta meta;              /* borrowed vtable */
    const net_cluster *cluster; /* borrowed; NULL = single node */
    /* Admission control (net_admit.c). Zero limits mean "no limit". */
    net_enrollment enrollment;
    uint8_t admission_key[32];             /* MACs tokens, quota counters, audit records */
    double rate_rps, rate_burst;           /* requests per host key (token bucket) */
    double auth_fail_rps, auth_fail_burst; /* failed authentications per client address */
    unsigned quota_wallets;                /* wallets created per host key */
    unsigned quota_pending_dkg;            /* DKG round 1s waiting, per host key */
    unsigned max_pending_dkg;              /* ... all keys together */
    uint64_t token_ttl_ms;                 /* default token lifetime, 0 = 7 days */
    /* Appends extra Prometheus lines to /metrics (store, sandbox). May be NULL. */
    void (*metrics_extra)(void *ud, FILE *out);
    void *metrics_ud;
    /* Keys allowed on the /v1/admin/ routes (same Authorization scheme as
     * devices; any other key gets 403). None = no admin route is usable. */
    const uint8_t (*admin_pubkeys)[33]; /* borrowed; BIP340 keys as 33-byte compressed */
    size_t n_admin_pubkeys;
    /* How long a retired wallet's share is kept before the daemon's sweep
     * wipes it (a retire request may ask for less, never more). 0 = wiped at
     * the next sweep. */
    uint64_t retire_grace_s;
} net_config;

typedef struct net_server net_server;

/* Starts serving. Ownership: *out is the caller's, released by net_stop(). */
rt_status net_start(const net_config *cfg, net_server **out);

/* The bound TCP port (useful with port 0). */
uint16_t net_port(const net_server *s);

/* Readiness for /readyz (store open, runtime started). */
void net_set_ready(net_server *s, int ready);

/*
 * Graceful drain, first half: stop accepting connections and wait up to
 * timeout_ms for in-flight requests to be answered. Returns how many are
 * still in flight. The caller then stops the runtime (which fails what is
 * left, resuming those requests) and calls net_stop().
 */
unsigned net_drain(net_server *s, uint64_t timeout_ms);

/* Waits (bounded) for resumed requests to be answered, then stops and frees. */
void net_stop(net_server *s);

/* Counters of net itself, for logs and tests. */
typedef struct net_stats {
    uint64_t requests;
    uint64_t in_flight;
    uint64_t auth_failures;
    uint64_t connections;
} net_stats;
void net_get_stats(net_server *s, net_stats *out);

/*
 * Retirement marker. A retired wallet's public metadata carries, after the
 * params (u8 n || hostpubkeys[n][33] || u8 t), the suffix
 *     'R' || u64 retired_at_ms || u64 wipe_after_ms   (big-endian, unix ms)
 * so every request is refused (412) with the one metadata read that
 * authorization makes anyway, without activating the actor, and the daemon's
 * sweep finds when to wipe the share. Like the params it is not secret and
 * not authenticated by the wallet id: deleting it does not bring signing
 * back, since the actor's sealed record is marked retired too.
 */
#define NET_RETIRED_SUFFIX_LEN 17
typedef struct net_retired {
    uint64_t retired_at_ms;
    uint64_t wipe_after_ms;
} net_retired;

/* 1 when meta (a wallet's metadata as stored) is marked retired (fills *r),
 * 0 when it is not, -1 when it is malformed. */
int net_meta_retired(const uint8_t *meta, size_t len, net_retired *r);

/* ---- helpers shared with the CLI and the load generator --------------- */

/* Lower-case hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void net_hex_encode(char *out, const uint8_t *in, size_t len);
/* Decodes exactly 2*len hex digits (either case). Returns 1 on success. */
int net_hex_decode(uint8_t *out, size_t len, const char *in, size_t in_len);

/*
 * The 32-byte message a request signature signs (API.md, Authentication):
 * tagged_hash("cosignerd/auth/v1", METHOD || 0 || PATH || 0 || ts_be8 || nonce16 || SHA256(body)).
 */
void net_auth_msg(uint8_t out[32], const char *method, const char *path, uint64_t ts_ms,
                  const uint8_t nonce[16], const uint8_t *body, size_t body_len);

/*
 * Builds an Authorization header value for a request signed with seckey.
 * out must hold NET_AUTH_HDR_MAX bytes. Returns 1 on success.
 */
#define NET_AUTH_HDR_MAX 320
int net_auth_header(char *out, const uint8_t seckey[32], const char *method, const char *path,
                    uint64_t ts_ms, const uint8_t *body, size_t body_len);
/* Same, with the signer's compressed public key already known (saves a
 * point multiplication per request for clients that sign many). */
int net_auth_header_pk(char *out, const uint8_t seckey[32], const uint8_t pk[33],
                       const char *method, const char *path, uint64_t ts_ms, const uint8_t *body,
                       size_t body_len);

#endif
