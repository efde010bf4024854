/*
 * sbx.h — the guest sandbox: the only door into src/sandbox.
 *
 * Owns: running an actor's handler code as a WebAssembly module compiled by
 * wasm2c, one instance (and one linear memory) per actor; our thread-safe
 * wasm2c runtime (wasm-rt.h: traps, bounded lazily-backed memories, call
 * depth, CPU budget); mapping traps to typed errors; the host imports of the
 * actor ABI (module "rt", guest/cg_abi.h) and of the crypto primitives
 * (module "cx", guest/cg_cx.h), each guest pointer bounds-checked.
 *
 * Knows nothing about actors' scheduling (src/rt does that through the
 * rt_behaviour this layer provides), HTTP, or what the guest computes.
 *
 * Fault model: a trap, a budget overrun, a bad pointer handed to an import,
 * or an ABI violation (replying twice, a non-zero status from an export)
 * ends the call with a typed error and kills the instance: it is never
 * entered again, and the caller builds a fresh one from the durable record.
 * Host faults are never caught: there is no signal handler.
 */
#ifndef SBX_H
#define SBX_H

#include <stddef.h>
#include <stdint.h>

#include "rt.h"

/* ------------------------------------------------------------- modules -- */

/*
 * One wasm2c-compiled guest module. Generated per module by
 * guest/wasm/wasm2c_module.py as `const sbx_module sbx_module_<name>` (see
 * guest/wasm/meson.build); nothing here is written by hand. `g` is the
 * module's instance struct (inst_size bytes, zeroed), `host` the sandbox's
 * import context. Exports the module lacks are NULL (cg_buf and cg_handle are
 * mandatory).
 */
typedef struct sbx_module {
    const char *name;
    size_t inst_size;
    void (*init_module)(void); /* idempotent, thread-safe */
    void (*instantiate)(void *g, void *host);
    void (*release)(void *g);
    void *(*memory)(void *g);    /* the module's wasm_rt_memory_t */
    void (*initialize)(void *g); /* reactor's _initialize (C constructors) */
    uint32_t (*cg_init)(void *g);
    uint32_t (*cg_configure)(void *g, uint32_t ptr, uint32_t len); /* optional */
    uint32_t (*cg_buf)(void *g, uint32_t len);
    uint32_t (*cg_set_hostkey)(void *g, uint32_t ptr);
    uint32_t (*cg_restore)(void *g, uint32_t ptr, uint32_t len);
    uint32_t (*cg_handle)(void *g, uint32_t ptr, uint32_t len, uint64_t now_ms);
    uint32_t (*cg_tick)(void *g, uint64_t now_ms);
    uint32_t (*cg_snapshot)(void *g);
    uint32_t (*cg_bench)(void *g, uint32_t n); /* optional, benchmarks only */
} sbx_module;

/* ------------------------------------------------------------- config --- */

#define SBX_DEFAULT_MEM_CAP (4u << 20)
#define SBX_DEFAULT_BUDGET_MS 100u
#define SBX_DEFAULT_STACK_BYTES (1u << 20)

/*
 * Borrowed by every instance built from it: must outlive them.
 * mem_cap is reserved (not committed) per live or pooled instance, in 1 GiB chunks of
 * address space that are reused but never unmapped: 100k actors at 4 MiB
 * reserve ~400 GiB of virtual space (fine on 64-bit without `ulimit -v`,
 * vm.overcommit_memory 0 or 1). At most 8 distinct caps per process.
 * stack_bytes is clamped to what the calling thread's stack has left.
 */
typedef struct sbx_config {
    const sbx_module *module;
    uint32_t mem_cap;            /* linear memory cap per instance, bytes; 0 = 4 MiB */
    uint32_t budget_ms;          /* CPU time per export call; 0 = 100 ms */
    uint32_t stack_bytes;        /* native stack guest frames may use (call depth); 0 = 1 MiB */
    const uint8_t *hostkey;      /* 32 bytes for cg_set_hostkey, NULL = not called */
    const uint8_t *guest_config; /* bytes for the optional cg_configure export */
    size_t guest_config_len;     /* 0 = cg_configure not called */
    /* Instance pool: closed instances of this module kept for reuse, at most
     * this many (per module); 0 = no pooling. A pooled instance keeps its
     * memory slot with at most 256 KiB of pages resident, zeroed on close;
     * sbx_open takes one before building a new instance. */
    uint32_t pool_slots;
} sbx_config;

/* ------------------------------------------------------------- faults --- */

/* The first nine are wasm2c's trap kinds, same numbers. */
typedef enum sbx_fault {
    SBX_FAULT_NONE = 0,
    SBX_FAULT_OOB = 1,          /* memory or table access out of bounds */
    SBX_FAULT_INT_OVERFLOW = 2, /* INT_MIN / -1, float->int out of range */
    SBX_FAULT_DIV_BY_ZERO = 3,
    SBX_FAULT_INVALID_CONVERSION = 4, /* NaN -> int */
    SBX_FAULT_UNREACHABLE = 5,        /* also abort() and __builtin_trap() */
    SBX_FAULT_CALL_INDIRECT = 6,
    SBX_FAULT_UNCAUGHT_EXCEPTION = 7,
    SBX_FAULT_EXHAUSTION = 8,   /* call depth (native stack budget) */
    SBX_FAULT_MEMORY = 9,       /* the module's initial memory exceeds the cap */
    SBX_FAULT_BAD_POINTER = 10, /* an import got a pointer/length outside memory */
    SBX_FAULT_ABI = 11,         /* import misuse or a non-zero export status */
    SBX_FAULT_BUDGET = 12,      /* CPU budget exceeded -> DEADLINE_EXCEEDED */
    SBX_FAULT_COUNT_ = 13
} sbx_fault;

/* Short stable name ("oob", "div_by_zero", ...), for messages and metrics labels. */
const char *sbx_fault_name(sbx_fault f);
/* The status a fault maps to: DEADLINE_EXCEEDED for BUDGET, INTERNAL otherwise. */
rt_status sbx_fault_status(sbx_fault f);

/* ------------------------------------------------------------ instances -- */

typedef struct sbx_instance sbx_instance;

/*
 * Where the "rt" imports of one call go. The rt_behaviour below forwards
 * them to rt_ctx_*; tests and benchmarks may capture them (sbx_call). Data
 * pointers are borrowed for the duration of the callback.
 */
typedef struct sbx_sink {
    void (*reply)(void *arg, rt_status st, const void *data, size_t len, uint64_t blame);
    rt_park_id (*park)(void *arg, uint64_t deadline_ms);
    rt_status (*complete)(void *arg, rt_park_id id, rt_status st, const void *data, size_t len,
                          uint64_t blame);
    void (*mark_dirty)(void *arg);
    void *arg;
} sbx_sink;

/*
 * Instantiates cfg->module and runs _initialize, cg_init, cg_configure
 * (when the module exports it and cfg->guest_config_len != 0),
 * cg_set_hostkey (when cfg->hostkey) and cg_restore(rec) (rec == NULL: len 0),
 * in that order. Any fault is
 * returned as its status (an actor-level fault for the runtime) and nothing
 * is left allocated. Ownership: *out is the caller's, freed with sbx_close().
 */
rt_status sbx_open(const sbx_config *cfg, const uint8_t *rec, size_t rec_len, sbx_instance **out);

/*
 * Runs cg_handle on a copy of cmd (cmd must fit the buffer cg_buf offers,
 * else INVALID_ARGUMENT is replied and RT_OK returned: a refused command is
 * not a fault). RT_OK when the guest returned normally; otherwise the fault
 * status, with the instance dead. On a fault before any reply, the sink gets
 * reply(status, "handler panicked: <kind>") so the caller can learn the kind.
 * A dead instance returns RT_FAILED_PRECONDITION without running anything.
 */
rt_status sbx_handle(sbx_instance *in, const sbx_sink *sink, const void *cmd, size_t len,
                     uint64_t now_ms);
/* cg_tick (no reply slot: reply/park are ABI faults). Same fault rules. */
rt_status sbx_tick(sbx_instance *in, const sbx_sink *sink, uint64_t now_ms);
/* cg_snapshot. Ownership: *out is malloc'd (may be NULL when len is 0) and
 * passed to the caller. Same fault rules. */
rt_status sbx_snapshot(sbx_instance *in, uint8_t **out, size_t *out_len);
/* Ends the instance. Its memory is wiped whatever state the guest left
 * (trapped or not): with cfg->pool_slots and room in the pool, the instance
 * is kept with its resident pages zeroed in place for the next sbx_open of
 * the module; otherwise it is freed and its pages go back to the kernel
 * (see wasm-rt.h). */
void sbx_close(sbx_instance *in);
/* Frees every pooled instance (their pages go back to the kernel). Safe to
 * call at any time, concurrently with sbx_open/sbx_close. */
void sbx_pool_drain(void);

/* Convenience for tests and tools: sbx_handle with a sink that captures the
 * reply into *reply (data malloc'd, free with rt_reply_free). A parked reply
 * is reported as RT_ABORTED, no reply at all as INTERNAL. Returns what
 * sbx_handle returned. */
rt_status sbx_call(sbx_instance *in, const void *cmd, size_t len, uint64_t now_ms, rt_reply *reply);
/* Runs the optional cg_bench(n) export through the trap boundary. */
rt_status sbx_bench(sbx_instance *in, uint32_t n, uint32_t *result);

/* The fault that killed the instance (SBX_FAULT_NONE while alive). */
sbx_fault sbx_last_fault(const sbx_instance *in);
/* Read-only view of the guest's linear memory (tests: isolation checks).
 * Valid until the next call into the instance. */
void sbx_memory(const sbx_instance *in, const uint8_t **data, size_t *len);

/* ------------------------------------------------------------ behaviour -- */

/* Fills *b so the runtime runs cfg->module per actor: create = sbx_open,
 * handle/tick/snapshot forwarded with a sink onto rt_ctx_*, destroy =
 * sbx_close. cfg is borrowed and must outlive the runtime. */
void sbx_behaviour_init(rt_behaviour *b, const sbx_config *cfg);

/* -------------------------------------------------------------- stats --- */

typedef struct sbx_stats {
    uint64_t live;   /* instances now */
    uint64_t opened; /* sbx_open successes */
    uint64_t open_failures;
    uint64_t calls;                    /* export calls through the trap boundary */
    uint64_t faults[SBX_FAULT_COUNT_]; /* by kind, since start */
    uint64_t mem_slots;                /* linear-memory slots ever reserved */
    uint64_t mem_slots_free;           /* of which free now */
    uint64_t mem_reserved_bytes;       /* address space reserved for them */
    uint64_t pool_free;                /* closed instances pooled now (all modules) */
    uint64_t pool_free_peak;           /* highest pool_free since start */
    uint64_t pool_reused;              /* sbx_open served from the pool */
} sbx_stats;

/* Process-wide counters (thread-safe, relaxed). */
void sbx_get_stats(sbx_stats *out);

#endif
