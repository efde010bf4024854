/*
 * test_admit.c — admission control in isolation (src/net/net_admit.c): the
 * token buckets, the enrollment rules (a token enrolls exactly the keys it
 * names, once; revoked and expired tokens enroll nothing; admin grants),
 * the quotas, the record MACs and the audit log's chain. The metadata is an
 * in-memory map with a real compare-and-swap; the store's own CAS is tested
 * in tests/store on both backends.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cg_wallet_id.h"
#include "cx.h"
#include "net_admit.h"

#define LIM_TEST_CAP 64

/* ---- an in-memory metadata map ----------------------------------------- */

#define MAP_MAX 256

typedef struct ment {
    rt_key k;
    uint8_t *v;
    size_t n;
    int used;
} ment;

static ment map[MAP_MAX];
static pthread_mutex_t map_mu = PTHREAD_MUTEX_INITIALIZER;
static int map_down; /* the store "unreachable" */

static ment *find(const rt_key *k)
{
    for (int i = 0; i < MAP_MAX; i++)
        if (map[i].used && !memcmp(map[i].k.b, k->b, 32)) return &map[i];
    return NULL;
}

static rt_status m_get(void *ud, const rt_key *k, uint8_t **v, size_t *n)
{
    (void)ud;
    if (map_down) return RT_UNAVAILABLE;
    pthread_mutex_lock(&map_mu);
    ment *e = find(k);
    rt_status st = RT_NOT_FOUND;
    if (e) {
        *v = malloc(e->n ? e->n : 1);
        memcpy(*v, e->v, e->n);
        *n = e->n;
        st = RT_OK;
    }
    pthread_mutex_unlock(&map_mu);
    return st;
}

static void set_locked(const rt_key *k, const uint8_t *v, size_t n)
{
    ment *e = find(k);
    for (int i = 0; !e && i < MAP_MAX; i++)
        if (!map[i].used) e = &map[i];
    assert_non_null(e);
    free(e->v);
    e->used = 1;
    e->k = *k;
    e->v = malloc(n ? n : 1);
    memcpy(e->v, v, n);
    e->n = n;
}

static rt_status m_put(void *ud, const rt_key *k, const uint8_t *v, size_t n)
{
    (void)ud;
    if (map_down) return RT_UNAVAILABLE;
    pthread_mutex_lock(&map_mu);
    set_locked(k, v, n);
    pthread_mutex_unlock(&map_mu);
    return RT_OK;
}

static rt_status m_cas(void *ud, const rt_key *k, const uint8_t *ex, size_t exn, const uint8_t *v,
                       size_t n)
{
    (void)ud;
    if (map_down) return RT_UNAVAILABLE;
    pthread_mutex_lock(&map_mu);
    ment *e = find(k);
    int same = ex ? e && e->n == exn && !memcmp(e->v, ex, exn) : !e;
    if (same) set_locked(k, v, n);
    pthread_mutex_unlock(&map_mu);
    return same ? RT_OK : RT_ABORTED;
}

static void map_reset(void)
{
    for (int i = 0; i < MAP_MAX; i++) {
        free(map[i].v);
        memset(&map[i], 0, sizeof map[i]);
    }
    map_down = 0;
}

/* ---- fixtures ---------------------------------------------------------- */

static uint8_t svc_pk[33], admin_pk[33], dev_pk[4][33];

static void keypair(uint8_t pk[33], uint8_t seed)
{
    uint8_t sk[32];
    memset(sk, seed, 32);
    assert_true(cx_pubkey_from_seckey(pk, sk));
}

static net_config base_cfg(net_enrollment mode)
{
    net_config c;
    memset(&c, 0, sizeof c);
    c.meta = (net_meta){m_get, m_put, m_cas, NULL, NULL};
    c.enrollment = mode;
    memcpy(c.hostpubkey, svc_pk, 33);
    c.admin_pubkeys = (const uint8_t(*)[33])admin_pk;
    c.n_admin_pubkeys = 1;
    memset(c.admission_key, 0x5a, 32);
    return c;
}

/* Params = the service plus devices devs[0..nd), threshold t. */
typedef struct wallet {
    uint8_t meta[2 + 33 * 8];
    size_t len;
    net_params p;
    net_call call;
} wallet;

static void mk_wallet(wallet *w, const int *devs, int nd, int t)
{
    memset(w, 0, sizeof *w);
    w->meta[0] = (uint8_t)(nd + 1);
    memcpy(w->meta + 1, svc_pk, 33);
    for (int i = 0; i < nd; i++)
        memcpy(w->meta + 1 + 33 * (i + 1), dev_pk[devs[i]], 33);
    w->meta[1 + 33 * (nd + 1)] = (uint8_t)t;
    w->len = 2 + 33u * (nd + 1);
    assert_int_equal(net_params_parse(w->meta, w->len, &w->p), RT_OK);
    uint64_t blame;
    assert_int_equal(cg_wallet_id(w->p.hostpubkeys, w->p.n, w->p.t, w->call.key.b, &blame), RT_OK);
}

static json_t *hex_list(const int *devs, int nd)
{
    json_t *a = json_array();
    for (int i = 0; i < nd; i++) {
        char h[67];
        net_hex_encode(h, dev_pk[devs[i]], 33);
        json_array_append_new(a, json_string(h));
    }
    return a;
}

/* Mints a token for devs through the admin route; returns its secret hex. */
static void mint(net_admit *a, const int *devs, int nd, json_int_t ttl_s, char secret[65],
                 char id[65])
{
    json_t *body = json_pack("{s:o}", "hostpubkeys", hex_list(devs, nd));
    if (ttl_s) json_object_set_new(body, "ttl_s", json_integer(ttl_s));
    json_t *out = NULL;
    char err[256];
    assert_int_equal(
        net_admit_admin(a, NET_R_ADM_TOKENS, "", body, admin_pk, 1000, &out, err, sizeof err),
        RT_OK);
    snprintf(secret, 65, "%s", json_string_value(json_object_get(out, "token")));
    if (id) snprintf(id, 65, "%s", json_string_value(json_object_get(out, "token_id")));
    json_decref(out);
    json_decref(body);
}

static rt_status try_dkg(net_admit *a, int dev, wallet *w, const char *token, uint64_t now,
                         char *err, size_t errn)
{
    json_t *body = token ? json_pack("{s:s}", "token", token) : json_object();
    uint32_t retry;
    rt_status st = net_admit_dkg(a, dev_pk[dev], &w->p, &w->call, body, now, &retry, err, errn);
    json_decref(body);
    if (st == RT_OK) net_admit_dkg_done(a, dev_pk[dev]);
    return st;
}

static int setup(void **state)
{
    (void)state;
    map_reset();
    return 0;
}

/* ---- token buckets ----------------------------------------------------- */

static void test_limiter(void **state)
{
    (void)state;
    net_limiter *l = net_limiter_new(1024, 10, 5); /* 10/s, burst 5 */
    uint8_t k1[33] = {2, 1}, k2[33] = {2, 2};
    uint32_t retry;
    for (int i = 0; i < 5; i++)
        assert_true(net_limiter_take(l, k1, 33, 1000, &retry));
    assert_false(net_limiter_take(l, k1, 33, 1000, &retry));
    assert_true(retry > 0 && retry <= 100); /* the next token in 100 ms */
    /* One key's spending is not another's. */
    assert_true(net_limiter_take(l, k2, 33, 1000, &retry));
    /* Refill at the rate, capped at the burst. */
    assert_false(net_limiter_take(l, k1, 33, 1050, &retry));
    assert_true(net_limiter_take(l, k1, 33, 1100, &retry));
    assert_false(net_limiter_ok(l, k1, 33, 1100, &retry));
    for (int i = 0; i < 5; i++)
        assert_true(net_limiter_take(l, k1, 33, 100000, &retry));
    assert_false(net_limiter_take(l, k1, 33, 100000, &retry));
    net_limiter_free(l);

    /* A full table forgets the fullest buckets, never an empty one: a key
     * that spent its burst stays refused however many other keys come. */
    l = net_limiter_new(LIM_TEST_CAP, 1, 2);
    uint8_t spent[33] = {3, 9, 9};
    assert_true(net_limiter_take(l, spent, 33, 5000, &retry));
    assert_true(net_limiter_take(l, spent, 33, 5000, &retry));
    for (unsigned i = 0; i < 4 * LIM_TEST_CAP; i++) {
        uint8_t k[33] = {2, (uint8_t)(i >> 8), (uint8_t)i, 7};
        assert_true(net_limiter_take(l, k, 33, 5000, &retry)); /* fresh keys: full buckets */
    }
    assert_false(net_limiter_take(l, spent, 33, 5000, &retry));
    net_limiter_free(l);

    /* Rate 0: no limit. */
    l = net_limiter_new(16, 0, 0);
    for (int i = 0; i < 1000; i++)
        assert_true(net_limiter_take(l, k1, 33, 1, &retry));
    net_limiter_free(l);
}

/* ---- enrollment -------------------------------------------------------- */

static void test_token_enrolls_exactly_its_keys_once(void **state)
{
    (void)state;
    net_config c = base_cfg(NET_ENROLL_TOKEN);
    net_admit *a = net_admit_new(&c);
    char tok[65], err[256];
    int d01[] = {0, 1}, d0[] = {0}, d012[] = {0, 1, 2}, d02[] = {0, 2};
    mint(a, d01, 2, 0, tok, NULL);
    wallet w01, w0, w012, w02, w01b;
    mk_wallet(&w01, d01, 2, 2);
    mk_wallet(&w01b, d01, 2, 3); /* same devices, another wallet */
    mk_wallet(&w0, d0, 1, 2);
    mk_wallet(&w012, d012, 3, 2);
    mk_wallet(&w02, d02, 2, 2);

    /* No token, a malformed one, an unknown one. */
    assert_int_equal(try_dkg(a, 0, &w01, NULL, 2000, err, sizeof err), RT_PERMISSION_DENIED);
    assert_int_equal(try_dkg(a, 0, &w01, "zz", 2000, err, sizeof err), RT_INVALID_ARGUMENT);
    char other[65];
    memset(other, 'a', 64);
    other[64] = 0;
    assert_int_equal(try_dkg(a, 0, &w01, other, 2000, err, sizeof err), RT_PERMISSION_DENIED);
    /* Not exactly its keys: a subset, a superset, a different set. */
    assert_int_equal(try_dkg(a, 0, &w0, tok, 2000, err, sizeof err), RT_PERMISSION_DENIED);
    assert_int_equal(try_dkg(a, 0, &w012, tok, 2000, err, sizeof err), RT_PERMISSION_DENIED);
    assert_int_equal(try_dkg(a, 0, &w02, tok, 2000, err, sizeof err), RT_PERMISSION_DENIED);
    /* Exactly its keys: each device presents it for the same wallet. */
    assert_int_equal(try_dkg(a, 0, &w01, tok, 2000, err, sizeof err), RT_OK);
    assert_int_equal(try_dkg(a, 1, &w01, tok, 2000, err, sizeof err), RT_OK);
    assert_int_equal(try_dkg(a, 0, &w01, tok, 2000, err, sizeof err), RT_OK); /* a retry */
    /* Once: never for a second wallet, even of the same devices. */
    assert_int_equal(try_dkg(a, 0, &w01b, tok, 2000, err, sizeof err), RT_PERMISSION_DENIED);
    assert_non_null(strstr(err, "already used"));
    /* Open mode needs none of it. */
    net_admit_free(a);
    c = base_cfg(NET_ENROLL_OPEN);
    a = net_admit_new(&c);
    assert_int_equal(try_dkg(a, 0, &w0, NULL, 2000, err, sizeof err), RT_OK);
    net_admit_free(a);
}

typedef struct race_arg {
    net_admit *a;
    wallet *w;
    const char *tok;
    rt_status st;
} race_arg;

static void *race_main(void *p)
{
    race_arg *r = p;
    char err[256];
    r->st = try_dkg(r->a, 0, r->w, r->tok, 2000, err, sizeof err);
    return NULL;
}

/* Two wallets racing for one token: exactly one wins. */
static void test_token_race(void **state)
{
    (void)state;
    net_config c = base_cfg(NET_ENROLL_TOKEN);
    net_admit *a = net_admit_new(&c);
    int d0[] = {0};
    wallet w[8];
    race_arg r[8];
    pthread_t th[8];
    for (int round = 0; round < 10; round++) {
        char tok[65];
        mint(a, d0, 1, 0, tok, NULL);
        for (int i = 0; i < 8; i++) {
            mk_wallet(&w[i], d0, 1, 1);
            /* Distinct wallets of the same device: vary t via the id only. */
            w[i].call.key.b[0] ^= (uint8_t)(i + 1);
            r[i] = (race_arg){a, &w[i], tok, RT_UNKNOWN};
            assert_int_equal(pthread_create(&th[i], NULL, race_main, &r[i]), 0);
        }
        int wins = 0;
        for (int i = 0; i < 8; i++) {
            pthread_join(th[i], NULL);
            wins += r[i].st == RT_OK;
            assert_true(r[i].st == RT_OK || r[i].st == RT_PERMISSION_DENIED);
        }
        assert_int_equal(wins, 1);
    }
    net_admit_free(a);
}

static void test_token_revoked_expired_forged(void **state)
{
    (void)state;
    net_config c = base_cfg(NET_ENROLL_TOKEN);
    net_admit *a = net_admit_new(&c);
    int d0[] = {0};
    wallet w;
    mk_wallet(&w, d0, 1, 2);
    char tok[65], id[65], err[256];
    json_t *out;

    /* Revoked before use. */
    mint(a, d0, 1, 0, tok, id);
    assert_int_equal(
        net_admit_admin(a, NET_R_ADM_REVOKE, id, NULL, admin_pk, 1500, &out, err, sizeof err),
        RT_OK);
    json_decref(out);
    assert_int_equal(try_dkg(a, 0, &w, tok, 2000, err, sizeof err), RT_PERMISSION_DENIED);
    assert_non_null(strstr(err, "revoked"));

    /* Expired: minted at 1000 ms with a 10 s lifetime. */
    mint(a, d0, 1, 10, tok, NULL);
    assert_int_equal(try_dkg(a, 0, &w, tok, 1000 + 10000, err, sizeof err), RT_PERMISSION_DENIED);
    assert_non_null(strstr(err, "expired"));
    assert_int_equal(try_dkg(a, 0, &w, tok, 1000 + 9999, err, sizeof err), RT_OK);

    /* A record written by someone without the admission key (the database,
     * say) does not verify: flip one byte of a stored token. */
    mint(a, d0, 1, 0, tok, id);
    rt_key k;
    assert_true(net_hex_decode(k.b, 32, id, 64));
    ment *e = find(&k);
    assert_non_null(e);
    e->v[3 + 8 + 1] ^= 1; /* its expiry */
    assert_int_equal(try_dkg(a, 0, &w, tok, 2000, err, sizeof err), RT_PERMISSION_DENIED);
    assert_non_null(strstr(err, "integrity"));
    net_admit_free(a);

    /* Another service's admission key: nothing it minted verifies here. */
    c = base_cfg(NET_ENROLL_TOKEN);
    a = net_admit_new(&c);
    mint(a, d0, 1, 0, tok, NULL);
    net_admit_free(a);
    memset(c.admission_key, 0x77, 32);
    a = net_admit_new(&c);
    assert_int_equal(try_dkg(a, 0, &w, tok, 2000, err, sizeof err), RT_PERMISSION_DENIED);
    net_admit_free(a);
}

static void test_admin_grant_mode(void **state)
{
    (void)state;
    net_config c = base_cfg(NET_ENROLL_ADMIN);
    net_admit *a = net_admit_new(&c);
    int d01[] = {0, 1};
    wallet w;
    mk_wallet(&w, d01, 2, 2);
    char tok[65], err[256];
    /* Tokens do not enroll in admin mode. */
    mint(a, d01, 2, 0, tok, NULL);
    assert_int_equal(try_dkg(a, 0, &w, tok, 2000, err, sizeof err), RT_PERMISSION_DENIED);
    /* A grant of exactly these params does. */
    json_t *body = json_pack("{s:{s:[s,s,s],s:i}}", "params", "hostpubkeys", "", "", "", "t", 2);
    json_t *hp = json_object_get(json_object_get(body, "params"), "hostpubkeys");
    for (int i = 0; i < 3; i++) {
        char h[67];
        net_hex_encode(h, w.p.hostpubkeys + 33 * i, 33);
        json_array_set_new(hp, (size_t)i, json_string(h));
    }
    json_t *out = NULL;
    assert_int_equal(
        net_admit_admin(a, NET_R_ADM_GRANT, "", body, admin_pk, 1500, &out, err, sizeof err),
        RT_OK);
    char wid[65];
    net_hex_encode(wid, w.call.key.b, 32);
    assert_string_equal(json_string_value(json_object_get(out, "wallet_id")), wid);
    json_decref(out);
    json_decref(body);
    assert_int_equal(try_dkg(a, 0, &w, NULL, 2000, err, sizeof err), RT_OK);
    assert_int_equal(try_dkg(a, 1, &w, NULL, 2000, err, sizeof err), RT_OK);
    /* Other params of the same devices are not granted. */
    wallet w3;
    mk_wallet(&w3, d01, 2, 3);
    assert_int_equal(try_dkg(a, 0, &w3, NULL, 2000, err, sizeof err), RT_PERMISSION_DENIED);
    /* A grant is also accepted in token mode. */
    net_admit_free(a);
    c = base_cfg(NET_ENROLL_TOKEN);
    a = net_admit_new(&c);
    assert_int_equal(try_dkg(a, 0, &w, NULL, 2000, err, sizeof err), RT_OK);
    /* Store down: refused as unavailable, not admitted. */
    map_down = 1;
    assert_int_equal(try_dkg(a, 0, &w3, NULL, 2000, err, sizeof err), RT_UNAVAILABLE);
    map_down = 0;
    net_admit_free(a);
}

/* ---- quotas ------------------------------------------------------------ */

static void test_quotas(void **state)
{
    (void)state;
    net_config c = base_cfg(NET_ENROLL_OPEN);
    c.quota_wallets = 2;
    c.quota_pending_dkg = 3;
    c.max_pending_dkg = 5;
    net_admit *a = net_admit_new(&c);
    int d0[] = {0}, d01[] = {0, 1};
    wallet w, w01;
    mk_wallet(&w, d0, 1, 2);
    mk_wallet(&w01, d01, 2, 2);
    char err[256];
    uint32_t retry;
    json_t *body = json_object();

    /* Pending per key: three round 1s may wait, the fourth is refused. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            net_admit_dkg(a, dev_pk[0], &w.p, &w.call, body, 1, &retry, err, sizeof err), RT_OK);
    assert_int_equal(net_admit_dkg(a, dev_pk[0], &w.p, &w.call, body, 1, &retry, err, sizeof err),
                     RT_RESOURCE_EXHAUSTED);
    assert_true(retry > 0);
    /* All keys together: two more from another key, then the node is full. */
    for (int i = 0; i < 2; i++)
        assert_int_equal(
            net_admit_dkg(a, dev_pk[1], &w01.p, &w01.call, body, 1, &retry, err, sizeof err),
            RT_OK);
    assert_int_equal(
        net_admit_dkg(a, dev_pk[2], &w01.p, &w01.call, body, 1, &retry, err, sizeof err),
        RT_RESOURCE_EXHAUSTED);
    /* Slots come back when the requests end. */
    net_admit_dkg_done(a, dev_pk[0]);
    assert_int_equal(
        net_admit_dkg(a, dev_pk[2], &w01.p, &w01.call, body, 1, &retry, err, sizeof err), RT_OK);
    net_admit_dkg_done(a, dev_pk[2]);
    for (int i = 0; i < 2; i++) {
        net_admit_dkg_done(a, dev_pk[0]);
        net_admit_dkg_done(a, dev_pk[1]);
    }
    net_admit_dkg_done(a, dev_pk[0]); /* one too many: ignored */

    /* Wallets per key, durable: counted for every device of a new wallet. */
    net_admit_wallet_created(a, &w.p);
    assert_int_equal(net_admit_dkg(a, dev_pk[0], &w.p, &w.call, body, 1, &retry, err, sizeof err),
                     RT_OK);
    net_admit_dkg_done(a, dev_pk[0]);
    net_admit_wallet_created(a, &w01.p);
    assert_int_equal(net_admit_dkg(a, dev_pk[0], &w.p, &w.call, body, 1, &retry, err, sizeof err),
                     RT_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(err, "wallet quota"));
    /* Device 1 has one wallet: still below. The service's own key is never
     * counted. */
    assert_int_equal(
        net_admit_dkg(a, dev_pk[1], &w01.p, &w01.call, body, 1, &retry, err, sizeof err), RT_OK);
    net_admit_dkg_done(a, dev_pk[1]);
    /* The count survives a restart (it is in the store). */
    net_admit_free(a);
    a = net_admit_new(&c);
    assert_int_equal(net_admit_dkg(a, dev_pk[0], &w.p, &w.call, body, 1, &retry, err, sizeof err),
                     RT_RESOURCE_EXHAUSTED);
    /* A counter rewritten without the key is not trusted as a lower count. */
    rt_key qk;
    cx_tagged_hash(qk.b, "cosignerd/quota/v1", 18, dev_pk[0], 33);
    ment *e = find(&qk);
    assert_non_null(e);
    memset(e->v + 2, 0, 8);
    assert_int_equal(net_admit_dkg(a, dev_pk[0], &w.p, &w.call, body, 1, &retry, err, sizeof err),
                     RT_DATA_LOSS);
    json_decref(body);
    net_admit_free(a);
}

/* ---- audit ------------------------------------------------------------- */

static json_t *audit_page(net_admit *a, json_int_t after, json_int_t limit, rt_status *st)
{
    json_t *body = json_pack("{s:I,s:I}", "after", after, "limit", limit), *out = NULL;
    char err[256];
    *st = net_admit_admin(a, NET_R_ADM_AUDIT, "", body, admin_pk, 5000, &out, err, sizeof err);
    json_decref(body);
    return out;
}

static void test_audit_log(void **state)
{
    (void)state;
    net_config c = base_cfg(NET_ENROLL_TOKEN);
    net_admit *a = net_admit_new(&c);
    int d0[] = {0};
    char tok[65], id[65];
    for (int i = 0; i < 5; i++)
        mint(a, d0, 1, 0, tok, i == 2 ? id : NULL);
    /* One record per action, in order, paged. */
    rt_status st;
    json_t *p1 = audit_page(a, 0, 3, &st);
    assert_int_equal(st, RT_OK);
    json_t *recs = json_object_get(p1, "records");
    assert_int_equal(json_array_size(recs), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *r = json_array_get(recs, i);
        assert_int_equal(json_integer_value(json_object_get(r, "seq")), (json_int_t)i + 1);
        assert_string_equal(json_string_value(json_object_get(r, "action")), "token.mint");
    }
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(recs, 2), "detail"), "token_id")),
                        id);
    assert_int_equal(json_integer_value(json_object_get(p1, "next")), 3);
    json_decref(p1);
    json_t *p2 = audit_page(a, 3, 3, &st);
    assert_int_equal(json_array_size(json_object_get(p2, "records")), 2);
    assert_true(json_is_null(json_object_get(p2, "next")));
    json_decref(p2);

    /* A head that lags (a crash between a record and the head): the next
     * append walks past, nothing is overwritten. */
    rt_key hk;
    cx_tagged_hash(hk.b, "cosignerd/audit-head/v1", 23, NULL, 0);
    ment *h = find(&hk);
    assert_non_null(h);
    uint8_t *saved = malloc(h->n);
    memcpy(saved, h->v, h->n);
    size_t saved_n = h->n;
    mint(a, d0, 1, 0, tok, NULL); /* seq 6 */
    h = find(&hk);
    memcpy(h->v, saved, saved_n); /* back to seq 5 */
    free(saved);
    mint(a, d0, 1, 0, tok, NULL); /* must become seq 7 */
    json_t *p3 = audit_page(a, 0, 100, &st);
    assert_int_equal(st, RT_OK);
    assert_int_equal(json_array_size(json_object_get(p3, "records")), 7);
    json_decref(p3);

    /* Tampering with a record, or cutting one out of the chain, is found. */
    uint8_t b[8] = {0, 0, 0, 0, 0, 0, 0, 4}; /* seq 4, big-endian */
    rt_key k4;
    cx_tagged_hash(k4.b, "cosignerd/audit/v1", 18, b, 8);
    ment *e = find(&k4);
    assert_non_null(e);
    e->v[e->n - 40] ^= 1; /* a byte of its prev_mac */
    json_t *bad = audit_page(a, 0, 100, &st);
    assert_int_equal(st, RT_DATA_LOSS);
    json_decref(bad);
    net_admit_free(a);

    /* The codec on its own: round trip, and every single-byte flip fails. */
    net_audit_rec r, back;
    memset(&r, 0, sizeof r);
    r.seq = 9;
    r.ts_ms = 123;
    memcpy(r.admin, admin_pk, 33);
    snprintf(r.action, sizeof r.action, "wallet.retire");
    r.detail_len = (size_t)snprintf(r.detail, sizeof r.detail, "{\"x\":1}");
    uint8_t key[32] = {1}, buf[2048];
    size_t n = net_audit_encode(&r, key, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(net_audit_decode(buf, n, key, &back), RT_OK);
    assert_int_equal(back.seq, 9);
    assert_string_equal(back.action, "wallet.retire");
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 0x10;
        assert_int_equal(net_audit_decode(buf, n, key, &back), RT_DATA_LOSS);
        buf[i] ^= 0x10;
    }
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(net_audit_decode(buf, cut, key, &back), RT_DATA_LOSS);
}

static void test_admin_inputs(void **state)
{
    (void)state;
    net_config c = base_cfg(NET_ENROLL_TOKEN);
    net_admit *a = net_admit_new(&c);
    assert_true(net_admit_is_admin(a, admin_pk));
    assert_false(net_admit_is_admin(a, dev_pk[0]));
    char err[256], h[67];
    json_t *out = NULL;
    static const char *const bad[] = {
        "{}",
        "{\"hostpubkeys\": []}",
        "{\"hostpubkeys\": [\"02\"]}",
        "{\"hostpubkeys\": "
        "[\"050000000000000000000000000000000000000000000000000000000000000000\"]}",
        "{\"hostpubkeys\": [7]}",
        "{\"hostpubkeys\": \"x\"}",
        "{\"hostpubkeys\": [\"SVC\"]}",
        "{\"hostpubkeys\": [\"DEV\", \"DEV\"]}",
        "{\"hostpubkeys\": [\"DEV\"], \"ttl_s\": 0}",
        "{\"hostpubkeys\": [\"DEV\"], \"ttl_s\": \"1\"}",
        "{\"hostpubkeys\": [\"DEV\"], \"ttl_s\": 99999999999}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char txt[512];
        snprintf(txt, sizeof txt, "%s", bad[i]);
        char *p;
        while ((p = strstr(txt, "SVC"))) {
            net_hex_encode(h, svc_pk, 33);
            memmove(p + 66, p + 3, strlen(p + 3) + 1);
            memcpy(p, h, 66);
        }
        while ((p = strstr(txt, "DEV"))) {
            net_hex_encode(h, dev_pk[0], 33);
            memmove(p + 66, p + 3, strlen(p + 3) + 1);
            memcpy(p, h, 66);
        }
        json_t *body = json_loads(txt, 0, NULL);
        assert_non_null(body);
        assert_int_equal(
            net_admit_admin(a, NET_R_ADM_TOKENS, "", body, admin_pk, 1, &out, err, sizeof err),
            RT_INVALID_ARGUMENT);
        assert_null(out);
        json_decref(body);
    }
    /* Refused inputs left no audit record and no token. */
    rt_status st;
    json_t *p = audit_page(a, 0, 10, &st);
    assert_int_equal(json_array_size(json_object_get(p, "records")), 0);
    json_decref(p);
    assert_int_equal(
        net_admit_admin(a, NET_R_ADM_REVOKE, "nothex", NULL, admin_pk, 1, &out, err, sizeof err),
        RT_INVALID_ARGUMENT);
    char zero[65];
    memset(zero, '0', 64);
    zero[64] = 0;
    assert_int_equal(
        net_admit_admin(a, NET_R_ADM_REVOKE, zero, NULL, admin_pk, 1, &out, err, sizeof err),
        RT_NOT_FOUND);
    /* The store down: nothing is done without its audit record. */
    map_down = 1;
    json_t *body = json_pack("{s:o}", "hostpubkeys", hex_list((int[]){0}, 1));
    assert_int_equal(
        net_admit_admin(a, NET_R_ADM_TOKENS, "", body, admin_pk, 1, &out, err, sizeof err),
        RT_UNAVAILABLE);
    json_decref(body);
    map_down = 0;
    net_admit_free(a);
}

/* The token record codec: round trip, and no flip or cut survives. */
static void test_token_codec(void **state)
{
    (void)state;
    net_token t, back;
    memset(&t, 0, sizeof t);
    t.n = 3;
    t.state = NET_TOKEN_BOUND;
    t.expires_ms = 77;
    for (int i = 0; i < 3; i++)
        memcpy(t.keys[i], dev_pk[i], 33);
    uint8_t akey[32] = {9}, mk[32] = {8}, buf[2048];
    size_t n = net_token_encode(&t, akey, mk, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(net_token_decode(buf, n, akey, mk, &back), RT_OK);
    assert_int_equal(back.n, 3);
    assert_memory_equal(back.keys[2], dev_pk[2], 33);
    /* Bound to its record key: the same bytes under another token's key fail. */
    uint8_t mk2[32] = {7};
    assert_int_equal(net_token_decode(buf, n, akey, mk2, &back), RT_DATA_LOSS);
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 1;
        assert_int_equal(net_token_decode(buf, n, akey, mk, &back), RT_DATA_LOSS);
        buf[i] ^= 1;
    }
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(net_token_decode(buf, cut, akey, mk, &back), RT_DATA_LOSS);
    t.n = 0;
    assert_int_equal(net_token_encode(&t, akey, mk, buf, sizeof buf), 0);
}

int main(void)
{
    assert_true(cx_init());
    keypair(svc_pk, 1);
    keypair(admin_pk, 2);
    for (int i = 0; i < 4; i++)
        keypair(dev_pk[i], (uint8_t)(10 + i));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_limiter, setup),
        cmocka_unit_test_setup(test_token_enrolls_exactly_its_keys_once, setup),
        cmocka_unit_test_setup(test_token_race, setup),
        cmocka_unit_test_setup(test_token_revoked_expired_forged, setup),
        cmocka_unit_test_setup(test_admin_grant_mode, setup),
        cmocka_unit_test_setup(test_quotas, setup),
        cmocka_unit_test_setup(test_audit_log, setup),
        cmocka_unit_test_setup(test_admin_inputs, setup),
        cmocka_unit_test_setup(test_token_codec, setup),
    };
    int rc = cmocka_run_group_tests_name("admit", tests, NULL, NULL);
    map_reset();
    return rc;
}
