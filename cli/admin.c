/*
 * admin.c — `cosigner-cli admin ...`: signed requests to the admin routes
 * with the operator's admin key (API.md, "Admin"). Every command prints the
 * service's JSON answer on one line and exits 0 only on HTTP 200, so
 * scripts can chain them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cx.h"
#include "http.h"
#include "net.h"

int admin_read_key(const char *path, uint8_t sk[32], uint8_t pk[33])
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[80] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    int ok = net_hex_decode(sk, 32, buf, n) && cx_pubkey_from_seckey(pk, sk);
    cx_wipe(buf, sizeof buf);
    return ok;
}

typedef struct result {
    long code;
    json_t *resp;
    char err[256];
} result;

static void on_done(void *arg, long code, json_t *resp, const char *err)
{
    result *r = arg;
    r->code = code;
    r->resp = resp ? json_incref(resp) : NULL;
    snprintf(r->err, sizeof r->err, "%s", err ? err : "");
}

long admin_call(const char *url, const char *method, const char *path, json_t *body,
                const uint8_t sk[32], json_t **resp, char *err, size_t errn)
{
    result r = {0, NULL, ""};
    *resp = NULL;
    http_client *c = http_new(url, 1);
    if (!c) {
        json_decref(body);
        snprintf(err, errn, "cannot create an HTTP client");
        return 0;
    }
    http_request(c, method, path, body, sk, on_done, &r); /* takes body */
    http_run(c, NULL, NULL);
    http_free(c);
    *resp = r.resp;
    snprintf(err, errn, "%s", r.err);
    return r.code;
}

static result call(const char *url, const char *method, const char *path, json_t *body,
                   const uint8_t sk[32])
{
    result r = {0, NULL, ""};
    r.code = admin_call(url, method, path, body, sk, &r.resp, r.err, sizeof r.err);
    return r;
}

int admin_mint_token(const char *url, const uint8_t admin_sk[32], const uint8_t (*keys)[33],
                     size_t n, char token_hex[65], char *err, size_t errn)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char h[67];
        net_hex_encode(h, keys[i], 33);
        json_array_append_new(arr, json_string(h));
    }
    result r =
        call(url, "POST", "/v1/admin/tokens", json_pack("{s:o}", "hostpubkeys", arr), admin_sk);
    json_t *t = r.resp ? json_object_get(r.resp, "token") : NULL;
    int ok = r.code == 200 && json_is_string(t) && json_string_length(t) == 64;
    if (ok) {
        memcpy(token_hex, json_string_value(t), 65);
    } else {
        json_t *m = r.resp ? json_object_get(json_object_get(r.resp, "error"), "message") : NULL;
        snprintf(err, errn, "mint token: HTTP %ld %s", r.code,
                 json_is_string(m) ? json_string_value(m) : r.err);
    }
    json_decref(r.resp);
    return ok;
}

static void usage_admin(void)
{
    fprintf(stderr,
            "usage: cosigner-cli [--url URL] admin COMMAND --admin-key FILE [ARGS]\n"
            "  enroll  --device HEX33|--device-key FILE ... [--ttl-s N]\n"
            "          mint a one-time enrollment token for exactly these device keys\n"
            "  revoke  --token-id HEX32          revoke a token\n"
            "  grant   --params JSON             allow one wallet's params (enrollment = admin)\n"
            "  wallets [--after HEX32] [--limit N]  list wallets, paged\n"
            "  wallet  --wallet HEX32            show one wallet\n"
            "  audit   [--after SEQ] [--limit N] read the audit log, paged\n"
            "  retire  --wallet ID|WALLET [--grace-s N]  retire a wallet\n");
}

int cli_admin(const char *url, int argc, char **argv)
{
    if (argc < 1) {
        usage_admin();
        return 2;
    }
    const char *sub = argv[0];
    const char *keyf = NULL, *after = NULL, *wallet = NULL, *token_id = NULL, *params = NULL;
    long long limit = -1, ttl = -1, after_seq = -1;
    json_t *devices = json_array();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) break;
        if (!strcmp(a, "--admin-key"))
            keyf = v;
        else if (!strcmp(a, "--device"))
            json_array_append_new(devices, json_string(v));
        else if (!strcmp(a, "--device-key")) {
            uint8_t dsk[32], dpk[33];
            char h[67];
            if (!admin_read_key(v, dsk, dpk)) {
                fprintf(stderr, "cosigner-cli: admin: cannot read device key %s\n", v);
                json_decref(devices);
                return 1;
            }
            cx_wipe(dsk, sizeof dsk);
            net_hex_encode(h, dpk, 33);
            json_array_append_new(devices, json_string(h));
        } else if (!strcmp(a, "--ttl-s"))
            ttl = atoll(v);
        else if (!strcmp(a, "--after")) {
            after = v;
            after_seq = atoll(v);
        } else if (!strcmp(a, "--limit"))
            limit = atoll(v);
        else if (!strcmp(a, "--wallet"))
            wallet = v;
        else if (!strcmp(a, "--token-id"))
            token_id = v;
        else if (!strcmp(a, "--params"))
            params = v;
        else {
            fprintf(stderr, "cosigner-cli: admin: unknown argument %s\n", a);
            json_decref(devices);
            return 2;
        }
        i++;
    }
    uint8_t sk[32], pk[33];
    if (!keyf || !admin_read_key(keyf, sk, pk)) {
        fprintf(stderr, "cosigner-cli: admin: need --admin-key FILE (a readable secret key)\n");
        json_decref(devices);
        return 2;
    }
    char path[256];
    const char *method = "POST";
    json_t *body = json_object();
    if (!strcmp(sub, "enroll")) {
        snprintf(path, sizeof path, "/v1/admin/tokens");
        json_object_set(body, "hostpubkeys", devices);
        if (ttl > 0) json_object_set_new(body, "ttl_s", json_integer(ttl));
    } else if (!strcmp(sub, "revoke") && token_id) {
        snprintf(path, sizeof path, "/v1/admin/tokens/%.64s/revoke", token_id);
    } else if (!strcmp(sub, "grant") && params) {
        json_error_t je;
        json_t *p = json_loads(params, 0, &je);
        if (!p) p = json_load_file(params, 0, &je);
        if (!p) {
            fprintf(stderr, "cosigner-cli: admin grant: --params: %s\n", je.text);
            json_decref(body);
            json_decref(devices);
            cx_wipe(sk, sizeof sk);
            return 2;
        }
        json_object_set_new(body, "params", p);
        snprintf(path, sizeof path, "/v1/admin/enrollments");
    } else if (!strcmp(sub, "wallets")) {
        snprintf(path, sizeof path, "/v1/admin/wallets/list");
        if (after) json_object_set_new(body, "after", json_string(after));
        if (limit > 0) json_object_set_new(body, "limit", json_integer(limit));
    } else if (!strcmp(sub, "wallet") && wallet) {
        snprintf(path, sizeof path, "/v1/admin/wallets/%.64s", wallet);
        method = "GET";
        json_decref(body);
        body = NULL;
    } else if (!strcmp(sub, "audit")) {
        snprintf(path, sizeof path, "/v1/admin/audit/list");
        if (after_seq >= 0) json_object_set_new(body, "after", json_integer(after_seq));
        if (limit > 0) json_object_set_new(body, "limit", json_integer(limit));
    } else {
        usage_admin();
        json_decref(body);
        json_decref(devices);
        cx_wipe(sk, sizeof sk);
        return 2;
    }
    json_decref(devices);
    result r = call(url, method, path, body, sk);
    cx_wipe(sk, sizeof sk);
    if (r.resp) {
        char *s = json_dumps(r.resp, JSON_COMPACT);
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(r.resp);
    } else {
        printf("{\"error\":{\"code\":\"TRANSPORT\",\"message\":\"%s\"}}\n", r.err);
    }
    return r.code == 200 ? 0 : 1;
}
