/*
 * fuzz_net.c — the HTTP layer's request decoding, through its only public
 * door (net.h): a real net_server on 127.0.0.1 with a real actor runtime
 * behind it, fed one HTTP request per input over loopback.
 *
 * Why through the server: net.h exposes no request -> command decoder and no
 * Authorization parser of its own (net_codec_encode and net_auth_parse are
 * internal to src/net), so the closest public entry is the server itself.
 * fuzz_codec.c and fuzz_auth_header.c drive those internals directly, far
 * faster; these two keep the whole path (routing, limits, the order of the
 * checks, the response) under the fuzzer.
 *
 * Two targets share this file:
 *   fuzz_net_request (default)  the JSON body and route of an AUTHENTICATED
 *       request: each input is signed here with a participant's key, so the
 *       fuzzer reaches the JSON -> hex -> command decoding behind the auth
 *       check. byte 0: route, rest: body.
 *   fuzz_net_auth (-DFUZZ_AUTH)  the Authorization header value. byte 0:
 *       route, rest: the header value (CR, LF and NUL become spaces: an HTTP
 *       header cannot carry them).
 *
 * Oracles beyond memory safety: every request gets exactly one response with
 * a status of the API's error table and, when it is an error, a JSON body
 * {"error":{"code":...}}; every command the server hands to an actor decodes
 * with the guest's decoder (cg_cmd_decode): the two codecs never disagree.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cg_cmd.h"
#include "cg_wallet_id.h"
#include "cx.h"
#include "fuzz.h"
#include "net.h"
#include "rt.h"

enum { R_DKG1, R_DKG2, R_SIGN1, R_SIGN2, R_WALLET, R_FAULT, R_INFO, R_OTHER_WALLET, R_COUNT_ };

static struct {
    int ready;
    rt_runtime *rt;
    net_server *srv;
    uint16_t port;
    uint8_t dev_sk[32], dev_pk[33], svc_pk[33];
    uint8_t wallet[32];
    char wallet_hex[65];
    uint8_t meta[1 + 2 * 33 + 1];
} S;

/* The actor: checks the command decodes in the guest's codec, then refuses
 * it (a refusal still travels the whole reply path of the server). */
static rt_status b_create(void *cfg, const rt_key *key, const uint8_t *rec, size_t len, void **inst)
{
    (void)cfg, (void)key, (void)rec, (void)len;
    *inst = &S;
    return RT_OK;
}

static rt_status b_handle(void *inst, rt_ctx *ctx, const rt_msg *msg)
{
    (void)inst;
    if (msg->kind != RT_MSG_CLIENT) return RT_OK;
    cg_cmd c;
    FUZZ_CHECK(cg_cmd_decode(&c, msg->data, msg->len) == RT_OK);
    FUZZ_CHECK(!memcmp(c.sender, S.dev_pk, 33));
    static const char m[] = "refused by the fuzz actor";
    rt_ctx_reply(ctx, RT_FAILED_PRECONDITION, m, sizeof m - 1, 0);
    return RT_OK;
}

static rt_status b_snapshot(void *inst, uint8_t **out, size_t *len)
{
    (void)inst;
    *out = malloc(1);
    *len = 0;
    return *out ? RT_OK : RT_RESOURCE_EXHAUSTED;
}

static rt_status b_tick(void *inst, rt_ctx *ctx, uint64_t now)
{
    (void)inst, (void)ctx, (void)now;
    return RT_OK;
}

static void b_destroy(void *inst)
{
    (void)inst;
}

static const rt_behaviour beh = {b_create, b_handle, b_snapshot, b_tick, b_destroy, NULL};

/* Wallet metadata: the one wallet of (device, service), 2-of-2. Others are
 * unknown; DKG round 1 puts are accepted and forgotten. */
static rt_status meta_get(void *ud, const rt_key *w, uint8_t **val, size_t *len)
{
    (void)ud;
    if (memcmp(w->b, S.wallet, 32)) return RT_NOT_FOUND;
    *val = malloc(sizeof S.meta);
    if (!*val) return RT_RESOURCE_EXHAUSTED;
    memcpy(*val, S.meta, sizeof S.meta);
    *len = sizeof S.meta;
    return RT_OK;
}

static rt_status meta_put(void *ud, const rt_key *w, const uint8_t *val, size_t len)
{
    (void)ud, (void)w, (void)val, (void)len;
    return RT_OK;
}

static void stop(void)
{
    if (!S.ready) return;
    net_drain(S.srv, 1000);
    rt_stop(S.rt);
    net_stop(S.srv);
}

static void setup(void)
{
    if (S.ready) return;
    FUZZ_CHECK(cx_init());
    memset(S.dev_sk, 0x42, 32);
    uint8_t svc_sk[32];
    memset(svc_sk, 0x43, 32);
    FUZZ_CHECK(cx_pubkey_from_seckey(S.dev_pk, S.dev_sk));
    FUZZ_CHECK(cx_pubkey_from_seckey(S.svc_pk, svc_sk));
    S.meta[0] = 2;
    memcpy(S.meta + 1, S.dev_pk, 33);
    memcpy(S.meta + 34, S.svc_pk, 33);
    S.meta[67] = 2;
    uint64_t blame;
    FUZZ_CHECK(cg_wallet_id(S.meta + 1, 2, 2, S.wallet, &blame) == RT_OK);
    net_hex_encode(S.wallet_hex, S.wallet, 32);
    rt_config rc = {.workers = 1, .mailbox_cap = 64, .behaviour = &beh};
    FUZZ_CHECK(rt_start(&rc, &S.rt) == RT_OK);
    net_config nc = {
        .host = "127.0.0.1",
        .threads = 2,
        .rendezvous_ms = 2000,
        .replay_entries = 1u << 22,
        .version = "fuzz",
        .fault_injection = 1,
        .rt = S.rt,
        .meta = {meta_get, meta_put, NULL, NULL, NULL},
        /* The harness reaches the actor path; admission has its own target
         * (fuzz_admit). */
        .enrollment = NET_ENROLL_OPEN,
    };
    memcpy(nc.hostpubkey, S.svc_pk, 33);
    FUZZ_CHECK(net_start(&nc, &S.srv) == RT_OK);
    net_set_ready(S.srv, 1);
    S.port = net_port(S.srv);
    S.ready = 1;
    atexit(stop);
}

static void route_of(unsigned r, const char **method, char *path, size_t cap)
{
    static const uint8_t other[32] = {0xee};
    char oh[65];
    *method = "POST";
    switch (r) {
    case R_DKG1:
        snprintf(path, cap, "/v1/dkg/round1");
        break;
    case R_DKG2:
        snprintf(path, cap, "/v1/dkg/round2");
        break;
    case R_SIGN1:
        snprintf(path, cap, "/v1/wallets/%s/sign/round1", S.wallet_hex);
        break;
    case R_SIGN2:
        snprintf(path, cap, "/v1/wallets/%s/sign/round2", S.wallet_hex);
        break;
    case R_FAULT:
        snprintf(path, cap, "/v1/wallets/%s/fault", S.wallet_hex);
        break;
    case R_WALLET:
        *method = "GET";
        snprintf(path, cap, "/v1/wallets/%s", S.wallet_hex);
        break;
    case R_INFO:
        *method = "GET";
        snprintf(path, cap, "/v1/info");
        break;
    default:
        net_hex_encode(oh, other, 32);
        snprintf(path, cap, "/v1/wallets/%s/sign/round1", oh);
        break;
    }
}

static int documented(int code)
{
    static const int ok[] = {200, 400, 401, 403, 404, 405, 409, 412,
                             413, 414, 429, 431, 500, 503, 504};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (code == ok[i]) return 1;
    return 0;
}

/* One request on a fresh connection; returns the response (malloc'd). */
static char *roundtrip(const char *head, size_t hl, const uint8_t *body, size_t bl, size_t *rl)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(S.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Tens of thousands of connections a minute: retry (on a fresh socket)
     * while the kernel recycles ports rather than report the harness's own
     * exhaustion; a server that stops accepting still fails after ~10 s. */
    int fd = -1, rc = -1, err = 0;
    for (int tries = 0; tries < 1000; tries++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        FUZZ_CHECK(fd >= 0);
        if ((rc = connect(fd, (struct sockaddr *)&a, sizeof a)) == 0) break;
        err = errno;
        close(fd);
        usleep(10000);
    }
    if (rc != 0) fprintf(stderr, "connect: %s\n", strerror(err));
    FUZZ_CHECK(rc == 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    /* Reset on close: no TIME_WAIT left behind on either side. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    FUZZ_CHECK(send(fd, head, hl, MSG_NOSIGNAL) == (ssize_t)hl);
    if (bl) (void)!send(fd, body, bl, MSG_NOSIGNAL); /* the server may refuse early (413) */
    size_t cap = 8192, len = 0;
    char *resp = malloc(cap + 1);
    FUZZ_CHECK(resp != NULL);
    for (;;) {
        ssize_t n = recv(fd, resp + len, cap - len, 0);
        if (n < 0 && errno == EINTR) continue;
        /* A reset after the response is fine (e.g. a 413 closes the
         * connection with the body unread); a timeout or a reset before
         * any byte is a request without a response. */
        if (n < 0 && errno == ECONNRESET && len > 0) break;
        FUZZ_CHECK(n >= 0);
        if (n == 0) break;
        len += (size_t)n;
        if (len == cap) {
            resp = realloc(resp, (cap *= 2) + 1);
            FUZZ_CHECK(resp != NULL);
        }
    }
    close(fd);
    resp[len] = 0;
    *rl = len;
    return resp;
}

static void check_response(const char *resp, size_t len)
{
    int code = 0;
    FUZZ_CHECK(len > 12 && sscanf(resp, "HTTP/1.1 %d", &code) == 1);
    FUZZ_CHECK(documented(code));
    /* Exactly one response on the connection. */
    const char *second = strstr(resp + 1, "HTTP/1.1 ");
    const char *hdr_end = strstr(resp, "\r\n\r\n");
    FUZZ_CHECK(hdr_end != NULL);
    FUZZ_CHECK(!second || second > hdr_end);
    if (code >= 400 && code != 405 && code != 414 && code != 431)
        FUZZ_CHECK(strstr(hdr_end, "\"error\"") && strstr(hdr_end, "\"code\""));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1 || size > 100000) return 0;
    unsigned r = data[0] % R_COUNT_;
    const char *method;
    char path[256];
    route_of(r, &method, path, sizeof path);
    const uint8_t *body;
    size_t bl;
    char auth[NET_AUTH_HDR_MAX + 4096];
#ifdef FUZZ_AUTH
    static const char sign2_body[] =
        "{\"session_id\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"psig\":\"0000000000000000000000000000000000000000000000000000000000000001\"}";
    body = (const uint8_t *)sign2_body;
    bl = sizeof sign2_body - 1;
    size_t al = size - 1 < 4096 ? size - 1 : 4096;
    for (size_t i = 0; i < al; i++) {
        char ch = (char)data[1 + i];
        auth[i] = ch == '\r' || ch == '\n' || ch == 0 ? ' ' : ch;
    }
    auth[al] = 0;
#else
    body = data + 1;
    bl = size - 1;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ts = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    FUZZ_CHECK(net_auth_header(auth, S.dev_sk, method, path, ts, body, bl));
#endif
    char head[sizeof auth + 512];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      method, path, auth, bl);
    FUZZ_CHECK(hl > 0 && (size_t)hl < sizeof head);
    size_t rl;
    char *resp = roundtrip(head, (size_t)hl, body, bl, &rl);
    check_response(resp, rl);
    free(resp);
    return 0;
}

static int seed(const char *dir, const char *name, unsigned r, const char *s)
{
    size_t l = strlen(s);
    uint8_t *b = malloc(l + 1);
    if (!b) return 0;
    b[0] = (uint8_t)r;
    memcpy(b + 1, s, l);
    int ok = fuzz_seed(dir, name, b, l + 1);
    free(b);
    return ok;
}

int fuzz_write_seeds(const char *dir)
{
    setup();
    int n = 0;
    char dev[67], svc[67], s[4096];
    net_hex_encode(dev, S.dev_pk, 33);
    net_hex_encode(svc, S.svc_pk, 33);
#ifdef FUZZ_AUTH
    const char *method;
    char path[256], auth[NET_AUTH_HDR_MAX];
    for (unsigned r = 0; r < R_COUNT_; r++) {
        route_of(r, &method, path, sizeof path);
        FUZZ_CHECK(net_auth_header(auth, S.dev_sk, method, path, 1700000000000ull,
                                   (const uint8_t *)"{}", 2));
        snprintf(s, sizeof s, "auth_%u", r);
        n += seed(dir, s, r, auth);
    }
    n += seed(dir, "no_scheme", R_SIGN2, "pk=00, ts=1, nonce=00, sig=00");
    n += seed(dir, "empty_fields", R_SIGN2, "Cosigner-BIP340 pk=, ts=, nonce=, sig=");
    n += seed(dir, "dup_fields", R_SIGN2, "Cosigner-BIP340 pk=1, pk=2, ts=99999999999999999999");
    n += seed(dir, "bearer", R_WALLET, "Bearer abc");
#else
    char pmsg1[2 * (33 * 2 + 32 * 2 + 97) + 1];
    memset(pmsg1, 'a', sizeof pmsg1 - 1);
    pmsg1[sizeof pmsg1 - 1] = 0;
    snprintf(s, sizeof s, "{\"params\":{\"hostpubkeys\":[\"%s\",\"%s\"],\"t\":2},\"pmsg1\":\"%s\"}",
             dev, svc, pmsg1);
    n += seed(dir, "dkg1", R_DKG1, s);
    snprintf(s, sizeof s, "{\"wallet_id\":\"%s\",\"pmsg2\":\"%0128d\"}", S.wallet_hex, 0);
    n += seed(dir, "dkg2", R_DKG2, s);
    snprintf(s, sizeof s,
             "{\"session_id\":\"%064d\",\"signer_ids\":[0,1],\"msg\":\"68656c6c6f\","
             "\"tweaks\":[{\"tweak\":\"%064d\",\"xonly\":true}],\"pubnonce\":\"02%064d02%064d\"}",
             7, 1, 3, 4);
    n += seed(dir, "sign1", R_SIGN1, s);
    snprintf(s, sizeof s,
             "{\"session_id\":\"%064d\",\"signer_ids\":[0,1],\"msg\":\"\",\"tweaks\":[],"
             "\"pubnonce\":\"02%064d03%064d\"}",
             7, 3, 4);
    n += seed(dir, "sign1_notweak", R_SIGN1, s);
    snprintf(s, sizeof s, "{\"session_id\":\"%064d\",\"psig\":\"%064d\"}", 7, 5);
    n += seed(dir, "sign2", R_SIGN2, s);
    n += seed(dir, "wallet", R_WALLET, "");
    n += seed(dir, "fault_trap", R_FAULT, "{\"kind\":\"trap\"}");
    n += seed(dir, "fault_snapshot", R_FAULT, "{\"kind\":\"snapshot\"}");
    n += seed(dir, "info", R_INFO, "");
    n += seed(dir, "other_wallet", R_OTHER_WALLET, "{}");
    n += seed(dir, "not_json", R_SIGN2, "{\"session_id\":");
#endif
    return n;
}
