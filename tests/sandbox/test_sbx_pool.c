/*
 * The sandbox's instance pool (sbx_config.pool_slots): a recycled instance
 * gets the previous tenant's memory slot, and nothing the previous tenant
 * wrote — whether it ended cleanly or trapped. Run with the argument
 * "threads" for the concurrency test alone (the tsan suite).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sbx.h"

extern const sbx_module sbx_module_testguest;

#define CAP (1u << 20)
#define BOUND 4u

static const sbx_config pooled = {
    .module = &sbx_module_testguest,
    .mem_cap = CAP,
    .budget_ms = 20,
    .pool_slots = BOUND,
};

/* What the guest stores for 'w' is the command's bytes ^ 0x5a: MARK is
 * what the scan looks for, so the command buffer itself never matches. */
static const char MARK[] = "previous-tenant-secret:";
#define MARK_LEN (sizeof MARK - 1)

static sbx_instance *open_ok(const sbx_config *c)
{
    sbx_instance *in = NULL;
    assert_int_equal(sbx_open(c, NULL, 0, &in), RT_OK);
    assert_non_null(in);
    return in;
}

static void write_secret(sbx_instance *in, uint8_t tag)
{
    uint8_t cmd[1 + MARK_LEN + 8];
    cmd[0] = 'w';
    for (size_t i = 0; i < MARK_LEN; i++)
        cmd[1 + i] = (uint8_t)MARK[i] ^ 0x5a;
    for (size_t i = 0; i < 8; i++)
        cmd[1 + MARK_LEN + i] = tag ^ 0x5a;
    rt_reply r;
    assert_int_equal(sbx_call(in, cmd, sizeof cmd, 0, &r), RT_OK);
    assert_int_equal(r.status, RT_OK);
    free(r.data);
}

static uint64_t bump(sbx_instance *in)
{
    rt_reply r;
    uint64_t v = 0;
    assert_int_equal(sbx_call(in, "c", 1, 0, &r), RT_OK);
    assert_int_equal(r.status, RT_OK);
    assert_int_equal(r.len, 8);
    memcpy(&v, r.data, 8);
    free(r.data);
    return v;
}

/* The whole slot, not only the accessible part: a later grow would expose
 * the rest. The slot is mapped read-write for its full cap. */
static int slot_has_mark(sbx_instance *in, size_t span)
{
    const uint8_t *mem;
    size_t len;
    sbx_memory(in, &mem, &len);
    assert_true(len <= span);
    return memmem(mem, span, MARK, MARK_LEN) != NULL;
}

static const uint8_t *mem_of(sbx_instance *in)
{
    const uint8_t *mem;
    size_t len;
    sbx_memory(in, &mem, &len);
    return mem;
}

static void test_recycled_slot_shows_nothing_of_previous_tenant(void **state)
{
    (void)state;
    sbx_pool_drain();
    sbx_stats s0, s1;
    sbx_get_stats(&s0);
    sbx_instance *a = open_ok(&pooled);
    assert_int_equal(bump(a), 1);
    assert_int_equal(bump(a), 2);
    write_secret(a, 1);
    assert_true(slot_has_mark(a, CAP)); /* the scan sees what it looks for */
    /* Grow to the cap (the guest allocates until refused): the wipe must
     * cover grown pages too. */
    rt_reply r;
    assert_int_equal(sbx_call(a, "m", 1, 0, &r), RT_OK);
    free(r.data);
    const uint8_t *slot = mem_of(a);
    sbx_close(a);

    sbx_instance *b = open_ok(&pooled);
    sbx_get_stats(&s1);
    /* The pool handed the same slot back: this test is about recycling. */
    assert_ptr_equal(mem_of(b), slot);
    assert_int_equal(s1.pool_reused, s0.pool_reused + 1);
    assert_false(slot_has_mark(b, CAP));
    /* The guest's own state starts over (.bss zero, data re-initialized). */
    assert_int_equal(bump(b), 1);
    sbx_close(b);
    sbx_pool_drain();
}

static void test_trap_leaves_slot_clean(void **state)
{
    (void)state;
    sbx_pool_drain();
    sbx_instance *a = open_ok(&pooled);
    write_secret(a, 2);
    assert_int_equal(bump(a), 1);
    rt_reply r;
    assert_int_equal(sbx_call(a, "o", 1, 0, &r), RT_INTERNAL); /* out of bounds */
    free(r.data);
    assert_int_equal(sbx_last_fault(a), SBX_FAULT_OOB);
    const uint8_t *slot = mem_of(a);
    sbx_close(a);

    sbx_instance *b = open_ok(&pooled);
    assert_ptr_equal(mem_of(b), slot);
    assert_int_equal(sbx_last_fault(b), SBX_FAULT_NONE);
    assert_false(slot_has_mark(b, CAP));
    assert_int_equal(bump(b), 1);
    sbx_close(b);

    /* A tenant whose activation faults (cg_restore rejects the record) is
     * recycled too, and the next one is clean and healthy. */
    sbx_instance *c = open_ok(&pooled);
    write_secret(c, 3);
    sbx_close(c);
    sbx_instance *bad = NULL;
    assert_int_equal(sbx_open(&pooled, (const uint8_t *)"TRAP", 4, &bad), RT_INTERNAL);
    assert_null(bad);
    sbx_instance *d = open_ok(&pooled);
    assert_false(slot_has_mark(d, CAP));
    assert_int_equal(bump(d), 1);
    sbx_close(d);
    sbx_pool_drain();
}

static void test_pool_never_exceeds_bound(void **state)
{
    (void)state;
    sbx_pool_drain();
    enum { N = 3 * BOUND };
    sbx_instance *in[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++)
            in[i] = open_ok(&pooled);
        sbx_stats s;
        sbx_get_stats(&s);
        assert_int_equal(s.pool_free, 0); /* every pooled one was taken */
        for (int i = 0; i < N; i++)
            sbx_close(in[i]);
        sbx_get_stats(&s);
        assert_int_equal(s.pool_free, BOUND);
        assert_true(s.pool_free_peak <= BOUND);
    }
    sbx_pool_drain();
    sbx_stats s;
    sbx_get_stats(&s);
    assert_int_equal(s.pool_free, 0);
    uint64_t free_slots = s.mem_slots_free;
    /* Drained slots are back with the slot allocator. */
    assert_true(free_slots >= BOUND);
}

static void test_pool_disabled(void **state)
{
    (void)state;
    sbx_pool_drain();
    sbx_config off = pooled;
    off.pool_slots = 0;
    sbx_stats s0, s1;
    sbx_get_stats(&s0);
    for (int i = 0; i < 8; i++) {
        sbx_instance *a = open_ok(&off);
        assert_false(slot_has_mark(a, CAP));
        write_secret(a, 4);
        assert_int_equal(bump(a), 1);
        sbx_close(a);
    }
    sbx_get_stats(&s1);
    assert_int_equal(s1.pool_free, 0);
    assert_int_equal(s1.pool_reused, s0.pool_reused);
    assert_int_equal(s1.live, s0.live);
}

/* -------------------------------------------------------- concurrency -- */

enum { THREADS = 4, CYCLES = 400, HELD = 3 };

static void *churn(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    sbx_instance *held[HELD] = {0};
    for (int i = 0; i < CYCLES; i++) {
        int k = i % HELD;
        if (held[k]) sbx_close(held[k]);
        sbx_instance *in = NULL;
        if (sbx_open(&pooled, NULL, 0, &in) != RT_OK) return (void *)1;
        const uint8_t *mem;
        size_t len;
        sbx_memory(in, &mem, &len);
        /* Nothing of any thread's earlier tenant. */
        if (memmem(mem, len, MARK, MARK_LEN)) return (void *)2;
        uint8_t cmd[1 + MARK_LEN + 8];
        cmd[0] = 'w';
        for (size_t j = 0; j < MARK_LEN; j++)
            cmd[1 + j] = (uint8_t)MARK[j] ^ 0x5a;
        memset(cmd + 1 + MARK_LEN, (int)(id ^ 0x5a), 8);
        rt_reply r;
        if (sbx_call(in, cmd, sizeof cmd, 0, &r) != RT_OK || r.status != RT_OK) return (void *)3;
        free(r.data);
        if (i % 7 == 0) { /* some tenants end in a trap */
            if (sbx_call(in, "d", 1, 0, &r) == RT_OK) return (void *)4;
            free(r.data);
        }
        held[k] = in;
    }
    for (int k = 0; k < HELD; k++)
        sbx_close(held[k]);
    return NULL;
}

static void test_concurrent_churn(void **state)
{
    (void)state;
    sbx_pool_drain();
    sbx_stats s0, s1;
    sbx_get_stats(&s0);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)(i + 1)), 0);
    for (int i = 0; i < THREADS; i++) {
        void *rv = (void *)-1;
        assert_int_equal(pthread_join(t[i], &rv), 0);
        assert_null(rv);
    }
    sbx_get_stats(&s1);
    assert_int_equal(s1.live, s0.live);
    assert_true(s1.pool_free <= BOUND);
    assert_true(s1.pool_free_peak <= BOUND);
    assert_true(s1.pool_reused > s0.pool_reused); /* the pool was exercised */
    sbx_pool_drain();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recycled_slot_shows_nothing_of_previous_tenant),
        cmocka_unit_test(test_trap_leaves_slot_clean),
        cmocka_unit_test(test_pool_never_exceeds_bound),
        cmocka_unit_test(test_pool_disabled),
    };
    const struct CMUnitTest threads[] = {
        cmocka_unit_test(test_concurrent_churn),
    };
    if (argc > 1 && !strcmp(argv[1], "threads"))
        return cmocka_run_group_tests_name("sbx_pool_threads", threads, NULL, NULL);
    return cmocka_run_group_tests_name("sbx_pool", tests, NULL, NULL);
}
