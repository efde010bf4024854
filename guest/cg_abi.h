/*
 * cg_abi.h — the actor ABI between a guest module and its host.
 *
 * A guest (the cosigner, or a test guest) is one actor's handler code. The
 * same C source builds natively and to wasm32; this header is the contract
 * both builds share.
 *
 * Exports (guest -> host calls into the guest; all return an rt_status code,
 * 0 = OK, and any other value is a handler fault):
 *   cg_init()                 once, right after instantiation
 *   cg_buf(len) -> ptr        a guest buffer of len bytes the host may fill
 *                             before the next call (0 when len is too large);
 *                             valid until the next cg_buf call
 *   cg_set_hostkey(ptr)       32-byte service host secret key (ChillDKG),
 *                             given once after cg_init, before restore
 *   cg_restore(ptr, len)      rebuild durable state from a record (len 0 = none)
 *   cg_handle(ptr, len, now)  one client command; answers or parks via imports
 *   cg_tick(now)              housekeeping: expire sessions, wipe nonces
 *   cg_snapshot()             emit the durable record with cg_host_snapshot_out
 *
 * Imports (module "rt"; the host checks every pointer/length against linear
 * memory, a bad one is a handler fault):
 *   cg_host_reply(st, ptr, len, blame)         answer the current command
 *   cg_host_park(deadline_ms) -> id            park the current command's reply
 *   cg_host_complete(id, st, ptr, len, blame)  complete a parked reply
 *   cg_host_mark_dirty()                       durable state changed
 *   cg_host_snapshot_out(ptr, len)             the record, during cg_snapshot
 *
 * Natively the exports are ordinary functions operating on a cg_actor object
 * chosen by the host (so one process can hold many instances), and the
 * imports resolve to the host's current invocation context.
 */
#ifndef CG_ABI_H
#define CG_ABI_H

#include <stdint.h>

#if defined(__wasm__)
#define CG_EXPORT(name) __attribute__((export_name(#name)))
#define CG_HOST(name) __attribute__((import_module("rt"), import_name(#name)))
#else
#define CG_EXPORT(name)
#define CG_HOST(name)
#endif

CG_HOST(reply) void cg_host_reply(int32_t st, const void *data, uint32_t len, uint64_t blame);
CG_HOST(park) uint64_t cg_host_park(uint64_t deadline_ms);
CG_HOST(complete)
int32_t cg_host_complete(uint64_t id, int32_t st, const void *data, uint32_t len, uint64_t blame);
CG_HOST(mark_dirty) void cg_host_mark_dirty(void);
CG_HOST(snapshot_out) void cg_host_snapshot_out(const void *data, uint32_t len);

#endif
