/*
 * net_util.c — hex and the request-signature message, shared with the CLI.
 */
#include <string.h>
#include <time.h>

#include "cx.h"
#include "net_int.h"

void net_hex_encode(char *out, const uint8_t *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = 0;
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int net_hex_decode(uint8_t *out, size_t len, const char *in, size_t in_len)
{
    if (in_len != 2 * len) return 0;
    for (size_t i = 0; i < len; i++) {
        int hi = nibble(in[2 * i]), lo = nibble(in[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

uint64_t net_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define AUTH_TAG "cosignerd/auth/v1"

void net_auth_msg(uint8_t out[32], const char *method, const char *path, uint64_t ts_ms,
                  const uint8_t nonce[16], const uint8_t *body, size_t body_len)
{
    /* Method and path are bounded by the server's URL cap before we get here;
     * the CLI only signs its own short paths. */
    size_t ml = strlen(method), pl = strlen(path);
    uint8_t buf[16 + 1 + 1024 + 1 + 8 + 16 + 32];
    if (ml > 16 || pl > 1024) {
        memset(out, 0, 32); /* unverifiable on purpose */
        return;
    }
    size_t n = 0;
    memcpy(buf + n, method, ml);
    n += ml;
    buf[n++] = 0;
    memcpy(buf + n, path, pl);
    n += pl;
    buf[n++] = 0;
    for (int i = 7; i >= 0; i--)
        buf[n++] = (uint8_t)(ts_ms >> (8 * i));
    memcpy(buf + n, nonce, 16);
    n += 16;
    cx_sha256(buf + n, body, body_len);
    n += 32;
    cx_tagged_hash(out, AUTH_TAG, sizeof AUTH_TAG - 1, buf, n);
}

int net_auth_header(char *out, const uint8_t seckey[32], const char *method, const char *path,
                    uint64_t ts_ms, const uint8_t *body, size_t body_len)
{
    uint8_t pk[33];
    if (!cx_pubkey_from_seckey(pk, seckey)) return 0;
    return net_auth_header_pk(out, seckey, pk, method, path, ts_ms, body, body_len);
}

int net_auth_header_pk(char *out, const uint8_t seckey[32], const uint8_t pk[33],
                       const char *method, const char *path, uint64_t ts_ms, const uint8_t *body,
                       size_t body_len)
{
    uint8_t nonce[16], msg[32], sig[64], aux[32];
    char pkh[67], nh[33], sh[129];
    cx_random(nonce, sizeof nonce);
    cx_random(aux, sizeof aux);
    net_auth_msg(msg, method, path, ts_ms, nonce, body, body_len);
    if (!cx_bip340_sign(sig, msg, 32, seckey, aux)) return 0;
    net_hex_encode(pkh, pk, 33);
    net_hex_encode(nh, nonce, 16);
    net_hex_encode(sh, sig, 64);
    snprintf(out, NET_AUTH_HDR_MAX, "Cosigner-BIP340 pk=%s, ts=%llu, nonce=%s, sig=%s", pkh,
             (unsigned long long)ts_ms, nh, sh);
    return 1;
}
