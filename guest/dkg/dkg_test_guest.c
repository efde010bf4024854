/*
 * dkg_test_guest.c — a guest module that exposes the cg_dkg.h API one call
 * per command, so the published vectors can run against the wasm32 build of
 * the DKG code (tests/dkg/dkg_wasm_shim.c is the host half). Test-only: the
 * service runs ChillDKG inside the cosigner module instead.
 *
 * Command: op (1 byte), then fields, each u32 LE length + bytes; length
 * 0xffffffff stands for a NULL pointer. States travel as their raw bytes:
 * they hold only fixed-width integers and byte arrays, so their layout is
 * the same in wasm32 and natively (the 's' command lets the host check).
 * Reply (status = the call's rt_status): kind, participant, participant2,
 * message length (u32 LE each), the message in a 160-byte slot, then the
 * output fields in the same field encoding.
 */
#include <stdint.h>
#include <string.h>

#include "cg_abi.h"
#include "cg_dkg.h"

#define FIELDS_MAX (8 + 64)
#define NULL_LEN 0xffffffffu

static uint8_t cmdbuf[160 * 1024];
static uint8_t replybuf[160 * 1024];
static size_t reply_len;

static cg_dkg_params params;
static cg_dkg_pstate1 st1;
static cg_dkg_pstate2 st2;
static cg_dkg_cstate cst;
static cg_dkg_pinv inv;
static cg_dkg_output out;
static cg_dkg_scratch scratch;
static uint8_t o1[80 * 1024], o2[CG_DKG_RECOVERY_MAX];

typedef struct field {
    const uint8_t *p;
    uint32_t len;
} field;

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int parse(const uint8_t *c, uint32_t len, field *f, uint32_t *count)
{
    uint32_t off = 0, k = 0;
    while (off < len) {
        if (k == FIELDS_MAX || len - off < 4) return 0;
        uint32_t l = get32(c + off);
        off += 4;
        if (l == NULL_LEN) {
            f[k].p = NULL;
            f[k++].len = 0;
            continue;
        }
        if (l > len - off) return 0;
        f[k].p = c + off;
        f[k++].len = l;
        off += l;
    }
    *count = k;
    return 1;
}

static void emit(const void *p, size_t len)
{
    if (reply_len + 4 + len > sizeof replybuf) return;
    put32(replybuf + reply_len, (uint32_t)len);
    memcpy(replybuf + reply_len + 4, p, len);
    reply_len += 4 + len;
}

/* The reply head has a fixed size so it can be written after the body. */
#define MSG_MAX 160u
#define HEAD_LEN (16u + MSG_MAX)

static void head(const cg_dkg_error *e)
{
    const char *m = e->msg ? e->msg : "";
    size_t ml = strlen(m);
    if (ml > MSG_MAX) ml = MSG_MAX;
    put32(replybuf, (uint32_t)e->kind);
    put32(replybuf + 4, (uint32_t)e->participant);
    put32(replybuf + 8, (uint32_t)e->participant2);
    put32(replybuf + 12, (uint32_t)ml);
    memcpy(replybuf + 16, m, ml);
}

/* Copies a raw state field into the guest's struct (length must match). */
static int load(void *dst, size_t size, const field *f)
{
    if (f->len != size) return 0;
    memcpy(dst, f->p, size);
    return 1;
}

static size_t cap(const field *f, size_t max)
{
    uint32_t c = f->len == 4 ? get32(f->p) : 0;
    return c < max ? c : max;
}

/* Messages from fields[from..count). */
static void msgs(const field *f, uint32_t from, uint32_t count, const uint8_t **m, size_t *l,
                 size_t *n)
{
    *n = 0;
    for (uint32_t i = from; i < count && *n < CG_DKG_MAX_N * 2; i++, (*n)++) {
        m[*n] = f[i].p;
        l[*n] = f[i].len;
    }
}

CG_EXPORT(cg_init) int32_t cg_init(void)
{
    return 0;
}

CG_EXPORT(cg_buf) void *cg_buf(uint32_t len)
{
    return len <= sizeof cmdbuf ? cmdbuf : 0;
}

CG_EXPORT(cg_handle) int32_t cg_handle(const uint8_t *cmd, uint32_t len, uint64_t now)
{
    static field f[FIELDS_MAX];
    static const uint8_t *m[CG_DKG_MAX_N * 2];
    static size_t ml[CG_DKG_MAX_N * 2];
    cg_dkg_error e = {CG_DKG_ERR_NONE, -1, -1, NULL};
    uint32_t nf = 0;
    size_t n = 0, l1 = 0, l2 = 0;
    rt_status st = RT_INVALID_ARGUMENT;
    uint8_t pk[33], h[32], pmsg2[64];
    (void)now;

    if (len < 1 || !parse(cmd + 1, len - 1, f, &nf)) {
        cg_host_reply(RT_INVALID_ARGUMENT, "bad command", 11, 0);
        return 0;
    }
    reply_len = HEAD_LEN;
    switch (cmd[0]) {
    case 's': { /* struct sizes, for the host's layout check */
        uint32_t sz[7] = {sizeof(cg_dkg_params),  sizeof(cg_dkg_output), sizeof(cg_dkg_pstate1),
                          sizeof(cg_dkg_pstate2), sizeof(cg_dkg_cstate), sizeof(cg_dkg_pinv),
                          sizeof(cg_dkg_scratch)};
        st = RT_OK;
        emit(sz, sizeof sz);
        break;
    }
    case 'n': /* kind name */
        if (nf == 1 && f[0].len == 4) {
            const char *s = cg_dkg_error_kind_name((cg_dkg_error_kind)get32(f[0].p));
            st = RT_OK;
            emit(s, strlen(s));
        }
        break;
    case 'h':
        if (nf == 1 && (st = cg_dkg_hostpubkey_gen(pk, f[0].p, f[0].len, &e)) == RT_OK)
            emit(pk, 33);
        break;
    case 'v':
        if (nf == 1 && load(&params, sizeof params, &f[0]))
            st = cg_dkg_params_validate(&params, &e);
        break;
    case 'p':
        if (nf == 1 && load(&params, sizeof params, &f[0]) &&
            (st = cg_dkg_params_hash(h, &params, &e)) == RT_OK)
            emit(h, 32);
        break;
    case '1': /* params, sk, random, pmsg1 cap */
        if (nf == 4 && load(&params, sizeof params, &f[0]) &&
            (st = cg_dkg_participant_step1(&st1, o1, cap(&f[3], sizeof o1), &l1, f[1].p, f[1].len,
                                           &params, f[2].p, f[2].len, &e)) == RT_OK) {
            emit(&st1, sizeof st1);
            emit(o1, l1);
        }
        break;
    case '2': /* st1, sk, cmsg1, aux, want inv (1 byte) */
        if (nf == 5 && load(&st1, sizeof st1, &f[0]) && f[4].len == 1) {
            st = cg_dkg_participant_step2(&st2, pmsg2, f[1].p, f[1].len, &st1, f[2].p, f[2].len,
                                          f[3].p, f[3].len, f[4].p[0] ? &inv : NULL, &e);
            emit(&st1, sizeof st1); /* consumed or not: the host mirrors it */
            emit(&st2, sizeof st2);
            emit(pmsg2, 64);
            emit(&inv, sizeof inv);
        }
        break;
    case 'f': /* st2, cmsg2, recovery cap */
        if (nf == 3 && load(&st2, sizeof st2, &f[0]) &&
            (st = cg_dkg_participant_finalize(&out, o2, cap(&f[2], sizeof o2), &l2, &st2, f[1].p,
                                              f[1].len, &e)) == RT_OK) {
            emit(&out, sizeof out);
            emit(o2, l2);
        }
        break;
    case 'i': /* inv, cinv */
        if (nf == 2 && load(&inv, sizeof inv, &f[0]))
            st = cg_dkg_participant_investigate(&inv, f[1].p, f[1].len, &e);
        break;
    case 'c': /* params, cmsg1 cap, pmsgs1... */
        if (nf >= 2 && load(&params, sizeof params, &f[0])) {
            msgs(f, 2, nf, m, ml, &n);
            if ((st = cg_dkg_coordinator_step1(&cst, o1, cap(&f[1], sizeof o1), &l1, m, ml, n,
                                               &params, &e)) == RT_OK) {
                emit(&cst, sizeof cst);
                emit(o1, l1);
            }
        }
        break;
    case 'F': /* cst, cmsg2 cap, recovery cap, pmsgs2... */
        if (nf >= 3 && load(&cst, sizeof cst, &f[0])) {
            msgs(f, 3, nf, m, ml, &n);
            if ((st = cg_dkg_coordinator_finalize(o1, cap(&f[1], sizeof o1), &l1, &out, o2,
                                                  cap(&f[2], sizeof o2), &l2, &cst, m, ml, n,
                                                  &e)) == RT_OK) {
                emit(o1, l1);
                emit(&out, sizeof out);
                emit(o2, l2);
            }
        }
        break;
    case 'I': /* params, cinvs cap, pmsgs1... */
        if (nf >= 2 && load(&params, sizeof params, &f[0])) {
            msgs(f, 2, nf, m, ml, &n);
            if ((st = cg_dkg_coordinator_investigate(o1, cap(&f[1], sizeof o1), &l1, m, ml, n,
                                                     &params, &e)) == RT_OK)
                emit(o1, l1);
        }
        break;
    case 'r': /* sk (nullable), recovery data */
        if (nf == 2 && (st = cg_dkg_recover(&out, &params, f[0].p, f[0].len, f[1].p, f[1].len,
                                            &scratch, &e)) == RT_OK) {
            emit(&out, sizeof out);
            emit(&params, sizeof params);
        }
        break;
    default:
        break;
    }
    head(&e);
    cg_host_reply(st, replybuf, (uint32_t)reply_len, 0);
    cg_dkg_wipe(&st2, sizeof st2);
    cg_dkg_wipe(&out, sizeof out);
    cg_dkg_wipe(&inv, sizeof inv);
    return 0;
}
