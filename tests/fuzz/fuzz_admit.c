/*
 * fuzz_admit.c — admission control's parsers, in process: the durable
 * token and audit records (net_token_decode, net_audit_decode, as read back
 * from a store anyone with database access could have written), the admin
 * routes' JSON bodies (mint, revoke, grant, list, audit) and the token a
 * DKG round 1 carries.
 *
 * Input: byte 0 picks the target, the rest is the data.
 *   0  token record bytes        1  audit record bytes
 *   2..7  an admin route body (JSON text): tokens, revoke (the body is the
 *         path argument), enrollments, wallets/list, wallets/{id}, audit/list
 *   8  a DKG round 1 body (JSON text) for a fixed one-device wallet
 *
 * Oracles beyond memory safety:
 *   records  decode returns RT_OK or RT_DATA_LOSS; what decodes re-encodes
 *            to the same bytes (the encoding is canonical), so no two byte
 *            strings mean the same record.
 *   admin    RT_OK exactly when a reply object is returned; refusals leave
 *            *out NULL; a minted token then enrolls its keys (and only a
 *            wallet of exactly them).
 *   dkg      a round 1 without a valid token is never admitted in token
 *            mode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_wallet_id.h"
#include "cx.h"
#include "fuzz.h"
#include "net_admit.h"

/* A tiny metadata map with compare-and-swap (reset for every input). */
#define MAP_MAX 64
static struct {
    rt_key k;
    uint8_t *v;
    size_t n;
    int used;
} map[MAP_MAX];

static int find(const rt_key *k)
{
    for (int i = 0; i < MAP_MAX; i++)
        if (map[i].used && !memcmp(map[i].k.b, k->b, 32)) return i;
    return -1;
}

static rt_status m_get(void *ud, const rt_key *k, uint8_t **v, size_t *n)
{
    (void)ud;
    int i = find(k);
    if (i < 0) return RT_NOT_FOUND;
    *v = malloc(map[i].n ? map[i].n : 1);
    if (!*v) return RT_RESOURCE_EXHAUSTED;
    memcpy(*v, map[i].v, map[i].n);
    *n = map[i].n;
    return RT_OK;
}

static rt_status m_put(void *ud, const rt_key *k, const uint8_t *v, size_t n)
{
    (void)ud;
    int i = find(k);
    for (int j = 0; i < 0 && j < MAP_MAX; j++)
        if (!map[j].used) i = j;
    if (i < 0) return RT_UNAVAILABLE;
    free(map[i].v);
    map[i].v = malloc(n ? n : 1);
    if (!map[i].v) return RT_RESOURCE_EXHAUSTED;
    memcpy(map[i].v, v, n);
    map[i].n = n;
    map[i].k = *k;
    map[i].used = 1;
    return RT_OK;
}

static rt_status m_cas(void *ud, const rt_key *k, const uint8_t *ex, size_t exn, const uint8_t *v,
                       size_t n)
{
    int i = find(k);
    int same = ex ? i >= 0 && map[i].n == exn && !memcmp(map[i].v, ex, exn) : i < 0;
    return same ? m_put(ud, k, v, n) : RT_ABORTED;
}

static rt_status m_list(void *ud, const rt_key *after, rt_key *ids, uint64_t *versions, size_t max,
                        size_t *n)
{
    (void)ud, (void)after, (void)ids, (void)versions, (void)max;
    *n = 0;
    return RT_OK;
}

static void map_reset(void)
{
    for (int i = 0; i < MAP_MAX; i++) {
        free(map[i].v);
        memset(&map[i], 0, sizeof map[i]);
    }
}

static uint8_t svc_pk[33], admin_pk[33], dev_pk[33];
static net_params wp;
static uint8_t wmeta[2 + 66];
static net_call wcall;

static void setup(void)
{
    static int ready;
    if (ready) return;
    FUZZ_CHECK(cx_init());
    uint8_t sk[32];
    memset(sk, 1, 32);
    FUZZ_CHECK(cx_pubkey_from_seckey(svc_pk, sk));
    memset(sk, 2, 32);
    FUZZ_CHECK(cx_pubkey_from_seckey(admin_pk, sk));
    memset(sk, 3, 32);
    FUZZ_CHECK(cx_pubkey_from_seckey(dev_pk, sk));
    wmeta[0] = 2;
    memcpy(wmeta + 1, svc_pk, 33);
    memcpy(wmeta + 34, dev_pk, 33);
    wmeta[67] = 2;
    FUZZ_CHECK(net_params_parse(wmeta, sizeof wmeta, &wp) == RT_OK);
    uint64_t blame;
    FUZZ_CHECK(cg_wallet_id(wp.hostpubkeys, 2, 2, wcall.key.b, &blame) == RT_OK);
    ready = 1;
}

static net_admit *admit_new(void)
{
    net_config c;
    memset(&c, 0, sizeof c);
    c.meta = (net_meta){m_get, m_put, m_cas, m_list, NULL};
    c.enrollment = NET_ENROLL_TOKEN;
    memcpy(c.hostpubkey, svc_pk, 33);
    c.admin_pubkeys = (const uint8_t(*)[33])admin_pk;
    c.n_admin_pubkeys = 1;
    memset(c.admission_key, 0x5a, 32);
    c.quota_wallets = 4;
    c.quota_pending_dkg = 4;
    net_admit *a = net_admit_new(&c);
    FUZZ_CHECK(a != NULL);
    return a;
}

static const uint8_t AKEY[32] = {0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
                                 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
                                 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a};

static void records(int which, const uint8_t *d, size_t n)
{
    uint8_t out[4096];
    if (which == 0) {
        static const uint8_t mk[32] = {7};
        net_token t;
        rt_status st = net_token_decode(d, n, AKEY, mk, &t);
        FUZZ_CHECK(st == RT_OK || st == RT_DATA_LOSS);
        if (st == RT_OK) {
            size_t m = net_token_encode(&t, AKEY, mk, out, sizeof out);
            FUZZ_CHECK(m == n && !memcmp(out, d, n));
        }
    } else {
        net_audit_rec *r = malloc(sizeof *r);
        FUZZ_CHECK(r != NULL);
        rt_status st = net_audit_decode(d, n, AKEY, r);
        FUZZ_CHECK(st == RT_OK || st == RT_DATA_LOSS);
        if (st == RT_OK) {
            size_t m = net_audit_encode(r, AKEY, out, sizeof out);
            FUZZ_CHECK(m == n && !memcmp(out, d, n));
        }
        free(r);
    }
}

static const int admin_routes[] = {NET_R_ADM_TOKENS,  NET_R_ADM_REVOKE, NET_R_ADM_GRANT,
                                   NET_R_ADM_WALLETS, NET_R_ADM_WALLET, NET_R_ADM_AUDIT};

static void admin(int which, const uint8_t *d, size_t n)
{
    net_admit *a = admit_new();
    int route = admin_routes[which];
    char arg[128] = "", err[256];
    json_t *body = NULL;
    if (route == NET_R_ADM_REVOKE || route == NET_R_ADM_WALLET) {
        snprintf(arg, sizeof arg, "%.*s", (int)(n < 127 ? n : 127), (const char *)d);
    } else {
        body = json_loadb((const char *)d, n, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(body)) {
            json_decref(body);
            net_admit_free(a);
            return;
        }
    }
    json_t *out = (json_t *)1;
    rt_status st = net_admit_admin(a, route, arg, body, admin_pk, 1000, &out, err, sizeof err);
    FUZZ_CHECK((st == RT_OK) == (out != NULL));
    if (st == RT_OK && route == NET_R_ADM_TOKENS) {
        /* The token enrolls a wallet of exactly its keys, and only that. */
        json_t *tok = json_object_get(out, "token");
        json_t *keys = json_object_get(out, "hostpubkeys");
        FUZZ_CHECK(json_is_string(tok) && json_is_array(keys));
        json_t *db = json_pack("{s:O}", "token", tok);
        uint32_t retry;
        char dh[67];
        net_hex_encode(dh, dev_pk, 33);
        int exact = json_array_size(keys) == 1 &&
                    !strcasecmp(json_string_value(json_array_get(keys, 0)), dh);
        st = net_admit_dkg(a, dev_pk, &wp, &wcall, db, 2000, &retry, err, sizeof err);
        FUZZ_CHECK((st == RT_OK) == exact);
        if (st == RT_OK) net_admit_dkg_done(a, dev_pk);
        json_decref(db);
    }
    json_decref(out == (json_t *)1 ? NULL : out);
    json_decref(body);
    net_admit_free(a);
}

static void dkg(const uint8_t *d, size_t n)
{
    net_admit *a = admit_new();
    json_t *body = json_loadb((const char *)d, n, 0, NULL);
    if (json_is_object(body)) {
        char err[256];
        uint32_t retry;
        /* No token was ever minted here: nothing may be admitted. */
        rt_status st = net_admit_dkg(a, dev_pk, &wp, &wcall, body, 2000, &retry, err, sizeof err);
        FUZZ_CHECK(st == RT_PERMISSION_DENIED || st == RT_INVALID_ARGUMENT);
    }
    json_decref(body);
    net_admit_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    map_reset();
    if (size < 1) return 0;
    int sel = data[0] % 9;
    if (sel <= 1)
        records(sel, data + 1, size - 1);
    else if (sel <= 7)
        admin(sel - 2, data + 1, size - 1);
    else
        dkg(data + 1, size - 1);
    map_reset();
    return 0;
}

static int seed_str(const char *dir, const char *name, uint8_t sel, const char *s)
{
    size_t n = strlen(s);
    uint8_t *b = malloc(n + 1);
    FUZZ_CHECK(b != NULL);
    b[0] = sel;
    memcpy(b + 1, s, n);
    int ok = fuzz_seed(dir, name, b, n + 1);
    free(b);
    return ok;
}

int fuzz_write_seeds(const char *dir)
{
    setup();
    int n = 0;
    uint8_t buf[4096];
    /* A valid token record and a valid audit record. */
    net_token t;
    memset(&t, 0, sizeof t);
    t.n = 1;
    t.expires_ms = 99;
    memcpy(t.keys[0], dev_pk, 33);
    static const uint8_t mk[32] = {7};
    buf[0] = 0;
    size_t len = net_token_encode(&t, AKEY, mk, buf + 1, sizeof buf - 1);
    n += fuzz_seed(dir, "token_record", buf, len + 1);
    net_audit_rec r;
    memset(&r, 0, sizeof r);
    r.seq = 1;
    snprintf(r.action, sizeof r.action, "token.mint");
    r.detail_len = (size_t)snprintf(r.detail, sizeof r.detail, "{\"a\":1}");
    buf[0] = 1;
    len = net_audit_encode(&r, AKEY, buf + 1, sizeof buf - 1);
    n += fuzz_seed(dir, "audit_record", buf, len + 1);
    char dh[67], sh[67], s[1024];
    net_hex_encode(dh, dev_pk, 33);
    net_hex_encode(sh, svc_pk, 33);
    snprintf(s, sizeof s, "{\"hostpubkeys\":[\"%s\"],\"ttl_s\":60}", dh);
    n += seed_str(dir, "mint", 2, s);
    snprintf(s, sizeof s, "{\"hostpubkeys\":[\"%s\",\"%s\"]}", dh, sh);
    n += seed_str(dir, "mint_service_key", 2, s);
    n += seed_str(dir, "revoke", 3,
                  "0000000000000000000000000000000000000000000000000000000000000000");
    snprintf(s, sizeof s, "{\"params\":{\"hostpubkeys\":[\"%s\",\"%s\"],\"t\":2}}", sh, dh);
    n += seed_str(dir, "grant", 4, s);
    n += seed_str(dir, "list", 5, "{\"limit\":10,\"after\":null}");
    n += seed_str(dir, "show", 6, "aa");
    n += seed_str(dir, "audit", 7, "{\"after\":0,\"limit\":5}");
    n += seed_str(
        dir, "dkg_token", 8,
        "{\"token\":\"0000000000000000000000000000000000000000000000000000000000000000\"}");
    n += seed_str(dir, "dkg_no_token", 8, "{}");
    return n;
}
