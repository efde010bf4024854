/*
 * testguest.c — a guest that misbehaves on command, for the sandbox tests
 * and benchmarks. One byte of opcode, then arguments:
 *
 *   'e' bytes   reply OK with bytes (echo)
 *   'c'         counter += 1, mark dirty, reply the counter (u64 LE); durable
 *   'w' bytes   keep bytes ^ 0x5a in a heap buffer (a "secret"), reply OK
 *   'g'         reply the secret's bytes
 *   'm'         malloc 64 KiB blocks until it fails, reply RESOURCE_EXHAUSTED
 *               with the count (u32 LE): the guest sees failure, not a crash
 *   'M'         the same, then abort() like an xmalloc would
 *   'o' / 'O'   load / store out of bounds
 *   'u'         unreachable        'd'  divide by zero    'v'  INT_MIN / -1
 *   'f'         NaN to int         'i'  call_indirect with the wrong type
 *   's'         shadow-stack overflow (recursion with a big stack frame)
 *   'r'         native recursion without shadow-stack use
 *   'l'         infinite loop
 *   'p' / 'P'   reply with a pointer outside memory / a NULL pointer
 *   'D'         reply twice        'z'  return a non-zero status
 *   'n'         no reply           'k'  park the reply
 *   'h' bytes   reply cx_sha256(bytes)
 *   'G' k[32]   reply the compressed k*G (cx_point_mul_base, cx_point_ser)
 *   'X'         cx_sha256 into a pointer outside memory
 *   'Y'         cx_point_ser of forged working-form point bytes
 *
 * A record of "TRAP" makes cg_restore trap (actor-level fault tests).
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cg_abi.h"
#include "cg_cx.h"

#define CG_EXPORT_FN(name) CG_EXPORT(name)

static uint8_t cmdbuf[4096];
static uint64_t counter;
static uint64_t ticks;
static uint8_t *secret;
static uint32_t secret_len;
static volatile int zero;
static volatile int minus_one = -1;
static volatile int int_min = INT_MIN;
static volatile double nan_value;

CG_EXPORT_FN(cg_init) int32_t cg_init(void)
{
    nan_value = __builtin_nan("");
    return 0;
}

CG_EXPORT_FN(cg_buf) void *cg_buf(uint32_t len)
{
    return len <= sizeof cmdbuf ? cmdbuf : 0;
}

CG_EXPORT_FN(cg_set_hostkey) int32_t cg_set_hostkey(const uint8_t *key)
{
    (void)key;
    return 0;
}

CG_EXPORT_FN(cg_restore) int32_t cg_restore(const uint8_t *rec, uint32_t len)
{
    if (len == 4 && !memcmp(rec, "TRAP", 4)) __builtin_trap();
    if (len == 0) return 0;
    if (len != sizeof counter) return 15; /* DATA_LOSS */
    memcpy(&counter, rec, sizeof counter);
    return 0;
}

CG_EXPORT_FN(cg_snapshot) int32_t cg_snapshot(void)
{
    cg_host_snapshot_out(&counter, sizeof counter);
    return 0;
}

CG_EXPORT_FN(cg_tick) int32_t cg_tick(uint64_t now)
{
    (void)now;
    ticks++;
    return 0;
}

static __attribute__((noinline)) uint32_t deep_stack(uint32_t n)
{
    volatile uint8_t frame[8192];
    if (n == 0xffffffffu) return 0;
    frame[n % sizeof frame] = (uint8_t)n;
    return frame[0] + deep_stack(n + 1);
}

static __attribute__((noinline)) uint32_t deep_native(uint32_t n)
{
    if (n == 0xffffffffu) return 0;
    return 1 + deep_native(n + (uint32_t)zero + 1) + (uint32_t)zero;
}

static int32_t takes_int(int32_t x)
{
    return x + 1;
}

/* volatile: a direct call would be resolved (to a trap stub) at link time. */
static int64_t (*volatile wrong_type)(int64_t, int64_t);

static uint32_t alloc_until_failure(void)
{
    /* Through a volatile so the compiler cannot elide the allocations. */
    static void *volatile last;
    uint32_t n = 0;
    while ((last = malloc(65536)) != NULL)
        n++;
    return n;
}

static void reply_u64(int32_t st, uint64_t v)
{
    cg_host_reply(st, &v, sizeof v, 0);
}

CG_EXPORT_FN(cg_handle) int32_t cg_handle(const uint8_t *cmd, uint32_t len, uint64_t now)
{
    (void)now;
    if (len == 0) {
        cg_host_reply(3, "empty", 5, 0);
        return 0;
    }
    const uint8_t *arg = cmd + 1;
    uint32_t alen = len - 1;
    switch (cmd[0]) {
    case 'e':
        cg_host_reply(0, arg, alen, 0);
        return 0;
    case 'c':
        counter++;
        cg_host_mark_dirty();
        reply_u64(0, counter);
        return 0;
    case 'w':
        free(secret);
        secret = malloc(alen);
        if (!secret && alen) __builtin_trap();
        for (uint32_t i = 0; i < alen; i++)
            secret[i] = arg[i] ^ 0x5a;
        secret_len = alen;
        cg_host_reply(0, 0, 0, 0);
        return 0;
    case 'g': {
        uint8_t *o = malloc(secret_len + 1);
        if (!o) __builtin_trap();
        for (uint32_t i = 0; i < secret_len; i++)
            o[i] = secret[i] ^ 0x5a;
        cg_host_reply(0, o, secret_len, 0);
        free(o);
        return 0;
    }
    case 'm':
        reply_u64(8, alloc_until_failure());
        return 0;
    case 'M':
        alloc_until_failure();
        abort();
    case 'o':
        reply_u64(0, *(volatile uint64_t *)(uintptr_t)0xfffffff0u);
        return 0;
    case 'O':
        *(volatile uint64_t *)(uintptr_t)0xfffffff0u = 1;
        break;
    case 'u':
        __builtin_trap();
    case 'd':
        reply_u64(0, (uint64_t)(100 / zero));
        return 0;
    case 'v':
        reply_u64(0, (uint64_t)(int_min / minus_one));
        return 0;
    case 'f':
        /* C's (int) cast is guarded by the compiler; the wasm instruction traps. */
        reply_u64(0, (uint64_t)__builtin_wasm_trunc_s_i32_f64(nan_value));
        return 0;
    case 'i': {
        /* Calling through a pointer of the wrong type: call_indirect's
         * signature check must trap. */
        wrong_type = (int64_t(*)(int64_t, int64_t))(void *)takes_int;
        reply_u64(0, (uint64_t)wrong_type(1, 2));
        return 0;
    }
    case 's':
        reply_u64(0, deep_stack(0));
        return 0;
    case 'r':
        reply_u64(0, deep_native(0));
        return 0;
    case 'l':
        for (;;)
            counter += (uint64_t)zero;
    case 'p':
        cg_host_reply(0, (const void *)(uintptr_t)0xffffff00u, 1024, 0);
        return 0;
    case 'P':
        cg_host_reply(0, 0, 16, 0);
        return 0;
    case 'D':
        cg_host_reply(0, 0, 0, 0);
        cg_host_reply(0, 0, 0, 0);
        return 0;
    case 'z':
        return 13;
    case 'n':
        return 0;
    case 'k':
        cg_host_park(0);
        return 0;
    case 't':
        reply_u64(0, ticks);
        return 0;
    case 'h': {
        uint8_t out[32];
        cx_sha256(out, arg, alen);
        cg_host_reply(0, out, sizeof out, 0);
        return 0;
    }
    case 'G': {
        uint8_t p[64], c[33];
        if (alen != 32 || !cx_point_mul_base(p, arg) || !cx_point_ser(c, p)) {
            cg_host_reply(3, "bad scalar", 10, 0);
            return 0;
        }
        cg_host_reply(0, c, sizeof c, 0);
        return 0;
    }
    case 'X':
        cx_sha256((uint8_t *)(uintptr_t)0xfffffff0u, arg, alen);
        cg_host_reply(0, 0, 0, 0);
        return 0;
    case 'Y': {
        uint8_t p[64], c[33];
        for (int i = 0; i < 64; i++)
            p[i] = (uint8_t)(i * 7 + 1);
        cg_host_reply(0, c, (uint32_t)cx_point_ser(c, p) * 33, 0);
        return 0;
    }
    }
    cg_host_reply(3, "unknown command", 15, 0);
    return 0;
}

/* Benchmarks: n == 0 is the trivial call; otherwise a loop-heavy FNV-1a
 * over a 4 KiB buffer, n times (one loop header per byte: a worst case for
 * per-iteration budget checks), or with the top bit set the call-heavy
 * naive fib(n & 0xff). */
static uint8_t bench_buf[4096];

static __attribute__((noinline)) uint32_t fib(uint32_t n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

CG_EXPORT_FN(cg_bench) uint32_t cg_bench(uint32_t n)
{
    if (n & 0x80000000u) /* call-heavy variant: one function entry per step */
        return fib(n & 0xff);
    uint32_t h = 2166136261u;
    for (uint32_t r = 0; r < n; r++)
        for (uint32_t i = 0; i < sizeof bench_buf; i++)
            h = (h ^ bench_buf[i] ^ r) * 16777619u;
    return h;
}
