/*
 * sbx.c — guest instances: lifecycle, the trap boundary, the "rt" imports.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbx_imports.h"
#include "sbx_internal.h"

#define PAGE_BYTES 65536u

enum mode { M_NONE, M_INIT, M_CLIENT, M_TICK, M_SNAPSHOT };

enum op {
    OP_INSTANTIATE,
    OP_INITIALIZE,
    OP_INIT,
    OP_CONFIGURE,
    OP_BUF,
    OP_HOSTKEY,
    OP_RESTORE,
    OP_HANDLE,
    OP_TICK,
    OP_SNAPSHOT,
    OP_BENCH
};

struct sbx_instance {
    const sbx_module *mod;
    void *g; /* the module's instance struct, right after this one */
    wasm_rt_memory_t *mem;
    uint64_t budget_ns;
    uint32_t stack_bytes;
    uint32_t cap_pages;
    sbx_fault fault; /* != NONE: dead, never entered again */
    int mode;        /* which imports are legal now */
    int replied, parked;
    const sbx_sink *sink;
    uint8_t *snap;
    size_t snap_len;
    int snap_set, snap_oom;
    uint32_t pool_max;         /* cfg->pool_slots at open: the bound on close */
    struct sbx_instance *next; /* free list link while pooled */
    uint8_t *slot;             /* while pooled: the wiped memory slot kept */
    void *slot_pool;           /* and the slot allocator it belongs to */
};

/* Keeps the guest struct aligned for any member type. */
#define HDR_SIZE ((sizeof(struct sbx_instance) + 63) & ~(size_t)63)

/* ---------------------------------------------------------------- stats -- */

static uint64_t st_live, st_opened, st_open_failures;
static uint64_t st_pool_free, st_pool_peak, st_pool_reused;
static uint64_t st_faults[SBX_FAULT_COUNT_];

static void count(uint64_t *c, int64_t d)
{
    __atomic_fetch_add(c, (uint64_t)d, __ATOMIC_RELAXED);
}

void sbx_get_stats(sbx_stats *out)
{
    memset(out, 0, sizeof *out);
    out->live = __atomic_load_n(&st_live, __ATOMIC_RELAXED);
    out->opened = __atomic_load_n(&st_opened, __ATOMIC_RELAXED);
    out->open_failures = __atomic_load_n(&st_open_failures, __ATOMIC_RELAXED);
    for (int i = 0; i < SBX_FAULT_COUNT_; i++)
        out->faults[i] = __atomic_load_n(&st_faults[i], __ATOMIC_RELAXED);
    out->pool_free = __atomic_load_n(&st_pool_free, __ATOMIC_RELAXED);
    out->pool_free_peak = __atomic_load_n(&st_pool_peak, __ATOMIC_RELAXED);
    out->pool_reused = __atomic_load_n(&st_pool_reused, __ATOMIC_RELAXED);
    sbx_rt_pool_stats(&out->mem_slots, &out->mem_slots_free, &out->mem_reserved_bytes);
}

static const char *const fault_names[SBX_FAULT_COUNT_] = {
    [SBX_FAULT_NONE] = "none",
    [SBX_FAULT_OOB] = "oob",
    [SBX_FAULT_INT_OVERFLOW] = "int_overflow",
    [SBX_FAULT_DIV_BY_ZERO] = "div_by_zero",
    [SBX_FAULT_INVALID_CONVERSION] = "invalid_conversion",
    [SBX_FAULT_UNREACHABLE] = "unreachable",
    [SBX_FAULT_CALL_INDIRECT] = "call_indirect",
    [SBX_FAULT_UNCAUGHT_EXCEPTION] = "uncaught_exception",
    [SBX_FAULT_EXHAUSTION] = "exhaustion",
    [SBX_FAULT_MEMORY] = "memory",
    [SBX_FAULT_BAD_POINTER] = "bad_pointer",
    [SBX_FAULT_ABI] = "abi",
    [SBX_FAULT_BUDGET] = "budget",
};

const char *sbx_fault_name(sbx_fault f)
{
    return (unsigned)f < SBX_FAULT_COUNT_ ? fault_names[f] : "unknown";
}

rt_status sbx_fault_status(sbx_fault f)
{
    if (f == SBX_FAULT_NONE) return RT_OK;
    return f == SBX_FAULT_BUDGET ? RT_DEADLINE_EXCEEDED : RT_INTERNAL;
}

/* -------------------------------------------------------- trap boundary -- */

/*
 * The one place guest code is entered. setjmp here, longjmp from
 * sbx_raise(): only guest code and our import glue (never a lock holder,
 * never libc) sit between the two, so unwinding them leaks nothing but the
 * guest instance itself, which is then dead.
 */
static sbx_fault guarded(sbx_instance *in, enum op op, uint32_t a, uint32_t b, uint64_t c,
                         uint32_t *ret)
{
    jmp_buf jb;
    int f = setjmp(jb);
    if (f) return (sbx_fault)f;
    sbx_rt_enter(&jb, in->budget_ns, in->stack_bytes, in->cap_pages);
    const sbx_module *m = in->mod;
    void *g = in->g;
    uint32_t r = 0;
    switch (op) {
    case OP_INSTANTIATE:
        m->instantiate(g, in);
        break;
    case OP_INITIALIZE:
        m->initialize(g);
        break;
    case OP_INIT:
        r = m->cg_init(g);
        break;
    case OP_CONFIGURE:
        r = m->cg_configure(g, a, b);
        break;
    case OP_BUF:
        r = m->cg_buf(g, a);
        break;
    case OP_HOSTKEY:
        r = m->cg_set_hostkey(g, a);
        break;
    case OP_RESTORE:
        r = m->cg_restore(g, a, b);
        break;
    case OP_HANDLE:
        r = m->cg_handle(g, a, b, c);
        break;
    case OP_TICK:
        r = m->cg_tick(g, c);
        break;
    case OP_SNAPSHOT:
        r = m->cg_snapshot(g);
        break;
    case OP_BENCH:
        r = m->cg_bench(g, a);
        break;
    }
    sbx_rt_leave();
    *ret = r;
    return SBX_FAULT_NONE;
}

static rt_status kill(sbx_instance *in, sbx_fault f)
{
    in->fault = f;
    in->mode = M_NONE;
    count(&st_faults[f], 1);
    return sbx_fault_status(f);
}

/* Runs an export that returns an rt_status: a non-zero one is the guest
 * declaring its own fault (cg_abi.h). */
static sbx_fault call_status(sbx_instance *in, enum op op, uint32_t a, uint32_t b, uint64_t c)
{
    uint32_t r = 0;
    sbx_fault f = guarded(in, op, a, b, c, &r);
    if (f == SBX_FAULT_NONE && r != 0) f = SBX_FAULT_ABI;
    return f;
}

/* Asks the guest for a buffer and fills it; *ptr = 0 when the guest refuses
 * (too large). A buffer outside memory is the guest's bug. */
static sbx_fault fill_buf(sbx_instance *in, const void *data, size_t len, uint32_t *ptr)
{
    *ptr = 0;
    if (len > UINT32_MAX) return SBX_FAULT_NONE;
    uint32_t p = 0;
    sbx_fault f = guarded(in, OP_BUF, (uint32_t)len, 0, 0, &p);
    if (f) return f;
    if (p == 0) return SBX_FAULT_NONE;
    if ((uint64_t)p + len > in->mem->size) return SBX_FAULT_BAD_POINTER;
    memcpy(in->mem->data + p, data, len);
    *ptr = p;
    return SBX_FAULT_NONE;
}

/* ------------------------------------------------------------ lifecycle -- */

static void release(sbx_instance *in)
{
    in->mod->release(in->g);
    free(in->snap);
    free(in);
}

/* -------------------------------------------------------- instance pool -- */

/*
 * Why: a cold activation is mostly page faults — every page the guest's
 * start-up touches (data segments, stack, heap, its tables of constants) is
 * a fresh zero page from the kernel, and every teardown gives them back. A
 * closed instance instead keeps its allocation and its memory slot with the
 * touched pages still mapped, zeroed in place (sbx_rt_slot_wipe), and the
 * next sbx_open of the same module re-instantiates into them: wasm2c's
 * instantiate re-initializes globals, tables and data segments itself, so
 * nothing of the previous tenant survives but zero bytes.
 *
 * Bounded per module by the closing config's pool_slots, so idle memory
 * stays what live instances cost plus at most that many warm slots of at
 * most POOL_KEEP_RESIDENT bytes each. One mutex: the critical sections are
 * a push or a pop, far shorter than an activation.
 */
#define POOL_KEEP_RESIDENT ((size_t)256 << 10)
#define POOL_KINDS 8

typedef struct ipool {
    const sbx_module *mod;
    sbx_instance *head;
    uint64_t n;
} ipool;

static pthread_mutex_t ip_mu = PTHREAD_MUTEX_INITIALIZER;
static ipool ipools[POOL_KINDS];

static ipool *ipool_of(const sbx_module *m, int create)
{
    for (int i = 0; i < POOL_KINDS; i++)
        if (ipools[i].mod == m) return &ipools[i];
    if (create)
        for (int i = 0; i < POOL_KINDS; i++)
            if (!ipools[i].mod) {
                ipools[i].mod = m;
                return &ipools[i];
            }
    return NULL;
}

static sbx_instance *pool_take(const sbx_module *m)
{
    sbx_instance *in = NULL;
    pthread_mutex_lock(&ip_mu);
    ipool *ip = ipool_of(m, 0);
    if (ip && ip->head) {
        in = ip->head;
        ip->head = in->next;
        ip->n--;
        __atomic_store_n(&st_pool_free, st_pool_free - 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&ip_mu);
    return in;
}

/* 1 when the pool took it; 0 when full (the caller releases it). */
static int pool_give(sbx_instance *in, uint32_t bound)
{
    int kept = 0;
    pthread_mutex_lock(&ip_mu);
    ipool *ip = ipool_of(in->mod, 1);
    if (ip && ip->n < bound) {
        in->next = ip->head;
        ip->head = in;
        ip->n++;
        uint64_t f = st_pool_free + 1;
        __atomic_store_n(&st_pool_free, f, __ATOMIC_RELAXED);
        if (f > st_pool_peak) __atomic_store_n(&st_pool_peak, f, __ATOMIC_RELAXED);
        kept = 1;
    }
    pthread_mutex_unlock(&ip_mu);
    return kept;
}

static int pool_full(const sbx_module *m, uint32_t bound)
{
    pthread_mutex_lock(&ip_mu);
    ipool *ip = ipool_of(m, 0);
    int full = ip && ip->n >= bound;
    pthread_mutex_unlock(&ip_mu);
    return full;
}

/* Ends an instance: back to the pool wiped, or freed outright (pool off or
 * full, or no memory to keep). A dead (trapped) instance is recycled like a
 * live one: the wipe does not depend on what the guest left behind. */
static void recycle(sbx_instance *in)
{
    uint32_t bound = in->pool_max;
    if (!bound || !in->mem || !in->mem->pool || pool_full(in->mod, bound)) {
        release(in);
        return;
    }
    const sbx_module *m = in->mod;
    uint8_t *slot = in->mem->data;
    void *sp = in->mem->pool;
    size_t used = in->mem->size;
    in->mem->pool = NULL; /* the slot stays ours: the module's free must not drop it */
    m->release(in->g);
    free(in->snap);
    sbx_rt_slot_wipe(slot, used, POOL_KEEP_RESIDENT);
    /* As calloc left it: instantiate expects a zeroed instance struct. */
    memset(in, 0, HDR_SIZE + m->inst_size);
    in->mod = m;
    in->g = (uint8_t *)in + HDR_SIZE;
    in->slot = slot;
    in->slot_pool = sp;
    if (!pool_give(in, bound)) {
        sbx_rt_slot_release(slot, sp, SIZE_MAX);
        free(in);
    }
}

void sbx_pool_drain(void)
{
    sbx_instance *all = NULL;
    pthread_mutex_lock(&ip_mu);
    for (int i = 0; i < POOL_KINDS; i++) {
        sbx_instance *in = ipools[i].head;
        while (in) {
            sbx_instance *nx = in->next;
            in->next = all;
            all = in;
            in = nx;
        }
        ipools[i].head = NULL;
        ipools[i].n = 0;
    }
    __atomic_store_n(&st_pool_free, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&ip_mu);
    while (all) {
        sbx_instance *nx = all->next;
        sbx_rt_slot_release(all->slot, all->slot_pool, SIZE_MAX);
        free(all);
        all = nx;
    }
}

rt_status sbx_open(const sbx_config *cfg, const uint8_t *rec, size_t rec_len, sbx_instance **out)
{
    *out = NULL;
    const sbx_module *m = cfg ? cfg->module : NULL;
    if (!m || !m->cg_buf || !m->cg_handle || (rec_len && !rec)) return RT_INVALID_ARGUMENT;
    m->init_module();
    sbx_instance *in = cfg->pool_slots ? pool_take(m) : NULL;
    uint8_t *slot = NULL;
    void *slot_pool = NULL;
    if (in) {
        slot = in->slot;
        slot_pool = in->slot_pool;
        in->slot = NULL;
        in->slot_pool = NULL;
        in->next = NULL;
        count(&st_pool_reused, 1);
    } else {
        in = calloc(1, HDR_SIZE + m->inst_size);
        if (!in) return RT_RESOURCE_EXHAUSTED;
    }
    in->mod = m;
    in->pool_max = cfg->pool_slots;
    in->g = (uint8_t *)in + HDR_SIZE;
    in->budget_ns = (uint64_t)(cfg->budget_ms ? cfg->budget_ms : SBX_DEFAULT_BUDGET_MS) * 1000000u;
    in->stack_bytes = cfg->stack_bytes ? cfg->stack_bytes : SBX_DEFAULT_STACK_BYTES;
    uint32_t cap = cfg->mem_cap ? cfg->mem_cap : SBX_DEFAULT_MEM_CAP;
    in->cap_pages = cap / PAGE_BYTES;
    in->mode = M_INIT;

    uint32_t dummy, ptr;
    if (slot) sbx_rt_offer_slot(slot, slot_pool);
    sbx_fault f = guarded(in, OP_INSTANTIATE, 0, 0, 0, &dummy);
    if (slot) {
        /* Not taken (another cap, or a trap before the memory): drop it. */
        sbx_rt_take_offer(&slot, &slot_pool);
        sbx_rt_slot_release(slot, slot_pool, SIZE_MAX);
    }
    if (f) goto fail;
    in->mem = m->memory(in->g);
    if (m->initialize && (f = guarded(in, OP_INITIALIZE, 0, 0, 0, &dummy))) goto fail;
    if (m->cg_init && (f = call_status(in, OP_INIT, 0, 0, 0))) goto fail;
    if (m->cg_configure && cfg->guest_config_len) {
        if ((f = fill_buf(in, cfg->guest_config, cfg->guest_config_len, &ptr))) goto fail;
        f = ptr ? call_status(in, OP_CONFIGURE, ptr, (uint32_t)cfg->guest_config_len, 0)
                : SBX_FAULT_ABI;
        if (f) goto fail;
    }
    if (cfg->hostkey && m->cg_set_hostkey) {
        if ((f = fill_buf(in, cfg->hostkey, 32, &ptr))) goto fail;
        f = ptr ? call_status(in, OP_HOSTKEY, ptr, 0, 0) : SBX_FAULT_ABI;
        /* The guest keeps its own copy; the staging buffer must not. */
        if (ptr && (uint64_t)ptr + 32 <= in->mem->size) memset(in->mem->data + ptr, 0, 32);
        if (f) goto fail;
    }
    if (m->cg_restore) {
        ptr = 0;
        if (rec_len) {
            if ((f = fill_buf(in, rec, rec_len, &ptr))) goto fail;
            if (!ptr) {
                f = SBX_FAULT_ABI; /* record larger than the guest accepts */
                goto fail;
            }
        }
        if ((f = call_status(in, OP_RESTORE, ptr, (uint32_t)rec_len, 0))) goto fail;
    }
    in->mode = M_NONE;
    count(&st_opened, 1);
    count(&st_live, 1);
    *out = in;
    return RT_OK;
fail:
    count(&st_faults[f], 1);
    count(&st_open_failures, 1);
    recycle(in);
    return sbx_fault_status(f);
}

void sbx_close(sbx_instance *in)
{
    if (!in) return;
    count(&st_live, -1);
    recycle(in);
}

sbx_fault sbx_last_fault(const sbx_instance *in)
{
    return in->fault;
}

void sbx_memory(const sbx_instance *in, const uint8_t **data, size_t *len)
{
    *data = in->mem ? in->mem->data : NULL;
    *len = in->mem ? in->mem->size : 0;
}

/* --------------------------------------------------------------- calls --- */

static void fault_reply(sbx_instance *in, const sbx_sink *sink, sbx_fault f)
{
    if (in->replied || in->parked || !sink || !sink->reply) return;
    char msg[80];
    int n = f == SBX_FAULT_BUDGET
                ? snprintf(msg, sizeof msg, "handler exceeded its CPU budget")
                : snprintf(msg, sizeof msg, "handler panicked: %s", sbx_fault_name(f));
    sink->reply(sink->arg, sbx_fault_status(f), msg, (size_t)n, 0);
}

rt_status sbx_handle(sbx_instance *in, const sbx_sink *sink, const void *cmd, size_t len,
                     uint64_t now_ms)
{
    if (in->fault) return RT_FAILED_PRECONDITION;
    in->sink = sink;
    in->replied = in->parked = 0;
    uint32_t ptr = 0;
    sbx_fault f = SBX_FAULT_NONE;
    if (len) {
        if ((f = fill_buf(in, cmd, len, &ptr))) goto fault;
        if (!ptr) {
            static const char msg[] = "command too large";
            if (sink && sink->reply)
                sink->reply(sink->arg, RT_INVALID_ARGUMENT, msg, sizeof msg - 1, 0);
            return RT_OK;
        }
    }
    in->mode = M_CLIENT;
    f = call_status(in, OP_HANDLE, ptr, (uint32_t)len, now_ms);
    in->mode = M_NONE;
    if (!f) return RT_OK;
fault:
    fault_reply(in, sink, f);
    return kill(in, f);
}

rt_status sbx_tick(sbx_instance *in, const sbx_sink *sink, uint64_t now_ms)
{
    if (in->fault) return RT_FAILED_PRECONDITION;
    if (!in->mod->cg_tick) return RT_OK;
    in->sink = sink;
    in->mode = M_TICK;
    sbx_fault f = call_status(in, OP_TICK, 0, 0, now_ms);
    in->mode = M_NONE;
    return f ? kill(in, f) : RT_OK;
}

rt_status sbx_snapshot(sbx_instance *in, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (in->fault) return RT_FAILED_PRECONDITION;
    if (!in->mod->cg_snapshot) return RT_OK;
    in->mode = M_SNAPSHOT;
    in->snap_set = in->snap_oom = 0;
    sbx_fault f = call_status(in, OP_SNAPSHOT, 0, 0, 0);
    in->mode = M_NONE;
    uint8_t *snap = in->snap;
    size_t snap_len = in->snap_len;
    in->snap = NULL;
    in->snap_len = 0;
    if (f) {
        free(snap);
        return kill(in, f);
    }
    if (in->snap_oom)
        return RT_RESOURCE_EXHAUSTED; /* host short of memory: not the guest's fault */
    *out = snap;
    *out_len = snap_len;
    return RT_OK;
}

rt_status sbx_bench(sbx_instance *in, uint32_t n, uint32_t *result)
{
    if (in->fault) return RT_FAILED_PRECONDITION;
    if (!in->mod->cg_bench) return RT_UNIMPLEMENTED;
    sbx_fault f = guarded(in, OP_BENCH, n, 0, 0, result);
    return f ? kill(in, f) : RT_OK;
}

/* Capturing sink of sbx_call. */
typedef struct capture {
    rt_reply *r;
    int replied, parked;
    rt_park_id next;
} capture;

static void cap_reply(void *arg, rt_status st, const void *data, size_t len, uint64_t blame)
{
    capture *c = arg;
    c->replied = 1;
    c->r->status = st;
    c->r->blame = blame;
    c->r->data = len ? malloc(len) : NULL;
    c->r->len = c->r->data ? len : 0;
    if (c->r->data) memcpy(c->r->data, data, len);
}

static rt_park_id cap_park(void *arg, uint64_t deadline_ms)
{
    capture *c = arg;
    (void)deadline_ms;
    c->parked = 1;
    return ++c->next;
}

static rt_status cap_complete(void *arg, rt_park_id id, rt_status st, const void *data, size_t len,
                              uint64_t blame)
{
    (void)arg, (void)id, (void)st, (void)data, (void)len, (void)blame;
    return RT_NOT_FOUND;
}

static void cap_dirty(void *arg)
{
    (void)arg;
}

rt_status sbx_call(sbx_instance *in, const void *cmd, size_t len, uint64_t now_ms, rt_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    capture c = {.r = reply};
    sbx_sink sink = {cap_reply, cap_park, cap_complete, cap_dirty, &c};
    rt_status st = sbx_handle(in, &sink, cmd, len, now_ms);
    if (!c.replied) {
        static const char parked[] = "parked", none[] = "no reply";
        const char *m = c.parked ? parked : none;
        cap_reply(&c, st != RT_OK ? st : c.parked ? RT_ABORTED : RT_INTERNAL, m, strlen(m), 0);
    }
    return st;
}

/* ---------------------------------------------------------- rt imports --- */

/* Every pointer a guest hands the host: inside memory, and not NULL (a
 * guest passing NULL has a bug the native build would crash on). */
uint8_t *sbx_guest_span(sbx_instance *in, uint32_t ptr, uint64_t len)
{
    if (len == 0) return NULL;
    if (ptr == 0 || (uint64_t)ptr + len > in->mem->size) sbx_raise(SBX_FAULT_BAD_POINTER);
    return in->mem->data + ptr;
}

static rt_status guest_status(uint32_t st)
{
    if (st >= RT_STATUS_COUNT_) sbx_raise(SBX_FAULT_ABI);
    return (rt_status)st;
}

void Z_rtZ_reply(struct Z_rt_instance_t *ctx, uint32_t st, uint32_t ptr, uint32_t len,
                 uint64_t blame)
{
    sbx_instance *in = (sbx_instance *)ctx;
    if (in->mode != M_CLIENT || in->replied || in->parked) sbx_raise(SBX_FAULT_ABI);
    rt_status s = guest_status(st);
    const uint8_t *d = sbx_guest_span(in, ptr, len);
    in->replied = 1;
    if (in->sink && in->sink->reply) in->sink->reply(in->sink->arg, s, d, len, blame);
}

uint64_t Z_rtZ_park(struct Z_rt_instance_t *ctx, uint64_t deadline_ms)
{
    sbx_instance *in = (sbx_instance *)ctx;
    if (in->mode != M_CLIENT || in->replied || in->parked || !in->sink || !in->sink->park)
        sbx_raise(SBX_FAULT_ABI);
    in->parked = 1;
    return in->sink->park(in->sink->arg, deadline_ms);
}

uint32_t Z_rtZ_complete(struct Z_rt_instance_t *ctx, uint64_t id, uint32_t st, uint32_t ptr,
                        uint32_t len, uint64_t blame)
{
    sbx_instance *in = (sbx_instance *)ctx;
    if ((in->mode != M_CLIENT && in->mode != M_TICK) || !in->sink || !in->sink->complete)
        sbx_raise(SBX_FAULT_ABI);
    rt_status s = guest_status(st);
    const uint8_t *d = sbx_guest_span(in, ptr, len);
    return (uint32_t)in->sink->complete(in->sink->arg, id, s, d, len, blame);
}

void Z_rtZ_mark_dirty(struct Z_rt_instance_t *ctx)
{
    sbx_instance *in = (sbx_instance *)ctx;
    if (in->mode == M_INIT) return; /* restoring: the state is the durable one by definition */
    if (in->mode != M_CLIENT && in->mode != M_TICK) sbx_raise(SBX_FAULT_ABI);
    if (in->sink && in->sink->mark_dirty) in->sink->mark_dirty(in->sink->arg);
}

void Z_rtZ_snapshot_out(struct Z_rt_instance_t *ctx, uint32_t ptr, uint32_t len)
{
    sbx_instance *in = (sbx_instance *)ctx;
    if (in->mode != M_SNAPSHOT || in->snap_set) sbx_raise(SBX_FAULT_ABI);
    const uint8_t *d = sbx_guest_span(in, ptr, len);
    in->snap_set = 1;
    if (!len) return;
    in->snap = malloc(len);
    if (!in->snap) {
        in->snap_oom = 1;
        return;
    }
    memcpy(in->snap, d, len);
    in->snap_len = len;
}
