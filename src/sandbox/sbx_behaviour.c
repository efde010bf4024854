/*
 * sbx_behaviour.c — the runtime's rt_behaviour backed by a guest module.
 *
 * Kept apart from sbx.c so that only programs that run actors link against
 * src/rt's context functions.
 */
#include "sbx.h"

static void s_reply(void *arg, rt_status st, const void *data, size_t len, uint64_t blame)
{
    rt_ctx_reply(arg, st, data, len, blame);
}

static rt_park_id s_park(void *arg, uint64_t deadline_ms)
{
    return rt_ctx_park(arg, deadline_ms);
}

static rt_status s_complete(void *arg, rt_park_id id, rt_status st, const void *data, size_t len,
                            uint64_t blame)
{
    return rt_ctx_complete(arg, id, st, data, len, blame);
}

static void s_dirty(void *arg)
{
    rt_ctx_mark_dirty(arg);
}

static rt_status b_create(void *cfg, const rt_key *key, const uint8_t *rec, size_t rec_len,
                          void **inst)
{
    (void)key; /* the record binds the wallet; the guest needs no key */
    sbx_instance *in = NULL;
    rt_status st = sbx_open(cfg, rec, rec_len, &in);
    *inst = in;
    return st;
}

/* A fault's kind ("oob", "budget", ...) goes to the runtime's event. */
static rt_status noted(void *inst, rt_ctx *ctx, rt_status st)
{
    sbx_fault f = st != RT_OK ? sbx_last_fault(inst) : SBX_FAULT_NONE;
    if (f != SBX_FAULT_NONE) rt_ctx_note_fault(ctx, sbx_fault_name(f));
    return st;
}

static rt_status b_handle(void *inst, rt_ctx *ctx, const rt_msg *msg)
{
    sbx_sink sink = {s_reply, s_park, s_complete, s_dirty, ctx};
    if (msg->kind == RT_MSG_TICK) return noted(inst, ctx, sbx_tick(inst, &sink, msg->now_ms));
    return noted(inst, ctx, sbx_handle(inst, &sink, msg->data, msg->len, msg->now_ms));
}

static rt_status b_snapshot(void *inst, uint8_t **out, size_t *out_len)
{
    return sbx_snapshot(inst, out, out_len);
}

static rt_status b_tick(void *inst, rt_ctx *ctx, uint64_t now_ms)
{
    sbx_sink sink = {s_reply, s_park, s_complete, s_dirty, ctx};
    return noted(inst, ctx, sbx_tick(inst, &sink, now_ms));
}

static void b_destroy(void *inst)
{
    sbx_close(inst);
}

void sbx_behaviour_init(rt_behaviour *b, const sbx_config *cfg)
{
    b->create = b_create;
    b->handle = b_handle;
    b->snapshot = b_snapshot;
    b->tick = b_tick;
    b->destroy = b_destroy;
    b->cfg = (void *)cfg;
}
