/*
 * Sandbox acceptance tests at the sandbox's own door (sbx.h), with the
 * misbehaving test guest (guest/wasm/testguest).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cg_config.h"
#include "cx.h"
#include "sbx.h"

extern const sbx_module sbx_module_testguest;

#define CAP (1u << 20)

static const sbx_config cfg = {
    .module = &sbx_module_testguest,
    .mem_cap = CAP,
    .budget_ms = 20,
};

/* Local, so these tests need nothing of src/rt but its status names. */
static void reply_free(rt_reply *r)
{
    free(r->data);
    r->data = NULL;
    r->len = 0;
}

static sbx_instance *open_rec(const sbx_config *c, const void *rec, size_t len)
{
    sbx_instance *in = NULL;
    assert_int_equal(sbx_open(c, rec, len, &in), RT_OK);
    assert_non_null(in);
    return in;
}

static uint64_t u64_of(const rt_reply *r)
{
    uint64_t v;
    assert_int_equal(r->len, 8);
    memcpy(&v, r->data, 8);
    return v;
}

/* Sends 'c' and returns the counter the guest replies. */
static uint64_t bump(sbx_instance *in)
{
    rt_reply r;
    assert_int_equal(sbx_call(in, "c", 1, 0, &r), RT_OK);
    assert_int_equal(r.status, RT_OK);
    uint64_t v = u64_of(&r);
    reply_free(&r);
    return v;
}

static void test_echo_snapshot_restore(void **state)
{
    (void)state;
    sbx_instance *a = open_rec(&cfg, NULL, 0);
    rt_reply r;
    assert_int_equal(sbx_call(a, "ehello", 6, 0, &r), RT_OK);
    assert_int_equal(r.status, RT_OK);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.data, "hello", 5);
    reply_free(&r);
    assert_int_equal(bump(a), 1);
    assert_int_equal(bump(a), 2);

    uint8_t *snap;
    size_t snap_len;
    assert_int_equal(sbx_snapshot(a, &snap, &snap_len), RT_OK);
    assert_int_equal(snap_len, 8);
    sbx_close(a);

    sbx_instance *b = open_rec(&cfg, snap, snap_len);
    free(snap);
    assert_int_equal(bump(b), 3);

    /* Ticks reach the guest. */
    assert_int_equal(sbx_tick(b, NULL, 5), RT_OK);
    assert_int_equal(sbx_tick(b, NULL, 6), RT_OK);
    assert_int_equal(sbx_call(b, "t", 1, 0, &r), RT_OK);
    assert_int_equal(u64_of(&r), 2);
    reply_free(&r);
    sbx_close(b);
}

typedef struct trap_case {
    const char *cmd;
    rt_status status;
    sbx_fault fault;
    int replied_first; /* the guest's own reply went out before the fault */
} trap_case;

static const trap_case traps[] = {
    {"o", RT_INTERNAL, SBX_FAULT_OOB, 0},
    {"O", RT_INTERNAL, SBX_FAULT_OOB, 0},
    {"u", RT_INTERNAL, SBX_FAULT_UNREACHABLE, 0},
    {"d", RT_INTERNAL, SBX_FAULT_DIV_BY_ZERO, 0},
    {"v", RT_INTERNAL, SBX_FAULT_INT_OVERFLOW, 0},
    {"f", RT_INTERNAL, SBX_FAULT_INVALID_CONVERSION, 0},
    {"i", RT_INTERNAL, SBX_FAULT_CALL_INDIRECT, 0},
    /* The shadow stack runs below address 0 (--stack-first): out of bounds. */
    {"s", RT_INTERNAL, SBX_FAULT_OOB, 0},
    {"r", RT_INTERNAL, SBX_FAULT_EXHAUSTION, 0},
    /* Memory exhaustion ending in abort(), as xmalloc-style code does. */
    {"M", RT_INTERNAL, SBX_FAULT_UNREACHABLE, 0},
    {"l", RT_DEADLINE_EXCEEDED, SBX_FAULT_BUDGET, 0},
    {"p", RT_INTERNAL, SBX_FAULT_BAD_POINTER, 0},
    {"P", RT_INTERNAL, SBX_FAULT_BAD_POINTER, 0},
    {"D", RT_INTERNAL, SBX_FAULT_ABI, 1},
    {"z", RT_INTERNAL, SBX_FAULT_ABI, 0},
    /* The same through the crypto imports. */
    {"X", RT_INTERNAL, SBX_FAULT_BAD_POINTER, 0},
    {"Y", RT_INTERNAL, SBX_FAULT_ABI, 0},
};

static void test_every_trap_kind(void **state)
{
    (void)state;
    /* A bystander actor that must not notice anything. */
    sbx_instance *other = open_rec(&cfg, NULL, 0);
    assert_int_equal(bump(other), 1);

    uint64_t counter = 0;
    sbx_instance *a = open_rec(&cfg, NULL, 0);
    for (size_t i = 0; i < sizeof traps / sizeof traps[0]; i++) {
        const trap_case *t = &traps[i];
        sbx_stats before, after;
        sbx_get_stats(&before);

        assert_int_equal(bump(a), ++counter);
        uint8_t *snap;
        size_t snap_len;
        assert_int_equal(sbx_snapshot(a, &snap, &snap_len), RT_OK);

        rt_reply r;
        rt_status st = sbx_call(a, t->cmd, strlen(t->cmd), 0, &r);
        print_message("trap '%s': %s, %.*s\n", t->cmd, rt_status_name(st), (int)r.len,
                      (const char *)r.data);
        assert_int_equal(st, t->status);
        assert_int_equal(r.status, t->replied_first ? RT_OK : t->status);
        assert_int_equal(sbx_last_fault(a), t->fault);
        if (t->fault != SBX_FAULT_BUDGET && t->fault != SBX_FAULT_ABI &&
            t->fault != SBX_FAULT_BAD_POINTER) {
            char want[64];
            snprintf(want, sizeof want, "handler panicked: %s", sbx_fault_name(t->fault));
            assert_int_equal(r.len, strlen(want));
            assert_memory_equal(r.data, want, r.len);
        }
        reply_free(&r);
        sbx_get_stats(&after);
        assert_int_equal(after.faults[t->fault], before.faults[t->fault] + 1);

        /* Never re-entered after a trap. */
        assert_int_equal(sbx_call(a, "c", 1, 0, &r), RT_FAILED_PRECONDITION);
        reply_free(&r);
        sbx_close(a);

        /* The actor's next message is served by a fresh instance restored
         * from the last durable record. */
        a = open_rec(&cfg, snap, snap_len);
        free(snap);
        assert_int_equal(bump(a), ++counter);
    }
    sbx_close(a);
    assert_int_equal(bump(other), 2);
    sbx_close(other);
}

static void test_memory_exhaustion_seen_by_guest(void **state)
{
    (void)state;
    static const uint32_t caps[] = {256u << 10, CAP, 4u << 20};
    for (size_t i = 0; i < 3; i++) {
        sbx_config c = cfg;
        c.mem_cap = caps[i];
        sbx_instance *a = open_rec(&c, NULL, 0);
        rt_reply r;
        assert_int_equal(sbx_call(a, "m", 1, 0, &r), RT_OK);
        assert_int_equal(r.status, RT_RESOURCE_EXHAUSTED);
        uint64_t blocks = u64_of(&r);
        reply_free(&r);
        /* Every 64 KiB block the guest got came out of its cap, and it got
         * nearly all of the cap beyond the 2 initial pages. */
        assert_true(blocks * 65536 <= caps[i]);
        assert_true((blocks + 4) * 65536 >= caps[i]);
        const uint8_t *mem;
        size_t len;
        sbx_memory(a, &mem, &len);
        assert_true(len <= caps[i]);
        /* The instance is still healthy. */
        assert_int_equal(bump(a), 1);
        sbx_close(a);
    }
}

static void test_initial_memory_above_cap(void **state)
{
    (void)state;
    sbx_config c = cfg;
    c.mem_cap = 65536; /* the module needs 2 pages to start */
    sbx_stats before, after;
    sbx_get_stats(&before);
    sbx_instance *a = NULL;
    assert_int_equal(sbx_open(&c, NULL, 0, &a), RT_INTERNAL);
    assert_null(a);
    sbx_get_stats(&after);
    assert_int_equal(after.faults[SBX_FAULT_MEMORY], before.faults[SBX_FAULT_MEMORY] + 1);
    assert_int_equal(after.open_failures, before.open_failures + 1);
}

static void test_restore_faults_are_actor_level(void **state)
{
    (void)state;
    sbx_instance *a = NULL;
    assert_int_equal(sbx_open(&cfg, (const uint8_t *)"TRAP", 4, &a), RT_INTERNAL);
    assert_null(a);
    /* A record the guest rejects (non-zero status from cg_restore). */
    assert_int_equal(sbx_open(&cfg, (const uint8_t *)"bad", 3, &a), RT_INTERNAL);
    assert_null(a);
    /* A record larger than the guest's buffer. */
    static uint8_t big[8192];
    assert_int_equal(sbx_open(&cfg, big, sizeof big, &a), RT_INTERNAL);
    assert_null(a);
    /* The module is fine for everyone else. */
    a = open_rec(&cfg, NULL, 0);
    assert_int_equal(bump(a), 1);
    sbx_close(a);
}

static void test_command_too_large_is_refused_not_fatal(void **state)
{
    (void)state;
    sbx_instance *a = open_rec(&cfg, NULL, 0);
    static uint8_t big[8192] = {'e'};
    rt_reply r;
    assert_int_equal(sbx_call(a, big, sizeof big, 0, &r), RT_OK);
    assert_int_equal(r.status, RT_INVALID_ARGUMENT);
    reply_free(&r);
    assert_int_equal(bump(a), 1);
    sbx_close(a);
}

static void test_crypto_imports(void **state)
{
    (void)state;
    sbx_instance *a = open_rec(&cfg, NULL, 0);
    static const char msg[] = "habc";
    uint8_t want[32];
    cx_sha256(want, (const uint8_t *)msg + 1, 3);
    rt_reply r;
    assert_int_equal(sbx_call(a, msg, 4, 0, &r), RT_OK);
    assert_int_equal(r.status, RT_OK);
    assert_int_equal(r.len, 32);
    assert_memory_equal(r.data, want, 32);
    reply_free(&r);

    uint8_t cmd[33] = {'G'}, pub[33];
    for (int i = 1; i < 33; i++)
        cmd[i] = (uint8_t)(i * 3);
    assert_true(cx_pubkey_from_seckey(pub, cmd + 1));
    assert_int_equal(sbx_call(a, cmd, sizeof cmd, 0, &r), RT_OK);
    assert_int_equal(r.status, RT_OK);
    assert_int_equal(r.len, 33);
    assert_memory_equal(r.data, pub, 33);
    reply_free(&r);
    sbx_close(a);
}

/* A crash in host code called from a guest (here: the reply sink) must stay
 * a crash: with no signal handler it cannot be mistaken for a guest trap. */
static void crashing_reply(void *arg, rt_status st, const void *data, size_t len, uint64_t blame)
{
    (void)arg, (void)st, (void)data, (void)len, (void)blame;
    /* An inaccessible page, not NULL: UBSan would stop at NULL before the fault. */
    volatile int *bad = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *bad = 1;
}

static void test_host_fault_not_disguised(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Default dispositions: cmocka (and sanitizers) would otherwise
         * catch the crash in the child and carry on. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        sbx_instance *in = NULL;
        if (sbx_open(&cfg, NULL, 0, &in) != RT_OK) _exit(2);
        sbx_sink sink = {.reply = crashing_reply};
        rt_status st = sbx_handle(in, &sink, "ex", 2, 0);
        _exit(st == RT_OK ? 0 : 1); /* reaching here at all is the failure */
    }
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGSEGV);
}

static int contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    return memmem(hay, n, needle, m) != NULL;
}

static void test_isolation(void **state)
{
    (void)state;
    uint8_t cmd[1 + 64], secret[64];
    cmd[0] = 'w';
    for (size_t i = 0; i < 64; i++) {
        cmd[1 + i] = (uint8_t)(0xa0 ^ (i * 37));
        secret[i] = cmd[1 + i] ^ 0x5a; /* what the guest stores */
    }
    sbx_instance *a = open_rec(&cfg, NULL, 0);
    sbx_instance *b = open_rec(&cfg, NULL, 0);
    rt_reply r;
    assert_int_equal(sbx_call(a, cmd, sizeof cmd, 0, &r), RT_OK);
    assert_int_equal(r.status, RT_OK);
    reply_free(&r);

    const uint8_t *ma, *mb;
    size_t la, lb;
    sbx_memory(a, &ma, &la);
    sbx_memory(b, &mb, &lb);
    assert_true(contains(ma, la, secret, sizeof secret)); /* the scan works */
    assert_false(contains(mb, lb, secret, sizeof secret));
    /* Disjoint memories: no address of one is an address of the other. */
    assert_true(ma + CAP <= mb || mb + CAP <= ma);

    /* A freed memory is wiped before anyone else gets it. */
    sbx_close(a);
    sbx_instance *c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = open_rec(&cfg, NULL, 0);
        const uint8_t *mc;
        size_t lc;
        sbx_memory(c[i], &mc, &lc);
        assert_false(contains(mc, lc, secret, sizeof secret));
    }
    for (int i = 0; i < 4; i++)
        sbx_close(c[i]);
    sbx_close(b);
}

/* A worker with a stack smaller than the configured guest stack budget:
 * deep recursion still ends in EXHAUSTION, not in a host stack overflow. */
static void *small_stack_main(void *arg)
{
    int *ok = arg;
    sbx_instance *in = NULL;
    sbx_config c = cfg;
    c.stack_bytes = 4u << 20; /* far more than the thread has */
    rt_status st0 = sbx_open(&c, NULL, 0, &in);
    if (st0 != RT_OK) {
        print_message("small stack: open %s\n", rt_status_name(st0));
        return NULL;
    }
    rt_reply r;
    rt_status st = sbx_call(in, "r", 1, 0, &r);
    print_message("small stack: %s, %s\n", rt_status_name(st), sbx_fault_name(sbx_last_fault(in)));
    *ok = st == RT_INTERNAL && sbx_last_fault(in) == SBX_FAULT_EXHAUSTION;
    reply_free(&r);
    sbx_close(in);
    return NULL;
}

static void test_small_thread_stack(void **state)
{
    (void)state;
    pthread_attr_t a;
    pthread_t t;
    int ok = 0;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 1u << 20);
    assert_int_equal(pthread_create(&t, &a, small_stack_main, &ok), 0);
    pthread_attr_destroy(&a);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(ok);
}

/* ------------------------------------------------------ concurrency ---- */

/* The full acceptance count in every build: cheap enough under sanitizers. */
#define THREAD_CALLS 50000
/* Every BUDGET_EVERY-th call of each thread is a runaway loop, run on an
 * instance opened with a 1 ms CPU budget: a few hundred budget overruns per
 * thread (the random trap mix would pick one in ~50k calls, so a thread
 * could see none), at well under a second of CPU per thread. */
#define BUDGET_EVERY 200
#define BUDGET_CALLS (THREAD_CALLS / BUDGET_EVERY)

static const sbx_config cfg_short_budget = {
    .module = &sbx_module_testguest,
    .mem_cap = CAP,
    .budget_ms = 1,
};

typedef struct worker {
    unsigned seed;
    unsigned calls, faults;
    unsigned by_fault[SBX_FAULT_COUNT_];
    int failed;
} worker;

static const trap_case *budget_trap(void)
{
    for (size_t k = 0; k < sizeof traps / sizeof traps[0]; k++)
        if (traps[k].fault == SBX_FAULT_BUDGET) return &traps[k];
    return NULL;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    static const char normal[] = "ec";
    const trap_case *budget = budget_trap();
    sbx_instance *in = NULL;
    uint64_t counter = 0;
    uint8_t rec[8];
    if (!budget || sbx_open(&cfg, NULL, 0, &in) != RT_OK) w->failed = 1;
    for (unsigned i = 0; i < THREAD_CALLS && !w->failed; i++) {
        unsigned x = rand_r(&w->seed);
        /* 1 in 3 calls traps (any kind but the budget); every BUDGET_EVERY-th
         * call loops until its budget runs out. */
        const trap_case *t = NULL;
        if (i % BUDGET_EVERY == BUDGET_EVERY - 1) {
            t = budget;
            sbx_close(in); /* the same actor state, with the short budget */
            memcpy(rec, &counter, 8);
            if (sbx_open(&cfg_short_budget, rec, 8, &in) != RT_OK) {
                w->failed = 7;
                in = NULL;
                break;
            }
        } else if (x % 3 == 0) {
            t = &traps[(x / 3) % (sizeof traps / sizeof traps[0])];
            if (t == budget) t = &traps[0];
        }
        rt_reply r;
        if (!t) {
            char cmd[16];
            cmd[0] = normal[x % 2];
            int n = snprintf(cmd + 1, sizeof cmd - 1, "%u", i) + 1;
            rt_status st = sbx_call(in, cmd, (size_t)n, 0, &r);
            if (st != RT_OK || r.status != RT_OK)
                w->failed = 2;
            else if (cmd[0] == 'e' && (r.len != (size_t)n - 1 || memcmp(r.data, cmd + 1, r.len)))
                w->failed = 3;
            else if (cmd[0] == 'c') {
                uint64_t v;
                memcpy(&v, r.data, 8);
                if (r.len != 8 || v != ++counter) w->failed = 4;
            }
            reply_free(&r);
            w->calls++;
            continue;
        }
        rt_status st = sbx_call(in, t->cmd, strlen(t->cmd), 0, &r);
        sbx_fault f = sbx_last_fault(in);
        if (st != t->status || r.status != (t->replied_first ? RT_OK : t->status) || f != t->fault)
            w->failed = 5;
        else
            w->by_fault[f]++;
        reply_free(&r);
        w->calls++;
        w->faults++;
        sbx_close(in);
        memcpy(rec, &counter, 8);
        if (sbx_open(&cfg, rec, 8, &in) != RT_OK) {
            w->failed = 6;
            in = NULL;
        }
    }
    if (in) sbx_close(in);
    return NULL;
}

static void test_two_threads_mixed(void **state)
{
    (void)state;
    worker w[2] = {{.seed = 1}, {.seed = 2}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        print_message("worker %d: %u calls, %u faults (%u budget overruns), failed=%d\n", i,
                      w[i].calls, w[i].faults, w[i].by_fault[SBX_FAULT_BUDGET], w[i].failed);
        assert_int_equal(w[i].failed, 0);
        assert_int_equal(w[i].calls, THREAD_CALLS);
        assert_true(w[i].faults > THREAD_CALLS / 4);
        /* Every overrun ended as DEADLINE_EXCEEDED / BUDGET (a wrong status
         * fails the worker above), and each thread had its share. */
        assert_int_equal(w[i].by_fault[SBX_FAULT_BUDGET], BUDGET_CALLS);
        /* ... alongside every other trap kind of the table. */
        for (size_t k = 0; k < sizeof traps / sizeof traps[0]; k++)
            assert_true(w[i].by_fault[traps[k].fault] >= 1);
    }
}

/* ----------------------------------------------------------- leaks ----- */

#if CG_SANITIZE_THREAD || CG_SANITIZE_ADDRESS
#define CYCLES 100000
#else
#define CYCLES 1000000
#endif

static void mem_usage(long *rss_kb, long *vm_kb)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    *rss_kb = *vm_kb = -1;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "VmRSS: %ld", rss_kb);
        sscanf(line, "VmSize: %ld", vm_kb);
    }
    fclose(f);
}

static void test_activation_cycles_flat(void **state)
{
    (void)state;
    uint8_t rec[8] = {7};
    long rss0, vm0, rss1, vm1;
    /* Warm up allocator arenas and the pool first. */
    for (int i = 0; i < 1000; i++) {
        sbx_instance *in = open_rec(&cfg, rec, 8);
        sbx_close(in);
    }
    sbx_stats s0, s1;
    sbx_get_stats(&s0);
    mem_usage(&rss0, &vm0);
    for (long i = 0; i < CYCLES; i++) {
        sbx_instance *in = NULL;
        if (sbx_open(&cfg, rec, 8, &in) != RT_OK) fail_msg("open failed at cycle %ld", i);
        if (i % 1024 == 0) assert_int_equal(bump(in), 8);
        sbx_close(in);
    }
    mem_usage(&rss1, &vm1);
    sbx_get_stats(&s1);
    print_message("%d cycles: RSS %ld -> %ld KiB, VM %ld -> %ld KiB, slots %lu -> %lu\n", CYCLES,
                  rss0, rss1, vm0, vm1, (unsigned long)s0.mem_slots, (unsigned long)s1.mem_slots);
    assert_int_equal(s1.mem_slots, s0.mem_slots);
    assert_int_equal(s1.live, s0.live);
    /* ASan's quarantine holds freed blocks (RSS grows by design there);
     * LeakSanitizer checks that build for leaks instead. */
    if (!CG_SANITIZE_ADDRESS) assert_true(rss1 - rss0 < 2048);
    assert_true(vm1 - vm0 < 2048);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_snapshot_restore),
        cmocka_unit_test(test_every_trap_kind),
        cmocka_unit_test(test_memory_exhaustion_seen_by_guest),
        cmocka_unit_test(test_initial_memory_above_cap),
        cmocka_unit_test(test_restore_faults_are_actor_level),
        cmocka_unit_test(test_command_too_large_is_refused_not_fatal),
        cmocka_unit_test(test_isolation),
        cmocka_unit_test(test_host_fault_not_disguised),
        cmocka_unit_test(test_crypto_imports),
        cmocka_unit_test(test_small_thread_stack),
        cmocka_unit_test(test_two_threads_mixed),
        cmocka_unit_test(test_activation_cycles_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
