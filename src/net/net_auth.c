/*
 * net_auth.c — request authentication: header parsing, BIP340 verification,
 * timestamp window and the bounded replay cache.
 *
 * The replay cache remembers (pk, nonce) fingerprints in two generations of
 * fixed-size open-addressing tables, rotated every 2 windows: a request with
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

#define SHARDS 64
#define FP_LEN 16

typedef struct fp {
    uint8_t b[FP_LEN]; /* all zero = empty slot */
} fp;

typedef struct shard {
    pthread_mutex_t mu;
    fp *gen[2]; /* [cur], [prev] */
    size_t used[2];
    int cur;
    uint64_t rotated_ms;
} shard;

struct net_replay {
    shard s[SHARDS];
    size_t cap;   /* slots per generation per shard (power of two) */
    size_t limit; /* max used per generation per shard (load factor 3/4) */
    uint64_t period_ms;
};

net_replay *net_replay_new(size_t entries, uint64_t window_ms)
{
    net_replay *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    size_t per = entries / SHARDS;
    size_t cap = 64;
    while (cap < per + per / 3)
        cap <<= 1;
    r->cap = cap;
    r->limit = cap / 4 * 3;
    r->period_ms = 2 * window_ms;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&r->s[i].mu, NULL);
        /* calloc of a large block maps zero pages lazily: untouched slots cost
         * no resident memory. */
        for (int g = 0; g < 2; g++) {
            r->s[i].gen[g] = calloc(cap, sizeof(fp));
            if (!r->s[i].gen[g]) {
                net_replay_free(r);
                return NULL;
            }
        }
    }
    return r;
}

void net_replay_free(net_replay *r)
{
    if (!r) return;
    for (int i = 0; i < SHARDS; i++) {
        free(r->s[i].gen[0]);
        free(r->s[i].gen[1]);
        pthread_mutex_destroy(&r->s[i].mu);
    }
    free(r);
}

static size_t slot_of(const fp *f, size_t cap)
{
    uint64_t h;
    memcpy(&h, f->b + 4, 8);
    return (size_t)h & (cap - 1);
}

static int find(const fp *tab, size_t cap, const fp *f)
{
    static const fp zero;
    for (size_t i = slot_of(f, cap), n = 0; n < cap; i = (i + 1) & (cap - 1), n++) {
        if (!memcmp(&tab[i], f, sizeof *f)) return 1;
        if (!memcmp(&tab[i], &zero, sizeof zero)) return 0;
    }
    return 0;
}

static void insert(fp *tab, size_t cap, const fp *f)
{
    static const fp zero;
    for (size_t i = slot_of(f, cap);; i = (i + 1) & (cap - 1))
        if (!memcmp(&tab[i], &zero, sizeof zero)) {
            tab[i] = *f;
            return;
        }
}

rt_status net_replay_check(net_replay *r, const uint8_t pk[33], const uint8_t nonce[16],
                           uint64_t now_ms)
{
    uint8_t in[49], h[32];
    memcpy(in, pk, 33);
    memcpy(in + 33, nonce, 16);
    cx_sha256(h, in, sizeof in);
    fp f;
    memcpy(f.b, h, FP_LEN);
    f.b[0] |= 1; /* never all-zero */
    shard *s = &r->s[h[20] % SHARDS];
    rt_status st = RT_OK;
    pthread_mutex_lock(&s->mu);
    if (s->rotated_ms == 0) s->rotated_ms = now_ms;
    if (now_ms - s->rotated_ms >= r->period_ms) {
        int prev = 1 - s->cur;
        if (now_ms - s->rotated_ms >= 2 * r->period_ms) {
            /* Both generations are older than 2W: forget everything. */
            memset(s->gen[s->cur], 0, r->cap * sizeof(fp));
            s->used[s->cur] = 0;
        }
        /* free + calloc returns the pages to the OS instead of dirtying them. */
        fp *fresh = calloc(r->cap, sizeof(fp));
        if (fresh) {
            free(s->gen[prev]);
            s->gen[prev] = fresh;
        } else {
            memset(s->gen[prev], 0, r->cap * sizeof(fp));
        }
        s->used[prev] = 0;
        s->cur = prev;
        s->rotated_ms = now_ms;
    }
    if (find(s->gen[0], r->cap, &f) || find(s->gen[1], r->cap, &f)) {
        st = RT_ALREADY_EXISTS;
    } else if (s->used[s->cur] >= r->limit) {
        st = RT_RESOURCE_EXHAUSTED;
    } else {
        insert(s->gen[s->cur], r->cap, &f);
        s->used[s->cur]++;
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}
