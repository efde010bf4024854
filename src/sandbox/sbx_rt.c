/*
 * sbx_rt.c — our implementation of wasm-rt.h (see that header for why).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "sbx_internal.h"

#define PAGE_BYTES 65536u

/* Ticks between two looks at the CPU clock: a few hundred microseconds of
 * tight guest loop, so a clock read (a syscall for the thread CPU clock)
 * costs well under 0.1 % and the budget overshoots by well under 1 ms. */
#define FUEL_QUANTUM (1 << 18)

SBX_TLS uint32_t wasm_rt_call_stack_depth;
SBX_TLS int64_t sbx_fuel;
SBX_TLS uintptr_t sbx_stack_limit;

static SBX_TLS jmp_buf *tls_jb;
static SBX_TLS uint64_t tls_budget_ns;
static SBX_TLS uint64_t tls_deadline_ns; /* 0 = clock not started yet */
static SBX_TLS uint32_t tls_mem_cap_pages;

/* Room left below the guest's deepest frame for host imports (crypto,
 * libc) and for the trap path itself. */
#define HOST_STACK_RESERVE (128u << 10)
static SBX_TLS uintptr_t tls_stack_floor;

/* Lowest usable stack address of this thread plus the host reserve; once
 * per thread (pthread_getattr_np may read /proc for the main thread). */
static uintptr_t stack_floor(void)
{
    pthread_attr_t a;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &lo, &size);
        pthread_attr_destroy(&a);
    }
    if (!lo) return 1; /* unknown: trust the configured budget alone */
    return (uintptr_t)lo + HOST_STACK_RESERVE;
}

void sbx_rt_enter(jmp_buf *jb, uint64_t budget_ns, uint32_t stack_bytes, uint32_t mem_cap_pages)
{
    if (tls_jb) {
        /* A guest call from inside a host import of another guest call (a
         * sink calling back into a sandbox): one boundary per thread, by
         * design. A host bug, so it must not become anyone's trap. */
        fputs("sandbox: nested guest call\n", stderr);
        abort();
    }
    tls_jb = jb;
    uintptr_t sp = sbx_stack_pointer();
    if (!tls_stack_floor) tls_stack_floor = stack_floor();
    /* Never deeper than this thread's stack allows, host imports included. */
    sbx_stack_limit = sp - stack_bytes;
    if (sbx_stack_limit < tls_stack_floor || sbx_stack_limit > sp)
        sbx_stack_limit = tls_stack_floor;
    tls_budget_ns = budget_ns;
    tls_deadline_ns = 0;
    tls_mem_cap_pages = mem_cap_pages;
    sbx_fuel = FUEL_QUANTUM;
    wasm_rt_call_stack_depth = 0;
}

void sbx_rt_leave(void)
{
    tls_jb = NULL;
}

_Noreturn void sbx_raise(sbx_fault f)
{
    jmp_buf *jb = tls_jb;
    if (!jb) {
        /* A trap with no guest call on this thread is a host bug; turning it
         * into anyone's handler fault would hide it. */
        fprintf(stderr, "sandbox: trap '%s' outside a guest call\n", sbx_fault_name(f));
        abort();
    }
    tls_jb = NULL;
    longjmp(*jb, (int)f);
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sbx_fuel_slow(void)
{
    uint64_t now = thread_cpu_ns();
    if (!tls_deadline_ns)
        /* First quantum's time is not counted: bounded, and it lets calls
         * that end quickly skip the clock read entirely. */
        tls_deadline_ns = now + tls_budget_ns;
    else if (now >= tls_deadline_ns)
        sbx_raise(SBX_FAULT_BUDGET);
    sbx_fuel = FUEL_QUANTUM;
}

void wasm_rt_init(void) {}

bool wasm_rt_is_initialized(void)
{
    return true;
}

void wasm_rt_free(void) {}

void wasm_rt_trap(wasm_rt_trap_t t)
{
    sbx_raise((sbx_fault)t);
}

const char *wasm_rt_strerror(wasm_rt_trap_t t)
{
    return sbx_fault_name((sbx_fault)t);
}

/* ------------------------------------------------------- function types -- */

/* Process-wide so that equal signatures get equal ids across modules, as
 * wasm2c expects; only written while modules initialize. */
typedef struct ftype {
    uint32_t np, nr;
    wasm_rt_type_t t[16];
} ftype;
static pthread_mutex_t ft_mu = PTHREAD_MUTEX_INITIALIZER;
static ftype *ft_tab;
static uint32_t ft_len, ft_cap;

uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...)
{
    ftype f = {.np = params, .nr = results};
    if (params + results > 16) {
        /* The actor ABI never needs this; refuse loudly at module init. */
        fprintf(stderr, "sandbox: function type with %u values unsupported\n", params + results);
        abort();
    }
    va_list ap;
    va_start(ap, results);
    for (uint32_t i = 0; i < params + results; i++)
        f.t[i] = (wasm_rt_type_t)va_arg(ap, int);
    va_end(ap);
    pthread_mutex_lock(&ft_mu);
    uint32_t id;
    for (id = 0; id < ft_len; id++)
        if (!memcmp(&ft_tab[id], &f, sizeof f)) goto out;
    if (ft_len == ft_cap) {
        ft_cap = ft_cap ? 2 * ft_cap : 64;
        ftype *n = realloc(ft_tab, ft_cap * sizeof *n);
        if (!n) abort();
        ft_tab = n;
    }
    ft_tab[ft_len++] = f;
out:
    pthread_mutex_unlock(&ft_mu);
    return id + 1; /* 0 is the null funcref's type */
}

/* ---------------------------------------------------------- exceptions --- */

/* Only modules built with --enable-exceptions use these; ours do not, but
 * the header promises them, so they work per thread. */
static uint32_t tag_next;
static SBX_TLS uint32_t exc_tag, exc_size;
static SBX_TLS uint8_t exc_buf[256];
static SBX_TLS WASM_RT_UNWIND_TARGET *exc_target;

uint32_t wasm_rt_register_tag(uint32_t size)
{
    (void)size;
    return __atomic_add_fetch(&tag_next, 1, __ATOMIC_RELAXED);
}

void wasm_rt_load_exception(uint32_t tag, uint32_t size, const void *values)
{
    if (size > sizeof exc_buf) sbx_raise(SBX_FAULT_EXHAUSTION);
    exc_tag = tag;
    exc_size = size;
    if (size) memcpy(exc_buf, values, size);
}

void wasm_rt_throw(void)
{
    if (!exc_target) sbx_raise(SBX_FAULT_UNCAUGHT_EXCEPTION);
    longjmp(*exc_target, 1);
}

WASM_RT_UNWIND_TARGET *wasm_rt_get_unwind_target(void)
{
    return exc_target;
}

void wasm_rt_set_unwind_target(WASM_RT_UNWIND_TARGET *target)
{
    exc_target = target;
}

uint32_t wasm_rt_exception_tag(void)
{
    return exc_tag;
}

uint32_t wasm_rt_exception_size(void)
{
    return exc_size;
}

void *wasm_rt_exception(void)
{
    return exc_buf;
}

/* ------------------------------------------------------ linear memories -- */

/*
 * Why a pool of fixed slots: each memory needs a fixed address (so a grow
 * never moves it under a host import) and must cost no RSS until touched.
 * One mmap per instance would do that but costs a VMA each, and Linux caps
 * a process at 65530 VMAs (vm.max_map_count) — below the 100k resident
 * actors we want. So slots of cap bytes are carved from large MAP_NORESERVE
 * chunks (one VMA per chunk), and a freed slot's pages are dropped with
 * MADV_DONTNEED: RSS returns to the kernel, which zero-fills them before any
 * reuse (the wipe: no byte of one wallet survives into another instance),
 * and the address space stays at the high-water mark of live instances.
 * Chunks are MADV_DONTDUMP: secret shares live here and must not land in
 * core dumps.
 */
#define CHUNK_BYTES ((size_t)1 << 30)
#define MAX_POOLS 8

typedef struct pool {
    size_t slot_bytes;
    pthread_mutex_t mu;
    uint8_t *chunk;
    size_t chunk_used, chunk_slots;
    uint8_t **free;
    size_t nfree, free_cap;
    uint64_t slots;
} pool;

static pool pools[MAX_POOLS];
static unsigned npools;
static pthread_mutex_t pools_mu = PTHREAD_MUTEX_INITIALIZER;

static pool *pool_for(size_t slot_bytes)
{
    pool *p = NULL;
    pthread_mutex_lock(&pools_mu);
    for (unsigned i = 0; i < npools; i++)
        if (pools[i].slot_bytes == slot_bytes) p = &pools[i];
    if (!p && npools < MAX_POOLS) {
        p = &pools[npools];
        p->slot_bytes = slot_bytes;
        pthread_mutex_init(&p->mu, NULL);
        __atomic_store_n(&npools, npools + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&pools_mu);
    return p;
}

static uint8_t *pool_get(pool *p)
{
    uint8_t *s = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->nfree) {
        s = p->free[--p->nfree];
    } else {
        if (p->chunk_used == p->chunk_slots) {
            size_t n = CHUNK_BYTES / p->slot_bytes;
            if (n == 0) n = 1;
            void *c = mmap(NULL, n * p->slot_bytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (c == MAP_FAILED) goto out;
            madvise(c, n * p->slot_bytes, MADV_DONTDUMP);
            p->chunk = c;
            p->chunk_slots = n;
            p->chunk_used = 0;
            /* The free list must be able to take every slot back without
             * allocating in pool_put. */
            if (p->free_cap < p->slots + n) {
                size_t cap = 2 * (p->slots + n);
                uint8_t **f = realloc(p->free, cap * sizeof *f);
                if (!f) {
                    munmap(c, n * p->slot_bytes);
                    p->chunk_slots = p->chunk_used = 0;
                    goto out;
                }
                p->free = f;
                p->free_cap = cap;
            }
            p->slots += n;
        }
        s = p->chunk + p->chunk_used++ * p->slot_bytes;
    }
out:
    pthread_mutex_unlock(&p->mu);
    return s;
}

static void pool_put(pool *p, uint8_t *s, size_t used)
{
    if (used) madvise(s, used, MADV_DONTNEED);
    pthread_mutex_lock(&p->mu);
    p->free[p->nfree++] = s;
    pthread_mutex_unlock(&p->mu);
}

void sbx_rt_pool_stats(uint64_t *slots_total, uint64_t *slots_free, uint64_t *reserved_bytes)
{
    uint64_t t = 0, f = 0, r = 0;
    unsigned n = __atomic_load_n(&npools, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
        pool *p = &pools[i];
        pthread_mutex_lock(&p->mu);
        /* Slots never carved from the current chunk are free too. */
        t += p->slots;
        f += p->nfree + (p->chunk_slots - p->chunk_used);
        r += p->slots * p->slot_bytes;
        pthread_mutex_unlock(&p->mu);
    }
    *slots_total = t;
    *slots_free = f;
    *reserved_bytes = r;
}

/* ------------------------------------------ slots kept by instance pool -- */

/* A recycled slot offered to the next wasm_rt_allocate_memory on this
 * thread (sbx_open of a pooled instance). Thread-local because instantiation
 * runs inside the trap boundary, where no argument reaches the allocator. */
static SBX_TLS uint8_t *tls_offer;
static SBX_TLS pool *tls_offer_pool;

void sbx_rt_offer_slot(uint8_t *data, void *slot_pool)
{
    tls_offer = data;
    tls_offer_pool = slot_pool;
}

void sbx_rt_take_offer(uint8_t **data, void **slot_pool)
{
    *data = tls_offer;
    *slot_pool = tls_offer_pool;
    tls_offer = NULL;
    tls_offer_pool = NULL;
}

void sbx_rt_slot_release(uint8_t *data, void *slot_pool, size_t used)
{
    pool *p = slot_pool;
    if (!data || !p) return;
    pool_put(p, data, used < p->slot_bytes ? used : p->slot_bytes);
}

static size_t os_page(void)
{
    static size_t pg;
    size_t v = __atomic_load_n(&pg, __ATOMIC_RELAXED);
    if (!v) {
        long l = sysconf(_SC_PAGESIZE);
        v = l > 0 ? (size_t)l : 4096;
        __atomic_store_n(&pg, v, __ATOMIC_RELAXED);
    }
    return v;
}

static int page_is_zero(const uint8_t *p, size_t n)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t acc = 0;
    for (size_t i = 0; i < n / 8; i++)
        acc |= w[i];
    return acc == 0;
}

/* Pages looked at per kernel query: bounded stack vectors for any cap. */
#define WIPE_WINDOW 512u

enum { PG_EMPTY, PG_PRESENT, PG_DROP };

/* /proc/self/pagemap, opened once: one pread tells, per page, present,
 * swapped out, or never touched. -1 when unavailable (no /proc). */
static int pagemap_fd = -1;
static pthread_once_t pagemap_once = PTHREAD_ONCE_INIT;

static void pagemap_open(void)
{
    pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
}

/* st[i] for the n pages at p: PG_EMPTY reads back as zero with nothing to
 * do, PG_PRESENT is mapped (zero it in place), PG_DROP may hold bytes we
 * cannot reach cheaply (swapped out) and must be dropped. Without pagemap,
 * mincore() cannot tell swapped from untouched, so every non-resident page
 * is PG_DROP. -1 when the kernel will not say. */
static int page_states(uint8_t *p, size_t n, size_t pg, uint8_t *st)
{
    pthread_once(&pagemap_once, pagemap_open);
    if (pagemap_fd >= 0) {
        uint64_t ent[WIPE_WINDOW];
        off_t off = (off_t)((uintptr_t)p / pg * sizeof ent[0]);
        if (pread(pagemap_fd, ent, n * sizeof ent[0], off) == (ssize_t)(n * sizeof ent[0])) {
            for (size_t i = 0; i < n; i++)
                st[i] = ent[i] >> 63 ? PG_PRESENT : (ent[i] >> 62) & 1 ? PG_DROP : PG_EMPTY;
            return 0;
        }
    }
    unsigned char vec[WIPE_WINDOW];
    if (mincore(p, n * pg, vec) != 0) return -1;
    for (size_t i = 0; i < n; i++)
        st[i] = vec[i] & 1 ? PG_PRESENT : PG_DROP;
    return 0;
}

/*
 * Mapped pages are zeroed in place (kept warm: that is the point of the
 * pool); pages swapped out still hold the previous tenant's bytes and are
 * dropped with MADV_DONTNEED; untouched pages already read as zero. A page
 * the guest only read maps the kernel's zero page; the zero check skips it
 * so the wipe never turns it into a private copy (RSS).
 */
size_t sbx_rt_slot_wipe(uint8_t *s, size_t used, size_t keep_resident)
{
    size_t pg = os_page();
    size_t npages = (used + pg - 1) / pg;
    uint8_t st[WIPE_WINDOW];
    size_t resident = 0;
    if (npages > WIPE_WINDOW) {
        /* Large memories: count first, so an over-full slot is dropped
         * whole instead of zeroed page by page. */
        for (size_t w = 0; w < npages; w += WIPE_WINDOW) {
            size_t n = npages - w < WIPE_WINDOW ? npages - w : WIPE_WINDOW;
            if (page_states(s + w * pg, n, pg, st) != 0) goto drop_all;
            for (size_t i = 0; i < n; i++)
                resident += st[i] == PG_PRESENT;
        }
        if (resident * pg > keep_resident) goto drop_all;
    }
    resident = 0;
    for (size_t w = 0; w < npages; w += WIPE_WINDOW) {
        size_t n = npages - w < WIPE_WINDOW ? npages - w : WIPE_WINDOW;
        if (page_states(s + w * pg, n, pg, st) != 0) goto drop_all;
        size_t run = 0;
        int in_run = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i < n && st[i] == PG_DROP) {
                if (!in_run) run = i, in_run = 1;
                continue;
            }
            if (in_run) {
                if (madvise(s + (w + run) * pg, (i - run) * pg, MADV_DONTNEED) != 0) goto drop_all;
                in_run = 0;
            }
            if (i < n && st[i] == PG_PRESENT) {
                uint8_t *p = s + (w + i) * pg;
                if (!page_is_zero(p, pg)) memset(p, 0, pg);
                resident++;
            }
        }
    }
    if (resident * pg > keep_resident) goto drop_all;
    return resident * pg;
drop_all:
    /* Too much to keep warm, or the kernel would not tell: the cold wipe. */
    if (madvise(s, npages * pg, MADV_DONTNEED) != 0) memset(s, 0, used);
    return 0;
}

void wasm_rt_allocate_memory(wasm_rt_memory_t *m, uint32_t initial_pages, uint32_t max_pages)
{
    memset(m, 0, sizeof *m);
    uint32_t cap = tls_mem_cap_pages;
    if (max_pages < cap) cap = max_pages;
    if (initial_pages > cap) sbx_raise(SBX_FAULT_MEMORY);
    m->max_pages = max_pages;
    m->cap_pages = cap;
    if (cap == 0) return;
    pool *p = pool_for((size_t)cap * PAGE_BYTES);
    uint8_t *s = NULL;
    if (p && tls_offer && tls_offer_pool == p) {
        /* A pooled slot, already wiped; resident pages stay warm. */
        s = tls_offer;
        tls_offer = NULL;
        tls_offer_pool = NULL;
    } else if (p) {
        s = pool_get(p);
    }
    if (!s) sbx_raise(SBX_FAULT_MEMORY);
    m->data = s;
    m->pool = p;
    m->pages = initial_pages;
    m->size = initial_pages * PAGE_BYTES;
}

uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *m, uint32_t delta)
{
    uint32_t old = m->pages;
    if (delta > m->cap_pages - old) return UINT32_MAX;
    /* The slot is already mapped and zero: growing is bookkeeping. */
    m->pages = old + delta;
    m->size = m->pages * PAGE_BYTES;
    return old;
}

void wasm_rt_free_memory(wasm_rt_memory_t *m)
{
    if (m->pool) pool_put(m->pool, m->data, m->size);
    memset(m, 0, sizeof *m);
}

/* --------------------------------------------------------------- tables -- */

/* Tables are small and fixed at link time for C guests; plain heap. A
 * failure traps as EXHAUSTION (tables are allocated inside the boundary). */
#define DEFINE_TABLE(type)                                                                         \
    void wasm_rt_allocate_##type##_table(wasm_rt_##type##_table_t *t, uint32_t n, uint32_t max)    \
    {                                                                                              \
        t->size = n;                                                                               \
        t->max_size = max;                                                                         \
        t->data = NULL;                                                                            \
        if (n) {                                                                                   \
            t->data = calloc(n, sizeof *t->data);                                                  \
            if (!t->data) {                                                                        \
                t->size = 0;                                                                       \
                sbx_raise(SBX_FAULT_MEMORY);                                                       \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    void wasm_rt_free_##type##_table(wasm_rt_##type##_table_t *t)                                  \
    {                                                                                              \
        free(t->data);                                                                             \
        t->data = NULL;                                                                            \
        t->size = 0;                                                                               \
    }                                                                                              \
    uint32_t wasm_rt_grow_##type##_table(wasm_rt_##type##_table_t *t, uint32_t delta,              \
                                         wasm_rt_##type##_t init)                                  \
    {                                                                                              \
        uint32_t old = t->size;                                                                    \
        uint32_t lim = t->max_size < 65536u ? t->max_size : 65536u;                                \
        if (delta > lim - old) return UINT32_MAX;                                                  \
        if (!delta) return old;                                                                    \
        wasm_rt_##type##_t *d = realloc(t->data, (size_t)(old + delta) * sizeof *d);               \
        if (!d) return UINT32_MAX;                                                                 \
        for (uint32_t i = old; i < old + delta; i++)                                               \
            d[i] = init;                                                                           \
        t->data = d;                                                                               \
        t->size = old + delta;                                                                     \
        return old;                                                                                \
    }

DEFINE_TABLE(funcref)
DEFINE_TABLE(externref)
