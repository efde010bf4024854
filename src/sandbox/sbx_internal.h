/*
 * sbx_internal.h — what sbx.c and sbx_rt.c share inside src/sandbox
 * (the per-thread trap boundary and the linear-memory pool). Not a door.
 */
#ifndef SBX_INTERNAL_H
#define SBX_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "sbx.h"
#include "wasm-rt.h"

/* The setjmp value of a trap is its sbx_fault (never 0). */
_Noreturn void sbx_raise(sbx_fault f);

/* Arms this thread's trap boundary for one guest call: guest frames may use
 * stack_bytes of native stack below this point. The budget clock starts
 * lazily (see wasm-rt.h). */
void sbx_rt_enter(jmp_buf *jb, uint64_t budget_ns, uint32_t stack_bytes, uint32_t mem_cap_pages);
/* Disarms it: a trap outside a guest call is a host bug and aborts. */
void sbx_rt_leave(void);

/* Charges a host import's cost to the current call's fuel. */
static inline void sbx_charge(int64_t fuel)
{
    sbx_fuel -= fuel;
}

/* A guest pointer handed to an import, checked: [ptr, ptr+len) inside the
 * instance's memory and ptr != 0 (else a BAD_POINTER trap). NULL when len is
 * 0. Valid until the guest runs again. */
uint8_t *sbx_guest_span(sbx_instance *in, uint32_t ptr, uint64_t len);

/* The instance pool (sbx.c) keeps a closed instance's memory slot. These
 * hand one back to the slot allocator. sbx_rt_offer_slot: the next
 * wasm_rt_allocate_memory on this thread takes this (wiped) slot when its
 * cap matches; sbx_rt_take_offer returns it (NULL if it was taken) and clears
 * the offer. sbx_rt_slot_release: the slot goes back to its slot pool
 * (pages dropped). */
void sbx_rt_offer_slot(uint8_t *data, void *slot_pool);
void sbx_rt_take_offer(uint8_t **data, void **slot_pool);
void sbx_rt_slot_release(uint8_t *data, void *slot_pool, size_t used);
/* Zeroes the first `used` bytes of a slot: resident pages in place, the rest
 * dropped; everything dropped if more than keep_resident bytes are resident.
 * Returns the bytes left resident (all zero). */
size_t sbx_rt_slot_wipe(uint8_t *data, size_t used, size_t keep_resident);

/* Pool accounting for tests and metrics. */
void sbx_rt_pool_stats(uint64_t *slots_total, uint64_t *slots_free, uint64_t *reserved_bytes);

#endif
