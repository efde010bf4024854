/*
 * dkg_wasm_shim.c — the cg_dkg.h API, served by the wasm32 build of the DKG
 * code (guest/dkg/dkg_test_guest.c) in a sandbox instance. Linked instead of
 * the native library, it lets the vector tests run unchanged against the
 * code as the service executes it. Each call marshals its inputs (states as
 * raw bytes, identical in both builds), runs one guest command and copies
 * the outputs back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_dkg.h"
#include "sbx.h"

extern const sbx_module sbx_module_dkgguest;

#define NULL_LEN 0xffffffffu
#define HEAD_LEN (16u + 160u)
#define OUTS_MAX 8

static const sbx_config cfg = {.module = &sbx_module_dkgguest, .budget_ms = 10000};
static sbx_instance *inst;
static uint8_t cmd[160 * 1024];
static size_t cmd_len;

typedef struct outs {
    rt_reply r;
    const uint8_t *p[OUTS_MAX];
    uint32_t len[OUTS_MAX];
    uint32_t n;
} outs;

static void die(const char *what)
{
    fprintf(stderr, "dkg wasm shim: %s\n", what);
    abort();
}

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

static void open_instance(void);

static void begin(char op)
{
    open_instance();
    cmd[0] = (uint8_t)op;
    cmd_len = 1;
}

static void field(const void *p, size_t len)
{
    if (cmd_len + 4 + len > sizeof cmd) die("command too large");
    put32(cmd + cmd_len, p ? (uint32_t)len : NULL_LEN);
    if (p && len) memcpy(cmd + cmd_len + 4, p, len);
    cmd_len += 4 + (p ? len : 0);
}

static void field32(size_t v)
{
    uint8_t b[4];
    put32(b, (uint32_t)(v > 0xffffffffu ? 0xffffffffu : v));
    field(b, 4);
}

static void open_instance(void)
{
    if (inst) return;
    if (sbx_open(&cfg, NULL, 0, &inst) != RT_OK) die("cannot open the dkg guest");
    /* The states cross the boundary as raw bytes: their layouts must agree. */
    rt_reply r;
    if (sbx_call(inst, "s", 1, 0, &r) != RT_OK || r.status != RT_OK || r.len != HEAD_LEN + 4 + 28)
        die("size query failed");
    const uint8_t *sz = r.data + HEAD_LEN + 4;
    uint32_t want[7] = {sizeof(cg_dkg_params),  sizeof(cg_dkg_output), sizeof(cg_dkg_pstate1),
                        sizeof(cg_dkg_pstate2), sizeof(cg_dkg_cstate), sizeof(cg_dkg_pinv),
                        sizeof(cg_dkg_scratch)};
    for (int i = 0; i < 7; i++)
        if (get32(sz + 4 * i) != want[i]) die("state layout differs between wasm32 and native");
    rt_reply_free(&r);
}

/* Runs the command; fills err from the reply head and o with the outputs. */
static rt_status call(outs *o, cg_dkg_error *err)
{
    static char msgs[64][161];
    static unsigned next;

    memset(o, 0, sizeof *o);
    if (sbx_call(inst, cmd, cmd_len, 0, &o->r) != RT_OK) die("guest fault");
    const uint8_t *d = o->r.data;
    if (o->r.len < HEAD_LEN) die("short reply");
    if (err) {
        char *m = msgs[next++ % 64];
        uint32_t ml = get32(d + 12);
        memcpy(m, d + 16, ml > 160 ? 160 : ml);
        m[ml > 160 ? 160 : ml] = 0;
        err->kind = (cg_dkg_error_kind)get32(d);
        err->participant = (int32_t)get32(d + 4);
        err->participant2 = (int32_t)get32(d + 8);
        err->msg = ml ? m : NULL;
    }
    for (size_t off = HEAD_LEN; off < o->r.len && o->n < OUTS_MAX; o->n++) {
        uint32_t l = get32(d + off);
        o->p[o->n] = d + off + 4;
        o->len[o->n] = l;
        off += 4 + l;
    }
    return o->r.status;
}

/* Copies output i into dst of exactly size bytes. */
static void take(const outs *o, uint32_t i, void *dst, size_t size)
{
    if (i >= o->n || o->len[i] != size) {
        fprintf(stderr, "op %c output %u/%u: %u bytes, want %zu\n", cmd[0], i, o->n,
                i < o->n ? o->len[i] : 0, size);
        die("unexpected output size");
    }
    memcpy(dst, o->p[i], size);
}

/* Copies output i into a caller buffer, with its length. */
static void take_var(const outs *o, uint32_t i, uint8_t *dst, size_t cap, size_t *len)
{
    if (i >= o->n || o->len[i] > cap) {
        fprintf(stderr, "op %c output %u/%u: %u bytes, room %zu\n", cmd[0], i, o->n,
                i < o->n ? o->len[i] : 0, cap);
        die("unexpected output size");
    }
    memcpy(dst, o->p[i], o->len[i]);
    *len = o->len[i];
}

const char *cg_dkg_error_kind_name(cg_dkg_error_kind kind)
{
    static char names[CG_DKG_ERR_KIND_COUNT_ + 1][64];
    outs o;
    unsigned k = (unsigned)kind < CG_DKG_ERR_KIND_COUNT_ ? (unsigned)kind : CG_DKG_ERR_KIND_COUNT_;
    if (!names[k][0]) {
        begin('n');
        field32(kind);
        if (call(&o, NULL) != RT_OK || o.n != 1 || o.len[0] >= sizeof names[k]) die("kind name");
        memcpy(names[k], o.p[0], o.len[0]);
        rt_reply_free(&o.r);
    }
    return names[k];
}

void cg_dkg_wipe(void *p, size_t len)
{
    volatile uint8_t *v = p;
    while (len--)
        *v++ = 0;
}

rt_status cg_dkg_hostpubkey_gen(uint8_t hostpubkey[33], const uint8_t *hostseckey,
                                size_t hostseckey_len, cg_dkg_error *err)
{
    outs o;
    begin('h');
    field(hostseckey, hostseckey_len);
    rt_status st = call(&o, err);
    if (st == RT_OK) take(&o, 0, hostpubkey, 33);
    rt_reply_free(&o.r);
    return st;
}

rt_status cg_dkg_params_validate(const cg_dkg_params *params, cg_dkg_error *err)
{
    outs o;
    begin('v');
    field(params, sizeof *params);
    rt_status st = call(&o, err);
    rt_reply_free(&o.r);
    return st;
}

rt_status cg_dkg_params_hash(uint8_t out[32], const cg_dkg_params *params, cg_dkg_error *err)
{
    outs o;
    begin('p');
    field(params, sizeof *params);
    rt_status st = call(&o, err);
    if (st == RT_OK) take(&o, 0, out, 32);
    rt_reply_free(&o.r);
    return st;
}

rt_status cg_dkg_participant_step1(cg_dkg_pstate1 *st1, uint8_t *pmsg1, size_t pmsg1_cap,
                                   size_t *pmsg1_len, const uint8_t *hostseckey,
                                   size_t hostseckey_len, const cg_dkg_params *params,
                                   const uint8_t *random, size_t random_len, cg_dkg_error *err)
{
    outs o;
    begin('1');
    field(params, sizeof *params);
    field(hostseckey, hostseckey_len);
    field(random, random_len);
    field32(pmsg1_cap);
    rt_status st = call(&o, err);
    if (st == RT_OK) {
        take(&o, 0, st1, sizeof *st1);
        take_var(&o, 1, pmsg1, pmsg1_cap, pmsg1_len);
    }
    rt_reply_free(&o.r);
    return st;
}

rt_status cg_dkg_participant_step2(cg_dkg_pstate2 *st2, uint8_t pmsg2[64],
                                   const uint8_t *hostseckey, size_t hostseckey_len,
                                   cg_dkg_pstate1 *st1, const uint8_t *cmsg1, size_t cmsg1_len,
                                   const uint8_t *aux_rand, size_t aux_rand_len, cg_dkg_pinv *inv,
                                   cg_dkg_error *err)
{
    outs o;
    uint8_t want_inv = inv != NULL;
    begin('2');
    field(st1, sizeof *st1);
    field(hostseckey, hostseckey_len);
    field(cmsg1, cmsg1_len);
    field(aux_rand, aux_rand_len);
    field(&want_inv, 1);
    rt_status st = call(&o, err);
    if (o.n == 4) {
        take(&o, 0, st1, sizeof *st1);
        take(&o, 1, st2, sizeof *st2);
        take(&o, 2, pmsg2, 64);
        if (inv) take(&o, 3, inv, sizeof *inv);
    }
    cg_dkg_wipe(o.r.data, o.r.len);
    rt_reply_free(&o.r);
    return st;
}

rt_status cg_dkg_participant_finalize(cg_dkg_output *out, uint8_t *recovery, size_t recovery_cap,
                                      size_t *recovery_len, cg_dkg_pstate2 *st2,
                                      const uint8_t *cmsg2, size_t cmsg2_len, cg_dkg_error *err)
{
    outs o;
    begin('f');
    field(st2, sizeof *st2);
    field(cmsg2, cmsg2_len);
    field32(recovery_cap);
    rt_status st = call(&o, err);
    if (st == RT_OK) {
        take(&o, 0, out, sizeof *out);
        take_var(&o, 1, recovery, recovery_cap, recovery_len);
    }
    cg_dkg_wipe(o.r.data, o.r.len);
    rt_reply_free(&o.r);
    return st;
}

rt_status cg_dkg_participant_investigate(const cg_dkg_pinv *inv, const uint8_t *cinv,
                                         size_t cinv_len, cg_dkg_error *err)
{
    outs o;
    begin('i');
    field(inv, sizeof *inv);
    field(cinv, cinv_len);
    rt_status st = call(&o, err);
    rt_reply_free(&o.r);
    return st;
}

static void msg_fields(const uint8_t *const *m, const size_t *len, size_t count)
{
    for (size_t i = 0; i < count; i++)
        field(m[i], len[i]);
}

rt_status cg_dkg_coordinator_step1(cg_dkg_cstate *cst, uint8_t *cmsg1, size_t cmsg1_cap,
                                   size_t *cmsg1_len, const uint8_t *const *pmsgs1,
                                   const size_t *pmsgs1_len, size_t count,
                                   const cg_dkg_params *params, cg_dkg_error *err)
{
    outs o;
    begin('c');
    field(params, sizeof *params);
    field32(cmsg1_cap);
    msg_fields(pmsgs1, pmsgs1_len, count);
    rt_status st = call(&o, err);
    if (st == RT_OK) {
        take(&o, 0, cst, sizeof *cst);
        take_var(&o, 1, cmsg1, cmsg1_cap, cmsg1_len);
    }
    rt_reply_free(&o.r);
    return st;
}

rt_status cg_dkg_coordinator_finalize(uint8_t *cmsg2, size_t cmsg2_cap, size_t *cmsg2_len,
                                      cg_dkg_output *out, uint8_t *recovery, size_t recovery_cap,
                                      size_t *recovery_len, cg_dkg_cstate *cst,
                                      const uint8_t *const *pmsgs2, const size_t *pmsgs2_len,
                                      size_t count, cg_dkg_error *err)
{
    outs o;
    begin('F');
    field(cst, sizeof *cst);
    field32(cmsg2_cap);
    field32(recovery_cap);
    msg_fields(pmsgs2, pmsgs2_len, count);
    rt_status st = call(&o, err);
    if (st == RT_OK) {
        take_var(&o, 0, cmsg2, cmsg2_cap, cmsg2_len);
        take(&o, 1, out, sizeof *out);
        take_var(&o, 2, recovery, recovery_cap, recovery_len);
    }
    rt_reply_free(&o.r);
    return st;
}

rt_status cg_dkg_coordinator_investigate(uint8_t *cinvs, size_t cinvs_cap, size_t *cinvs_len,
                                         const uint8_t *const *pmsgs1, const size_t *pmsgs1_len,
                                         size_t count, const cg_dkg_params *params,
                                         cg_dkg_error *err)
{
    outs o;
    begin('I');
    field(params, sizeof *params);
    field32(cinvs_cap);
    msg_fields(pmsgs1, pmsgs1_len, count);
    rt_status st = call(&o, err);
    if (st == RT_OK) take_var(&o, 0, cinvs, cinvs_cap, cinvs_len);
    rt_reply_free(&o.r);
    return st;
}

rt_status cg_dkg_recover(cg_dkg_output *out, cg_dkg_params *params_out, const uint8_t *hostseckey,
                         size_t hostseckey_len, const uint8_t *recovery, size_t recovery_len,
                         cg_dkg_scratch *scratch, cg_dkg_error *err)
{
    outs o;
    (void)scratch; /* the guest has its own */
    begin('r');
    field(hostseckey, hostseckey_len);
    field(recovery, recovery_len);
    rt_status st = call(&o, err);
    if (st == RT_OK) {
        take(&o, 0, out, sizeof *out);
        take(&o, 1, params_out, sizeof *params_out);
    }
    cg_dkg_wipe(o.r.data, o.r.len);
    rt_reply_free(&o.r);
    return st;
}
