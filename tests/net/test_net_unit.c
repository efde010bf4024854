/*
 * test_net_unit.c — the pieces of src/net that carry the security rules,
 * checked in isolation: hex, the Authorization header grammar, the signed
 * message layout of API.md, signature/timestamp verification, the replay
 * cache and the status -> HTTP table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cx.h"
#include "net_int.h"

static void test_hex(void **state)
{
    (void)state;
    uint8_t b[4];
    char s[9];
    assert_true(net_hex_decode(b, 4, "00fFaB10", 8));
    assert_int_equal(b[1], 0xff);
    assert_int_equal(b[2], 0xab);
    net_hex_encode(s, b, 4);
    assert_string_equal(s, "00ffab10");
    assert_false(net_hex_decode(b, 4, "00ffab1", 7));     /* odd / short */
    assert_false(net_hex_decode(b, 4, "00ffab1000", 10)); /* long */
    assert_false(net_hex_decode(b, 4, "00ffab1g", 8));    /* not hex */
    assert_false(net_hex_decode(b, 4, "00ff ab1", 8));
}

static const char *PK = "02"
                        "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
static const char *NONCE = "000102030405060708090a0b0c0d0e0f";

static void hdr(char *out, size_t cap, const char *pk, const char *ts, const char *nonce,
                const char *sig)
{
    snprintf(out, cap, "Cosigner-BIP340 pk=%s, ts=%s, nonce=%s, sig=%s", pk, ts, nonce, sig);
}

static void test_auth_parse(void **state)
{
    (void)state;
    char sig[129], h[512];
    memset(sig, 'a', 128);
    sig[128] = 0;
    net_auth_hdr a;
    hdr(h, sizeof h, PK, "1700000000123", NONCE, sig);
    assert_true(net_auth_parse(&a, h));
    assert_int_equal(a.ts_ms, 1700000000123ull);
    assert_int_equal(a.pk[0], 2);
    assert_int_equal(a.nonce[15], 0x0f);
    assert_int_equal(a.sig[0], 0xaa);
    /* order free, spaces optional */
    snprintf(h, sizeof h, "Cosigner-BIP340 sig=%s,nonce=%s ,ts=5, pk=%s", sig, NONCE, PK);
    assert_true(net_auth_parse(&a, h));
    assert_int_equal(a.ts_ms, 5);
    /* refusals */
    assert_false(net_auth_parse(&a, NULL));
    assert_false(net_auth_parse(&a, ""));
    hdr(h, sizeof h, PK, "1", NONCE, sig);
    h[8] = 'X'; /* scheme */
    assert_false(net_auth_parse(&a, h));
    snprintf(h, sizeof h, "Cosigner-BIP340 pk=%s, ts=1, nonce=%s", PK, NONCE); /* no sig */
    assert_false(net_auth_parse(&a, h));
    snprintf(h, sizeof h, "Cosigner-BIP340 pk=%s, ts=1, ts=2, nonce=%s, sig=%s", PK, NONCE, sig);
    assert_false(net_auth_parse(&a, h)); /* duplicate */
    snprintf(h, sizeof h, "Cosigner-BIP340 pk=%s, ts=1, nonce=%s, sig=%s, x=1", PK, NONCE, sig);
    assert_false(net_auth_parse(&a, h)); /* unknown field */
    hdr(h, sizeof h, PK, "-1", NONCE, sig);
    assert_false(net_auth_parse(&a, h));
    hdr(h, sizeof h, PK, "99999999999999999999", NONCE, sig); /* > 19 digits */
    assert_false(net_auth_parse(&a, h));
    hdr(h, sizeof h, PK + 2, "1", NONCE, sig); /* 32-byte pk */
    assert_false(net_auth_parse(&a, h));
    hdr(h, sizeof h, PK, "1", "0001", sig);
    assert_false(net_auth_parse(&a, h));
    hdr(h, sizeof h, PK, "1", NONCE, sig + 2);
    assert_false(net_auth_parse(&a, h));
}

/* The message layout, recomputed from API.md with plain SHA-256 only. */
static void test_auth_msg_layout(void **state)
{
    (void)state;
    const char *body = "{\"a\":1}";
    uint8_t nonce[16], got[32], want[32], th[32], bh[32], buf[256];
    for (int i = 0; i < 16; i++)
        nonce[i] = (uint8_t)i;
    net_auth_msg(got, "POST", "/v1/dkg/round1", 0x0102030405060708ull, nonce, (const uint8_t *)body,
                 strlen(body));
    const char *tag = "cosignerd/auth/v1";
    cx_sha256(th, (const uint8_t *)tag, strlen(tag));
    cx_sha256(bh, (const uint8_t *)body, strlen(body));
    size_t n = 0;
    memcpy(buf + n, th, 32), n += 32;
    memcpy(buf + n, th, 32), n += 32;
    memcpy(buf + n, "POST", 4), n += 4;
    buf[n++] = 0;
    memcpy(buf + n, "/v1/dkg/round1", 14), n += 14;
    buf[n++] = 0;
    for (int i = 1; i <= 8; i++)
        buf[n++] = (uint8_t)i;
    memcpy(buf + n, nonce, 16), n += 16;
    memcpy(buf + n, bh, 32), n += 32;
    cx_sha256(want, buf, n);
    assert_memory_equal(got, want, 32);
}

static void test_auth_verify(void **state)
{
    (void)state;
    uint8_t sk[32], pk[33];
    for (;;) {
        cx_random(sk, 32);
        if (cx_pubkey_from_seckey(pk, sk)) break;
    }
    const char *body = "{\"x\":2}";
    char h[NET_AUTH_HDR_MAX];
    uint64_t now = 1700000000000ull;
    assert_true(
        net_auth_header(h, sk, "POST", "/v1/dkg/round2", now, (const uint8_t *)body, strlen(body)));
    net_auth_hdr a;
    assert_true(net_auth_parse(&a, h));
    assert_memory_equal(a.pk, pk, 33);
    int why = -1;
    uint64_t W = 300000;
    assert_int_equal(net_auth_verify(&a, "POST", "/v1/dkg/round2", (const uint8_t *)body,
                                     strlen(body), now + W, W, &why),
                     RT_OK);
    assert_int_equal(net_auth_verify(&a, "POST", "/v1/dkg/round2", (const uint8_t *)body,
                                     strlen(body), now - W, W, &why),
                     RT_OK);
    /* each bound field changes the message */
    assert_int_equal(net_auth_verify(&a, "POST", "/v1/dkg/round2", (const uint8_t *)"{\"x\":3}", 7,
                                     now, W, &why),
                     RT_UNAUTHENTICATED);
    assert_int_equal(why, NET_AF_BAD_SIG);
    assert_int_equal(net_auth_verify(&a, "POST", "/v1/dkg/round1", (const uint8_t *)body,
                                     strlen(body), now, W, &why),
                     RT_UNAUTHENTICATED);
    assert_int_equal(net_auth_verify(&a, "GET", "/v1/dkg/round2", (const uint8_t *)body,
                                     strlen(body), now, W, &why),
                     RT_UNAUTHENTICATED);
    net_auth_hdr b = a;
    b.ts_ms++;
    assert_int_equal(net_auth_verify(&b, "POST", "/v1/dkg/round2", (const uint8_t *)body,
                                     strlen(body), now, W, &why),
                     RT_UNAUTHENTICATED);
    b = a;
    b.nonce[0] ^= 1;
    assert_int_equal(net_auth_verify(&b, "POST", "/v1/dkg/round2", (const uint8_t *)body,
                                     strlen(body), now, W, &why),
                     RT_UNAUTHENTICATED);
    /* the window, both sides */
    assert_int_equal(net_auth_verify(&a, "POST", "/v1/dkg/round2", (const uint8_t *)body,
                                     strlen(body), now + W + 1, W, &why),
                     RT_UNAUTHENTICATED);
    assert_int_equal(why, NET_AF_STALE);
    assert_int_equal(net_auth_verify(&a, "POST", "/v1/dkg/round2", (const uint8_t *)body,
                                     strlen(body), now - W - 1, W, &why),
                     RT_UNAUTHENTICATED);
    assert_int_equal(why, NET_AF_STALE);
    /* a pk that is not a point */
    b = a;
    memset(b.pk + 1, 0xff, 32);
    assert_int_equal(net_auth_verify(&b, "POST", "/v1/dkg/round2", (const uint8_t *)body,
                                     strlen(body), now, W, &why),
                     RT_UNAUTHENTICATED);
}

static void test_replay(void **state)
{
    (void)state;
    uint64_t W = 1000;
    net_replay *r = net_replay_new(64 * 10, W); /* ~10 per shard */
    assert_non_null(r);
    uint8_t pk[33] = {2}, nonce[16] = {0};
    uint64_t t = 5000;
    assert_int_equal(net_replay_check(r, pk, nonce, t), RT_OK);
    assert_int_equal(net_replay_check(r, pk, nonce, t), RT_ALREADY_EXISTS);
    /* another key, same nonce: independent */
    pk[1] = 1;
    assert_int_equal(net_replay_check(r, pk, nonce, t), RT_OK);
    pk[1] = 0;
    /* still remembered one period later (now in the previous generation) */
    assert_int_equal(net_replay_check(r, pk, nonce, t + 2 * W), RT_ALREADY_EXISTS);
    /* forgotten after two periods: its timestamp is out of the window anyway */
    assert_int_equal(net_replay_check(r, pk, nonce, t + 6 * W), RT_OK);
    /* bounded: a flood of fresh nonces is refused once a shard is full */
    int refused = 0, ok = 0;
    for (uint32_t i = 0; i < 5000; i++) {
        memcpy(nonce, &i, sizeof i);
        nonce[8] = 0x55;
        rt_status st = net_replay_check(r, pk, nonce, t + 6 * W);
        if (st == RT_RESOURCE_EXHAUSTED) refused++;
        if (st == RT_OK) ok++;
    }
    assert_true(refused > 0);
    assert_true(ok <= 64 * 11);
    net_replay_free(r);
}

/* API.md, "Errors": the only codes that may appear on the wire, with their
 * HTTP status and whether Retry-After is set. */
static const struct {
    const char *code;
    unsigned http;
    int retry;
} api_codes[] = {
    {"INVALID_ARGUMENT", 400, 0},    {"UNAUTHENTICATED", 401, 0}, {"PERMISSION_DENIED", 403, 0},
    {"NOT_FOUND", 404, 0},           {"ABORTED", 409, 0},         {"PAYLOAD_TOO_LARGE", 413, 0},
    {"RESOURCE_EXHAUSTED", 429, 1},  {"INTERNAL", 500, 0},        {"UNAVAILABLE", 503, 1},
    {"DEADLINE_EXCEEDED", 504, 0},   {"DATA_LOSS", 500, 0},       {"ALREADY_EXISTS", 409, 0},
    {"FAILED_PRECONDITION", 412, 0},
};

static void assert_documented(int st)
{
    const net_http_status *h = net_status_http(st);
    if (st == RT_OK) {
        assert_int_equal(h->http, 200);
        return;
    }
    for (size_t i = 0; i < sizeof api_codes / sizeof api_codes[0]; i++)
        if (!strcmp(h->code, api_codes[i].code)) {
            if (h->http != api_codes[i].http || h->retry_after != api_codes[i].retry)
                fail_msg("status %d -> %s %u retry %d; API.md says %u retry %d", st, h->code,
                         h->http, h->retry_after, api_codes[i].http, api_codes[i].retry);
            return;
        }
    fail_msg("status %d (%s) -> code %s, which API.md does not list", st, rt_status_name(st),
             h->code);
}

/* The forwarding header: only the cluster key makes one, it binds every
 * part of the request it travels with, and it ages out like a request. */
static void test_forward_mac(void **state)
{
    (void)state;
    uint8_t key[32], other[32];
    memset(key, 7, 32);
    memset(other, 8, 32);
    const char *auth = "Cosigner-BIP340 pk=02aa,ts=1,nonce=00,sig=00";
    const uint8_t body[] = "{\"x\":1}";
    size_t bl = sizeof body - 1;
    uint64_t now = 1700000000000ull;
    char h[NET_FWD_HDR_MAX];
    net_fwd_sign(h, key, now, "POST", "/v1/dkg/round1", auth, body, bl);
    assert_true(
        net_fwd_verify(h, key, now + 1000, 300000, "POST", "/v1/dkg/round1", auth, body, bl));
    assert_false(net_fwd_verify(h, other, now, 300000, "POST", "/v1/dkg/round1", auth, body, bl));
    assert_false(net_fwd_verify(h, key, now, 300000, "GET", "/v1/dkg/round1", auth, body, bl));
    assert_false(net_fwd_verify(h, key, now, 300000, "POST", "/v1/dkg/round2", auth, body, bl));
    assert_false(net_fwd_verify(h, key, now, 300000, "POST", "/v1/dkg/round1",
                                "Cosigner-BIP340 pk=02ab,ts=1,nonce=00,sig=00", body, bl));
    assert_false(net_fwd_verify(h, key, now, 300000, "POST", "/v1/dkg/round1", auth, body, bl - 1));
    assert_false(
        net_fwd_verify(h, key, now + 300001, 300000, "POST", "/v1/dkg/round1", auth, body, bl));
    assert_false(
        net_fwd_verify(h, key, now - 300001, 300000, "POST", "/v1/dkg/round1", auth, body, bl));
    /* Malformed forms never verify (and never read past the string). */
    const char *bad[] = {"",
                         "v1",
                         "v1 ",
                         "v2 1 00",
                         "v1 x 00",
                         "v1 1700000000000 zz",
                         "v1 99999999999999999999999 00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(
            net_fwd_verify(bad[i], key, now, 300000, "POST", "/v1/dkg/round1", auth, body, bl));
    char flip[NET_FWD_HDR_MAX];
    memcpy(flip, h, sizeof flip);
    flip[strlen(flip) - 1] ^= 1;
    assert_false(net_fwd_verify(flip, key, now, 300000, "POST", "/v1/dkg/round1", auth, body, bl));
}

static void test_status_table(void **state)
{
    (void)state;
    static const struct {
        int st;
        unsigned http;
        const char *code;
        int retry;
    } rows[] = {
        {RT_INVALID_ARGUMENT, 400, "INVALID_ARGUMENT", 0},
        {RT_UNAUTHENTICATED, 401, "UNAUTHENTICATED", 0},
        {RT_PERMISSION_DENIED, 403, "PERMISSION_DENIED", 0},
        {RT_NOT_FOUND, 404, "NOT_FOUND", 0},
        {RT_ABORTED, 409, "ABORTED", 0},
        {NET_ST_PAYLOAD_TOO_LARGE, 413, "PAYLOAD_TOO_LARGE", 0},
        {RT_RESOURCE_EXHAUSTED, 429, "RESOURCE_EXHAUSTED", 1},
        {RT_INTERNAL, 500, "INTERNAL", 0},
        {RT_UNAVAILABLE, 503, "UNAVAILABLE", 1},
        {RT_DEADLINE_EXCEEDED, 504, "DEADLINE_EXCEEDED", 0},
        {RT_DATA_LOSS, 500, "DATA_LOSS", 0},
        {RT_OK, 200, "OK", 0},
        /* internal codes folded into documented ones */
        {RT_CANCELLED, 503, "UNAVAILABLE", 1},
        {RT_ALREADY_EXISTS, 409, "ALREADY_EXISTS", 0},
        {RT_FAILED_PRECONDITION, 412, "FAILED_PRECONDITION", 0},
        {RT_OUT_OF_RANGE, 400, "INVALID_ARGUMENT", 0},
        {RT_UNIMPLEMENTED, 404, "NOT_FOUND", 0},
        {RT_UNKNOWN, 500, "INTERNAL", 0},
        {999, 500, "INTERNAL", 0},
        {-1, 500, "INTERNAL", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const net_http_status *h = net_status_http(rows[i].st);
        assert_int_equal(h->http, rows[i].http);
        assert_string_equal(h->code, rows[i].code);
        assert_int_equal(h->retry_after, rows[i].retry);
    }
    /* Whatever a layer reports, the wire carries one of API.md's codes. */
    for (int st = 0; st < RT_STATUS_COUNT_; st++)
        assert_documented(st);
    assert_documented(-1);
    assert_documented(RT_STATUS_COUNT_);
    assert_documented(NET_ST_PAYLOAD_TOO_LARGE);
}

int main(void)
{
    cx_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_auth_parse),
        cmocka_unit_test(test_auth_msg_layout),
        cmocka_unit_test(test_auth_verify),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_status_table),
        cmocka_unit_test(test_forward_mac),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
