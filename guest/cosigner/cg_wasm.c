/*
 * cg_wasm.c — the wasm32 exports of the cosigner module (cg_abi.h): one
 * global actor per instance, since each wallet has its own instance and
 * linear memory. Compiled to nothing natively.
 */
#if defined(__wasm__)
#include "cg_actor.h"

static cg_actor g_actor;
/* The host copies each command (or record, or key) here before a call. */
static uint8_t g_buf[CG_CMD_MAX_LEN];

CG_EXPORT(cg_init) int32_t cg_init(void)
{
    return (int32_t)cg_actor_init(&g_actor);
}

CG_EXPORT(cg_buf) uint8_t *cg_buf(uint32_t len)
{
    return len <= sizeof g_buf ? g_buf : 0;
}

CG_EXPORT(cg_configure) int32_t cg_configure(const uint8_t *p, uint32_t len)
{
    return (int32_t)cg_actor_configure(&g_actor, p, len);
}

CG_EXPORT(cg_set_hostkey) int32_t cg_set_hostkey(const uint8_t *key)
{
    rt_status st = cg_actor_set_hostkey(&g_actor, key);
    cx_wipe((void *)key, 32);
    return (int32_t)st;
}

CG_EXPORT(cg_restore) int32_t cg_restore(const uint8_t *p, uint32_t len)
{
    rt_status st = cg_actor_restore(&g_actor, p, len);
    if (len) cx_wipe((void *)p, len); /* the record holds the secret share */
    return (int32_t)st;
}

CG_EXPORT(cg_handle) int32_t cg_handle(const uint8_t *p, uint32_t len, uint64_t now)
{
    return (int32_t)cg_actor_handle(&g_actor, 0, 0, p, len, now);
}

CG_EXPORT(cg_tick) int32_t cg_tick(uint64_t now)
{
    return (int32_t)cg_actor_tick(&g_actor, 0, 0, now);
}

CG_EXPORT(cg_snapshot) int32_t cg_snapshot(void)
{
    return (int32_t)cg_actor_snapshot(&g_actor, 0, 0);
}
#else
typedef int cg_wasm_empty_; /* ISO C wants a translation unit to declare something */
#endif
