/*
 * net_auth.c — request authentication: header parsing, BIP340 verification,
 * timestamp window and the bounded replay cache.
 *
 * The replay cache remembers (pk, nonce) fingerprints in two generations of
 * open-addressing tables, rotated every 2 windows: a request with
 * timestamp ts is acceptable only while |now - ts| <= W, so it must be
 * remembered for at most 2W after it was accepted, and two generations of
 * 2W each cover that. Memory is bounded by construction; when a generation
 * is full we refuse (503) rather than forget, because forgetting would admit
 * replays.
 */
#include <stdlib.h>
#include <string.h>

#include "cx.h"
#include "net_int.h"

/* ---- header ------------------------------------------------------------ */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int net_auth_parse(net_auth_hdr *out, const char *v)
{
    static const char scheme[] = "Cosigner-BIP340";
    if (!v || strncmp(v, scheme, sizeof scheme - 1) != 0) return 0;
    const char *p = v + sizeof scheme - 1;
    if (*p != ' ' && *p != '\t') return 0;
    unsigned seen = 0;
    for (;;) {
        p = skip_ws(p);
        const char *k = p;
        while (*p && *p != '=' && *p != ',' && *p != ' ')
            p++;
        size_t kl = (size_t)(p - k);
        if (*p != '=') return 0;
        p++;
        const char *val = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t vl = (size_t)(p - val);
        unsigned bit;
        if (kl == 2 && !memcmp(k, "pk", 2)) {
            bit = 1;
            if (!net_hex_decode(out->pk, 33, val, vl)) return 0;
        } else if (kl == 2 && !memcmp(k, "ts", 2)) {
            bit = 2;
            if (vl == 0 || vl > 19) return 0;
            uint64_t ts = 0;
            for (size_t i = 0; i < vl; i++) {
                if (val[i] < '0' || val[i] > '9') return 0;
                ts = ts * 10 + (uint64_t)(val[i] - '0');
            }
            out->ts_ms = ts;
        } else if (kl == 5 && !memcmp(k, "nonce", 5)) {
            bit = 4;
            if (!net_hex_decode(out->nonce, 16, val, vl)) return 0;
        } else if (kl == 3 && !memcmp(k, "sig", 3)) {
            bit = 8;
            if (!net_hex_decode(out->sig, 64, val, vl)) return 0;
        } else {
            return 0;
        }
        if (seen & bit) return 0;
        seen |= bit;
        p = skip_ws(p);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == 0) break;
        return 0;
    }
    return seen == 15;
}

rt_status net_auth_verify(const net_auth_hdr *h, const char *method, const char *path,
                          const uint8_t *body, size_t len, uint64_t now_ms, uint64_t window_ms,
                          int *why)
{
    uint64_t d = now_ms > h->ts_ms ? now_ms - h->ts_ms : h->ts_ms - now_ms;
    if (d > window_ms) {
        *why = NET_AF_STALE;
        return RT_UNAUTHENTICATED;
    }
    uint8_t pt[64], x[32], msg[32];
    int even;
    /* A pk that is not a valid point cannot have signed anything. */
    if (!cx_point_parse(pt, h->pk, 0) || !cx_point_xonly(x, &even, pt)) {
        *why = NET_AF_MALFORMED;
        return RT_UNAUTHENTICATED;
    }
    net_auth_msg(msg, method, path, h->ts_ms, h->nonce, body, len);
    if (!cx_bip340_verify(h->sig, msg, 32, x)) {
        *why = NET_AF_BAD_SIG;
        return RT_UNAUTHENTICATED;
    }
    return RT_OK;
}

/* ---- replay cache ------------------------------------------------------ */

/* Tables grow with use (from a few slots up to the configured bound), so a
 * quiet service holds almost nothing and memory follows the request rate
 * over the last two windows. 8-byte fingerprints of SHA256(pk || nonce): a
 * false "replay" needs a 64-bit collision among the live entries. */
#define SHARDS 64
#define MIN_CAP 64

typedef struct gen {
    uint64_t *tab; /* 0 = empty slot */
    size_t cap, used;
} gen;

typedef struct shard {
    pthread_mutex_t mu;
    gen g[2];
    int cur;
    uint64_t rotated_ms;
} shard;

struct net_replay {
    shard s[SHARDS];
    size_t max_used; /* per generation per shard */
    uint64_t period_ms;
};

net_replay *net_replay_new(size_t entries, uint64_t window_ms)
{
    net_replay *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->max_used = entries / SHARDS + 1;
    r->period_ms = 2 * window_ms;
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&r->s[i].mu, NULL);
    return r;
}

void net_replay_free(net_replay *r)
{
    if (!r) return;
    for (int i = 0; i < SHARDS; i++) {
        free(r->s[i].g[0].tab);
        free(r->s[i].g[1].tab);
        pthread_mutex_destroy(&r->s[i].mu);
    }
    free(r);
}

static int find(const gen *g, uint64_t f)
{
    if (!g->tab) return 0;
    for (size_t i = (size_t)(f >> 7) & (g->cap - 1);; i = (i + 1) & (g->cap - 1)) {
        if (g->tab[i] == f) return 1;
        if (!g->tab[i]) return 0;
    }
}

static void put(uint64_t *tab, size_t cap, uint64_t f)
{
    size_t i = (size_t)(f >> 7) & (cap - 1);
    while (tab[i])
        i = (i + 1) & (cap - 1);
    tab[i] = f;
}

/* Keeps the load factor at most 1/2 so probes stay short. */
static int reserve(gen *g)
{
    if (g->tab && 2 * (g->used + 1) <= g->cap) return 1;
    size_t nc = g->cap ? 2 * g->cap : MIN_CAP;
    uint64_t *t = calloc(nc, sizeof *t);
    if (!t) return 0;
    for (size_t i = 0; i < g->cap; i++)
        if (g->tab[i]) put(t, nc, g->tab[i]);
    free(g->tab);
    g->tab = t;
    g->cap = nc;
    return 1;
}

static void clear(gen *g)
{
    free(g->tab);
    g->tab = NULL;
    g->cap = g->used = 0;
}

rt_status net_replay_check(net_replay *r, const uint8_t pk[33], const uint8_t nonce[16],
                           uint64_t now_ms)
{
    uint8_t in[49], h[32];
    memcpy(in, pk, 33);
    memcpy(in + 33, nonce, 16);
    cx_sha256(h, in, sizeof in);
    uint64_t f;
    memcpy(&f, h, 8);
    f |= 1; /* never 0, the empty slot */
    shard *s = &r->s[h[20] % SHARDS];
    rt_status st = RT_OK;
    pthread_mutex_lock(&s->mu);
    if (s->rotated_ms == 0) s->rotated_ms = now_ms;
    if (now_ms - s->rotated_ms >= r->period_ms) {
        /* Both generations older than 2W: forget everything. */
        if (now_ms - s->rotated_ms >= 2 * r->period_ms) clear(&s->g[s->cur]);
        s->cur = 1 - s->cur;
        clear(&s->g[s->cur]);
        s->rotated_ms = now_ms;
    }
    gen *g = &s->g[s->cur];
    if (find(&s->g[0], f) || find(&s->g[1], f))
        st = RT_ALREADY_EXISTS;
    else if (g->used >= r->max_used || !reserve(g))
        st = RT_RESOURCE_EXHAUSTED;
    else {
        put(g->tab, g->cap, f);
        g->used++;
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}
