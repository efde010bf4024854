/*
 * http.c — libcurl multi driver for signed JSON requests.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>
#include <stdint.h>
#include <curl/curl.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "cx.h"

#include "http.h"
#include "net.h"

#define HTTP_MAX_NODES 8

/* base_url may name several nodes of a cluster ("URL,URL,..."): every
 * request goes to one of them at random, as devices behind a plain load
 * balancer would, so the cluster's forwarding is exercised. */
struct http_client {
    CURLM *m;
    char base[HTTP_MAX_NODES][256];
    unsigned nbase;
    unsigned running;
    unsigned rng;
};

typedef struct xfer {
    CURL *e;
    struct curl_slist *hdrs;
    char *body;
    char *resp;
    size_t len, cap;
    http_done cb;
    void *arg;
    char err[CURL_ERROR_SIZE];
} xfer;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    xfer *x = ud;
    size_t k = sz * n;
    if (x->len + k + 1 > x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 1024;
        while (nc < x->len + k + 1)
            nc *= 2;
        char *r = realloc(x->resp, nc);
        if (!r) return 0;
        x->resp = r;
        x->cap = nc;
    }
    memcpy(x->resp + x->len, p, k);
    x->len += k;
    x->resp[x->len] = 0;
    return k;
}

http_client *http_new(const char *base_url, unsigned max_conns)
{
    static int inited;
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = 1;
    }
    http_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->m = curl_multi_init();
    const char *p = base_url;
    while (c->nbase < HTTP_MAX_NODES) {
        size_t n = strcspn(p, ",");
        if (n >= sizeof c->base[0]) n = sizeof c->base[0] - 1;
        char *b = c->base[c->nbase++];
        memcpy(b, p, n);
        b[n] = 0;
        size_t l = strlen(b);
        while (l && b[l - 1] == '/')
            b[--l] = 0;
        p += strcspn(p, ",");
        if (!*p++) break;
    }
    c->rng = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)c;
    curl_multi_setopt(c->m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)(max_conns ? max_conns : 64));
    curl_multi_setopt(c->m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)(max_conns ? max_conns : 64));
    return c;
}

void http_free(http_client *c)
{
    if (!c) return;
    curl_multi_cleanup(c->m);
    free(c);
}

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void submit(http_client *c, xfer *x, const char *method, const char *path, size_t blen,
                   const char *auth)
{
    char url[1024];
    c->rng = c->rng * 1103515245u + 12345u;
    snprintf(url, sizeof url, "%s%s", c->base[c->nbase > 1 ? (c->rng >> 16) % c->nbase : 0], path);
    x->e = curl_easy_init();
    curl_easy_setopt(x->e, CURLOPT_URL, url);
    curl_easy_setopt(x->e, CURLOPT_CUSTOMREQUEST, method);
    if (x->body || !strcmp(method, "POST")) {
        curl_easy_setopt(x->e, CURLOPT_POSTFIELDS, x->body ? x->body : "");
        curl_easy_setopt(x->e, CURLOPT_POSTFIELDSIZE, (long)blen);
    }
    x->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    if (auth) {
        char line[NET_AUTH_HDR_MAX + 32];
        snprintf(line, sizeof line, "Authorization: %s", auth);
        x->hdrs = curl_slist_append(x->hdrs, line);
    }
    curl_easy_setopt(x->e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(x->e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->e, CURLOPT_ERRORBUFFER, x->err);
    curl_easy_setopt(x->e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->e, CURLOPT_TIMEOUT, 120L);
    curl_multi_add_handle(c->m, x->e);
    c->running++;
}

/*
 * Client-side request signature straight on libsecp256k1: one keypair
 * derivation and one signature per request. (cx_bip340_sign also re-verifies
 * every signature, a fault-attack guard the service needs for its own keys;
 * a load generator signing thousands of requests per second does not.)
 */
static int sign_header(char *out, const uint8_t sk[32], const char *method, const char *path,
                       uint64_t ts, const uint8_t *body, size_t blen)
{
    static __thread secp256k1_context *ctx;
    if (!ctx) ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    secp256k1_keypair kp;
    secp256k1_pubkey pub;
    uint8_t pk[33], nonce[16], msg[32], sig[64], aux[32];
    size_t pl = 33;
    if (!secp256k1_keypair_create(ctx, &kp, sk) || !secp256k1_keypair_pub(ctx, &pub, &kp) ||
        !secp256k1_ec_pubkey_serialize(ctx, pk, &pl, &pub, SECP256K1_EC_COMPRESSED))
        return 0;
    cx_random(nonce, sizeof nonce);
    cx_random(aux, sizeof aux);
    net_auth_msg(msg, method, path, ts, nonce, body, blen);
    int ok = secp256k1_schnorrsig_sign32(ctx, sig, msg, &kp, aux);
    cx_wipe(&kp, sizeof kp);
    if (!ok) return 0;
    char pkh[67], nh[33], sh[129];
    net_hex_encode(pkh, pk, 33);
    net_hex_encode(nh, nonce, 16);
    net_hex_encode(sh, sig, 64);
    snprintf(out, NET_AUTH_HDR_MAX, "Cosigner-BIP340 pk=%s, ts=%llu, nonce=%s, sig=%s", pkh,
             (unsigned long long)ts, nh, sh);
    return 1;
}

void http_request(http_client *c, const char *method, const char *path, json_t *body,
                  const uint8_t *seckey, http_done cb, void *arg)
{
    xfer *x = calloc(1, sizeof *x);
    if (!x) {
        json_decref(body);
        cb(arg, 0, NULL, "out of memory");
        return;
    }
    x->cb = cb;
    x->arg = arg;
    if (body) {
        x->body = json_dumps(body, JSON_COMPACT);
        json_decref(body);
    }
    size_t blen = x->body ? strlen(x->body) : 0;
    char auth[NET_AUTH_HDR_MAX];
    int have = seckey &&
               sign_header(auth, seckey, method, path, unix_ms(), (const uint8_t *)x->body, blen);
    submit(c, x, method, path, blen, have ? auth : NULL);
}

void http_request_raw(http_client *c, const char *method, const char *path, const char *body,
                      size_t body_len, const char *auth, http_done cb, void *arg)
{
    xfer *x = calloc(1, sizeof *x);
    if (!x) {
        cb(arg, 0, NULL, "out of memory");
        return;
    }
    x->cb = cb;
    x->arg = arg;
    if (body) {
        x->body = malloc(body_len + 1);
        memcpy(x->body, body, body_len);
        x->body[body_len] = 0;
    }
    submit(c, x, method, path, body_len, auth);
}

static void finish(http_client *c, CURL *e, CURLcode rc)
{
    xfer *x = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(c->m, e);
    c->running--;
    long code = 0;
    json_t *j = NULL;
    const char *err = NULL;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        if (x->resp) j = json_loadb(x->resp, x->len, 0, NULL);
    } else {
        err = x->err[0] ? x->err : curl_easy_strerror(rc);
    }
    x->cb(x->arg, code, j, err);
    json_decref(j);
    curl_slist_free_all(x->hdrs);
    curl_easy_cleanup(e);
    free(x->body);
    free(x->resp);
    free(x);
}

/* Moves every transfer along and completes the finished ones (their
 * callbacks may start more). */
static void pump(http_client *c)
{
    int still = 0;
    curl_multi_perform(c->m, &still);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->m, &left)))
        if (msg->msg == CURLMSG_DONE) finish(c, msg->easy_handle, msg->data.result);
}

void http_run(http_client *c, void (*tick)(void *), void *tick_arg)
{
    struct timespec last;
    clock_gettime(CLOCK_MONOTONIC, &last);
    while (c->running) {
        pump(c);
        if (!c->running) break;
        curl_multi_poll(c->m, NULL, 0, 100, NULL);
        if (tick) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000 >= 200) {
                last = now;
                tick(tick_arg);
            }
        }
    }
}

void http_run_sched(http_client *c, int (*sched)(void *), void *arg)
{
    for (;;) {
        int wait = sched(arg);
        if (wait < 0 && !c->running) break;
        pump(c);
        if (wait < 0 || wait > 100) wait = 100;
        if (wait > 0) curl_multi_poll(c->m, NULL, 0, wait, NULL);
    }
}

typedef struct sync_res {
    long code;
    json_t *j;
} sync_res;

static void sync_done(void *arg, long code, json_t *resp, const char *err)
{
    (void)err;
    sync_res *r = arg;
    r->code = code;
    r->j = resp ? json_incref(resp) : NULL;
}

long http_get_json(const char *base_url, const char *path, json_t **out)
{
    http_client *c = http_new(base_url, 1);
    sync_res r = {0, NULL};
    /* Any node that answers will do: try them in order. */
    unsigned n = c->nbase;
    for (unsigned i = 0; i < n && !r.code; i++) {
        c->nbase = 1;
        if (i) memcpy(c->base[0], c->base[i], sizeof c->base[0]);
        http_request(c, "GET", path, NULL, NULL, sync_done, &r);
        http_run(c, NULL, NULL);
    }
    http_free(c);
    *out = r.j;
    return r.code;
}
