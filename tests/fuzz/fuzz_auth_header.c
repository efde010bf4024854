/*
 * fuzz_auth_header.c — the Authorization header of API.md, in process:
 * net_auth_parse() on arbitrary header values and net_auth_verify() on
 * whatever parses, without the HTTP server around them (fuzz_net_auth
 * reaches the same code over loopback, at a fraction of the speed).
 *
 * Input: byte 0 picks the request (method: bits 0-1, path: the rest), then
 * the header value up to the first '\n' (a NUL ends it early, as it would a
 * C string), then the request body (any bytes).
 *
 * Oracles beyond memory safety:
 *   parse   returns 0 or 1; success needs the scheme, and fills every field
 *           (the result does not depend on what *out held before); what
 *           parses prints back canonically and parses to the same header;
 *           ts has at most 19 digits, so it never wraps.
 *   verify  returns RT_OK or RT_UNAUTHENTICATED with a reason of its
 *           contract (STALE, MALFORMED, BAD_SIG); STALE exactly when ts is
 *           outside the window; a pk that is not a point is MALFORMED; a
 *           verified signature binds the method, path, body, ts and nonce:
 *           changing any of them (or the signature) fails with BAD_SIG.
 *
 * The seeds sign their requests (fuzz_write_seeds) at the target's fixed
 * clock, so the replay and every fuzzing run take the verified path too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx.h"
#include "fuzz.h"
#include "net_int.h"

#define NOW_MS 1700000000000ull
#define WINDOW_MS 300000ull

static const char *const methods[] = {"GET", "POST", "HEAD", "OPTIONS"};
#define N_PATHS 5
static char paths[N_PATHS][520];

static void setup(void)
{
    static int ready;
    if (ready) return;
    FUZZ_CHECK(cx_init());
    char w[65];
    memset(w, 'a', 64);
    w[64] = 0;
    snprintf(paths[0], sizeof paths[0], "/v1/dkg/round1");
    snprintf(paths[1], sizeof paths[1], "/v1/dkg/round2");
    snprintf(paths[2], sizeof paths[2], "/v1/wallets/%s", w);
    snprintf(paths[3], sizeof paths[3], "/v1/wallets/%s/sign/round1", w);
    /* The longest path the server keeps (req.path is 520 bytes). */
    memset(paths[4], 'p', sizeof paths[4] - 1);
    paths[4][0] = '/';
    paths[4][sizeof paths[4] - 1] = 0;
    ready = 1;
}

static int same_hdr(const net_auth_hdr *a, const net_auth_hdr *b)
{
    return !memcmp(a->pk, b->pk, 33) && a->ts_ms == b->ts_ms && !memcmp(a->nonce, b->nonce, 16) &&
           !memcmp(a->sig, b->sig, 64);
}

static rt_status verify(const net_auth_hdr *h, const char *method, const char *path,
                        const uint8_t *body, size_t len, int *why)
{
    *why = -1;
    rt_status st = net_auth_verify(h, method, path, body, len, NOW_MS, WINDOW_MS, why);
    FUZZ_CHECK(st == RT_OK || st == RT_UNAUTHENTICATED);
    if (st != RT_OK)
        FUZZ_CHECK(*why == NET_AF_STALE || *why == NET_AF_MALFORMED || *why == NET_AF_BAD_SIG);
    return st;
}

/* A verified request: any change to what the signature covers must fail. */
static void check_binding(const net_auth_hdr *h, unsigned m, unsigned p, const uint8_t *body,
                          size_t len)
{
    int why;
    net_auth_hdr x;
    /* another method */
    FUZZ_CHECK(verify(h, methods[(m + 1) % 4], paths[p], body, len, &why) != RT_OK);
    FUZZ_CHECK(why == NET_AF_BAD_SIG);
    /* another path, one character off */
    char path[sizeof paths[0]];
    memcpy(path, paths[p], sizeof path);
    size_t pl = strlen(path);
    path[pl - 1] = path[pl - 1] == 'x' ? 'y' : 'x';
    FUZZ_CHECK(verify(h, methods[m], path, body, len, &why) != RT_OK);
    FUZZ_CHECK(why == NET_AF_BAD_SIG);
    /* another body: one more byte, and (if any) its first byte flipped */
    uint8_t *b = malloc(len + 1);
    FUZZ_CHECK(b != NULL);
    if (len) memcpy(b, body, len);
    b[len] = 0;
    FUZZ_CHECK(verify(h, methods[m], paths[p], b, len + 1, &why) != RT_OK);
    FUZZ_CHECK(why == NET_AF_BAD_SIG);
    if (len) {
        b[0] ^= 1;
        FUZZ_CHECK(verify(h, methods[m], paths[p], b, len, &why) != RT_OK);
        FUZZ_CHECK(why == NET_AF_BAD_SIG);
    }
    free(b);
    /* another nonce, another signature */
    x = *h;
    x.nonce[15] ^= 1;
    FUZZ_CHECK(verify(&x, methods[m], paths[p], body, len, &why) != RT_OK);
    FUZZ_CHECK(why == NET_AF_BAD_SIG);
    x = *h;
    x.sig[63] ^= 1;
    FUZZ_CHECK(verify(&x, methods[m], paths[p], body, len, &why) != RT_OK);
    FUZZ_CHECK(why == NET_AF_BAD_SIG);
    /* another timestamp (stale or not, never accepted) */
    x = *h;
    x.ts_ms = h->ts_ms ^ 1;
    FUZZ_CHECK(verify(&x, methods[m], paths[p], body, len, &why) != RT_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1) return 0;
    unsigned m = data[0] & 3, p = (unsigned)(data[0] >> 2) % N_PATHS;
    const uint8_t *nl = memchr(data + 1, '\n', size - 1);
    size_t vl = nl ? (size_t)(nl - (data + 1)) : size - 1;
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t bl = (size_t)(data + size - body);
    /* An exact-size, NUL-terminated copy: ASan sees any read past the value. */
    char *v = malloc(vl + 1);
    FUZZ_CHECK(v != NULL);
    memcpy(v, data + 1, vl);
    v[vl] = 0;

    net_auth_hdr h, h2;
    memset(&h, 0, sizeof h);
    memset(&h2, 0xff, sizeof h2);
    int ok = net_auth_parse(&h, v);
    FUZZ_CHECK(ok == 0 || ok == 1);
    FUZZ_CHECK(net_auth_parse(&h2, v) == ok);
    if (!ok) {
        free(v);
        return 0;
    }
    FUZZ_CHECK(!strncmp(v, "Cosigner-BIP340", 15) && (v[15] == ' ' || v[15] == '\t'));
    FUZZ_CHECK(same_hdr(&h, &h2)); /* every field written */
    FUZZ_CHECK(h.ts_ms <= 9999999999999999999ull);
    free(v);

    /* Canonical form: what the CLI sends (net_auth_header's layout). */
    char pk[67], nonce[33], sig[129], canon[NET_AUTH_HDR_MAX];
    net_hex_encode(pk, h.pk, 33);
    net_hex_encode(nonce, h.nonce, 16);
    net_hex_encode(sig, h.sig, 64);
    int cl = snprintf(canon, sizeof canon, "Cosigner-BIP340 pk=%s, ts=%llu, nonce=%s, sig=%s", pk,
                      (unsigned long long)h.ts_ms, nonce, sig);
    FUZZ_CHECK(cl > 0 && (size_t)cl < sizeof canon);
    memset(&h2, 0, sizeof h2);
    FUZZ_CHECK(net_auth_parse(&h2, canon) == 1 && same_hdr(&h, &h2));

    int why;
    rt_status st = verify(&h, methods[m], paths[p], body, bl, &why);
    uint64_t d = NOW_MS > h.ts_ms ? NOW_MS - h.ts_ms : h.ts_ms - NOW_MS;
    if (d > WINDOW_MS) {
        FUZZ_CHECK(st == RT_UNAUTHENTICATED && why == NET_AF_STALE);
        return 0;
    }
    if (st != RT_OK) FUZZ_CHECK(why != NET_AF_STALE);
    uint8_t pt[64];
    if (!cx_point_parse(pt, h.pk, 0))
        FUZZ_CHECK(st == RT_UNAUTHENTICATED && why == NET_AF_MALFORMED);
    if (st == RT_OK) check_binding(&h, m, p, body, bl);
    return 0;
}

/* ---- seeds ------------------------------------------------------------- */

/* One input: request selector, header value, '\n', body. */
static int seed(const char *dir, const char *name, unsigned m, unsigned p, const char *hdr,
                const char *body)
{
    size_t hl = strlen(hdr), bl = body ? strlen(body) : 0;
    uint8_t *b = malloc(1 + hl + 1 + bl);
    if (!b) return 0;
    b[0] = (uint8_t)(m | p << 2);
    memcpy(b + 1, hdr, hl);
    size_t n = 1 + hl;
    if (body) {
        b[n++] = '\n';
        memcpy(b + n, body, bl);
        n += bl;
    }
    int ok = fuzz_seed(dir, name, b, n);
    free(b);
    return ok;
}

/* A header signed by sk for (m, p, body) at ts, or with a field replaced. */
static void signed_hdr(char out[NET_AUTH_HDR_MAX], const uint8_t sk[32], unsigned m, unsigned p,
                       uint64_t ts, const char *body)
{
    FUZZ_CHECK(net_auth_header(out, sk, methods[m], paths[p], ts, (const uint8_t *)body,
                               body ? strlen(body) : 0));
}

static void upper(char *out, const char *hex)
{
    do
        *out++ = *hex >= 'a' && *hex <= 'f' ? (char)(*hex - 'a' + 'A') : *hex;
    while (*hex++);
}

int fuzz_write_seeds(const char *dir)
{
    setup();
    uint8_t sk[32];
    memset(sk, 0x42, 32);
    char h[NET_AUTH_HDR_MAX], s[2 * NET_AUTH_HDR_MAX], name[64];
    int n = 0;
    static const char *const bodies[] = {NULL, "{}", "{\"wallet_id\":\"00\",\"pmsg2\":\"00\"}"};
    /* Verified requests: every path, methods and bodies around. */
    for (unsigned p = 0; p < N_PATHS; p++) {
        unsigned m = p % 4;
        const char *body = bodies[p % 3];
        signed_hdr(h, sk, m, p, NOW_MS, body);
        snprintf(name, sizeof name, "valid_%u", p);
        n += seed(dir, name, m, p, h, body);
    }
    /* The window's edges: exactly W away is accepted, W + 1 is stale. */
    signed_hdr(h, sk, 1, 0, NOW_MS - WINDOW_MS, "{}");
    n += seed(dir, "edge_past", 1, 0, h, "{}");
    signed_hdr(h, sk, 1, 0, NOW_MS + WINDOW_MS, "{}");
    n += seed(dir, "edge_future", 1, 0, h, "{}");
    signed_hdr(h, sk, 1, 0, NOW_MS - WINDOW_MS - 1, "{}");
    n += seed(dir, "stale", 1, 0, h, "{}");
    /* Layout variants that still parse: tabs, no spaces, another order,
     * upper-case hex. */
    signed_hdr(h, sk, 0, 2, NOW_MS, NULL);
    char pk[67], ts[24], nonce[33], sig[129];
    FUZZ_CHECK(sscanf(h,
                      "Cosigner-BIP340 pk=%66[0-9a-f], ts=%23[0-9], nonce=%32[0-9a-f], sig=%128s",
                      pk, ts, nonce, sig) == 4);
    snprintf(s, sizeof s, "Cosigner-BIP340\tpk=%s,ts=%s,nonce=%s,sig=%s", pk, ts, nonce, sig);
    n += seed(dir, "tabs_no_spaces", 0, 2, s, NULL);
    snprintf(s, sizeof s, "Cosigner-BIP340 sig=%s , nonce=%s ,ts=%s,\t pk=%s\t", sig, nonce, ts,
             pk);
    n += seed(dir, "reordered", 0, 2, s, NULL);
    char upk[67], unonce[33], usig[129];
    upper(upk, pk);
    upper(unonce, nonce);
    upper(usig, sig);
    snprintf(s, sizeof s, "Cosigner-BIP340 pk=%s, ts=%s, nonce=%s, sig=%s", upk, ts, unonce, usig);
    n += seed(dir, "upper_hex", 0, 2, s, NULL);
    /* Parses, but the pk is no point: MALFORMED, not BAD_SIG. */
    snprintf(s, sizeof s, "Cosigner-BIP340 pk=02%064d, ts=%llu, nonce=%s, sig=%s", 0,
             (unsigned long long)NOW_MS, nonce, sig);
    n += seed(dir, "pk_not_point", 0, 2, s, NULL);
    snprintf(s, sizeof s, "Cosigner-BIP340 pk=05%s, ts=%s, nonce=%s, sig=%s", pk + 2, ts, nonce,
             sig);
    n += seed(dir, "pk_bad_prefix", 0, 2, s, NULL);
    /* Refused by the grammar. */
    snprintf(s, sizeof s, "Cosigner-BIP340 pk=%s, ts=99999999999999999999, nonce=%s, sig=%s", pk,
             nonce, sig);
    n += seed(dir, "ts_20_digits", 0, 2, s, NULL);
    snprintf(s, sizeof s, "Cosigner-BIP340 pk=%s, ts=9999999999999999999, nonce=%s, sig=%s", pk,
             nonce, sig);
    n += seed(dir, "ts_19_digits", 0, 2, s, NULL);
    snprintf(s, sizeof s, "Cosigner-BIP340 pk=%s, ts=%s, nonce=%s, sig=%s, pk=%s", pk, ts, nonce,
             sig, pk);
    n += seed(dir, "dup_field", 0, 2, s, NULL);
    snprintf(s, sizeof s, "Cosigner-BIP340 pk=%s, ts=%s, nonce=%s", pk, ts, nonce);
    n += seed(dir, "missing_sig", 0, 2, s, NULL);
    snprintf(s, sizeof s, "Cosigner-BIP340 pk=%s, ts=%s, nonce=%s, sig=%s,", pk, ts, nonce, sig);
    n += seed(dir, "trailing_comma", 0, 2, s, NULL);
    snprintf(s, sizeof s, "Cosigner-BIP340 pk=%s, ts=%s, nonce=%s, sig=%s, x=1", pk, ts, nonce,
             sig);
    n += seed(dir, "unknown_field", 0, 2, s, NULL);
    snprintf(s, sizeof s, "cosigner-bip340 pk=%s, ts=%s, nonce=%s, sig=%s", pk, ts, nonce, sig);
    n += seed(dir, "scheme_case", 0, 2, s, NULL);
    n += seed(dir, "scheme_only", 1, 3, "Cosigner-BIP340 ", "{}");
    n += seed(dir, "empty_fields", 1, 3, "Cosigner-BIP340 pk=, ts=, nonce=, sig=", "{}");
    n += seed(dir, "bearer", 0, 2, "Bearer abc", NULL);
    n += seed(dir, "empty", 0, 0, "", NULL);
    return n;
}
