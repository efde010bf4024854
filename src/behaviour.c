/*
 * behaviour.c — plugs the cosigner into the runtime: the sandboxed wasm32
 * module when the build has it (COSIGNERD_SBX), else the same cosigner code
 * linked natively through cg_cosigner.h.
 */
#include <stdlib.h>
#include <string.h>

#include "behaviour.h"
#include "cg_cmd.h"
#include "cx.h"

#if COSIGNERD_SBX
#include "sbx.h"

extern const sbx_module sbx_module_cosigner;

static rt_behaviour beh;
static sbx_config scfg;
static uint8_t hostkey[32];
static uint8_t guest_conf[CG_CONFIG_LEN];

rt_status behaviour_open(const behaviour_opts *o, const rt_behaviour **out)
{
    memcpy(hostkey, o->hostseckey, 32);
    cg_config cc = {(uint32_t)o->rendezvous_ms, o->fault_injection ? CG_CONFIG_FAULT_INJECTION : 0};
    cg_config_encode(&cc, guest_conf);
    scfg.module = &sbx_module_cosigner;
    scfg.budget_ms = (uint32_t)o->cpu_budget_ms;
    scfg.hostkey = hostkey;
    scfg.guest_config = guest_conf;
    scfg.guest_config_len = sizeof guest_conf;
    scfg.pool_slots = o->sandbox_pool > UINT32_MAX ? UINT32_MAX : (uint32_t)o->sandbox_pool;
    sbx_behaviour_init(&beh, &scfg);
    *out = &beh;
    return RT_OK;
}

void behaviour_close(void)
{
    sbx_pool_drain();
    cx_wipe(hostkey, sizeof hostkey);
}

const char *behaviour_name(void)
{
    return "wasm-sandbox";
}

void behaviour_metrics(FILE *f)
{
    sbx_stats s;
    sbx_get_stats(&s);
    fprintf(f, "# HELP cosignerd_sandbox_faults_total Guest faults by kind.\n"
               "# TYPE cosignerd_sandbox_faults_total counter\n");
    for (int k = 1; k < SBX_FAULT_COUNT_; k++)
        fprintf(f, "cosignerd_sandbox_faults_total{kind=\"%s\"} %llu\n",
                sbx_fault_name((sbx_fault)k), (unsigned long long)s.faults[k]);
    fprintf(f,
            "# HELP cosignerd_sandbox_instances Live guest instances.\n"
            "# TYPE cosignerd_sandbox_instances gauge\ncosignerd_sandbox_instances %llu\n"
            "# HELP cosignerd_sandbox_memory_reserved_bytes Address space reserved for guest "
            "memories.\n# TYPE cosignerd_sandbox_memory_reserved_bytes gauge\n"
            "cosignerd_sandbox_memory_reserved_bytes %llu\n",
            (unsigned long long)s.live, (unsigned long long)s.mem_reserved_bytes);
    fprintf(f,
            "# HELP cosignerd_sandbox_pool_instances Closed guest instances kept warm.\n"
            "# TYPE cosignerd_sandbox_pool_instances gauge\ncosignerd_sandbox_pool_instances %llu\n"
            "# HELP cosignerd_sandbox_pool_reused_total Activations served from the pool.\n"
            "# TYPE cosignerd_sandbox_pool_reused_total counter\n"
            "cosignerd_sandbox_pool_reused_total %llu\n",
            (unsigned long long)s.pool_free, (unsigned long long)s.pool_reused);
}

#else /* native cosigner */
#include "cg_cosigner.h"

typedef struct native_cfg {
    uint8_t hostkey[32];
    uint8_t conf[CG_CONFIG_LEN];
} native_cfg;

static native_cfg ncfg;
static rt_behaviour beh;

static void h_reply(void *ctx, int32_t st, const void *d, uint32_t len, uint64_t blame)
{
    rt_ctx_reply(ctx, (rt_status)st, d, len, blame);
}
static uint64_t h_park(void *ctx, uint64_t deadline)
{
    return rt_ctx_park(ctx, deadline);
}
static int32_t h_complete(void *ctx, uint64_t id, int32_t st, const void *d, uint32_t len,
                          uint64_t blame)
{
    return rt_ctx_complete(ctx, id, (rt_status)st, d, len, blame);
}
static void h_dirty(void *ctx)
{
    rt_ctx_mark_dirty(ctx);
}

typedef struct snap {
    uint8_t *data;
    size_t len;
    int bad;
} snap;
static void h_snap(void *ctx, const void *d, uint32_t len)
{
    snap *s = ctx;
    free(s->data);
    s->data = malloc(len ? len : 1);
    if (!s->data) {
        s->bad = 1;
        return;
    }
    memcpy(s->data, d, len);
    s->len = len;
}
static void h_noop_dirty(void *ctx)
{
    (void)ctx;
}

static const cg_host host = {h_reply, h_park, h_complete, h_dirty, NULL};
static const cg_host snap_host = {NULL, NULL, NULL, h_noop_dirty, h_snap};

static rt_status n_create(void *cfg, const rt_key *key, const uint8_t *rec, size_t len, void **inst)
{
    (void)key;
    native_cfg *c = cfg;
    cg_actor *a;
    rt_status st = cg_actor_new(&a);
    if (st != RT_OK) return st;
    if ((st = cg_actor_init(a)) != RT_OK || (st = cg_actor_configure(a, c->conf, sizeof c->conf)) ||
        (st = cg_actor_set_hostkey(a, c->hostkey)) != RT_OK ||
        (st = cg_actor_restore(a, rec, rec ? len : 0)) != RT_OK) {
        cg_actor_free(a);
        return st;
    }
    *inst = a;
    return RT_OK;
}

static rt_status n_handle(void *inst, rt_ctx *ctx, const rt_msg *m)
{
    return cg_actor_handle(inst, &host, ctx, m->data, m->len, m->now_ms);
}

static rt_status n_snapshot(void *inst, uint8_t **out, size_t *len)
{
    snap s = {0};
    rt_status st = cg_actor_snapshot(inst, &snap_host, &s);
    if (st != RT_OK || s.bad || !s.data) {
        free(s.data);
        return st != RT_OK ? st : RT_INTERNAL;
    }
    *out = s.data;
    *len = s.len;
    return RT_OK;
}

static rt_status n_tick(void *inst, rt_ctx *ctx, uint64_t now)
{
    return cg_actor_tick(inst, &host, ctx, now);
}

static void n_destroy(void *inst)
{
    cg_actor_free(inst);
}

rt_status behaviour_open(const behaviour_opts *o, const rt_behaviour **out)
{
    memcpy(ncfg.hostkey, o->hostseckey, 32);
    cg_config cc = {(uint32_t)o->rendezvous_ms, o->fault_injection ? CG_CONFIG_FAULT_INJECTION : 0};
    cg_config_encode(&cc, ncfg.conf);
    beh = (rt_behaviour){n_create, n_handle, n_snapshot, n_tick, n_destroy, &ncfg};
    *out = &beh;
    return RT_OK;
}

void behaviour_close(void)
{
    cx_wipe(ncfg.hostkey, sizeof ncfg.hostkey);
}

const char *behaviour_name(void)
{
    return "native (no sandbox isolation)";
}

void behaviour_metrics(FILE *f)
{
    (void)f;
}
#endif
