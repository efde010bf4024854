/*
 * wasm-rt.h — cosignerd's runtime for wasm2c 1.0.32 output (src/sandbox).
 *
 * The generated C of every guest module includes this header instead of
 * wabt's. The declarations are the ones wasm2c's output expects; the
 * implementation (sbx_rt.c) is ours because wabt's runtime cannot serve a
 * threaded server: its trap jmp_buf and call-depth counter are process
 * globals, its memories are 8 GiB reservations that wasm_rt_free_memory
 * leaks, and it takes every SIGSEGV for a guest trap.
 *
 * Here:
 *   - trap state, call depth and fuel are thread-local, so any worker can run
 *     and trap a guest concurrently with the others;
 *   - memory accesses are bounds-checked in software (no signal handler, no
 *     guard pages): a fault in host code stays a host crash, never a "trap";
 *   - linear memory is a slot of a shared pool, capped per instance, so
 *     100k+ instances fit and untouched pages cost no RSS;
 *   - guest/wasm/wasm2c_module.py rewrites each function prologue and loop
 *     header to the SBX_* macros below (depth limit and CPU budget).
 */
#ifndef WASM_RT_H_
#define WASM_RT_H_

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef __has_builtin
#define __has_builtin(x) 0
#endif

#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define wasm_rt_memcpy __builtin_memcpy
#define wasm_rt_unreachable __builtin_unreachable

/* Software bounds checks only: a signal handler would have to tell guest
 * faults from host faults, which is exactly the confusion we refuse. */
#if defined(WASM_RT_MEMCHECK_SIGNAL_HANDLER) && WASM_RT_MEMCHECK_SIGNAL_HANDLER
#error "the sandbox runtime checks memory bounds explicitly; no signal handler"
#endif
#undef WASM_RT_MEMCHECK_SIGNAL_HANDLER
#define WASM_RT_MEMCHECK_SIGNAL_HANDLER 0
#define WASM_RT_SKIP_SIGNAL_RECOVERY 1
#define WASM_RT_SIGNAL_RECOVERY_SUPPORTED 0
#define WASM_RT_MERGED_OOB_AND_EXHAUSTION_TRAPS 0
#define WASM_RT_USE_STACK_DEPTH_COUNT 1

/* Thread-local state. initial-exec: the sandbox is linked into the
 * executable, and the default (global-dynamic, because static libraries are
 * built PIC) would cost a __tls_get_addr call per guest function call. */
#define SBX_TLS __thread __attribute__((tls_model("initial-exec")))

/* Only for un-instrumented wasm2c output (see SBX_FUNC_PROLOGUE for ours). */
#ifndef WASM_RT_MAX_CALL_STACK_DEPTH
#define WASM_RT_MAX_CALL_STACK_DEPTH 500
#endif
extern SBX_TLS uint32_t wasm_rt_call_stack_depth;

#define WASM_RT_NO_RETURN __attribute__((noreturn))

typedef enum {
    WASM_RT_TRAP_NONE,
    WASM_RT_TRAP_OOB,
    WASM_RT_TRAP_INT_OVERFLOW,
    WASM_RT_TRAP_DIV_BY_ZERO,
    WASM_RT_TRAP_INVALID_CONVERSION,
    WASM_RT_TRAP_UNREACHABLE,
    WASM_RT_TRAP_CALL_INDIRECT,
    WASM_RT_TRAP_UNCAUGHT_EXCEPTION,
    WASM_RT_TRAP_EXHAUSTION,
} wasm_rt_trap_t;

typedef enum {
    WASM_RT_I32,
    WASM_RT_I64,
    WASM_RT_F32,
    WASM_RT_F64,
    WASM_RT_FUNCREF,
    WASM_RT_EXTERNREF,
} wasm_rt_type_t;

typedef void (*wasm_rt_function_ptr_t)(void);

typedef struct {
    uint32_t func_type;
    wasm_rt_function_ptr_t func;
    void *module_instance;
} wasm_rt_funcref_t;

static const wasm_rt_funcref_t wasm_rt_funcref_null_value = {0, NULL, NULL};

typedef void *wasm_rt_externref_t;
static const wasm_rt_externref_t wasm_rt_externref_null_value = NULL;

/* A linear memory. The first four fields are wabt's (generated code reads
 * data and size); the rest is ours. data never moves: it is a pool slot of
 * cap_pages pages, of which `size` bytes are accessible. */
typedef struct {
    uint8_t *data;
    uint32_t pages, max_pages;
    uint32_t size;
    uint32_t cap_pages; /* min(max_pages, the instance's configured cap) */
    void *pool;         /* owning pool, NULL when unallocated */
} wasm_rt_memory_t;

typedef struct {
    wasm_rt_funcref_t *data;
    uint32_t max_size;
    uint32_t size;
} wasm_rt_funcref_table_t;

typedef struct {
    wasm_rt_externref_t *data;
    uint32_t max_size;
    uint32_t size;
} wasm_rt_externref_table_t;

void wasm_rt_init(void);
bool wasm_rt_is_initialized(void);
void wasm_rt_free(void);
WASM_RT_NO_RETURN void wasm_rt_trap(wasm_rt_trap_t);
const char *wasm_rt_strerror(wasm_rt_trap_t trap);
uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...);
uint32_t wasm_rt_register_tag(uint32_t size);
void wasm_rt_load_exception(uint32_t tag, uint32_t size, const void *values);
WASM_RT_NO_RETURN void wasm_rt_throw(void);
#define WASM_RT_UNWIND_TARGET jmp_buf
WASM_RT_UNWIND_TARGET *wasm_rt_get_unwind_target(void);
void wasm_rt_set_unwind_target(WASM_RT_UNWIND_TARGET *target);
uint32_t wasm_rt_exception_tag(void);
uint32_t wasm_rt_exception_size(void);
void *wasm_rt_exception(void);
#define WASM_RT_SETJMP(buf) setjmp(buf)
#define wasm_rt_try(target) WASM_RT_SETJMP(target)

/* Allocation failure (initial size above the cap, pool exhausted) traps with
 * WASM_RT_TRAP_EXHAUSTION: instantiation always runs inside a trap boundary. */
void wasm_rt_allocate_memory(wasm_rt_memory_t *, uint32_t initial_pages, uint32_t max_pages);
/* Returns the previous page count, or UINT32_MAX (the guest sees -1) beyond the cap. */
uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *, uint32_t pages);
/* Returns the pages to the kernel (zero-filled before any reuse) and the slot to the pool. */
void wasm_rt_free_memory(wasm_rt_memory_t *);
void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t *, uint32_t elements,
                                    uint32_t max_elements);
void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t *);
void wasm_rt_allocate_externref_table(wasm_rt_externref_table_t *, uint32_t elements,
                                      uint32_t max_elements);
void wasm_rt_free_externref_table(wasm_rt_externref_table_t *);
uint32_t wasm_rt_grow_funcref_table(wasm_rt_funcref_table_t *, uint32_t delta,
                                    wasm_rt_funcref_t init);
uint32_t wasm_rt_grow_externref_table(wasm_rt_externref_table_t *, uint32_t delta,
                                      wasm_rt_externref_t init);

/*
 * Call depth and CPU budget, inlined into every guest function and loop.
 *
 * Depth is bounded by the native stack the guest's frames actually use:
 * each function entry compares the stack pointer with a per-call limit
 * (sbx_stack_limit, set at the trap boundary). That is what must not
 * overflow, whatever each frame's size, and it needs no epilogue, which
 * keeps recursive guest code almost as fast as without a limit.
 *
 * Why fuel and not a watchdog for the budget: a watchdog must interrupt a
 * thread asynchronously (a signal), and then decide whether the thread was
 * in guest code or in host code (an import, libc, malloc holding a lock) —
 * unwinding the latter corrupts the host. Fuel is polled only at points that
 * are guest code by construction (function entries and loop headers), so a
 * budget trap can never fire inside host code, and it costs one decrement
 * and one well-predicted branch per guest call or loop iteration.
 *
 * Fuel is not the budget itself: it is a countdown to the next look at the
 * thread's CPU clock (sbx_fuel_slow). The budget is thus CPU time, as
 * configured, independent of how fast each instruction is; the overrun is at
 * most one fuel quantum. A call that ends within its first quantum never
 * reads the clock at all, which keeps trivial calls cheap. Host imports that
 * take real time (EC arithmetic) charge fuel so the clock is still polled
 * often enough when a guest loops around them.
 */
extern SBX_TLS int64_t sbx_fuel;
extern SBX_TLS uintptr_t sbx_stack_limit;
__attribute__((cold)) void sbx_fuel_slow(void);

static inline __attribute__((always_inline)) uintptr_t sbx_stack_pointer(void)
{
#if defined(__x86_64__)
    uintptr_t sp;
    __asm__("mov %%rsp, %0" : "=r"(sp));
    return sp;
#elif defined(__aarch64__)
    uintptr_t sp;
    __asm__("mov %0, sp" : "=r"(sp));
    return sp;
#else
    return (uintptr_t)__builtin_frame_address(0);
#endif
}

#define SBX_LOOP_FUEL                                                                              \
    do {                                                                                           \
        if (UNLIKELY(--sbx_fuel < 0)) sbx_fuel_slow();                                             \
    } while (0)
#define SBX_FUNC_PROLOGUE_NOFUEL                                                                   \
    do {                                                                                           \
        if (UNLIKELY(sbx_stack_pointer() < sbx_stack_limit))                                       \
            wasm_rt_trap(WASM_RT_TRAP_EXHAUSTION);                                                 \
    } while (0)
#define SBX_FUNC_PROLOGUE                                                                          \
    do {                                                                                           \
        SBX_FUNC_PROLOGUE_NOFUEL;                                                                  \
        SBX_LOOP_FUEL;                                                                             \
    } while (0)
#define SBX_FUNC_EPILOGUE ((void)0)

#ifdef __cplusplus
}
#endif

#endif /* WASM_RT_H_ */
