/*
 * net_fwd.c — forwarding a request to the node that holds its wallet's
 * lease, and the cluster signature that lets nodes trust each other's
 * forwarding header.
 *
 * Why one thread with a libcurl multi handle: a forwarded rendezvous
 * request waits at the owner for the other devices, possibly for the whole
 * rendezvous deadline. A blocking client per request would tie a thread to
 * each waiter; the multi handle drives any number of transfers from one
 * thread and keeps connections to the other nodes open between requests.
 * The client's connection stays suspended meanwhile (as for an actor
 * request) and is resumed from the completion callback.
 *
 * What is forwarded: the method, path, body and Authorization header byte
 * for byte (the owner verifies the device's signature itself, and its
 * replay cache is the one that counts), plus X-Cosigner-Forwarded, an HMAC
 * under the cluster key over all of them. A node answers a request that
 * carries a valid one itself or refuses it: it never forwards it again, so
 * a loop between nodes that disagree about an owner is impossible.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "net_int.h"

#define FWD_MAX_BODY (1u << 20) /* an owner's reply is small; more is a broken peer */

typedef struct fwd_job {
    struct fwd_job *next, *prev; /* queued list, then the active list */
    CURL *easy;
    struct curl_slist *hdrs;
    char *body; /* request body (owned) */
    char *resp;
    size_t resp_len, resp_cap;
    int too_big;
    char ctype[64];
    uint32_t retry_after_s;
    char err[CURL_ERROR_SIZE];
    net_fwd_cb cb;
    void *arg;
} fwd_job;

struct net_fwd {
    CURLM *multi;
    pthread_t thr;
    pthread_mutex_t mu;
    fwd_job *queued; /* submitted, not yet added to multi (LIFO is fine: independent) */
    fwd_job *active; /* in the multi handle; the forwarding thread's only */
    int quit;
    long timeout_ms;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    fwd_job *j = ud;
    size_t len = sz * n;
    if (j->too_big || len > FWD_MAX_BODY - j->resp_len) {
        j->too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (j->resp_len + len > j->resp_cap) {
        size_t cap = j->resp_cap ? j->resp_cap * 2 : 1024;
        while (cap < j->resp_len + len)
            cap *= 2;
        char *nb = realloc(j->resp, cap);
        if (!nb) return 0;
        j->resp = nb;
        j->resp_cap = cap;
    }
    memcpy(j->resp + j->resp_len, p, len);
    j->resp_len += len;
    return len;
}

/* Copies the two response headers the client must see as the owner sent them. */
static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    fwd_job *j = ud;
    size_t len = sz * n;
    static const char ct[] = "content-type:", ra[] = "retry-after:";
    if (len > sizeof ct && !strncasecmp(p, ct, sizeof ct - 1)) {
        size_t i = sizeof ct - 1, k = 0;
        while (i < len && p[i] == ' ')
            i++;
        while (i < len && p[i] != '\r' && p[i] != '\n' && k + 1 < sizeof j->ctype)
            j->ctype[k++] = p[i++];
        j->ctype[k] = 0;
    } else if (len > sizeof ra && !strncasecmp(p, ra, sizeof ra - 1)) {
        unsigned long v = 0;
        for (size_t i = sizeof ra - 1; i < len && v < 86400; i++)
            if (p[i] >= '0' && p[i] <= '9') v = v * 10 + (unsigned long)(p[i] - '0');
        j->retry_after_s = v > 86400 ? 86400 : (uint32_t)v;
    }
    return len;
}

static void job_free(fwd_job *j)
{
    if (j->easy) curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->hdrs);
    free(j->body);
    free(j->resp);
    free(j);
}

/* Hands the outcome to the server and frees the job. A transport failure
 * (owner down, refused, timed out, garbage) is http 0: the server answers
 * UNAVAILABLE with Retry-After, which is what a device retries on. */
static void job_finish(fwd_job *j, CURLcode rc)
{
    long http = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &http);
    if (rc != CURLE_OK || j->too_big || http < 100 || http > 599) http = 0;
    char *body = http ? j->resp : NULL;
    size_t len = http ? j->resp_len : 0;
    if (http) j->resp = NULL;
    j->cb(j->arg, (unsigned)http, body, len, j->ctype[0] ? j->ctype : "application/json",
          j->retry_after_s);
    job_free(j);
}

static void unlink_active(net_fwd *f, fwd_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        f->active = j->next;
    if (j->next) j->next->prev = j->prev;
    j->next = j->prev = NULL;
}

static void *fwd_main(void *arg)
{
    net_fwd *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        fwd_job *q = f->queued;
        f->queued = NULL;
        int quit = f->quit;
        pthread_mutex_unlock(&f->mu);
        for (fwd_job *j = q, *nx; j; j = nx) {
            nx = j->next;
            if (curl_multi_add_handle(f->multi, j->easy) != CURLM_OK) {
                job_finish(j, CURLE_FAILED_INIT);
                continue;
            }
            j->next = f->active;
            j->prev = NULL;
            if (f->active) f->active->prev = j;
            f->active = j;
        }
        if (quit) break;
        int still = 0;
        curl_multi_perform(f->multi, &still);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(f->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            fwd_job *j = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            CURLcode rc = m->data.result;
            curl_multi_remove_handle(f->multi, m->easy_handle);
            unlink_active(f, j);
            job_finish(j, rc);
        }
        curl_multi_poll(f->multi, NULL, 0, 1000, NULL);
    }
    /* Stopping: whatever is still in flight is answered, never dropped. */
    while (f->active) {
        fwd_job *j = f->active;
        curl_multi_remove_handle(f->multi, j->easy);
        unlink_active(f, j);
        job_finish(j, CURLE_ABORTED_BY_CALLBACK);
    }
    return NULL;
}

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

net_fwd *net_fwd_new(uint64_t timeout_ms)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init);
    net_fwd *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->timeout_ms = (long)timeout_ms;
    f->multi = curl_multi_init();
    if (!f->multi) {
        free(f);
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    if (pthread_create(&f->thr, NULL, fwd_main, f) != 0) {
        curl_multi_cleanup(f->multi);
        pthread_mutex_destroy(&f->mu);
        free(f);
        return NULL;
    }
    return f;
}

void net_fwd_free(net_fwd *f)
{
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    f->quit = 1;
    pthread_mutex_unlock(&f->mu);
    curl_multi_wakeup(f->multi);
    pthread_join(f->thr, NULL);
    /* Submitted after the thread took its last look: answer those too. */
    for (fwd_job *j = f->queued, *nx; j; j = nx) {
        nx = j->next;
        job_finish(j, CURLE_ABORTED_BY_CALLBACK);
    }
    curl_multi_cleanup(f->multi);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void net_fwd_submit(net_fwd *f, const char *url, const char *method, const char *auth,
                    const char *fwd_hdr, const char *body, size_t len, net_fwd_cb cb, void *arg)
{
    fwd_job *j = calloc(1, sizeof *j);
    if (!j) {
        cb(arg, 0, NULL, 0, "application/json", 0);
        return;
    }
    j->cb = cb;
    j->arg = arg;
    char h1[NET_AUTH_HDR_MAX + 32], h2[NET_FWD_HDR_MAX + 32];
    snprintf(h1, sizeof h1, "Authorization: %s", auth);
    snprintf(h2, sizeof h2, "X-Cosigner-Forwarded: %s", fwd_hdr);
    struct curl_slist *h = NULL, *t;
    const char *lines[] = {h1, h2, "Content-Type: application/json", "Expect:"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (!(t = curl_slist_append(h, lines[i]))) {
            curl_slist_free_all(h);
            h = NULL;
            break;
        }
        h = t;
    }
    j->hdrs = h;
    j->easy = curl_easy_init();
    if (len && (j->body = malloc(len))) memcpy(j->body, body, len);
    if (!h || !j->easy || (len && !j->body)) {
        job_finish(j, CURLE_OUT_OF_MEMORY);
        return;
    }
    CURL *e = j->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs);
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body ? j->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->err);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, f->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    pthread_mutex_lock(&f->mu);
    int quit = f->quit;
    if (!quit) {
        j->next = f->queued;
        f->queued = j;
    }
    pthread_mutex_unlock(&f->mu);
    if (quit) {
        job_finish(j, CURLE_ABORTED_BY_CALLBACK);
        return;
    }
    curl_multi_wakeup(f->multi);
}

/* ---- the cluster signature --------------------------------------------- */

static void fwd_mac(uint8_t out[32], const uint8_t key[32], uint64_t ts_ms, const char *method,
                    const char *path, const char *auth, const uint8_t *body, size_t len)
{
    crypto_auth_hmacsha256_state st;
    uint8_t ts[8], bh[32];
    for (int i = 0; i < 8; i++)
        ts[i] = (uint8_t)(ts_ms >> (56 - 8 * i));
    crypto_hash_sha256(bh, body ? body : (const uint8_t *)"", len);
    crypto_auth_hmacsha256_init(&st, key, 32);
    static const char tag[] = "cosignerd/forward/v1";
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)tag, sizeof tag);
    crypto_auth_hmacsha256_update(&st, ts, 8);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)method, strlen(method) + 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)path, strlen(path) + 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)auth, strlen(auth) + 1);
    crypto_auth_hmacsha256_update(&st, bh, 32);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

void net_fwd_sign(char out[NET_FWD_HDR_MAX], const uint8_t key[32], uint64_t now_ms,
                  const char *method, const char *path, const char *auth, const uint8_t *body,
                  size_t len)
{
    uint8_t mac[32];
    char hex[65];
    fwd_mac(mac, key, now_ms, method, path, auth, body, len);
    net_hex_encode(hex, mac, 32);
    snprintf(out, NET_FWD_HDR_MAX, "v1 %llu %s", (unsigned long long)now_ms, hex);
}

int net_fwd_verify(const char *hdr, const uint8_t key[32], uint64_t now_ms, uint64_t window_ms,
                   const char *method, const char *path, const char *auth, const uint8_t *body,
                   size_t len)
{
    if (strncmp(hdr, "v1 ", 3)) return 0;
    const char *p = hdr + 3;
    uint64_t ts = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 19) {
        ts = ts * 10 + (uint64_t)(*p++ - '0');
        digits++;
    }
    if (!digits || *p++ != ' ' || strlen(p) != 64) return 0;
    if (ts + window_ms < now_ms || ts > now_ms + window_ms) return 0;
    uint8_t want[32], got[32];
    if (!net_hex_decode(got, 32, p, 64)) return 0;
    fwd_mac(want, key, ts, method, path, auth, body, len);
    return sodium_memcmp(want, got, 32) == 0;
}
