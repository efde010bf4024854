/*
 * net_server.c — the HTTP server: routing, limits, the request state machine
 * (read -> authenticate -> authorize -> send to actor -> suspended -> resumed
 * -> respond) and the service endpoints.
 *
 * Why suspend/resume: a rendezvous request (DKG and signing rounds) waits for
 * the other devices, possibly for seconds. Holding an HTTP thread per waiter
 * would make the thread pool the concurrency limit; instead the connection
 * is suspended and the actor's reply callback resumes it, so a handful of
 * threads serve any number of waiting devices.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "cg_cmd.h"
#include "cg_config.h"
#include "cg_wallet_id.h"
#include "net_admit.h"
#include "net_codec.h"

struct net_server {
    net_config cfg;
    struct MHD_Daemon *d;
    net_replay *replay;
    net_metrics m;
    uint16_t port;
    _Atomic int ready;
    _Atomic int draining;
    _Atomic uint64_t in_flight; /* requests sent to an actor and not yet answered */
    _Atomic uint64_t connections;
    _Atomic uint64_t requests;
    net_fwd *fwd; /* cluster only */
    net_admit *adm;
};

enum req_state { RQ_READ = 0, RQ_SENT, RQ_FWD, RQ_DONE };

typedef struct req {
    net_server *srv;
    struct MHD_Connection *conn;
    int route;
    int state;
    int responded;
    unsigned http; /* status of the response queued, for metrics */
    uint64_t t0_us;
    char method[8];
    char path[520];
    char wallet_hex[65]; /* from the URL, when the route names a wallet */
    char *body;
    size_t len, cap;
    int too_large;
    int have_auth;
    net_auth_hdr auth;
    char auth_raw[NET_AUTH_HDR_MAX]; /* forwarded byte for byte */
    char fwd_hdr[NET_FWD_HDR_MAX];   /* X-Cosigner-Forwarded, when a peer sent it */
    int has_fwd, forwarded;
    unsigned fwd_http; /* the owner's answer (0: not reached) */
    char *fwd_body;
    size_t fwd_len;
    char fwd_ctype[64];
    uint32_t fwd_retry;
    uint8_t ip[16];  /* client address (IPv4 mapped), for the failed-auth limit */
    int dkg_pending; /* holds a pending-DKG slot of auth.pk (net_admit) */
    net_call call;
    _Atomic int done;
    rt_reply reply; /* owned once done */
} req;

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- responses --------------------------------------------------------- */

static enum MHD_Result send_body(req *q, unsigned http, const char *ctype, char *body, size_t len,
                                 uint32_t retry_after_s)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (retry_after_s) {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    enum MHD_Result ret = MHD_queue_response(q->conn, http, r);
    MHD_destroy_response(r);
    q->responded = 1;
    q->http = http;
    return ret;
}

static enum MHD_Result send_json(req *q, unsigned http, json_t *o, uint32_t retry_after_s)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) return MHD_NO;
    return send_body(q, http, "application/json", s, strlen(s), retry_after_s);
}

/*
 * The JSON error body of API.md. blame is the participant bitmask of the
 * reply; retry_ms comes from the runtime (quarantine backoff, mailbox) and
 * becomes Retry-After (whole seconds, at least 1) where the table says so.
 */
static enum MHD_Result send_error(req *q, int st, const char *msg, size_t msg_len, uint64_t blame,
                                  uint32_t retry_ms)
{
    const net_http_status *h = net_status_http(st);
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(h->code));
    json_t *m = json_stringn(msg ? msg : "", msg ? msg_len : 0);
    if (!m) m = json_string("(message was not valid UTF-8)");
    json_object_set_new(e, "message", m);
    if (blame) {
        json_t *b = json_array();
        for (int i = 0; i < 64; i++)
            if (blame >> i & 1) json_array_append_new(b, json_integer(i));
        json_object_set_new(e, "blame", b);
    }
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    uint32_t ra = 0;
    if (h->retry_after) ra = retry_ms ? (retry_ms + 999) / 1000 : 1;
    return send_json(q, h->http, o, ra);
}

static enum MHD_Result fail(req *q, int st, const char *msg)
{
    return send_error(q, st, msg, strlen(msg), 0, 0);
}

/* ---- routing ----------------------------------------------------------- */

static int is_hex64(const char *s, size_t n)
{
    if (n != 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return 0;
    }
    return 1;
}

/* /v1/admin/...: arg receives the id a route names (wallet or token). */
static int admin_route_of(const char *rest, int *want_post, char arg[65])
{
    *want_post = 1;
    if (!strcmp(rest, "tokens")) return NET_R_ADM_TOKENS;
    if (!strcmp(rest, "enrollments")) return NET_R_ADM_GRANT;
    if (!strcmp(rest, "wallets/list")) return NET_R_ADM_WALLETS;
    if (!strcmp(rest, "audit/list")) return NET_R_ADM_AUDIT;
    static const char tok[] = "tokens/", wal[] = "wallets/";
    size_t rl = strlen(rest);
    if (rl == sizeof wal - 1 + 64 + 7 && !strncmp(rest, wal, sizeof wal - 1) &&
        is_hex64(rest + sizeof wal - 1, 64) && !strcmp(rest + sizeof wal - 1 + 64, "/retire")) {
        memcpy(arg, rest + sizeof wal - 1, 64);
        arg[64] = 0;
        return NET_R_RETIRE;
    }
    if (!strncmp(rest, tok, sizeof tok - 1) && is_hex64(rest + sizeof tok - 1, 64) &&
        !strcmp(rest + sizeof tok - 1 + 64, "/revoke")) {
        memcpy(arg, rest + sizeof tok - 1, 64);
        arg[64] = 0;
        return NET_R_ADM_REVOKE;
    }
    if (!strncmp(rest, wal, sizeof wal - 1) &&
        is_hex64(rest + sizeof wal - 1, strlen(rest + sizeof wal - 1))) {
        memcpy(arg, rest + sizeof wal - 1, 64);
        arg[64] = 0;
        *want_post = 0;
        return NET_R_ADM_WALLET;
    }
    return NET_R_UNKNOWN;
}

/* Returns the route, or NET_R_UNKNOWN; *want_post says which method it takes. */
static int route_of(const net_server *srv, const char *url, int *want_post, char wallet[65])
{
    static const struct {
        const char *path;
        int route, post;
    } fixed[] = {
        {"/v1/info", NET_R_INFO, 0},       {"/healthz", NET_R_HEALTHZ, 0},
        {"/readyz", NET_R_READYZ, 0},      {"/metrics", NET_R_METRICS, 0},
        {"/v1/dkg/round1", NET_R_DKG1, 1}, {"/v1/dkg/round2", NET_R_DKG2, 1},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(url, fixed[i].path)) {
            *want_post = fixed[i].post;
            return fixed[i].route;
        }
    static const char adm[] = "/v1/admin/";
    if (!strncmp(url, adm, sizeof adm - 1))
        return admin_route_of(url + sizeof adm - 1, want_post, wallet);
    static const char pre[] = "/v1/wallets/";
    if (strncmp(url, pre, sizeof pre - 1)) return NET_R_UNKNOWN;
    const char *id = url + sizeof pre - 1;
    const char *slash = strchr(id, '/');
    size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
    if (!is_hex64(id, idlen)) return NET_R_UNKNOWN;
    memcpy(wallet, id, 64);
    wallet[64] = 0;
    if (!slash) {
        *want_post = 0;
        return NET_R_WALLET;
    }
    if (!strcmp(slash, "/recovery")) {
        *want_post = 0;
        return NET_R_RECOVERY;
    }
    *want_post = 1;
    if (!strcmp(slash, "/restore")) return NET_R_RESTORE;
    if (!strcmp(slash, "/sign/round1")) return NET_R_SIGN1;
    if (!strcmp(slash, "/sign/round2")) return NET_R_SIGN2;
#if CG_FAULT_INJECTION
    if (!strcmp(slash, "/fault") && srv->cfg.fault_injection) return NET_R_FAULT;
#else
    (void)srv;
#endif
    return NET_R_UNKNOWN;
}

/* ---- service endpoints ------------------------------------------------- */

static enum MHD_Result serve_metrics(req *q)
{
    net_server *s = q->srv;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return fail(q, RT_RESOURCE_EXHAUSTED, "out of memory");
    rt_stats st;
    memset(&st, 0, sizeof st);
    if (s->cfg.rt) rt_get_stats(s->cfg.rt, &st);
#define G(name, help, v)                                                                           \
    fprintf(f,                                                                                     \
            "# HELP cosignerd_" name " " help "\n# TYPE cosignerd_" name " gauge\ncosignerd_" name \
            " %llu\n",                                                                             \
            (unsigned long long)(v))
#define C(name, help, v)                                                                           \
    fprintf(f,                                                                                     \
            "# HELP cosignerd_" name " " help "\n# TYPE cosignerd_" name                           \
            " counter\ncosignerd_" name " %llu\n",                                                 \
            (unsigned long long)(v))
    G("actors_resident", "Wallet actors with a live activation.", st.resident);
    C("actor_activations_total", "Actor instances created.", st.activations);
    C("actor_activation_failures_total", "Actor activations that failed.", st.activation_failures);
    C("actor_evictions_total", "Idle actors evicted.", st.evictions);
    C("actor_restarts_total", "Supervisor restarts after actor-level faults.", st.restarts);
    C("actor_quarantines_total", "Actors quarantined after a restart storm.", st.quarantines);
    fprintf(f,
            "# HELP cosignerd_handler_faults_total Handler faults by kind.\n"
            "# TYPE cosignerd_handler_faults_total counter\n"
            "cosignerd_handler_faults_total{kind=\"timeout\"} %llu\n"
            "cosignerd_handler_faults_total{kind=\"panic\"} %llu\n",
            (unsigned long long)st.handler_timeouts,
            (unsigned long long)(st.handler_faults - st.handler_timeouts));
    fprintf(f,
            "# HELP cosignerd_mailbox_drops_total Messages refused on a full mailbox.\n"
            "# TYPE cosignerd_mailbox_drops_total counter\n"
            "cosignerd_mailbox_drops_total{kind=\"client\"} %llu\n"
            "cosignerd_mailbox_drops_total{kind=\"tick\"} %llu\n",
            (unsigned long long)st.mailbox_full, (unsigned long long)st.tick_drops);
    C("actor_messages_total", "Client messages handled by actors.", st.messages);
    C("actor_commits_total", "Durable actor record saves.", st.commits);
    C("actor_commit_failures_total", "Durable actor record saves that failed.", st.commit_failures);
    G("actor_parked_replies", "Rendezvous replies waiting for other devices.", st.parked);
    G("http_requests_in_flight", "Requests waiting for an actor.", atomic_load(&s->in_flight));
    G("http_connections_open", "Open HTTP connections.", atomic_load(&s->connections));
#undef G
#undef C
    net_metrics_write(&s->m, f);
    net_admit_metrics(s->adm, f);
    if (s->cfg.metrics_extra) s->cfg.metrics_extra(s->cfg.metrics_ud, f);
    fclose(f);
    return send_body(q, 200, "text/plain; version=0.0.4", buf, len, 0);
}

static enum MHD_Result serve_plain(req *q, unsigned http, const char *text)
{
    char *b = strdup(text);
    if (!b) return MHD_NO;
    return send_body(q, http, "text/plain", b, strlen(b), http == 503 ? 1 : 0);
}

/* ---- actor requests ---------------------------------------------------- */

static void on_reply(void *arg, rt_reply *reply)
{
    req *q = arg;
    q->reply = *reply;
    reply->data = NULL;
    atomic_store_explicit(&q->done, 1, memory_order_release);
    /* The connection is suspended (it was suspended before rt_send), so it
     * cannot be closed under us; resuming hands it back to its MHD thread,
     * which calls the access handler again to respond. */
    MHD_resume_connection(q->conn);
}

static void on_forwarded(void *arg, unsigned http, char *body, size_t len, const char *ctype,
                         uint32_t retry_after_s)
{
    req *q = arg;
    q->fwd_http = http;
    q->fwd_body = body;
    q->fwd_len = len;
    snprintf(q->fwd_ctype, sizeof q->fwd_ctype, "%s", ctype);
    q->fwd_retry = retry_after_s;
    atomic_store_explicit(&q->done, 1, memory_order_release);
    MHD_resume_connection(q->conn);
}

/* Sends the request on to the wallet's owner, as it came (see net_fwd.c). */
static enum MHD_Result forward(req *q, const char *owner)
{
    net_server *s = q->srv;
    char url[1024], hdr[NET_FWD_HDR_MAX];
    size_t ol = strlen(owner);
    while (ol && owner[ol - 1] == '/')
        ol--;
    if (!ol || snprintf(url, sizeof url, "%.*s%s", (int)ol, owner, q->path) >= (int)sizeof url)
        return fail(q, RT_INTERNAL, "the wallet's owner node has an unusable address");
    net_fwd_sign(hdr, s->cfg.cluster->key, net_unix_ms(), q->method, q->path, q->auth_raw,
                 (const uint8_t *)q->body, q->len);
    atomic_fetch_add(&s->m.forwarded, 1);
    q->state = RQ_FWD;
    atomic_fetch_add(&s->in_flight, 1);
    MHD_suspend_connection(q->conn);
    net_fwd_submit(s->fwd, url, q->method, q->auth_raw, hdr, q->body, q->len, on_forwarded, q);
    return MHD_YES;
}

static enum MHD_Result respond_forwarded(req *q)
{
    if (!q->fwd_http) {
        atomic_fetch_add(&q->srv->m.forward_failures, 1);
        return fail(q, RT_UNAVAILABLE,
                    "the node serving this wallet did not answer; retry (another node takes "
                    "over once its lease expires)");
    }
    char *b = q->fwd_body;
    q->fwd_body = NULL;
    if (!b && !(b = malloc(1))) return MHD_NO;
    return send_body(q, q->fwd_http, q->fwd_ctype, b, q->fwd_len, q->fwd_retry);
}

static void auth_fail(req *q, int why)
{
    atomic_fetch_add(&q->srv->m.auth_fail[why], 1);
    /* Only failures to authenticate count against the address: a refused
     * participant or a full replay cache is not the client's fault. */
    if (why != NET_AF_NOT_PARTICIPANT && why != NET_AF_CACHE_FULL)
        net_admit_addr_fail(q->srv->adm, q->ip, net_unix_ms());
}

static void ip_of(struct MHD_Connection *c, uint8_t out[16])
{
    memset(out, 0, 16);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    }
}

/* An admin route: the key must be an admin's; nothing here reaches an actor. */
static enum MHD_Result dispatch_admin(req *q, json_t *body, uint64_t now)
{
    net_server *s = q->srv;
    char err[256];
    if (!net_admit_is_admin(s->adm, q->auth.pk)) {
        auth_fail(q, NET_AF_NOT_PARTICIPANT);
        return fail(q, RT_PERMISSION_DENIED, "key is not an admin key of this service");
    }
    rt_status st = net_replay_check(s->replay, q->auth.pk, q->auth.nonce, now);
    if (st == RT_ALREADY_EXISTS) {
        auth_fail(q, NET_AF_REPLAY);
        return fail(q, RT_UNAUTHENTICATED, "replayed request (pk, nonce already seen)");
    }
    if (st != RT_OK) {
        auth_fail(q, NET_AF_CACHE_FULL);
        return fail(q, RT_UNAVAILABLE, "replay cache full; retry later");
    }
    json_t *out = NULL;
    st = net_admit_admin(s->adm, q->route, q->wallet_hex, body, q->auth.pk, now, &out, err,
                         sizeof err);
    if (st != RT_OK) return fail(q, st, err);
    return send_json(q, 200, out, 0);
}

static int is_admin(const net_server *s, const uint8_t pk[33])
{
    for (size_t i = 0; i < s->cfg.n_admin_pubkeys; i++)
        if (!memcmp(s->cfg.admin_pubkeys[i], pk, 33)) return 1;
    return 0;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/*
 * Marks the wallet retired in its metadata (durable before return), or
 * finds it marked already: a second retire answers like the first and
 * never moves the wipe. grace_s is what the request asked for.
 */
static rt_status mark_retired(net_server *s, const rt_key *w, uint64_t grace_s, net_retired *out)
{
    uint8_t *meta = NULL;
    size_t len = 0;
    rt_status st = s->cfg.meta.get(s->cfg.meta.ud, w, &meta, &len);
    if (st != RT_OK) return st;
    int r = net_meta_retired(meta, len, out);
    if (r != 0) {
        free(meta);
        return r > 0 ? RT_OK : RT_DATA_LOSS;
    }
    uint8_t *m = malloc(len + NET_RETIRED_SUFFIX_LEN);
    if (!m) {
        free(meta);
        return RT_RESOURCE_EXHAUSTED;
    }
    memcpy(m, meta, len);
    free(meta);
    out->retired_at_ms = net_unix_ms();
    out->wipe_after_ms = out->retired_at_ms + grace_s * 1000;
    m[len] = 'R';
    put_be64(m + len + 1, out->retired_at_ms);
    put_be64(m + len + 9, out->wipe_after_ms);
    st = s->cfg.meta.put(s->cfg.meta.ud, w, m, len + NET_RETIRED_SUFFIX_LEN);
    free(m);
    return st;
}

static enum MHD_Result dispatch(req *q)
{
    net_server *s = q->srv;
    char err[256];
    /* 1. Authentication, before anything else looks at the request. */
    int why = 0;
    uint64_t now = net_unix_ms();
    if (net_auth_verify(&q->auth, q->method, q->path, (uint8_t *)q->body, q->len, now,
                        s->cfg.auth_window_ms, &why) != RT_OK) {
        auth_fail(q, why);
        return fail(q, RT_UNAUTHENTICATED,
                    why == NET_AF_STALE ? "request timestamp outside the accepted window"
                                        : "bad request signature");
    }
    /* A forwarding header is honoured only with the cluster key behind it:
     * it is what stops this node from forwarding again. */
    if (q->has_fwd && s->cfg.cluster) {
        if (!net_fwd_verify(q->fwd_hdr, s->cfg.cluster->key, now, s->cfg.auth_window_ms, q->method,
                            q->path, q->auth_raw, (const uint8_t *)q->body, q->len)) {
            atomic_fetch_add(&s->m.forward_auth_failures, 1);
            return fail(q, RT_UNAUTHENTICATED, "bad X-Cosigner-Forwarded signature");
        }
        q->forwarded = 1;
    }
    /* 2. Parse. */
    json_t *body = NULL;
    if (q->route != NET_R_WALLET && q->route != NET_R_ADM_WALLET && q->route != NET_R_RECOVERY) {
        json_error_t je;
        body = json_loadb(q->body ? q->body : "", q->len, JSON_REJECT_DUPLICATES, &je);
        if (!body || !json_is_object(body)) {
            json_decref(body);
            snprintf(err, sizeof err, "malformed JSON: %s", body ? "not an object" : je.text);
            return fail(q, RT_INVALID_ARGUMENT, err);
        }
    }
    enum MHD_Result ret;
    if (q->route >= NET_R_ADM_TOKENS) {
        ret = dispatch_admin(q, body, now);
        json_decref(body);
        return ret;
    }
    rt_status st = net_codec_target(q->route, q->wallet_hex, body, &q->call, err, sizeof err);
    if (st != RT_OK) {
        ret = send_error(q, st, err, strlen(err), q->call.blame, 0);
        goto out;
    }
    /* 3. Authorization: the signer must be a participant of the wallet
     * (an admin key for the admin routes). */
    net_params p;
    uint8_t *meta = NULL;
    size_t mlen = 0;
    net_retired retired;
    int is_retired = 0, known = 1; /* known: the wallet has metadata */
    if (q->route == NET_R_DKG1 || q->route == NET_R_RESTORE) {
        net_params_parse(q->call.params, q->call.params_len, &p);
        if (net_params_index(&p, s->cfg.hostpubkey) < 0) {
            ret = fail(q, RT_INVALID_ARGUMENT, "params must include the service host public key");
            goto out;
        }
        /* The metadata may well be missing (a new wallet, or lost with the
         * record); when present it may say the wallet was retired. */
        st = s->cfg.meta.get(s->cfg.meta.ud, &q->call.key, &meta, &mlen);
        if (st == RT_OK) is_retired = net_meta_retired(meta, mlen, &retired) > 0;
        known = st == RT_OK;
        free(meta);
        meta = NULL;
        if (st != RT_OK && st != RT_NOT_FOUND) {
            ret = fail(q, RT_UNAVAILABLE, "wallet metadata unavailable");
            goto out;
        }
    } else {
        st = s->cfg.meta.get(s->cfg.meta.ud, &q->call.key, &meta, &mlen);
        if (st == RT_NOT_FOUND) {
            ret = fail(q, RT_NOT_FOUND, "unknown wallet");
            goto out;
        }
        if (st != RT_OK) {
            ret = fail(q, st, "wallet metadata unavailable");
            goto out;
        }
        is_retired = net_meta_retired(meta, mlen, &retired) > 0;
        /* The stored participant list is public and unencrypted: trust it
         * only if it hashes to the wallet id the client named. */
        uint8_t id[32];
        uint64_t blame;
        if (net_params_parse(meta, mlen, &p) != RT_OK ||
            cg_wallet_id(p.hostpubkeys, p.n, p.t, id, &blame) != RT_OK ||
            memcmp(id, q->call.key.b, 32)) {
            free(meta);
            ret = fail(q, RT_DATA_LOSS, "wallet metadata failed its integrity check");
            goto out;
        }
    }
    int idx = net_params_index(&p, q->auth.pk);
    free(meta);
    if (q->route == NET_R_RETIRE) {
        if (!is_admin(s, q->auth.pk)) {
            auth_fail(q, NET_AF_NOT_PARTICIPANT);
            ret = fail(q, RT_PERMISSION_DENIED, "key is not an admin key of this service");
            goto out;
        }
    } else if (idx < 0) {
        auth_fail(q, NET_AF_NOT_PARTICIPANT);
        ret = fail(q, RT_PERMISSION_DENIED, "key is not a participant of this wallet");
        goto out;
    } else if (is_retired) {
        /* Refused here, from the metadata alone: a retired wallet's actor
         * is never activated again (after the wipe there is nothing to
         * activate). */
        ret = fail(q, RT_FAILED_PRECONDITION, "wallet retired");
        goto out;
    }
    /* Cluster: the node holding the wallet's lease serves it; any other
     * forwards, once. The owner checks the signature and the replay cache
     * again itself, so forwarding adds no trust. */
    if (s->cfg.cluster) {
        int local = 0;
        char owner[256] = "";
        st = s->cfg.cluster->route(s->cfg.cluster->ud, &q->call.key, &local, owner, sizeof owner);
        if (st != RT_OK) {
            ret = fail(q, RT_UNAVAILABLE, "cluster database unreachable; retry");
            goto out;
        }
        if (!local) {
            if (q->forwarded) {
                atomic_fetch_add(&s->m.hop_refusals, 1);
                ret = fail(q, RT_UNAVAILABLE, "the wallet is moving between nodes; retry");
            } else {
                ret = forward(q, owner);
            }
            goto out;
        }
    }
    /* A wallet that does not exist yet: enrollment and quotas, before the
     * replay cache, so a flood of requests naming fresh keys and no grant
     * never occupies it. (Binding a token is idempotent, so a replayed
     * request that gets here does no more than the original.) */
    uint32_t retry_ms = 0;
    if (q->route == NET_R_DKG1 && !known) {
        st = net_admit_dkg(s->adm, q->auth.pk, &p, &q->call, body, now, &retry_ms, err, sizeof err);
        if (st != RT_OK) {
            /* A stranger trying to create wallets without a grant is an
             * unauthenticated failure for the address limit too. */
            if (st == RT_PERMISSION_DENIED) net_admit_addr_fail(s->adm, q->ip, now);
            ret = send_error(q, st, err, strlen(err), 0, retry_ms);
            goto out;
        }
        q->dkg_pending = 1;
    }
    /* Replay, only now: the bounded cache holds participants' nonces only,
     * so a stranger with a fresh key pair cannot fill it and get every
     * participant refused. Nothing before this point has side effects (but
     * the idempotent token binding above), so a replayed request that
     * reached it did no more than a fresh one. */
    st = net_replay_check(s->replay, q->auth.pk, q->auth.nonce, now);
    if (st == RT_ALREADY_EXISTS) {
        auth_fail(q, NET_AF_REPLAY);
        ret = fail(q, RT_UNAUTHENTICATED, "replayed request (pk, nonce already seen)");
        goto out;
    }
    if (st != RT_OK) {
        auth_fail(q, NET_AF_CACHE_FULL);
        ret = fail(q, RT_UNAVAILABLE, "replay cache full; retry later");
        goto out;
    }
    /* The key's request rate, after the replay check: a replayed request
     * must not spend its owner's allowance. Still before any actor. */
    const char *why_msg = NULL;
    if (net_admit_rate(s->adm, q->auth.pk, now, &retry_ms, &why_msg) != RT_OK) {
        ret = send_error(q, RT_RESOURCE_EXHAUSTED, why_msg, strlen(why_msg), 0, retry_ms);
        goto out;
    }
    /* 4. The command. */
    if (q->route == NET_R_FAULT) {
        json_t *k = json_object_get(body, "kind");
        static const char *const kinds[] = {"", "trap", "return", "spin", "oom", "snapshot"};
        uint32_t kind = 0;
        for (uint32_t i = 1; i <= CG_FAULT_KIND_MAX_; i++)
            if (json_is_string(k) && !strcmp(json_string_value(k), kinds[i])) kind = i;
        if (json_is_string(k) && !strcmp(json_string_value(k), "actor")) {
            rt_inject_actor_fault(s->cfg.rt, &q->call.key);
            ret = send_json(q, 200, json_pack("{s:b}", "injected", 1), 0);
            goto out;
        }
        if (!kind) {
            ret = fail(q, RT_INVALID_ARGUMENT, "unknown fault kind");
            goto out;
        }
        st = net_codec_fault(kind, q->auth.pk, &q->call, err, sizeof err);
    } else if (q->route == NET_R_RETIRE) {
        json_t *g = json_object_get(body, "grace_s");
        uint64_t grace = s->cfg.retire_grace_s;
        if (g && !json_is_null(g)) {
            if (!json_is_integer(g) || json_integer_value(g) < 0 ||
                (uint64_t)json_integer_value(g) > s->cfg.retire_grace_s) {
                snprintf(err, sizeof err,
                         "field \"grace_s\" must be an integer in 0..%llu (retire_grace_s)",
                         (unsigned long long)s->cfg.retire_grace_s);
                ret = fail(q, RT_INVALID_ARGUMENT, err);
                goto out;
            }
            grace = (uint64_t)json_integer_value(g);
        }
        /* The audit record before anything takes effect: no retirement
         * without its trace. Then the marker: from that moment every
         * request is refused without reaching the actor, whatever happens
         * to the rest. */
        char wid[65];
        net_hex_encode(wid, q->call.key.b, 32);
        json_t *d = json_pack("{s:s,s:I}", "wallet_id", wid, "grace_s", (json_int_t)grace);
        st = net_admit_audit(s->adm, q->auth.pk, "wallet.retire", d, now);
        json_decref(d);
        if (st != RT_OK) {
            ret = fail(q, RT_UNAVAILABLE, "audit log unavailable; nothing done");
            goto out;
        }
        st = mark_retired(s, &q->call.key, grace, &q->call.retired);
        if (st != RT_OK) {
            ret = fail(q, st == RT_DATA_LOSS ? st : RT_UNAVAILABLE,
                       "could not record the retirement in the wallet metadata");
            goto out;
        }
        st = net_codec_encode(q->route, body, q->auth.pk, &q->call, err, sizeof err);
    } else {
        st = net_codec_encode(q->route, body, q->auth.pk, &q->call, err, sizeof err);
    }
    if (st != RT_OK) {
        ret = fail(q, st, err);
        goto out;
    }
    /* 5. Off to the actor. Suspend first: the reply may come back on another
     * thread (or on this one, when refused up front) before rt_send returns. */
    q->state = RQ_SENT;
    atomic_fetch_add(&s->in_flight, 1);
    MHD_suspend_connection(q->conn);
    rt_send(s->cfg.rt, &q->call.key, q->call.cmd, q->call.cmd_len,
            rt_now_ms() + s->cfg.rendezvous_ms, on_reply, q);
    ret = MHD_YES;
out:
    json_decref(body);
    return ret;
}

static enum MHD_Result respond_reply(req *q)
{
    net_server *s = q->srv;
    rt_reply *r = &q->reply;
    if (s->cfg.cluster && r->status == RT_OK &&
        !s->cfg.cluster->valid(s->cfg.cluster->ud, &q->call.key)) {
        /* No commit guarded this answer (or it did, and the lease ran out
         * since): another node may be serving the wallet now. */
        atomic_fetch_add(&s->m.lease_gate_refusals, 1);
        return fail(q, RT_UNAVAILABLE, "this node lost the wallet's lease meanwhile; retry");
    }
    if (q->route == NET_R_RETIRE && (r->status == RT_OK || r->status == RT_NOT_FOUND)) {
        /* NOT_FOUND: the actor holds no record (already wiped, or lost):
         * nothing left to mark, the metadata marker stands. */
        char wid[65];
        net_hex_encode(wid, q->call.key.b, 32);
        return send_json(q, 200,
                         json_pack("{s:s,s:I,s:I}", "wallet_id", wid, "retired_at_ms",
                                   (json_int_t)q->call.retired.retired_at_ms, "wipe_after_ms",
                                   (json_int_t)q->call.retired.wipe_after_ms),
                         0);
    }
    if (r->status != RT_OK)
        return send_error(q, r->status, (const char *)r->data, r->len, r->blame, r->retry_after_ms);
    if (q->route == NET_R_DKG1 || q->route == NET_R_RESTORE) {
        /* Record who may address this wallet, before any device learns its
         * id: every later route authorizes against it without an actor. A
         * restore re-creates it when it was lost with the record. */
        if (s->cfg.meta.cas) {
            /* Insert-if-absent: exactly one of the devices' replies records
             * the wallet, and only that one counts it against the quotas. */
            rt_status st = s->cfg.meta.cas(s->cfg.meta.ud, &q->call.key, NULL, 0, q->call.params,
                                           q->call.params_len);
            if (st == RT_OK) {
                /* (A restore brings back a wallet already counted.) */
                net_params p;
                if (q->route == NET_R_DKG1 &&
                    net_params_parse(q->call.params, q->call.params_len, &p) == RT_OK)
                    net_admit_wallet_created(s->adm, &p);
            } else if (st != RT_ABORTED) {
                return fail(q, RT_UNAVAILABLE, "could not record wallet metadata");
            }
        } else {
            uint8_t *old = NULL;
            size_t olen = 0;
            if (s->cfg.meta.get(s->cfg.meta.ud, &q->call.key, &old, &olen) != RT_OK) {
                rt_status st = s->cfg.meta.put(s->cfg.meta.ud, &q->call.key, q->call.params,
                                               q->call.params_len);
                if (st != RT_OK) return fail(q, RT_UNAVAILABLE, "could not record wallet metadata");
            }
            free(old);
        }
    }
    json_t *o = NULL;
    rt_status st = net_codec_reply(q->route, &q->call, r->data, r->len, &o);
    if (st != RT_OK || !o) return fail(q, RT_INTERNAL, "malformed reply from the wallet actor");
    return send_json(q, 200, o, 0);
}

/* ---- MHD callbacks ----------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    net_server *s = cls;
    req *q = *con_cls;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q) return MHD_NO;
        q->srv = s;
        q->conn = c;
        q->t0_us = mono_us();
        *con_cls = q;
        atomic_fetch_add(&s->requests, 1);
        snprintf(q->method, sizeof q->method, "%s", method);
        ip_of(c, q->ip);
        if (strlen(url) > s->cfg.url_max) return fail(q, NET_ST_URI_TOO_LONG, "URL too long");
        snprintf(q->path, sizeof q->path, "%s", url);
        if (atomic_load(&s->connections) > s->cfg.max_connections) {
            atomic_fetch_add(&s->m.connections_refused, 1);
            return fail(q, RT_RESOURCE_EXHAUSTED, "connection limit reached");
        }
        int want_post = 0;
        q->route = route_of(s, url, &want_post, q->wallet_hex);
        if (q->route == NET_R_UNKNOWN) return fail(q, RT_NOT_FOUND, "no such route");
        if (strcmp(method, want_post ? "POST" : "GET") &&
            !(strcmp(method, "HEAD") == 0 && !want_post))
            return fail(q, RT_NOT_FOUND, "no such route for this method");
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->cfg.body_max)
            return fail(q, NET_ST_PAYLOAD_TOO_LARGE, "request body too large");
        if (q->route >= NET_R_DKG1) {
            /* An address that keeps failing to authenticate is refused
             * before its next signature check (the expensive part); the
             * unauthenticated service endpoints stay reachable for
             * monitoring. */
            uint32_t retry_ms;
            if (!net_admit_addr_ok(s->adm, q->ip, net_unix_ms(), &retry_ms)) {
                static const char m[] = "too many failed authentications from this address";
                return send_error(q, RT_RESOURCE_EXHAUSTED, m, sizeof m - 1, 0, retry_ms);
            }
            const char *a =
                MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
            if (!a) {
                auth_fail(q, NET_AF_MISSING);
                return fail(q, RT_UNAUTHENTICATED, "missing Authorization header");
            }
            if (!net_auth_parse(&q->auth, a) || strlen(a) >= sizeof q->auth_raw) {
                auth_fail(q, NET_AF_MALFORMED);
                return fail(q, RT_UNAUTHENTICATED, "malformed Authorization header");
            }
            memcpy(q->auth_raw, a, strlen(a) + 1);
            const char *fh =
                MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Cosigner-Forwarded");
            if (fh) {
                if (strlen(fh) >= sizeof q->fwd_hdr)
                    return fail(q, RT_UNAUTHENTICATED, "bad X-Cosigner-Forwarded signature");
                memcpy(q->fwd_hdr, fh, strlen(fh) + 1);
                q->has_fwd = 1;
            }
        }
        return MHD_YES;
    }
    if (q->responded) {
        /* An early refusal was queued; discard whatever body still arrives. */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (mono_us() - q->t0_us > s->cfg.request_max_ms * 1000) {
            /* Trickled body: close rather than let it hold a connection. */
            atomic_fetch_add(&s->m.slow_uploads, 1);
            return MHD_NO;
        }
        size_t n = *upload_size;
        *upload_size = 0;
        if (q->too_large || n > s->cfg.body_max - q->len) {
            q->too_large = 1;
            return MHD_YES;
        }
        if (q->len + n > q->cap) {
            size_t nc = q->cap ? q->cap : 1024;
            while (nc < q->len + n)
                nc *= 2;
            char *nb = realloc(q->body, nc);
            if (!nb) return MHD_NO;
            q->body = nb;
            q->cap = nc;
        }
        memcpy(q->body + q->len, upload, n);
        q->len += n;
        return MHD_YES;
    }
    if (q->state == RQ_SENT || q->state == RQ_FWD) {
        if (!atomic_load_explicit(&q->done, memory_order_acquire)) return MHD_YES;
        int fwd = q->state == RQ_FWD;
        q->state = RQ_DONE;
        return fwd ? respond_forwarded(q) : respond_reply(q);
    }
    if (q->too_large) return fail(q, NET_ST_PAYLOAD_TOO_LARGE, "request body too large");
    switch (q->route) {
    case NET_R_HEALTHZ:
        return serve_plain(q, 200, "ok\n");
    case NET_R_READYZ:
        if (s->cfg.cluster && !s->cfg.cluster->reachable(s->cfg.cluster->ud))
            return serve_plain(q, 503, "not ready: database unreachable\n");
        return atomic_load(&s->ready) && !atomic_load(&s->draining)
                   ? serve_plain(q, 200, "ready\n")
                   : serve_plain(q, 503, "not ready\n");
    case NET_R_METRICS:
        return serve_metrics(q);
    case NET_R_INFO: {
        char pk[67];
        net_hex_encode(pk, s->cfg.hostpubkey, 33);
        return send_json(q, 200,
                         json_pack("{s:s,s:s}", "hostpubkey", pk, "version",
                                   s->cfg.version ? s->cfg.version : ""),
                         0);
    }
    default:
        if (atomic_load(&s->draining)) return fail(q, RT_UNAVAILABLE, "service is shutting down");
        return dispatch(q);
    }
}

/* Server-side failures are events worth a log line; client errors (4xx)
 * are not (a flood would flood the log) and are counted in the metrics. */
static void log_failure(const req *q, unsigned http, uint64_t us, int toe)
{
    char ts[32];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *code = "";
    if (q->state == RQ_DONE && q->reply.status != RT_OK) code = rt_status_name(q->reply.status);
    fprintf(stderr,
            "ts=%s level=warn event=request_failed route=%s http=%u code=%s duration_ms=%.1f "
            "termination=%d\n",
            ts, net_route_names[q->route], http, *code ? code : "-", (double)us / 1000.0, toe);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    net_server *s = cls;
    req *q = *con_cls;
    if (!q) return;
    *con_cls = NULL;
    uint64_t us = mono_us() - q->t0_us;
    unsigned http = q->responded ? q->http : 0;
    net_metrics_observe(&s->m, q->route, http, us);
    if (http >= 500 || (q->state != RQ_READ && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK))
        log_failure(q, http, us, (int)toe);
    if (q->state != RQ_READ) {
        atomic_fetch_sub(&s->in_flight, 1);
        rt_reply_free(&q->reply);
    }
    if (q->dkg_pending) net_admit_dkg_done(s->adm, q->auth.pk);
    net_call_free(&q->call);
    free(q->fwd_body);
    free(q->body);
    free(q);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)c;
    (void)socket_ctx;
    net_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->connections, 1);
        atomic_fetch_add(&s->m.connections_total, 1);
    } else {
        atomic_fetch_sub(&s->connections, 1);
    }
}

static void on_mhd_log(void *cls, const char *fm, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fm, ap);
    /* libmicrohttpd 0.9.75 emits this for its worker daemons even when the
     * logger is the first option: noise, not an event. */
    if (strstr(buf, "EXTERNAL_LOGGER is not the first option")) return;
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = 0;
    fprintf(stderr, "level=warn event=http_error msg=\"%s\"\n", buf);
}

/* ---- lifecycle --------------------------------------------------------- */

rt_status net_start(const net_config *cfg, net_server **out)
{
    if (!cfg->rt || !cfg->meta.get || !cfg->meta.put) return RT_INVALID_ARGUMENT;
    net_server *s = calloc(1, sizeof *s);
    if (!s) return RT_RESOURCE_EXHAUSTED;
    s->cfg = *cfg;
    net_config *c = &s->cfg;
    if (!c->host) c->host = "127.0.0.1";
    if (!c->threads) c->threads = 2;
    if (!c->body_max) c->body_max = 64 * 1024;
    if (!c->header_max) c->header_max = 16 * 1024;
    if (!c->url_max) c->url_max = 512;
    if (c->url_max > 512) c->url_max = 512; /* the path buffer and the auth message */
    if (!c->conn_timeout_s) c->conn_timeout_s = 15;
    if (!c->request_max_ms) c->request_max_ms = 30000;
    if (!c->max_connections) c->max_connections = 1024;
    if (!c->rendezvous_ms) c->rendezvous_ms = 30000;
    if (!c->auth_window_ms) c->auth_window_ms = 300000;
    if (!c->replay_entries) c->replay_entries = 1u << 20;
    s->replay = net_replay_new(c->replay_entries, c->auth_window_ms);
    if (!s->replay || !(s->adm = net_admit_new(c))) {
        net_replay_free(s->replay);
        free(s);
        return RT_RESOURCE_EXHAUSTED;
    }
    /* The owner may hold a forwarded rendezvous for its whole deadline. */
    if (c->cluster && !(s->fwd = net_fwd_new(c->rendezvous_ms + 5000))) {
        net_replay_free(s->replay);
        net_admit_free(s->adm);
        free(s);
        return RT_RESOURCE_EXHAUSTED;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (inet_pton(AF_INET, c->host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(c->port);
    } else if (inet_pton(AF_INET6, c->host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(c->port);
        flags |= MHD_USE_IPv6;
    } else {
        net_fwd_free(s->fwd);
        net_replay_free(s->replay);
        net_admit_free(s->adm);
        free(s);
        return RT_INVALID_ARGUMENT;
    }
    /* Hard limit above the soft one, so that between the two we can still
     * answer 429 with Retry-After instead of silently dropping sockets. */
    unsigned hard = c->max_connections + 64;
    s->d = MHD_start_daemon(
        flags, c->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)c->threads, MHD_OPTION_CONNECTION_LIMIT, hard, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)c->max_per_ip, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->conn_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)c->header_max, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
    if (!s->d) {
        net_fwd_free(s->fwd);
        net_replay_free(s->replay);
        net_admit_free(s->adm);
        free(s);
        return RT_UNAVAILABLE;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : c->port;
    *out = s;
    return RT_OK;
}

uint16_t net_port(const net_server *s)
{
    return s->port;
}

void net_set_ready(net_server *s, int ready)
{
    atomic_store(&s->ready, ready);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

unsigned net_drain(net_server *s, uint64_t timeout_ms)
{
    atomic_store(&s->draining, 1);
    /* Stop accepting: the listen socket closes, established connections
     * (and their suspended requests) carry on. */
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    uint64_t end = rt_now_ms() + timeout_ms;
    while (atomic_load(&s->in_flight) && rt_now_ms() < end)
        sleep_ms(10);
    return (unsigned)atomic_load(&s->in_flight);
}

void net_stop(net_server *s)
{
    if (!s) return;
    /* After rt_stop every request has its reply; give the threads a moment
     * to write the resumed responses out. */
    uint64_t end = rt_now_ms() + 2000;
    while (atomic_load(&s->in_flight) && rt_now_ms() < end)
        sleep_ms(5);
    if (s->fwd) {
        /* Forwards still waiting on their owner are answered (UNAVAILABLE)
         * and written out before the server goes. */
        net_fwd_free(s->fwd);
        end = rt_now_ms() + 1000;
        while (atomic_load(&s->in_flight) && rt_now_ms() < end)
            sleep_ms(5);
    }
    MHD_stop_daemon(s->d);
    net_replay_free(s->replay);
    net_admit_free(s->adm);
    free(s);
}

void net_get_stats(net_server *s, net_stats *out)
{
    uint64_t af = 0;
    for (int i = 0; i < NET_AF_COUNT_; i++)
        af += atomic_load(&s->m.auth_fail[i]);
    out->requests = atomic_load(&s->requests);
    out->in_flight = atomic_load(&s->in_flight);
    out->auth_failures = af;
    out->connections = atomic_load(&s->connections);
}
