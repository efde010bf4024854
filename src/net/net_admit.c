/*
 * net_admit.c — admission control: enrollment, rate limits, quotas and the
 * admin routes with their audit log (see net_admit.h).
 *
 * Why the records are MAC'd: the metadata they live in is public and
 * unencrypted by design (authorization reads it without the master key),
 * and on a cluster it is a database table. Whoever can write that table
 * must not be able to mint themselves an enrollment token, reset a quota
 * or edit the audit trail; the MAC key is derived from the host secret key,
 * which only the nodes hold.
 *
 * Why in-memory buckets and counters are per node: they bound what one
 * process spends (CPU, resident actors); the durable limits (tokens,
 * wallets per key) are in the store and hold across the cluster.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cg_cmd.h"
#include "cg_wallet_id.h"
#include "cx.h"
#include "net_admit.h"

/* ---- small helpers ----------------------------------------------------- */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void mkey(rt_key *out, const char *tag, const uint8_t *data, size_t len)
{
    cx_tagged_hash(out->b, tag, strlen(tag), data, len);
}

static void mac(uint8_t out[32], const uint8_t akey[32], const char *tag, const uint8_t *a,
                size_t alen, const uint8_t *b, size_t blen)
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, akey, 32);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)tag, strlen(tag) + 1);
    crypto_auth_hmacsha256_update(&st, a, alen);
    crypto_auth_hmacsha256_update(&st, b, blen);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

static json_t *hexj(const uint8_t *b, size_t n)
{
    char h[2 * 64 + 1];
    if (n > 64) return json_null();
    net_hex_encode(h, b, n);
    return json_string(h);
}

#define ERR(st_, ...)                                                                              \
    do {                                                                                           \
        snprintf(err, errn, __VA_ARGS__);                                                          \
        return (st_);                                                                              \
    } while (0)

/* ---- token buckets ----------------------------------------------------- */

#define LIM_SHARDS 16
#define LIM_PROBE 8

typedef struct lim_ent {
    uint8_t key[33];
    uint8_t klen; /* 0 = free */
    double tokens;
    uint64_t last_ms;
} lim_ent;

typedef struct lim_shard {
    pthread_mutex_t mu;
    lim_ent *e;
} lim_shard;

struct net_limiter {
    lim_shard sh[LIM_SHARDS];
    size_t per_shard;
    double rate, burst;
    uint8_t hkey[crypto_shorthash_KEYBYTES]; /* keyed: no chosen collisions */
};

net_limiter *net_limiter_new(size_t capacity, double rate_per_s, double burst)
{
    net_limiter *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->rate = rate_per_s;
    l->burst = burst < 1 ? 1 : burst;
    l->per_shard = capacity / LIM_SHARDS < LIM_PROBE ? LIM_PROBE : capacity / LIM_SHARDS;
    randombytes_buf(l->hkey, sizeof l->hkey);
    for (int i = 0; i < LIM_SHARDS; i++) {
        pthread_mutex_init(&l->sh[i].mu, NULL);
        if (rate_per_s > 0 && !(l->sh[i].e = calloc(l->per_shard, sizeof(lim_ent)))) {
            net_limiter_free(l);
            return NULL;
        }
    }
    return l;
}

void net_limiter_free(net_limiter *l)
{
    if (!l) return;
    for (int i = 0; i < LIM_SHARDS; i++) {
        pthread_mutex_destroy(&l->sh[i].mu);
        free(l->sh[i].e);
    }
    free(l);
}

static double refilled(const net_limiter *l, const lim_ent *e, uint64_t now)
{
    double t = e->tokens + (now > e->last_ms ? (double)(now - e->last_ms) * l->rate / 1000.0 : 0);
    return t > l->burst ? l->burst : t;
}

/* Finds key's bucket, or makes one (full) in a free or the fullest probed
 * slot. Shard lock held. */
static lim_ent *lim_find(net_limiter *l, lim_shard *sh, uint64_t h, const uint8_t *key, size_t klen,
                         uint64_t now)
{
    size_t base = (size_t)(h >> 4) % l->per_shard;
    lim_ent *victim = NULL;
    double vt = -1;
    for (size_t i = 0; i < LIM_PROBE; i++) {
        lim_ent *e = &sh->e[(base + i) % l->per_shard];
        if (e->klen == klen && !memcmp(e->key, key, klen)) return e;
        double t = e->klen ? refilled(l, e, now) : l->burst + 1; /* free slots first */
        if (t > vt) {
            vt = t;
            victim = e;
        }
    }
    memcpy(victim->key, key, klen);
    victim->klen = (uint8_t)klen;
    victim->tokens = l->burst;
    victim->last_ms = now;
    return victim;
}

static int lim_op(net_limiter *l, const uint8_t *key, size_t klen, uint64_t now, uint32_t *retry,
                  int take)
{
    *retry = 0;
    if (l->rate <= 0) return 1;
    if (klen > 33) klen = 33;
    uint64_t h;
    crypto_shorthash((uint8_t *)&h, key, klen, l->hkey);
    lim_shard *sh = &l->sh[h % LIM_SHARDS];
    pthread_mutex_lock(&sh->mu);
    lim_ent *e = lim_find(l, sh, h, key, klen, now);
    e->tokens = refilled(l, e, now);
    e->last_ms = now;
    int ok = e->tokens >= 1.0;
    if (ok && take) e->tokens -= 1.0;
    if (!ok) *retry = (uint32_t)ceil((1.0 - e->tokens) * 1000.0 / l->rate);
    pthread_mutex_unlock(&sh->mu);
    return ok;
}

int net_limiter_take(net_limiter *l, const uint8_t *key, size_t klen, uint64_t now_ms,
                     uint32_t *retry_ms)
{
    return lim_op(l, key, klen, now_ms, retry_ms, 1);
}

int net_limiter_ok(net_limiter *l, const uint8_t *key, size_t klen, uint64_t now_ms,
                   uint32_t *retry_ms)
{
    return lim_op(l, key, klen, now_ms, retry_ms, 0);
}

/* ---- token records ----------------------------------------------------- */

/* 'T' 1 state n || created u64 || expires u64 || wallet[32] || minted_by[33]
 * || keys[n][33] || mac[32] */
#define TOKEN_FIXED (4 + 8 + 8 + 32 + 33)

size_t net_token_encode(const net_token *t, const uint8_t akey[32], const uint8_t mk[32],
                        uint8_t *out, size_t cap)
{
    size_t need = TOKEN_FIXED + 33u * t->n + 32;
    if (t->n < 1 || t->n > NET_TOKEN_MAX_KEYS || cap < need) return 0;
    out[0] = 'T';
    out[1] = 1;
    out[2] = t->state;
    out[3] = t->n;
    put64(out + 4, t->created_ms);
    put64(out + 12, t->expires_ms);
    memcpy(out + 20, t->wallet, 32);
    memcpy(out + 52, t->minted_by, 33);
    memcpy(out + TOKEN_FIXED, t->keys, 33u * t->n);
    mac(out + need - 32, akey, "cosignerd/token-record/v1", mk, 32, out, need - 32);
    return need;
}

rt_status net_token_decode(const uint8_t *p, size_t n, const uint8_t akey[32], const uint8_t mk[32],
                           net_token *t)
{
    memset(t, 0, sizeof *t);
    if (n < TOKEN_FIXED + 33 + 32 || p[0] != 'T' || p[1] != 1 || p[2] > NET_TOKEN_REVOKED ||
        p[3] < 1 || p[3] > NET_TOKEN_MAX_KEYS || n != TOKEN_FIXED + 33u * p[3] + 32)
        return RT_DATA_LOSS;
    uint8_t m[32];
    mac(m, akey, "cosignerd/token-record/v1", mk, 32, p, n - 32);
    if (sodium_memcmp(m, p + n - 32, 32)) return RT_DATA_LOSS;
    t->state = p[2];
    t->n = p[3];
    t->created_ms = get64(p + 4);
    t->expires_ms = get64(p + 12);
    memcpy(t->wallet, p + 20, 32);
    memcpy(t->minted_by, p + 52, 33);
    memcpy(t->keys, p + TOKEN_FIXED, 33u * t->n);
    return RT_OK;
}

/* ---- audit records ----------------------------------------------------- */

/* 'A' 1 || seq u64 || ts u64 || admin[33] || u8 alen || action || u16 dlen
 * || detail || prev_mac[32] || mac[32]; the MAC covers everything before it,
 * so a record cannot be altered, moved to another seq or cut out of the
 * chain without the next one failing. */
size_t net_audit_encode(const net_audit_rec *r, const uint8_t akey[32], uint8_t *out, size_t cap)
{
    size_t al = strnlen(r->action, sizeof r->action);
    if (al == sizeof r->action || r->detail_len > NET_AUDIT_DETAIL_MAX) return 0;
    size_t need = 2 + 8 + 8 + 33 + 1 + al + 2 + r->detail_len + 32 + 32;
    if (cap < need) return 0;
    uint8_t *o = out;
    *o++ = 'A';
    *o++ = 1;
    put64(o, r->seq);
    put64(o + 8, r->ts_ms);
    o += 16;
    memcpy(o, r->admin, 33);
    o += 33;
    *o++ = (uint8_t)al;
    memcpy(o, r->action, al);
    o += al;
    *o++ = (uint8_t)(r->detail_len >> 8);
    *o++ = (uint8_t)r->detail_len;
    memcpy(o, r->detail, r->detail_len);
    o += r->detail_len;
    memcpy(o, r->prev_mac, 32);
    o += 32;
    mac(o, akey, "cosignerd/audit-record/v1", NULL, 0, out, (size_t)(o - out));
    return need;
}

rt_status net_audit_decode(const uint8_t *p, size_t n, const uint8_t akey[32], net_audit_rec *r)
{
    memset(r, 0, sizeof *r);
    if (n < 2 + 16 + 33 + 1 + 2 + 64 || p[0] != 'A' || p[1] != 1) return RT_DATA_LOSS;
    size_t o = 2;
    r->seq = get64(p + o);
    r->ts_ms = get64(p + o + 8);
    o += 16;
    memcpy(r->admin, p + o, 33);
    o += 33;
    size_t al = p[o++];
    if (al >= sizeof r->action || n < o + al + 2 + 64) return RT_DATA_LOSS;
    memcpy(r->action, p + o, al);
    o += al;
    size_t dl = (size_t)p[o] << 8 | p[o + 1];
    o += 2;
    if (dl > NET_AUDIT_DETAIL_MAX || n != o + dl + 64) return RT_DATA_LOSS;
    memcpy(r->detail, p + o, dl);
    r->detail_len = dl;
    o += dl;
    memcpy(r->prev_mac, p + o, 32);
    memcpy(r->mac, p + o + 32, 32);
    uint8_t m[32];
    mac(m, akey, "cosignerd/audit-record/v1", NULL, 0, p, o + 32);
    return sodium_memcmp(m, r->mac, 32) ? RT_DATA_LOSS : RT_OK;
}

/* ---- admission state --------------------------------------------------- */

#define PEND_BUCKETS 4096

typedef struct pend_ent {
    struct pend_ent *next;
    uint8_t pk[33];
    unsigned count;
} pend_ent;

enum refusal {
    RF_RATE = 0,
    RF_ADDR,
    RF_QUOTA_WALLETS,
    RF_QUOTA_PENDING,
    RF_PENDING_ALL,
    RF_ENROLLMENT,
    RF_COUNT_
};
static const char *const refusal_names[RF_COUNT_] = {
    "rate", "auth_failures", "wallet_quota", "pending_quota", "pending_total", "enrollment"};

enum { EN_TOKEN = 0, EN_GRANT, EN_OPEN, EN_COUNT_ };
static const char *const enroll_names[EN_COUNT_] = {"token", "grant", "open"};

struct net_admit {
    net_config cfg; /* copy: limits, keys, the meta vtable */
    net_limiter *rate, *addr;
    pthread_mutex_t pmu;
    pend_ent *pend[PEND_BUCKETS];
    size_t pend_entries;
    unsigned pending_total;
    pthread_mutex_t audit_mu; /* one appender per node; CAS orders nodes */
    _Atomic uint64_t refused[RF_COUNT_];
    _Atomic uint64_t enrolled[EN_COUNT_];
    _Atomic uint64_t admin_actions, tokens_minted, tokens_revoked;
};

net_admit *net_admit_new(const net_config *cfg)
{
    net_admit *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->cfg = *cfg;
    /* One bucket per key with spare room: a full table only forgets the
     * fullest buckets (see net_limiter). */
    a->rate = net_limiter_new(1u << 16, cfg->rate_rps, cfg->rate_burst);
    a->addr = net_limiter_new(1u << 14, cfg->auth_fail_rps, cfg->auth_fail_burst);
    pthread_mutex_init(&a->pmu, NULL);
    pthread_mutex_init(&a->audit_mu, NULL);
    if (!a->rate || !a->addr) {
        net_admit_free(a);
        return NULL;
    }
    return a;
}

void net_admit_free(net_admit *a)
{
    if (!a) return;
    net_limiter_free(a->rate);
    net_limiter_free(a->addr);
    for (size_t i = 0; i < PEND_BUCKETS; i++)
        for (pend_ent *e = a->pend[i], *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
    pthread_mutex_destroy(&a->pmu);
    pthread_mutex_destroy(&a->audit_mu);
    free(a);
}

rt_status net_admit_rate(net_admit *a, const uint8_t pk[33], uint64_t now_ms, uint32_t *retry_ms,
                         const char **msg)
{
    if (net_limiter_take(a->rate, pk, 33, now_ms, retry_ms)) return RT_OK;
    atomic_fetch_add(&a->refused[RF_RATE], 1);
    *msg = "request rate limit of this host key reached; retry later";
    return RT_RESOURCE_EXHAUSTED;
}

int net_admit_addr_ok(net_admit *a, const uint8_t ip[16], uint64_t now_ms, uint32_t *retry_ms)
{
    if (net_limiter_ok(a->addr, ip, 16, now_ms, retry_ms)) return 1;
    atomic_fetch_add(&a->refused[RF_ADDR], 1);
    return 0;
}

void net_admit_addr_fail(net_admit *a, const uint8_t ip[16], uint64_t now_ms)
{
    uint32_t r;
    net_limiter_take(a->addr, ip, 16, now_ms, &r);
}

static unsigned pend_hash(const uint8_t pk[33])
{
    /* Host keys are points: their x coordinate is already uniform. */
    return ((unsigned)pk[1] << 8 | pk[2]) % PEND_BUCKETS;
}

/* Takes a pending-DKG slot for pk, within both quotas. Returns the refusal
 * or -1 when taken. */
static int pend_take(net_admit *a, const uint8_t pk[33])
{
    int r = -1;
    pthread_mutex_lock(&a->pmu);
    pend_ent **pp = &a->pend[pend_hash(pk)], *e = *pp;
    while (e && memcmp(e->pk, pk, 33))
        e = e->next;
    /* The table is bounded by the total, or by its own size without one. */
    size_t max_all = a->cfg.max_pending_dkg ? a->cfg.max_pending_dkg : 1u << 20;
    if (a->pending_total >= max_all) {
        r = RF_PENDING_ALL;
    } else if (a->cfg.quota_pending_dkg && e && e->count >= a->cfg.quota_pending_dkg) {
        r = RF_QUOTA_PENDING;
    } else if (!e) {
        if (!(e = calloc(1, sizeof *e))) {
            r = RF_PENDING_ALL;
        } else {
            memcpy(e->pk, pk, 33);
            e->next = *pp;
            *pp = e;
            a->pend_entries++;
        }
    }
    if (r < 0) {
        e->count++;
        a->pending_total++;
    }
    pthread_mutex_unlock(&a->pmu);
    return r;
}

void net_admit_dkg_done(net_admit *a, const uint8_t pk[33])
{
    pthread_mutex_lock(&a->pmu);
    pend_ent **pp = &a->pend[pend_hash(pk)];
    while (*pp && memcmp((*pp)->pk, pk, 33))
        pp = &(*pp)->next;
    pend_ent *e = *pp;
    if (e && e->count) {
        a->pending_total--;
        if (--e->count == 0) {
            *pp = e->next;
            free(e);
            a->pend_entries--;
        }
    }
    pthread_mutex_unlock(&a->pmu);
}

/* ---- durable counters and grants --------------------------------------- */

/* Quota counter: 'Q' 1 || count u64 || mac[32] over (record key, first 10). */
#define QREC_LEN 42

static rt_status quota_read(net_admit *a, const rt_key *k, uint64_t *count, uint8_t *raw,
                            size_t *rawn)
{
    uint8_t *v = NULL;
    size_t n = 0;
    *count = 0;
    *rawn = 0;
    rt_status st = a->cfg.meta.get(a->cfg.meta.ud, k, &v, &n);
    if (st == RT_NOT_FOUND) return RT_OK;
    if (st != RT_OK) return st;
    uint8_t m[32];
    if (n == QREC_LEN && v[0] == 'Q' && v[1] == 1) {
        mac(m, a->cfg.admission_key, "cosignerd/quota-record/v1", k->b, 32, v, 10);
        if (!sodium_memcmp(m, v + 10, 32)) {
            *count = get64(v + 2);
            memcpy(raw, v, n);
            *rawn = n;
            free(v);
            return RT_OK;
        }
    }
    free(v);
    return RT_DATA_LOSS;
}

static void quota_key(rt_key *k, const uint8_t pk[33])
{
    mkey(k, "cosignerd/quota/v1", pk, 33);
}

static rt_status quota_add(net_admit *a, const uint8_t pk[33])
{
    rt_key k;
    quota_key(&k, pk);
    for (int tries = 0; tries < 16; tries++) {
        uint64_t c;
        uint8_t old[QREC_LEN], nv[QREC_LEN];
        size_t oldn;
        rt_status st = quota_read(a, &k, &c, old, &oldn);
        /* A counter that fails its MAC is never "repaired" to a lower count:
         * it stays as it is, and admission refuses the key (DATA_LOSS)
         * until an operator looks. */
        if (st != RT_OK) return st;
        nv[0] = 'Q';
        nv[1] = 1;
        put64(nv + 2, c + 1);
        mac(nv + 10, a->cfg.admission_key, "cosignerd/quota-record/v1", k.b, 32, nv, 10);
        st = a->cfg.meta.cas(a->cfg.meta.ud, &k, oldn ? old : NULL, oldn, nv, sizeof nv);
        if (st != RT_ABORTED) return st;
    }
    return RT_ABORTED;
}

void net_admit_wallet_created(net_admit *a, const net_params *p)
{
    if (!a->cfg.meta.cas) return;
    for (uint32_t i = 0; i < p->n; i++) {
        const uint8_t *pk = p->hostpubkeys + 33 * i;
        if (!memcmp(pk, a->cfg.hostpubkey, 33)) continue;
        quota_add(a, pk);
    }
}

/* Grant: 'G' 1 || created u64 || admin[33] || mac[32] over (key, first 43). */
#define GREC_LEN 75

static void grant_key(rt_key *k, const uint8_t wallet[32])
{
    mkey(k, "cosignerd/grant/v1", wallet, 32);
}

static int grant_exists(net_admit *a, const uint8_t wallet[32], rt_status *st)
{
    rt_key k;
    grant_key(&k, wallet);
    uint8_t *v = NULL;
    size_t n = 0;
    *st = a->cfg.meta.get(a->cfg.meta.ud, &k, &v, &n);
    if (*st == RT_NOT_FOUND) {
        *st = RT_OK;
        return 0;
    }
    if (*st != RT_OK) return 0;
    int good = 0;
    if (n == GREC_LEN && v[0] == 'G' && v[1] == 1) {
        uint8_t m[32];
        mac(m, a->cfg.admission_key, "cosignerd/grant-record/v1", k.b, 32, v, 43);
        good = !sodium_memcmp(m, v + 43, 32);
    }
    free(v);
    return good;
}

/* ---- enrollment -------------------------------------------------------- */

static void token_id(uint8_t id[32], const uint8_t secret[32])
{
    cx_tagged_hash(id, "cosignerd/token/v1", 18, secret, 32);
}

/* The devices of params p: every participant but the service. */
static int same_devices(const net_admit *a, const net_params *p, const net_token *t)
{
    unsigned devs = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        const uint8_t *pk = p->hostpubkeys + 33 * i;
        if (!memcmp(pk, a->cfg.hostpubkey, 33)) continue;
        devs++;
        int found = 0;
        for (unsigned j = 0; j < t->n && !found; j++)
            found = !memcmp(t->keys[j], pk, 33);
        if (!found) return 0;
    }
    /* Params hold no duplicates (the wallet id check refuses them), nor
     * does a token: equal counts make the inclusion an equality. */
    return devs == t->n;
}

/* Consumes (binds) the token named in the body to this wallet, or checks
 * it is already bound to it. */
static rt_status use_token(net_admit *a, const net_params *p, const uint8_t wallet[32],
                           json_t *body, uint64_t now, char *err, size_t errn)
{
    json_t *tj = json_object_get(body, "token");
    uint8_t secret[32];
    if (!tj)
        ERR(RT_PERMISSION_DENIED, "creating a wallet needs an enrollment token (field \"token\")");
    if (!json_is_string(tj) ||
        !net_hex_decode(secret, 32, json_string_value(tj), json_string_length(tj)))
        ERR(RT_INVALID_ARGUMENT, "field \"token\" must be 32 bytes of hex");
    rt_key k;
    token_id(k.b, secret);
    sodium_memzero(secret, sizeof secret);
    for (int tries = 0; tries < 8; tries++) {
        uint8_t *v = NULL;
        size_t n = 0;
        rt_status st = a->cfg.meta.get(a->cfg.meta.ud, &k, &v, &n);
        if (st == RT_NOT_FOUND) ERR(RT_PERMISSION_DENIED, "unknown enrollment token");
        if (st != RT_OK) ERR(RT_UNAVAILABLE, "enrollment token store unavailable");
        net_token t;
        st = net_token_decode(v, n, a->cfg.admission_key, k.b, &t);
        if (st != RT_OK) {
            free(v);
            ERR(RT_PERMISSION_DENIED, "enrollment token record failed its integrity check");
        }
        if (t.state == NET_TOKEN_REVOKED) {
            free(v);
            ERR(RT_PERMISSION_DENIED, "enrollment token revoked");
        }
        if (t.state == NET_TOKEN_BOUND) {
            free(v);
            if (memcmp(t.wallet, wallet, 32))
                ERR(RT_PERMISSION_DENIED, "enrollment token already used for another wallet");
            return RT_OK;
        }
        if (now >= t.expires_ms) {
            free(v);
            ERR(RT_PERMISSION_DENIED, "enrollment token expired");
        }
        if (!same_devices(a, p, &t)) {
            free(v);
            ERR(RT_PERMISSION_DENIED,
                "the wallet's device keys are not exactly the keys this token enrolls");
        }
        t.state = NET_TOKEN_BOUND;
        memcpy(t.wallet, wallet, 32);
        uint8_t nv[TOKEN_FIXED + 33 * NET_TOKEN_MAX_KEYS + 32];
        size_t nn = net_token_encode(&t, a->cfg.admission_key, k.b, nv, sizeof nv);
        st = a->cfg.meta.cas(a->cfg.meta.ud, &k, v, n, nv, nn);
        free(v);
        if (st == RT_OK) return RT_OK;
        if (st != RT_ABORTED) ERR(RT_UNAVAILABLE, "enrollment token store unavailable");
        /* Another device (or node) bound it meanwhile: decide again. */
    }
    ERR(RT_UNAVAILABLE, "enrollment token contended; retry");
}

rt_status net_admit_dkg(net_admit *a, const uint8_t pk[33], const net_params *p,
                        const net_call *call, json_t *body, uint64_t now_ms, uint32_t *retry_ms,
                        char *err, size_t errn)
{
    *retry_ms = 0;
    /* Durable quota first: the cheapest refusal that holds across restarts. */
    if (a->cfg.quota_wallets && a->cfg.meta.cas) {
        rt_key k;
        quota_key(&k, pk);
        uint64_t c;
        uint8_t raw[QREC_LEN];
        size_t rawn;
        rt_status st = quota_read(a, &k, &c, raw, &rawn);
        if (st != RT_OK && st != RT_DATA_LOSS) ERR(RT_UNAVAILABLE, "quota store unavailable");
        if (st == RT_DATA_LOSS) ERR(RT_DATA_LOSS, "wallet quota record failed its integrity check");
        if (c >= a->cfg.quota_wallets) {
            atomic_fetch_add(&a->refused[RF_QUOTA_WALLETS], 1);
            *retry_ms = 3600 * 1000;
            ERR(RT_RESOURCE_EXHAUSTED, "wallet quota of this host key reached (%u)",
                a->cfg.quota_wallets);
        }
    }
    int via = EN_OPEN;
    if (a->cfg.enrollment != NET_ENROLL_OPEN) {
        rt_status st;
        if (!a->cfg.meta.cas) ERR(RT_UNAVAILABLE, "enrollment needs a store");
        if (grant_exists(a, call->key.b, &st)) {
            via = EN_GRANT;
        } else if (st != RT_OK) {
            ERR(RT_UNAVAILABLE, "enrollment grant store unavailable");
        } else if (a->cfg.enrollment == NET_ENROLL_ADMIN) {
            atomic_fetch_add(&a->refused[RF_ENROLLMENT], 1);
            ERR(RT_PERMISSION_DENIED, "creating a wallet needs an admin grant for its params");
        } else {
            st = use_token(a, p, call->key.b, body, now_ms, err, errn);
            if (st != RT_OK) {
                if (st == RT_PERMISSION_DENIED) atomic_fetch_add(&a->refused[RF_ENROLLMENT], 1);
                return st;
            }
            via = EN_TOKEN;
        }
    }
    int r = pend_take(a, pk);
    if (r >= 0) {
        atomic_fetch_add(&a->refused[r], 1);
        *retry_ms = 1000;
        ERR(RT_RESOURCE_EXHAUSTED,
            r == RF_QUOTA_PENDING ? "too many DKG sessions of this host key waiting (%u)"
                                  : "too many DKG sessions waiting on this node; retry",
            a->cfg.quota_pending_dkg);
    }
    atomic_fetch_add(&a->enrolled[via], 1);
    return RT_OK;
}

/* ---- audit log --------------------------------------------------------- */

/* Head: 'H' 1 || seq u64 || mac of record seq [32] || mac[32]. It only
 * speeds up appends: records are found by seq and a lagging head (a crash
 * between the record and the head) is walked past, never trusted over the
 * records themselves. */
#define HREC_LEN 74

static void audit_key(rt_key *k, uint64_t seq)
{
    uint8_t b[8];
    put64(b, seq);
    mkey(k, "cosignerd/audit/v1", b, 8);
}

static void head_key(rt_key *k)
{
    mkey(k, "cosignerd/audit-head/v1", NULL, 0);
}

static rt_status audit_get(net_admit *a, uint64_t seq, net_audit_rec *r)
{
    rt_key k;
    audit_key(&k, seq);
    uint8_t *v = NULL;
    size_t n = 0;
    rt_status st = a->cfg.meta.get(a->cfg.meta.ud, &k, &v, &n);
    if (st != RT_OK) return st;
    st = net_audit_decode(v, n, a->cfg.admission_key, r);
    free(v);
    if (st == RT_OK && r->seq != seq) st = RT_DATA_LOSS;
    return st;
}

rt_status net_admit_audit(net_admit *a, const uint8_t admin[33], const char *action, json_t *detail,
                          uint64_t now_ms)
{
    if (!a->cfg.meta.cas) return RT_UNAVAILABLE;
    char *d = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
    if (!d) return RT_RESOURCE_EXHAUSTED;
    size_t dl = strlen(d);
    if (dl > NET_AUDIT_DETAIL_MAX) {
        free(d);
        return RT_INVALID_ARGUMENT;
    }
    net_audit_rec *r = calloc(1, sizeof *r);
    uint8_t *buf = malloc(NET_AUDIT_DETAIL_MAX + 256);
    if (!r || !buf) {
        free(d);
        free(r);
        free(buf);
        return RT_RESOURCE_EXHAUSTED;
    }
    memcpy(r->admin, admin, 33);
    snprintf(r->action, sizeof r->action, "%s", action);
    memcpy(r->detail, d, dl);
    r->detail_len = dl;
    r->ts_ms = now_ms;
    free(d);

    pthread_mutex_lock(&a->audit_mu);
    rt_key hk;
    head_key(&hk);
    uint8_t *hv = NULL;
    size_t hn = 0;
    uint64_t seq = 0;
    rt_status st = a->cfg.meta.get(a->cfg.meta.ud, &hk, &hv, &hn);
    if (st == RT_OK) {
        uint8_t m[32];
        if (hn != HREC_LEN || hv[0] != 'H' || hv[1] != 1) {
            st = RT_DATA_LOSS;
        } else {
            mac(m, a->cfg.admission_key, "cosignerd/audit-head/v1", NULL, 0, hv, 42);
            if (sodium_memcmp(m, hv + 42, 32)) st = RT_DATA_LOSS;
            seq = get64(hv + 2);
            memcpy(r->prev_mac, hv + 10, 32);
        }
    } else if (st == RT_NOT_FOUND) {
        st = RT_OK;
    }
    /* Walk past records a crashed or concurrent appender already wrote. */
    for (int guard = 0; st == RT_OK && guard < 1 << 20; guard++) {
        r->seq = seq + 1;
        size_t n = net_audit_encode(r, a->cfg.admission_key, buf, NET_AUDIT_DETAIL_MAX + 256);
        rt_key k;
        audit_key(&k, r->seq);
        st = a->cfg.meta.cas(a->cfg.meta.ud, &k, NULL, 0, buf, n);
        if (st == RT_OK) {
            memcpy(r->mac, buf + n - 32, 32);
            break;
        }
        if (st != RT_ABORTED) break;
        net_audit_rec prev;
        st = audit_get(a, r->seq, &prev);
        if (st != RT_OK) break;
        memcpy(r->prev_mac, prev.mac, 32);
        seq++;
    }
    if (st == RT_OK) {
        /* Advance the head; if another node moved it further, leave it. */
        uint8_t nh[HREC_LEN];
        nh[0] = 'H';
        nh[1] = 1;
        put64(nh + 2, r->seq);
        memcpy(nh + 10, r->mac, 32);
        mac(nh + 42, a->cfg.admission_key, "cosignerd/audit-head/v1", NULL, 0, nh, 42);
        a->cfg.meta.cas(a->cfg.meta.ud, &hk, hv, hn, nh, sizeof nh);
        atomic_fetch_add(&a->admin_actions, 1);
    }
    pthread_mutex_unlock(&a->audit_mu);
    free(hv);
    free(r);
    free(buf);
    return st;
}

/* ---- admin routes ------------------------------------------------------ */

int net_admit_is_admin(const net_admit *a, const uint8_t pk[33])
{
    for (size_t i = 0; i < a->cfg.n_admin_pubkeys; i++)
        if (!memcmp(a->cfg.admin_pubkeys[i], pk, 33)) return 1;
    return 0;
}

static rt_status int_field(json_t *body, const char *name, json_int_t lo, json_int_t hi,
                           json_int_t def, json_int_t *out, char *err, size_t errn)
{
    json_t *v = json_object_get(body, name);
    if (!v) {
        *out = def;
        return RT_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        ERR(RT_INVALID_ARGUMENT, "field \"%s\" must be an integer in %lld..%lld", name,
            (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    return RT_OK;
}

static rt_status mint_token(net_admit *a, json_t *body, const uint8_t admin[33], uint64_t now,
                            json_t **out, char *err, size_t errn)
{
    net_token t;
    memset(&t, 0, sizeof t);
    json_t *keys = json_object_get(body, "hostpubkeys");
    if (!json_is_array(keys) || json_array_size(keys) < 1 ||
        json_array_size(keys) > NET_TOKEN_MAX_KEYS)
        ERR(RT_INVALID_ARGUMENT, "field \"hostpubkeys\" must list 1..%d device host keys",
            NET_TOKEN_MAX_KEYS);
    t.n = (uint8_t)json_array_size(keys);
    for (size_t i = 0; i < t.n; i++) {
        json_t *e = json_array_get(keys, i);
        uint8_t pt[64];
        if (!json_is_string(e) ||
            !net_hex_decode(t.keys[i], 33, json_string_value(e), json_string_length(e)) ||
            !cx_point_parse(pt, t.keys[i], 0))
            ERR(RT_INVALID_ARGUMENT, "hostpubkeys[%zu] must be a valid 33-byte public key", i);
        if (!memcmp(t.keys[i], a->cfg.hostpubkey, 33))
            ERR(RT_INVALID_ARGUMENT, "hostpubkeys[%zu] is the service's own key", i);
        for (size_t j = 0; j < i; j++)
            if (!memcmp(t.keys[i], t.keys[j], 33))
                ERR(RT_INVALID_ARGUMENT, "hostpubkeys[%zu] is listed twice", i);
    }
    json_int_t ttl;
    uint64_t def = a->cfg.token_ttl_ms ? a->cfg.token_ttl_ms / 1000 : 7 * 86400;
    rt_status st = int_field(body, "ttl_s", 1, 366 * 86400, (json_int_t)def, &ttl, err, errn);
    if (st != RT_OK) return st;
    t.state = NET_TOKEN_FRESH;
    t.created_ms = now;
    t.expires_ms = now + (uint64_t)ttl * 1000;
    memcpy(t.minted_by, admin, 33);
    uint8_t secret[32];
    rt_key k;
    randombytes_buf(secret, sizeof secret);
    token_id(k.b, secret);
    json_t *d = json_pack("{s:o,s:o,s:I}", "token_id", hexj(k.b, 32), "hostpubkeys",
                          json_deep_copy(keys), "expires_ms", (json_int_t)t.expires_ms);
    st = net_admit_audit(a, admin, "token.mint", d, now);
    json_decref(d);
    if (st != RT_OK) {
        sodium_memzero(secret, sizeof secret);
        ERR(RT_UNAVAILABLE, "audit log unavailable; nothing done");
    }
    uint8_t v[TOKEN_FIXED + 33 * NET_TOKEN_MAX_KEYS + 32];
    size_t n = net_token_encode(&t, a->cfg.admission_key, k.b, v, sizeof v);
    st = a->cfg.meta.cas(a->cfg.meta.ud, &k, NULL, 0, v, n);
    if (st != RT_OK) {
        sodium_memzero(secret, sizeof secret);
        ERR(RT_UNAVAILABLE, "could not store the token");
    }
    atomic_fetch_add(&a->tokens_minted, 1);
    /* The secret is shown once; the store keeps only its hash. */
    *out = json_pack("{s:o,s:o,s:o,s:I}", "token", hexj(secret, 32), "token_id", hexj(k.b, 32),
                     "hostpubkeys", json_deep_copy(keys), "expires_ms", (json_int_t)t.expires_ms);
    sodium_memzero(secret, sizeof secret);
    return RT_OK;
}

static rt_status revoke_token(net_admit *a, const char *id_hex, const uint8_t admin[33],
                              uint64_t now, json_t **out, char *err, size_t errn)
{
    rt_key k;
    if (!net_hex_decode(k.b, 32, id_hex, strlen(id_hex)))
        ERR(RT_INVALID_ARGUMENT, "token id must be 32 bytes of hex");
    for (int tries = 0; tries < 8; tries++) {
        uint8_t *v = NULL;
        size_t n = 0;
        rt_status st = a->cfg.meta.get(a->cfg.meta.ud, &k, &v, &n);
        if (st == RT_NOT_FOUND) ERR(RT_NOT_FOUND, "no such token");
        if (st != RT_OK) ERR(RT_UNAVAILABLE, "token store unavailable");
        net_token t;
        if (net_token_decode(v, n, a->cfg.admission_key, k.b, &t) != RT_OK) {
            free(v);
            ERR(RT_DATA_LOSS, "token record failed its integrity check");
        }
        int was = t.state;
        if (tries == 0) {
            json_t *d = json_pack("{s:s}", "token_id", id_hex);
            st = net_admit_audit(a, admin, "token.revoke", d, now);
            json_decref(d);
            if (st != RT_OK) {
                free(v);
                ERR(RT_UNAVAILABLE, "audit log unavailable; nothing done");
            }
        }
        if (was == NET_TOKEN_REVOKED) {
            free(v);
            *out = json_pack("{s:s,s:b}", "token_id", id_hex, "revoked", 1);
            return RT_OK;
        }
        t.state = NET_TOKEN_REVOKED;
        uint8_t nv[TOKEN_FIXED + 33 * NET_TOKEN_MAX_KEYS + 32];
        size_t nn = net_token_encode(&t, a->cfg.admission_key, k.b, nv, sizeof nv);
        st = a->cfg.meta.cas(a->cfg.meta.ud, &k, v, n, nv, nn);
        free(v);
        if (st == RT_OK) {
            atomic_fetch_add(&a->tokens_revoked, 1);
            /* A token already bound keeps its wallet: revoking stops further
             * enrollment with it, the wallet itself is retired separately. */
            *out = json_pack("{s:s,s:b,s:b}", "token_id", id_hex, "revoked", 1, "was_used",
                             was == NET_TOKEN_BOUND);
            return RT_OK;
        }
        if (st != RT_ABORTED) ERR(RT_UNAVAILABLE, "token store unavailable");
    }
    ERR(RT_UNAVAILABLE, "token contended; retry");
}

static rt_status grant(net_admit *a, json_t *body, const uint8_t admin[33], uint64_t now,
                       json_t **out, char *err, size_t errn)
{
    net_call c;
    memset(&c, 0, sizeof c);
    rt_status st = net_codec_target(NET_R_DKG1, NULL, body, &c, err, errn);
    if (st != RT_OK) {
        net_call_free(&c);
        return st;
    }
    net_params p;
    net_params_parse(c.params, c.params_len, &p);
    if (net_params_index(&p, a->cfg.hostpubkey) < 0) {
        net_call_free(&c);
        ERR(RT_INVALID_ARGUMENT, "params must include the service host public key");
    }
    json_t *d = json_pack("{s:o,s:O}", "wallet_id", hexj(c.key.b, 32), "params",
                          json_object_get(body, "params"));
    st = net_admit_audit(a, admin, "enrollment.grant", d, now);
    json_decref(d);
    if (st != RT_OK) {
        net_call_free(&c);
        ERR(RT_UNAVAILABLE, "audit log unavailable; nothing done");
    }
    rt_key k;
    grant_key(&k, c.key.b);
    uint8_t v[GREC_LEN];
    v[0] = 'G';
    v[1] = 1;
    put64(v + 2, now);
    memcpy(v + 10, admin, 33);
    mac(v + 43, a->cfg.admission_key, "cosignerd/grant-record/v1", k.b, 32, v, 43);
    st = a->cfg.meta.put(a->cfg.meta.ud, &k, v, sizeof v);
    *out =
        st == RT_OK ? json_pack("{s:o,s:b}", "wallet_id", hexj(c.key.b, 32), "granted", 1) : NULL;
    net_call_free(&c);
    if (st != RT_OK) ERR(RT_UNAVAILABLE, "could not store the grant");
    return RT_OK;
}

static json_t *params_json(const net_params *p)
{
    json_t *h = json_array();
    for (uint32_t i = 0; i < p->n; i++)
        json_array_append_new(h, hexj(p->hostpubkeys + 33 * i, 33));
    return h;
}

/* Reads and checks wallet's metadata (ownership of *meta passes to the caller). */
static rt_status wallet_params(net_admit *a, const rt_key *w, uint8_t **meta, size_t *len,
                               net_params *p)
{
    size_t n = 0;
    *meta = NULL;
    rt_status st = a->cfg.meta.get(a->cfg.meta.ud, w, meta, &n);
    if (st != RT_OK) return st;
    uint8_t id[32];
    uint64_t blame;
    if (net_params_parse(*meta, n, p) != RT_OK ||
        cg_wallet_id(p->hostpubkeys, p->n, p->t, id, &blame) != RT_OK || memcmp(id, w->b, 32)) {
        free(*meta);
        *meta = NULL;
        return RT_DATA_LOSS;
    }
    *len = n;
    return RT_OK;
}

static rt_status list_wallets(net_admit *a, json_t *body, json_t **out, char *err, size_t errn)
{
    if (!a->cfg.meta.list) ERR(RT_UNIMPLEMENTED, "this store cannot list wallets");
    json_int_t limit;
    rt_status st = int_field(body, "limit", 1, 1000, 100, &limit, err, errn);
    if (st != RT_OK) return st;
    rt_key after;
    json_t *aj = json_object_get(body, "after");
    if (aj && !json_is_null(aj) &&
        (!json_is_string(aj) ||
         !net_hex_decode(after.b, 32, json_string_value(aj), json_string_length(aj))))
        ERR(RT_INVALID_ARGUMENT, "field \"after\" must be a wallet id (32 bytes of hex)");
    int have_after = aj && !json_is_null(aj);
    rt_key *ids = calloc((size_t)limit, sizeof *ids);
    uint64_t *vers = calloc((size_t)limit, sizeof *vers);
    size_t n = 0;
    if (!ids || !vers) {
        free(ids);
        free(vers);
        return RT_RESOURCE_EXHAUSTED;
    }
    st = a->cfg.meta.list(a->cfg.meta.ud, have_after ? &after : NULL, ids, vers, (size_t)limit, &n);
    if (st != RT_OK) {
        free(ids);
        free(vers);
        ERR(RT_UNAVAILABLE, "store unavailable");
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *w = json_pack("{s:o,s:I}", "wallet_id", hexj(ids[i].b, 32), "record_version",
                              (json_int_t)vers[i]);
        uint8_t *meta;
        size_t ml;
        net_params p;
        net_retired r;
        if (wallet_params(a, &ids[i], &meta, &ml, &p) == RT_OK) {
            json_object_set_new(w, "t", json_integer(p.t));
            json_object_set_new(w, "n", json_integer(p.n));
            json_object_set_new(w, "retired", json_boolean(net_meta_retired(meta, ml, &r) > 0));
            free(meta);
        }
        json_array_append_new(arr, w);
    }
    *out = json_pack("{s:o,s:o}", "wallets", arr, "next",
                     n == (size_t)limit ? hexj(ids[n - 1].b, 32) : json_null());
    free(ids);
    free(vers);
    return RT_OK;
}

static rt_status show_wallet(net_admit *a, const char *id_hex, json_t **out, char *err, size_t errn)
{
    rt_key w;
    if (!net_hex_decode(w.b, 32, id_hex, strlen(id_hex)))
        ERR(RT_INVALID_ARGUMENT, "wallet id must be 32 bytes of hex");
    uint8_t *meta;
    size_t meta_len;
    net_params p;
    rt_status st = wallet_params(a, &w, &meta, &meta_len, &p);
    if (st == RT_NOT_FOUND) ERR(RT_NOT_FOUND, "unknown wallet");
    if (st == RT_DATA_LOSS) ERR(RT_DATA_LOSS, "wallet metadata failed its integrity check");
    if (st != RT_OK) ERR(RT_UNAVAILABLE, "store unavailable");
    /* The record's version without opening it: list from the id just below. */
    uint64_t version = 0;
    if (a->cfg.meta.list) {
        rt_key below = w, got;
        int zero = 1;
        for (int i = 31; i >= 0; i--) {
            if (below.b[i]--) {
                zero = 0;
                break;
            }
        }
        size_t n = 0;
        uint64_t v = 0;
        if (a->cfg.meta.list(a->cfg.meta.ud, zero ? NULL : &below, &got, &v, 1, &n) == RT_OK &&
            n == 1 && !memcmp(got.b, w.b, 32))
            version = v;
    }
    *out = json_pack("{s:s,s:i,s:o,s:I,s:b}", "wallet_id", id_hex, "t", (int)p.t, "hostpubkeys",
                     params_json(&p), "record_version", (json_int_t)version, "dkg_complete",
                     version > 0);
    net_retired r;
    if (net_meta_retired(meta, meta_len, &r) > 0)
        json_object_set_new(*out, "retired",
                            json_pack("{s:I,s:I}", "retired_at_ms", (json_int_t)r.retired_at_ms,
                                      "wipe_after_ms", (json_int_t)r.wipe_after_ms));
    free(meta);
    return RT_OK;
}

static rt_status list_audit(net_admit *a, json_t *body, json_t **out, char *err, size_t errn)
{
    json_int_t limit, after;
    rt_status st = int_field(body, "limit", 1, 1000, 100, &limit, err, errn);
    if (st == RT_OK) st = int_field(body, "after", 0, INT64_MAX, 0, &after, err, errn);
    if (st != RT_OK) return st;
    net_audit_rec *r = malloc(sizeof *r);
    if (!r) return RT_RESOURCE_EXHAUSTED;
    uint8_t prev[32] = {0};
    int have_prev = after == 0; /* the chain starts from zeros */
    if (after > 0) {
        st = audit_get(a, (uint64_t)after, r);
        if (st == RT_OK) {
            memcpy(prev, r->mac, 32);
            have_prev = 1;
        }
    }
    json_t *arr = json_array();
    json_int_t got = 0;
    uint64_t seq = (uint64_t)after;
    for (; got < limit; got++) {
        st = audit_get(a, seq + 1, r);
        if (st == RT_NOT_FOUND) break;
        if (st == RT_OK && have_prev && sodium_memcmp(prev, r->prev_mac, 32)) st = RT_DATA_LOSS;
        if (st != RT_OK) {
            json_decref(arr);
            free(r);
            if (st == RT_DATA_LOSS)
                ERR(RT_DATA_LOSS, "audit record %llu failed its integrity check",
                    (unsigned long long)(seq + 1));
            ERR(RT_UNAVAILABLE, "store unavailable");
        }
        memcpy(prev, r->mac, 32);
        have_prev = 1;
        seq++;
        json_t *detail = json_loadb(r->detail, r->detail_len, 0, NULL);
        json_array_append_new(arr,
                              json_pack("{s:I,s:I,s:o,s:s,s:o}", "seq", (json_int_t)r->seq, "ts_ms",
                                        (json_int_t)r->ts_ms, "admin", hexj(r->admin, 33), "action",
                                        r->action, "detail", detail ? detail : json_object()));
    }
    free(r);
    *out = json_pack("{s:o,s:o}", "records", arr, "next",
                     got == limit ? json_integer((json_int_t)seq) : json_null());
    return RT_OK;
}

rt_status net_admit_admin(net_admit *a, int route, const char *arg, json_t *body,
                          const uint8_t admin[33], uint64_t now_ms, json_t **out, char *err,
                          size_t errn)
{
    *out = NULL;
    if (!a->cfg.meta.cas) ERR(RT_UNIMPLEMENTED, "admin routes need a store");
    switch (route) {
    case NET_R_ADM_TOKENS:
        return mint_token(a, body, admin, now_ms, out, err, errn);
    case NET_R_ADM_REVOKE:
        return revoke_token(a, arg, admin, now_ms, out, err, errn);
    case NET_R_ADM_GRANT:
        return grant(a, body, admin, now_ms, out, err, errn);
    case NET_R_ADM_WALLETS:
        return list_wallets(a, body, out, err, errn);
    case NET_R_ADM_WALLET:
        return show_wallet(a, arg, out, err, errn);
    case NET_R_ADM_AUDIT:
        return list_audit(a, body, out, err, errn);
    default:
        ERR(RT_NOT_FOUND, "no such admin route");
    }
}

void net_admit_metrics(net_admit *a, FILE *f)
{
    fprintf(f, "# HELP cosignerd_admission_refusals_total Requests refused by admission control, "
               "by reason.\n# TYPE cosignerd_admission_refusals_total counter\n");
    for (int i = 0; i < RF_COUNT_; i++)
        fprintf(f, "cosignerd_admission_refusals_total{reason=\"%s\"} %llu\n", refusal_names[i],
                (unsigned long long)atomic_load(&a->refused[i]));
    fprintf(f, "# HELP cosignerd_enrollments_total DKG round 1s admitted for new wallets, by "
               "grant.\n# TYPE cosignerd_enrollments_total counter\n");
    for (int i = 0; i < EN_COUNT_; i++)
        fprintf(f, "cosignerd_enrollments_total{via=\"%s\"} %llu\n", enroll_names[i],
                (unsigned long long)atomic_load(&a->enrolled[i]));
    pthread_mutex_lock(&a->pmu);
    unsigned pending = a->pending_total;
    pthread_mutex_unlock(&a->pmu);
    fprintf(f,
            "# HELP cosignerd_dkg_pending DKG round 1s for new wallets waiting on this node.\n"
            "# TYPE cosignerd_dkg_pending gauge\ncosignerd_dkg_pending %u\n"
            "# HELP cosignerd_admin_actions_total Admin actions recorded in the audit log.\n"
            "# TYPE cosignerd_admin_actions_total counter\ncosignerd_admin_actions_total %llu\n"
            "# HELP cosignerd_tokens_minted_total Enrollment tokens minted.\n"
            "# TYPE cosignerd_tokens_minted_total counter\ncosignerd_tokens_minted_total %llu\n"
            "# HELP cosignerd_tokens_revoked_total Enrollment tokens revoked.\n"
            "# TYPE cosignerd_tokens_revoked_total counter\ncosignerd_tokens_revoked_total %llu\n",
            pending, (unsigned long long)atomic_load(&a->admin_actions),
            (unsigned long long)atomic_load(&a->tokens_minted),
            (unsigned long long)atomic_load(&a->tokens_revoked));
}
